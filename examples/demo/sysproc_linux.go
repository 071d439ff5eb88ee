package main

import "syscall"

// sysProcAttr puts a child in its own process group, so that Ctrl-C in the terminal
// reaches only the demo (which stops the children in its own time), and has the kernel
// send it SIGTERM if the demo dies without stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
