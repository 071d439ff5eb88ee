package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The binaries are built once, into a directory removed at the end.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binaries builds dtc, bank and demo into a temporary directory and returns it.
func binaries(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binaries: not in -short")
	}
	buildOnce.Do(func() {
		gobin, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("no go command to build the binaries with: %w", err)
			return
		}
		binDir, err = os.MkdirTemp("", "dtc-demo-bin-")
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command(gobin, "build", "-o", binDir+string(filepath.Separator),
			"github.com/dtc-project/dtc/cmd/dtc",
			"github.com/dtc-project/dtc/examples/bank/cmd/bank",
			"github.com/dtc-project/dtc/examples/demo")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// freePorts returns n ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// demoCmd returns the demo on free ports with a temporary run directory, and those.
func demoCmd(t *testing.T, ctx context.Context, extra ...string) (*exec.Cmd, []int, string) {
	bin := binaries(t)
	ports := freePorts(t, 4)
	runDir := filepath.Join(t.TempDir(), "run")
	args := append([]string{
		"--bin-dir", bin,
		"--run-dir", runDir,
		"--dtc-port", strconv.Itoa(ports[0]),
		"--bank-ports", fmt.Sprintf("%d,%d,%d", ports[1], ports[2], ports[3]),
		"--stop-grace", "10s",
	}, extra...)
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "demo"), args...)
	cmd.WaitDelay = 5 * time.Second
	return cmd, ports, runDir
}

var pidRE = regexp.MustCompile(`(?m)^  (dtc|bank\d) .* pid (\d+) `)

// checkNothingLeft fails if a child the demo reported is still alive or a port is
// still served.
func checkNothingLeft(t *testing.T, out string, ports []int) {
	t.Helper()
	pids := pidRE.FindAllStringSubmatch(out, -1)
	if len(pids) != 4 {
		t.Errorf("found %d child pids in the output, want 4", len(pids))
	}
	for _, m := range pids {
		pid, _ := strconv.Atoi(m[2])
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) is still there after the demo exited (kill -0: %v)", m[1], pid, err)
		}
	}
	for _, p := range ports {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second); err == nil {
			c.Close()
			t.Errorf("port %d still accepts connections after the demo exited", p)
		}
	}
}

func TestDemoExit(t *testing.T) {
	binaries(t) // built before the clock starts: the bound is on the demo, not the compiler
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd, ports, runDir := demoCmd(t, ctx, "--exit")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	out := stdout.String()
	t.Logf("demo --exit took %v; its output:\n%s\nstderr:\n%s", time.Since(start).Round(time.Millisecond), out, stderr.String())
	if err != nil {
		t.Fatalf("demo --exit: %v", err)
	}
	for _, want := range []string{
		"demo-1  committed",
		"demo-2  committed",
		"demo-3  committed",
		"demo-4  aborted",
		"bank1 NACK",
		`bank1: insufficient funds in "bob"`,
		"demo-5  aborted",
		"bank3 TIMEOUT",
		"bank3: no vote before the deadline",
		"Phase 2 is done for all 5",
		"total               600000     600000",
		"Money is conserved: 600000 cents before and after; nothing is left reserved.",
		"Stopped dtc, bank1, bank2, bank3 cleanly.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q", want)
		}
	}
	if strings.Contains(out, "✗") {
		t.Errorf("the output reports a problem (✗)")
	}
	if strings.Contains(out, "Press Ctrl-C") {
		t.Errorf("--exit printed the hints meant for a demo that keeps running")
	}
	for _, name := range []string{"dtc", "bank1", "bank2", "bank3"} {
		if !isFile(filepath.Join(runDir, name+".log")) {
			t.Errorf("no %s.log in the run directory", name)
		}
	}
	// dtc and the banks share a secret the demo made: dtc signs, the banks verify.
	if fi, err := os.Stat(filepath.Join(runDir, secretFileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("shared secret: %v %v, want a file only its owner reads", fi, err)
	}
	if !strings.Contains(out, "secret "+filepath.Join(runDir, secretFileName)) && !strings.Contains(out, secretFileName+": dtc signs") {
		t.Errorf("the output does not name the shared secret")
	}
	for name, want := range map[string]string{"dtc": "signed_participant_requests=true", "bank1": "signed_requests_only=true"} {
		if data, err := os.ReadFile(filepath.Join(runDir, name+".log")); err != nil || !strings.Contains(string(data), want) {
			t.Errorf("%s.log lacks %q (%v)", name, want, err)
		}
	}
	checkNothingLeft(t, out, ports)
}

// TestDemoInterrupt runs the demo as make run does and stops it as a user would.
func TestDemoInterrupt(t *testing.T) {
	binaries(t) // built before the clock starts: the bound is on the demo, not the compiler
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd, ports, _ := demoCmd(t, ctx)
	pr, pw := io.Pipe()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.MultiWriter(&stdout, pw), &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait(); pw.Close() }()

	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Press Ctrl-C") {
				close(ready)
				break
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case <-ready:
	case err := <-waited:
		t.Fatalf("the demo exited before serving: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	case <-ctx.Done():
		t.Fatalf("the demo did not get to serving in time\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-waited:
	case <-time.After(20 * time.Second):
		t.Fatalf("the demo did not exit within 20s of SIGINT\nstdout:\n%s", stdout.String())
	}
	out := stdout.String()
	if err != nil {
		t.Fatalf("demo after SIGINT: %v (want exit 0)\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	if !strings.Contains(out, "Stopped dtc, bank1, bank2, bank3 cleanly.") {
		t.Errorf("the output does not say the children stopped cleanly:\n%s", out)
	}
	checkNothingLeft(t, out, ports)
}

func TestDemoRefusesBusyPort(t *testing.T) {
	binaries(t) // built before the clock starts: the bound is on the demo, not the compiler
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd, ports, _ := demoCmd(t, ctx, "--exit")
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", ports[2]))
	if err != nil {
		t.Skipf("cannot take port %d for the test: %v", ports[2], err)
	}
	defer ln.Close()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitFailed {
		t.Fatalf("demo with a busy port: %v, want exit %d\n%s", err, exitFailed, out)
	}
	if want := fmt.Sprintf("bank2 cannot use 127.0.0.1:%d", ports[2]); !strings.Contains(string(out), want) {
		t.Errorf("the output lacks %q:\n%s", want, out)
	}
	if strings.Contains(string(out), "Starting") {
		t.Errorf("children were started although a port was taken:\n%s", out)
	}
}

func TestPrepareRunDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	if err := prepareRunDir(dir, true); err != nil {
		t.Fatalf("fresh, missing dir: %v", err)
	}
	stale := filepath.Join(dir, "dtc.log")
	if err := os.WriteFile(stale, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := prepareRunDir(dir, false); err != nil {
		t.Fatalf("not fresh: %v", err)
	}
	if !isFile(stale) {
		t.Errorf("--fresh=false removed %s", stale)
	}
	if err := prepareRunDir(dir, true); err != nil {
		t.Fatalf("fresh: %v", err)
	}
	if isFile(stale) {
		t.Errorf("a fresh run kept %s", stale)
	}
	if !isFile(filepath.Join(dir, marker)) {
		t.Errorf("no %s after prepareRunDir", marker)
	}

	foreign := t.TempDir()
	precious := filepath.Join(foreign, "thesis.tex")
	if err := os.WriteFile(precious, []byte("years of work"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := prepareRunDir(foreign, true); err == nil || !strings.Contains(err.Error(), "did not make") {
		t.Errorf("prepareRunDir on a directory it did not make: %v, want a refusal", err)
	}
	if !isFile(precious) {
		t.Fatalf("prepareRunDir removed a file it did not make")
	}
}

func TestParseFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--bank-ports", "9001,9002"},
		{"--dtc-port", "9001"},
		{"--logs", "syslog"},
		{"--run-dir", ""},
		{"--prepare-timeout", "0s"},
		{"extra"},
	} {
		var stderr bytes.Buffer
		if c, code := parseFlags(args, io.Discard, &stderr); c != nil || code != exitUsage {
			t.Errorf("parseFlags(%q) = %v, %d; want a usage error", args, c, code)
		}
	}
	c, code := parseFlags([]string{"--exit", "--fresh=false", "--bin-dir", "x"}, io.Discard, io.Discard)
	if c == nil || code != exitOK || !c.exit || c.fresh || c.binDir != "x" || c.dtcPort != 7070 ||
		fmt.Sprint(c.bankPorts) != "[9001 9002 9003]" {
		t.Errorf("parseFlags: %+v, %d", c, code)
	}
}
