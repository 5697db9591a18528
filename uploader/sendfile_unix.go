//go:build unix

package uploader

import (
	"os"
	"syscall"
)

// duplicate returns a second descriptor of f (nil if the system refuses one). It shares f's
// file offset, which only the sends move: File reads with ReadAt, which uses none.
// SyscallConn rather than Fd: Fd would put f in blocking mode.
func duplicate(f *os.File) *os.File {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	fd := -1
	if cerr := rc.Control(func(s uintptr) { fd, err = syscall.Dup(int(s)) }); cerr != nil || err != nil {
		return nil
	}
	syscall.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), f.Name())
}
