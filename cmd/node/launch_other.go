//go:build !linux

package main

import (
	"os"
	"os/exec"
)

// setParentDeath is Linux-only; elsewhere nodes outlive a killed launch.
func setParentDeath(cmd *exec.Cmd) {}

// isTerminal is Linux-only; elsewhere launch prints its progress as lines.
func isTerminal(f *os.File) bool { return false }
