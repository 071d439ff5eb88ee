//go:build !linux

package chaosreal

import (
	"os"
	"syscall"
)

// sysProcAttr: without Pdeathsig, children outlive a campaign that is itself killed.
func sysProcAttr() *syscall.SysProcAttr { return nil }

func terminate(p *os.Process) error { return p.Signal(os.Interrupt) }
