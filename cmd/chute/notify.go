package main

import (
	"log/slog"
	"os"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

// notifier tells systemd (Type=notify) how the daemon is doing through $NOTIFY_SOCKET:
// READY=1, RELOADING=1, STOPPING=1 and the watchdog's WATCHDOG=1. Without the variable
// (not under systemd) it does nothing.
type notifier struct {
	log *slog.Logger
	on  bool
}

func newNotifier(log *slog.Logger) *notifier {
	return &notifier{log: log, on: os.Getenv("NOTIFY_SOCKET") != ""}
}

// send sends one notification of one or more assignments. A failure is logged, never
// fatal: systemd then acts on its own timeouts.
func (n *notifier) send(states ...string) {
	if !n.on {
		return
	}
	msg := strings.Join(states, "\n")
	if _, err := sd.SdNotify(false, msg); err != nil {
		n.log.Warn("notify systemd", "state", states[0], "err", err)
	}
}

func (n *notifier) ready(status string) {
	n.send(sd.SdNotifyReady, "STATUS="+status)
}

func (n *notifier) stopping() {
	n.send(sd.SdNotifyStopping, "STATUS=stopping: checkpointing uploads in flight")
}

// reloading announces a reload; systemd waits for the READY=1 that ends it.
func (n *notifier) reloading() {
	n.send(sd.SdNotifyReloading, sd.SdNotifyMonotonicUsec())
}

func (n *notifier) watchdog() {
	n.send(sd.SdNotifyWatchdog)
}

// watchdogEvery is how often to ping systemd's watchdog: half its timeout when the unit
// set WatchdogSec= (WATCHDOG_USEC, for this process), else 0.
func (n *notifier) watchdogEvery() time.Duration {
	d, err := sd.SdWatchdogEnabled(false)
	if err != nil {
		n.log.Warn("systemd watchdog", "err", err)
		return 0
	}
	return d / 2
}
