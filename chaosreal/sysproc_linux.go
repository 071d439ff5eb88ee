package chaosreal

import (
	"os"
	"syscall"
)

// sysProcAttr puts a child in its own process group (a Ctrl-C in the terminal reaches
// only the campaign, which stops its children itself), and has the kernel kill it if the
// campaign dies without stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }

func pauseProcess(p *os.Process) error  { return p.Signal(syscall.SIGSTOP) }
func resumeProcess(p *os.Process) error { return p.Signal(syscall.SIGCONT) }
