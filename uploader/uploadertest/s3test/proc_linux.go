package s3test

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill MinIO if the test process dies without stopping it (a
// SIGKILL, a timeout's panic): no server is left running after the test.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
