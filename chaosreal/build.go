package chaosreal

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Binaries are the programs a campaign runs.
type Binaries struct {
	DTC     string // dtc (cmd/dtc)
	Bank    string // bank (examples/bank/cmd/bank)
	Passive string // passive (examples/passive): has no failpoints of its own
	SQL     string // dtc-sql (cmd/dtc-sql): has no failpoints of its own
	// Failpoints reports whether they were built with failpoints live.
	Failpoints bool
}

// ModuleDir returns the root of the dtc module that dir is in (go env GOMOD).
func ModuleDir(ctx context.Context, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "env", "GOMOD")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("chaosreal: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("chaosreal: %s is not inside a Go module: run from the dtc repository, or give prebuilt binaries", dir)
	}
	return filepath.Dir(mod), nil
}

// CacheDir is the build cache of failpoint builds: kept apart from the normal one
// (failpoint-rewritten objects must never be reused by a normal build) and kept between
// campaigns, so that only the first build compiles everything. DTC_CHAOS_GOCACHE
// overrides it.
func CacheDir() string {
	if d := os.Getenv("DTC_CHAOS_GOCACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "dtc-chaos", "go-build")
}

// Build compiles dtc, bank, passive and dtc-sql from the module at moduleDir into outDir with their
// failpoints live: go build -toolexec failpoint-toolexec, which rewrites the markers in
// copies under a temporary directory of its own (removed afterwards), never in the
// source tree. It checks that the binaries really evaluate failpoints.
func Build(ctx context.Context, moduleDir, outDir string) (Binaries, error) {
	tool, err := goOutput(ctx, moduleDir, nil, "tool", "-n", "failpoint-toolexec")
	if err != nil {
		return Binaries{}, fmt.Errorf("chaosreal: finding failpoint-toolexec (go.mod's tool directive): %w", err)
	}
	tmp, err := os.MkdirTemp("", "dtc-failpoint-build-")
	if err != nil {
		return Binaries{}, fmt.Errorf("chaosreal: %w", err)
	}
	defer os.RemoveAll(tmp) // the rewritten sources
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return Binaries{}, fmt.Errorf("chaosreal: %w", err)
	}
	out, _ := filepath.Abs(outDir)
	env := []string{"GOCACHE=" + CacheDir(), "TMPDIR=" + tmp}
	if _, err := goOutput(ctx, moduleDir, env, "build", "-toolexec="+strings.TrimSpace(tool), "-o", out+string(filepath.Separator),
		"./cmd/dtc", "./examples/bank/cmd/bank", "./examples/passive", "./cmd/dtc-sql"); err != nil {
		return Binaries{}, fmt.Errorf("chaosreal: failpoint build: %w", err)
	}
	b := Binaries{DTC: filepath.Join(out, "dtc"), Bank: filepath.Join(out, "bank"), Passive: filepath.Join(out, "passive"),
		SQL: filepath.Join(out, "dtc-sql"), Failpoints: true}
	for _, bin := range []string{b.DTC, b.Bank} {
		live, err := HasFailpoints(bin)
		if err != nil {
			return Binaries{}, err
		}
		if !live {
			return Binaries{}, fmt.Errorf("chaosreal: %s was built without live failpoints: failpoint-toolexec rewrote nothing", bin)
		}
	}
	return b, nil
}

// HasFailpoints reports whether the binary evaluates failpoints: a normal build never
// calls failpoint.Eval, so the linker leaves it out. On systems without ELF binaries it
// reports true without looking.
func HasFailpoints(bin string) (bool, error) {
	f, err := elf.Open(bin)
	if err != nil {
		var fe *elf.FormatError
		if errors.As(err, &fe) {
			return true, nil
		}
		return false, fmt.Errorf("chaosreal: %w", err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return false, fmt.Errorf("chaosreal: symbols of %s: %w", bin, err)
	}
	for _, s := range syms {
		if s.Name == "github.com/pingcap/failpoint.Eval" {
			return true, nil
		}
	}
	return false, nil
}

func goOutput(ctx context.Context, dir string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	// failpoint-toolexec reports its own failures on stderr and exits 0.
	if s := stderr.String(); strings.Contains(s, "[failpoint-toolexec]") {
		return "", fmt.Errorf("go %s: %s", strings.Join(args, " "), strings.TrimSpace(s))
	}
	return stdout.String(), nil
}
