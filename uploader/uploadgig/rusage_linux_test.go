//go:build linux

package uploadgig_test

import "syscall"

// childrenPeakRSS is the largest peak RSS of the child processes waited for, in bytes.
func childrenPeakRSS() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru) != nil {
		return 0
	}
	return int64(ru.Maxrss) << 10 // kilobytes on Linux
}
