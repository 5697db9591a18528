//go:build !unix

package fsx

import "os"

// openNonBlocking is a plain open where there are no FIFOs to block on (Windows named pipes
// do not live in folders).
func openNonBlocking(path string) (*os.File, error) { return os.Open(path) }

func clearNonBlocking(*os.File) error { return nil }
