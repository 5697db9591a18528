//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd || windows)

package store

import "os"

// tryLock does nothing where chute knows no whole-file lock that is per open file (e.g.
// solaris, aix, plan9): there only bbolt's own lock on the database file guards it.
func tryLock(*os.File, bool) error { return nil }
