//go:build !linux

package bench

import "os/exec"

// setParentDeath does nothing on this system.
func setParentDeath(*exec.Cmd) {}
