package main

import (
	"log/slog"
	"strings"

	"golang.org/x/sys/windows/svc/eventlog"
)

// eventLogger logs to the Windows event log under the source `chute install` registered
// (kardianos/service does, with the service's name). The log stays open for the process.
func eventLogger(level, format string) (*slog.Logger, error) {
	el, err := eventlog.Open(serviceName)
	if err != nil {
		return nil, err
	}
	return slog.New(newLineHandler(format, handlerOptions(level, true), func(l slog.Level, line []byte) error {
		msg := strings.TrimRight(string(line), "\r\n")
		switch {
		case l >= slog.LevelError:
			return el.Error(3, msg)
		case l >= slog.LevelWarn:
			return el.Warning(2, msg)
		default:
			return el.Info(1, msg)
		}
	})), nil
}
