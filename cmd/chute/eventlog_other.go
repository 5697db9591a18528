//go:build !windows

package main

import (
	"errors"
	"log/slog"
)

// eventLogger exists on Windows only.
func eventLogger(level, format string) (*slog.Logger, error) {
	return nil, errors.New("the event log is Windows only")
}
