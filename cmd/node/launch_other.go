//go:build !linux

package main

import "os/exec"

// setParentDeath is Linux-only; elsewhere nodes outlive a killed launch.
func setParentDeath(cmd *exec.Cmd) {}
