//go:build unix

package redgifs_test

import "syscall"

// flushDisks writes dirty pages out (the benchmark file just written, MinIO's last object),
// so that neither side of a comparison pays for the other's writeback.
func flushDisks() { syscall.Sync() }
