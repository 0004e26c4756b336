package chunk

import (
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// directBlock is the unit of O_DIRECT writes: a multiple of any logical
// block size, and big enough that waiting for the device on each write
// costs little next to reading the stream.
const directBlock = 1 << 20

// directPool holds directBlock buffers aligned for O_DIRECT.
var directPool = sync.Pool{New: func() any {
	b := make([]byte, directBlock+4096)
	off := (4096 - int(uintptr(unsafe.Pointer(&b[0]))&4095)) & 4095
	b = b[off : off+directBlock : off+directBlock]
	return &b
}}

// directWriteAt writes a whole block while O_DIRECT is on; a seam for tests.
var directWriteAt = (*os.File).WriteAt

// copyDirect writes prefix and then everything r yields to the empty file
// f: whole directBlocks with O_DIRECT, so they never enter the page cache,
// and the tail, which O_DIRECT cannot take unpadded, through it. It returns
// the bytes read from r. Where the file system refuses O_DIRECT the writes
// go through the page cache.
func copyDirect(f *os.File, prefix []byte, r io.Reader) (int64, error) {
	bp := directPool.Get().(*[]byte)
	defer directPool.Put(bp)
	buf := *bp
	fill := copy(buf, prefix)
	direct := setDirect(f, true) == nil
	var off, n int64
	for {
		k, err := r.Read(buf[fill:])
		fill += k
		n += int64(k)
		if fill == len(buf) {
			if direct {
				if _, werr := directWriteAt(f, buf, off); werr != nil {
					if !errors.Is(werr, syscall.EINVAL) {
						return n, werr
					}
					// fcntl took O_DIRECT but the file system does not.
					direct = false
					if werr := setDirect(f, false); werr != nil {
						return n, werr
					}
				}
			}
			if !direct {
				if _, werr := f.WriteAt(buf, off); werr != nil {
					return n, werr
				}
			}
			off += int64(fill)
			fill = 0
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, err
		}
	}
	if direct {
		if err := setDirect(f, false); err != nil {
			return n, err
		}
	}
	if fill > 0 {
		if _, err := f.WriteAt(buf[:fill], off); err != nil {
			return n, err
		}
	}
	return n, nil
}

// setDirect turns O_DIRECT on or off for f.
func setDirect(f *os.File, on bool) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		fl, e := fcntl(fd, syscall.F_GETFL, 0)
		if e != nil {
			ferr = e
			return
		}
		if on {
			fl |= syscall.O_DIRECT
		} else {
			fl &^= syscall.O_DIRECT
		}
		_, ferr = fcntl(fd, syscall.F_SETFL, fl)
	})
	if err != nil {
		return err
	}
	return ferr
}

func fcntl(fd uintptr, cmd, arg int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, uintptr(cmd), uintptr(arg))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}
