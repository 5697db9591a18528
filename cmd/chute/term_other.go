//go:build !linux && !darwin && !freebsd && !netbsd && !openbsd && !windows

package main

// isTerminal reports false: on this system `chute status --watch` prints plain lines.
func isTerminal(fd uintptr) bool { return false }
