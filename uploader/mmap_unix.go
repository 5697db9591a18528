//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package uploader

import (
	"os"
	"syscall"
)

// mapWindow maps n bytes of f from off (a multiple of the page size) for reading; ok is false
// when it cannot, and the caller reads them instead.
func mapWindow(f *os.File, off int64, n int) (b []byte, ok bool) {
	if n <= 0 || off%int64(os.Getpagesize()) != 0 {
		return nil, false
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, false
	}
	var merr error
	if cerr := rc.Control(func(fd uintptr) {
		b, merr = syscall.Mmap(int(fd), off, n, syscall.PROT_READ, syscall.MAP_SHARED)
	}); cerr != nil || merr != nil {
		return nil, false
	}
	return b, true
}

// unmapWindow releases a mapWindow mapping.
func unmapWindow(b []byte) { _ = syscall.Munmap(b) }
