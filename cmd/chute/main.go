// Command chute is a watch-folder upload daemon: see README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	// SIGHUP must not kill the daemon like a crash would (its default action).
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	go func() {
		for range hups {
			fmt.Fprintln(os.Stderr, "chute: SIGHUP received; reloading the config is not supported yet, nothing changes")
		}
	}()
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "chute: stopping (a second signal stops at once)")
		cancel()
		<-sigs
		fmt.Fprintln(os.Stderr, "chute: stopped at once")
		os.Exit(1)
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	cancel()
	os.Exit(exitCode(err))
}

// exitCode maps run's error to the process's exit status (the spec's table).
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, "chute:", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "chute:", err)
	return 1
}
