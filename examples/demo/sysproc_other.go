//go:build unix && !linux

package main

import "syscall"

// sysProcAttr puts a child in its own process group, so that Ctrl-C in the terminal
// reaches only the demo, which stops the children itself. (There is no parent-death
// signal outside Linux: a demo killed with SIGKILL leaves its children running.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
