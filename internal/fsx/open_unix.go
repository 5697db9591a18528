//go:build unix

package fsx

import (
	"os"
	"syscall"
)

// openNonBlocking opens with O_NONBLOCK, so that opening a FIFO with no writer returns at
// once instead of waiting for one.
func openNonBlocking(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

// clearNonBlocking puts a regular file back in blocking mode (it makes no difference to
// regular files on Linux, but keeps reads ordinary everywhere).
func clearNonBlocking(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.SetNonblock(int(fd), false) }); err != nil {
		return err
	}
	return serr
}
