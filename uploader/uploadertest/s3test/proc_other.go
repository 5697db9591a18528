//go:build !linux

package s3test

import "os/exec"

// setProcAttr: only Linux can tie the child's life to ours; elsewhere Close stops it.
func setProcAttr(cmd *exec.Cmd) {}
