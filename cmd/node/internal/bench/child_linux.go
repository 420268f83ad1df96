package bench

import (
	"os/exec"
	"syscall"
)

// setParentDeath makes the kernel kill the child when this process dies.
// (Strictly: when the thread that started it exits; Go keeps its threads
// unless a goroutine locked to one ends.)
func setParentDeath(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
