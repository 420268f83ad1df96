package main

import (
	"os"
	"os/exec"
	"syscall"
	"unsafe"
)

// setParentDeath has the kernel send SIGTERM to a node when launch dies,
// even by SIGKILL, so no node is left orphaned.
func setParentDeath(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// isTerminal reports whether f is a terminal: whether it has termios
// settings.
func isTerminal(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	var errno syscall.Errno
	err = rc.Control(func(fd uintptr) {
		var t syscall.Termios
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	})
	return err == nil && errno == 0
}
