//go:build !unix

package main

import (
	"os/exec"
	"testing"
)

// credential is the user a test daemon runs as; only Unix can start a child as another user.
type credential struct{ Uid, Gid uint32 }

// runAs skips the test: this platform cannot start a child process as another user.
func runAs(t *testing.T, cmd *exec.Cmd, cred *credential) {
	t.Skip("running a child process as another user needs Unix")
}
