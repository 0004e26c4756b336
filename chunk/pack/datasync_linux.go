//go:build linux

package pack

import (
	"os"
	"syscall"
)

// fdatasync flushes f's data and the metadata needed to read it back, its
// size among them, but not its times: a pack is only ever appended to, so
// that is all a crash can lose, and it saves a journal write per sync.
func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if serr = syscall.Fdatasync(int(fd)); serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return os.NewSyscallError("fdatasync", serr)
	}
	return nil
}
