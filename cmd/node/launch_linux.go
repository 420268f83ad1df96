package main

import (
	"os/exec"
	"syscall"
)

// setParentDeath has the kernel send SIGTERM to a node when launch dies,
// even by SIGKILL, so no node is left orphaned.
func setParentDeath(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
