//go:build !linux

package chaosreal

import (
	"errors"
	"os"
	"syscall"
)

// sysProcAttr: without Pdeathsig, children outlive a campaign that is itself killed.
func sysProcAttr() *syscall.SysProcAttr { return nil }

func terminate(p *os.Process) error { return p.Signal(os.Interrupt) }

var errNoPause = errors.New("chaosreal: pausing a process (SIGSTOP) is done on Linux only")

func pauseProcess(*os.Process) error  { return errNoPause }
func resumeProcess(*os.Process) error { return errNoPause }
