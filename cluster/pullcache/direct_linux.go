package pullcache

import (
	"os"
	"syscall"
	"unsafe"
)

// openDirect opens path for writes that bypass the page cache. File
// systems without O_DIRECT (tmpfs) refuse it; the fill then writes
// through the page cache.
func openDirect(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|syscall.O_DIRECT, 0)
}

// alignedBlock returns a block buffer aligned as O_DIRECT needs.
func alignedBlock() *[]byte {
	b := make([]byte, blockSize+4096)
	off := (4096 - int(uintptr(unsafe.Pointer(&b[0]))&4095)) & 4095
	b = b[off : off+blockSize : off+blockSize]
	return &b
}
