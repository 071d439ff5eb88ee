package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is one process the demo started.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string // where its output goes; "" when it goes to the terminal
	done    chan struct{}
	err     error  // what Wait returned; read after done is closed
	killed  string // why stopAll killed it; "" if it did not
	flush   func() // writes what is left of a last, unterminated line
}

// exited reports whether the child has exited, without waiting.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// status describes how the child ended; call after done.
func (c *child) status() string {
	if c.err == nil {
		return "exit status 0"
	}
	return c.err.Error()
}

// procs are the demo's children.
type procs struct {
	list   []*child
	died   chan *child // each child once, when it exits
	stdout io.Writer   // progress messages
	stderr io.Writer   // children's output with --logs terminal
	termMu sync.Mutex  // whole lines from different children never interleave
}

func newProcs(stdout, stderr io.Writer) *procs {
	return &procs{died: make(chan *child, 8), stdout: stdout, stderr: stderr}
}

// start runs bin with args. Its stdout and stderr go to logPath (appended), or to the
// terminal (stderr) with each line prefixed by name if logPath is "".
func (p *procs) start(name, bin string, args []string, logPath string) (*child, error) {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = 2 * time.Second // Wait returns even if something holds the pipes
	c := &child{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{}), flush: func() {}}
	var logFile *os.File
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		logFile = f
		cmd.Stdout, cmd.Stderr = f, f
	} else {
		w := &prefixWriter{mu: &p.termMu, w: p.stderr, prefix: fmt.Sprintf("%-6s| ", name)}
		cmd.Stdout, cmd.Stderr = w, w
		c.flush = w.flush
	}
	if err := cmd.Start(); err != nil {
		if logFile != nil {
			logFile.Close()
		}
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p.list = append(p.list, c)
	go func() {
		c.err = cmd.Wait()
		c.flush()
		if logFile != nil {
			logFile.Close()
		}
		close(c.done)
		p.died <- c
	}()
	return c, nil
}

// tail returns the last lines the child wrote, for an error message.
func (c *child) tail(n int) string {
	if c.logPath == "" {
		return ""
	}
	data, err := os.ReadFile(c.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "last lines of %s:\n", c.logPath)
	for _, l := range lines {
		fmt.Fprintf(&b, "    %s\n", l)
	}
	return b.String()
}

// deathError describes a child that exited on its own.
func (c *child) deathError() error {
	msg := fmt.Sprintf("%s exited unexpectedly (%s)", c.name, c.status())
	if t := c.tail(15); t != "" {
		msg += "; " + t
	}
	return errors.New(strings.TrimRight(msg, "\n"))
}

// stopAll sends SIGTERM to every child still running and waits for them: up to grace,
// or until hurry is closed, after which the rest are killed. It returns an error if a
// child had to be killed or did not exit cleanly.
func (p *procs) stopAll(grace time.Duration, hurry <-chan struct{}) error {
	var running []*child
	for _, c := range p.list {
		if c.exited() {
			continue
		}
		running = append(running, c)
		if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			fmt.Fprintf(p.stdout, "demo: SIGTERM to %s: %v\n", c.name, err)
		}
	}
	if len(running) == 0 {
		return nil
	}
	names := make([]string, len(running))
	for i, c := range running {
		names[i] = c.name
	}
	fmt.Fprintf(p.stdout, "Stopping %s (SIGTERM; killed if not gone within %v, or at the next Ctrl-C)...\n",
		strings.Join(names, ", "), grace)
	killAll := func(why string) {
		for _, c := range running {
			if !c.exited() {
				c.killed = why
				_ = c.cmd.Process.Kill()
			}
		}
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	for _, c := range running {
		select {
		case <-c.done:
			continue
		case <-timer.C:
			killAll(fmt.Sprintf("did not stop within %v after SIGTERM: killed", grace))
		case <-hurry:
			killAll("killed at the second interrupt, before it had stopped")
		}
		<-c.done // a killed child ends promptly: Wait is bounded by WaitDelay
	}
	var errs []error
	for _, c := range running {
		switch {
		case c.killed != "":
			errs = append(errs, fmt.Errorf("%s %s", c.name, c.killed))
		case c.err != nil:
			errs = append(errs, fmt.Errorf("%s did not stop cleanly: %s", c.name, c.status()))
		}
	}
	if len(errs) == 0 {
		fmt.Fprintf(p.stdout, "Stopped %s cleanly.\n", strings.Join(names, ", "))
	}
	return errors.Join(errs...)
}

// checkPortFree fails if something already listens on addr: a child that cannot bind
// would exit, but a stale process there would answer the readiness probe in its place.
func checkPortFree(addr, owner string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s cannot use %s: %v (another demo, dtc or bank still running? see 'pgrep -a dtc; pgrep -a bank', or pick other ports with --dtc-port and --bank-ports)",
			owner, addr, err)
	}
	return ln.Close()
}

// waitReady polls url until it answers 200, the child exits, ctx ends or timeout
// passes.
func waitReady(ctx context.Context, c *child, url string, timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := "no answer yet"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return c.deathError()
		case <-deadline.C:
			msg := fmt.Sprintf("%s not ready after %v: GET %s: %s", c.name, timeout, url, last)
			if t := c.tail(15); t != "" {
				msg += "; " + t
			}
			return errors.New(strings.TrimRight(msg, "\n"))
		case <-tick.C:
		}
	}
}

// prefixWriter writes each line to w with a prefix. A child's lines arrive in chunks
// of any size; only whole lines are written, under mu.
type prefixWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		p.writeLine(p.buf[:i])
		p.buf = p.buf[i+1:]
	}
	if len(p.buf) > 64<<10 { // a very long line: do not hold it all
		p.writeLine(p.buf)
		p.buf = p.buf[:0]
	}
	return len(b), nil
}

func (p *prefixWriter) writeLine(line []byte) {
	bw := bufio.NewWriter(p.w)
	bw.WriteString(p.prefix)
	bw.Write(line)
	bw.WriteByte('\n')
	_ = bw.Flush()
}

func (p *prefixWriter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		p.writeLine(p.buf)
		p.buf = nil
	}
}
