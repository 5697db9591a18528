//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package uploader

import "os"

// mapWindow cannot map on this platform: the caller reads.
func mapWindow(*os.File, int64, int) ([]byte, bool) { return nil, false }

// unmapWindow is never called here.
func unmapWindow([]byte) {}
