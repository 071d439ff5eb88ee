package chaosreal

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// base is the origin of now: wall-clock nanoseconds that never go back (they advance
// with the monotonic clock), as the history's times must only be compared.
var base = time.Now()

// now is the time of the history: Unix nanoseconds.
func now() int64 { return base.UnixNano() + int64(time.Since(base)) }

// proc is one process of the campaign (dtc or a bank) across its incarnations: the
// same binary, arguments, address and data directory each time.
type proc struct {
	name    string // "coord", "p1", …
	bin     string
	args    []string
	logPath string

	mu          sync.Mutex
	cmd         *exec.Cmd
	done        chan struct{} // closed when the current incarnation has exited
	exitErr     error
	logStart    int64 // size of the log file when the incarnation started
	incarnation int
	failpoint   string // GO_FAILPOINTS of the current incarnation
	killed      bool   // the campaign killed the current incarnation
	upSince     int64
}

func newProc(name, bin string, args []string, logPath string) *proc {
	done := make(chan struct{})
	close(done) // not running
	return &proc{name: name, bin: bin, args: args, logPath: logPath, done: done}
}

// start runs a new incarnation with GO_FAILPOINTS set to failpoints ("" for none). The
// previous incarnation must have exited (its data directory lock is free).
func (p *proc) start(failpoints string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
	default:
		return fmt.Errorf("chaosreal: %s is still running", p.name)
	}
	f, err := os.OpenFile(p.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("chaosreal: %w", err)
	}
	fi, _ := f.Stat()
	p.incarnation++
	fmt.Fprintf(f, "--- chaos: %s incarnation %d starts; GO_FAILPOINTS=%q\n", p.name, p.incarnation, failpoints)
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	cmd.Env = append(os.Environ(), "GO_FAILPOINTS="+failpoints)
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("chaosreal: starting %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.exitErr, p.killed, p.failpoint, p.upSince = cmd, done, nil, false, failpoints, now()
	if fi != nil {
		p.logStart = fi.Size()
	}
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// running reports whether an incarnation is running.
func (p *proc) running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// exited returns the channel closed when the current incarnation exits.
func (p *proc) exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// kill sends SIGKILL to the running incarnation and waits until it has exited. It
// reports the pid killed, or 0 if nothing was running.
func (p *proc) kill() int {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	select {
	case <-done:
		p.mu.Unlock()
		return 0
	default:
	}
	p.killed = true
	p.mu.Unlock()
	_ = cmd.Process.Kill()
	<-done
	return cmd.Process.Pid
}

// stop asks the running incarnation to stop (SIGTERM), and kills it after grace.
func (p *proc) stop(grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	select {
	case <-done:
		return
	default:
	}
	_ = terminate(cmd.Process)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		p.kill()
	}
}

// pid is the running incarnation's process id (0 if none).
func (p *proc) pid() int {
	if !p.running() {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// exit describes how the last incarnation ended, and the failpoint lines it wrote.
type exit struct {
	killed     bool   // by the campaign
	status     string // "signal: killed", "exit status 1", …
	failpoints []string
	lastLines  []string
}

func (p *proc) lastExit() exit {
	p.mu.Lock()
	e := exit{killed: p.killed, status: "exit status 0"}
	if p.exitErr != nil {
		e.status = p.exitErr.Error()
	}
	start, path := p.logStart, p.logPath
	p.mu.Unlock()
	data, err := os.ReadFile(path)
	if err != nil || int64(len(data)) < start {
		return e
	}
	lines := strings.Split(strings.TrimRight(string(data[start:]), "\n"), "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "failpoint ") {
			e.failpoints = append(e.failpoints, l)
		}
	}
	e.lastLines = lines[max(0, len(lines)-5):]
	return e
}
