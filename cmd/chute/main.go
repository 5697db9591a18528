// Command chute is a watch-folder upload daemon: see README.md.
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/chute-dev/chute/store"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	// SIGHUP reloads the config of a running daemon (reload.go); caught before anything
	// else so that it never kills chute, whatever it is doing.
	reloads := make(chan os.Signal, 1)
	signal.Notify(reloads, syscall.SIGHUP)
	hooks := &processHooks{reloads: reloads, stderr: os.Stderr}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		hooks.say(slog.LevelInfo, "stopping (a second signal stops at once)")
		cancel()
		<-sigs
		hooks.say(slog.LevelWarn, "stopped at once")
		os.Exit(1)
	}()
	err := run(withHooks(ctx, hooks), os.Args[1:], os.Stdout, os.Stderr)
	cancel()
	os.Exit(exitCode(err, hooks))
}

// exitCode maps run's error to the process's exit status (the spec's table).
func exitCode(err error, hooks *processHooks) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, store.ErrDamaged) {
		// Its own status: a service manager (or a script) can tell it from a bad config, and
		// restarting will not help until someone moves the file aside, as the message says.
		err = &exitError{code: 3, msg: err.Error()}
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			hooks.say(slog.LevelError, ee.msg)
		}
		return ee.code
	}
	hooks.say(slog.LevelError, err.Error())
	return 1
}
