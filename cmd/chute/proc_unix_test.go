//go:build unix

package main

import (
	"os/exec"
	"syscall"
	"testing"
)

// credential is the user a test daemon runs as.
type credential = syscall.Credential

// runAs makes cmd run as cred's user.
func runAs(t *testing.T, cmd *exec.Cmd, cred *credential) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
}
