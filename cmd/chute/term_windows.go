package main

import "golang.org/x/sys/windows"

// isTerminal reports whether fd is a console (for `chute status --watch`). Windows 10 and
// later consoles understand the ANSI sequences the refresh uses.
func isTerminal(fd uintptr) bool {
	var mode uint32
	return windows.GetConsoleMode(windows.Handle(fd), &mode) == nil
}
