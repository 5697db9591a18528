//go:build !unix

package redgifs_test

// flushDisks does nothing where there is no sync(2).
func flushDisks() {}
