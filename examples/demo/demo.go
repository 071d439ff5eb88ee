package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dtc-project/dtc/client"
	"github.com/dtc-project/dtc/httpnet/apiserver"
)

// marker is the file that tells a run directory made by the demo (and so safe to wipe)
// from any other directory given as --run-dir by mistake.
const marker = ".dtc-demo"

// demo is one run.
type demo struct {
	cfg            *config
	stdout, stderr io.Writer
	procs          *procs // nil until a child has been started
	dtc            *child
	banks          []*child
}

func (d *demo) dtcURL() string { return fmt.Sprintf("http://%s:%d", d.cfg.host, d.cfg.dtcPort) }

func (d *demo) bankURL(i int) string {
	return fmt.Sprintf("http://%s:%d", d.cfg.host, d.cfg.bankPorts[i])
}

// path shortens p for printing: relative to the working directory when it is below it.
func path(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	if rel, err := filepath.Rel(wd, abs); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return abs
}

// run starts everything, runs the workload and, without --exit, waits for a signal or
// a child's death. The caller stops the children.
func (d *demo) run(ctx context.Context) error {
	cfg := d.cfg
	dtcBin := filepath.Join(cfg.binDir, "dtc")
	bankBin := filepath.Join(cfg.binDir, "bank")
	for _, b := range []string{dtcBin, bankBin} {
		if !isFile(b) {
			return fmt.Errorf("%s not found: build the binaries first with 'make build' "+
				"(go build -o bin/ ./cmd/... ./examples/...), or point --bin-dir at them", path(b))
		}
	}
	if err := prepareRunDir(cfg.runDir, cfg.fresh); err != nil {
		return err
	}
	secretFile, err := ensureSecret(cfg.runDir)
	if err != nil {
		return err
	}
	if err := checkPortFree(fmt.Sprintf("%s:%d", cfg.host, cfg.dtcPort), "dtc"); err != nil {
		return err
	}
	for i, b := range banks {
		if err := checkPortFree(fmt.Sprintf("%s:%d", cfg.host, cfg.bankPorts[i]), b.name); err != nil {
			return err
		}
	}

	logPath := func(name string) string {
		if cfg.logs == "terminal" {
			return ""
		}
		return filepath.Join(cfg.runDir, name+".log")
	}
	where := "their logs go to " + path(filepath.Join(cfg.runDir, "*.log"))
	if cfg.logs == "terminal" {
		where = "their logs follow on stderr, each line prefixed with its name"
	}
	fresh := "from a fresh " + path(cfg.runDir)
	if !cfg.fresh {
		fresh = "keeping what " + path(cfg.runDir) + " holds (--fresh=false)"
	}
	fmt.Fprintf(d.stdout, "Starting the coordinator and three banks %s; %s.\n\n", fresh, where)

	token, err := makeToken(cfg.runDir)
	if err != nil {
		return err
	}
	d.procs = newProcs(d.stdout, d.stderr)
	began := time.Now()
	dtcDir := filepath.Join(cfg.runDir, "dtc")
	d.dtc, err = d.procs.start("dtc", dtcBin, []string{"serve",
		"--listen", fmt.Sprintf("%s:%d", cfg.host, cfg.dtcPort),
		"--data-dir", dtcDir,
		"--prepare-timeout", cfg.prepareTimeout.String(),
		"--tokens", filepath.Join(cfg.runDir, tokensFile),
		"--participant-secret-file", secretFile,
	}, logPath("dtc"))
	if err != nil {
		return err
	}
	for i, b := range banks {
		c, err := d.procs.start(b.name, bankBin, []string{
			"--listen", fmt.Sprintf("%s:%d", cfg.host, cfg.bankPorts[i]),
			"--data-dir", filepath.Join(cfg.runDir, b.name),
			"--accounts", b.accountsFlag(),
			"--coordinator", d.dtcURL(),
			"--secret-file", secretFile,
		}, logPath(b.name))
		if err != nil {
			return err
		}
		d.banks = append(d.banks, c)
	}
	if err := waitReady(ctx, d.dtc, d.dtcURL()+"/readyz", cfg.startTimeout); err != nil {
		return err
	}
	for i, c := range d.banks {
		if err := waitReady(ctx, c, d.bankURL(i)+"/healthz", cfg.startTimeout); err != nil {
			return err
		}
	}
	fmt.Fprintf(d.stdout, "  %-6s %-24s pid %-7d data %s\n", "dtc", d.dtcURL(), d.dtc.cmd.Process.Pid, path(dtcDir))
	for i, c := range d.banks {
		fmt.Fprintf(d.stdout, "  %-6s %-24s pid %-7d accounts %s\n", c.name, d.bankURL(i), c.cmd.Process.Pid,
			strings.ReplaceAll(banks[i].accountsFlag(), ",", ", "))
	}
	fmt.Fprintf(d.stdout, "  %-6s %s: dtc signs every request to the banks with it, the banks refuse any other\n", "secret", path(secretFile))
	fmt.Fprintf(d.stdout, "Ready after %v (dtc answers /readyz, the banks /healthz).\n\n", time.Since(began).Round(time.Millisecond))

	c, err := client.New(d.dtcURL(), client.Options{Token: token})
	if err != nil {
		return err
	}
	prefix := "demo"
	if !cfg.fresh {
		// The coordinator remembers finished ids for a while (dtc serve --done-retention):
		// reusing one would answer the old transaction.
		prefix = "demo-" + strconv.FormatInt(time.Now().Unix(), 10)
	}
	w := &workload{d: d, c: c, idPrefix: prefix}
	werr := w.run(ctx)
	if werr != nil {
		select {
		case dead := <-d.procs.died:
			return fmt.Errorf("%v\n%v", werr, dead.deathError())
		default:
		}
		if ctx.Err() != nil {
			return errInterrupted
		}
		return werr
	}
	if cfg.exit {
		return nil
	}
	d.printHints(w)
	select {
	case <-ctx.Done():
		fmt.Fprintln(d.stdout)
		return nil
	case dead := <-d.procs.died:
		return dead.deathError()
	}
}

// The API's clients (dtc serve --tokens) and the demo's own token, in the run
// directory.
const (
	tokensFile = "tokens"
	tokenFile  = "demo.token"
)

// makeToken makes a fresh admin token for the demo: its hash goes to the tokens file
// dtc serves with, the token itself to demo.token (mode 0600), for the hints.
func makeToken(runDir string) (string, error) {
	token, cred := apiserver.NewToken()
	line := "# made by the demo: dtc serve --tokens " + tokensFile + "; the token is in " + tokenFile + "\nadmin demo " + cred + "\n"
	if err := os.WriteFile(filepath.Join(runDir, tokensFile), []byte(line), 0o600); err != nil {
		return "", fmt.Errorf("writing the tokens file: %w", err)
	}
	if err := os.WriteFile(filepath.Join(runDir, tokenFile), []byte(token+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing the token: %w", err)
	}
	return token, nil
}

// secretFileName is the file, in the run directory, of the secret dtc and the banks share.
const secretFileName = "participant-secret"

// ensureSecret returns the path of the run directory's shared secret, made (random,
// key id "demo") if it is not there: dtc signs its requests to the banks with it, and
// the banks take no request that it did not sign.
func ensureSecret(runDir string) (string, error) {
	p := filepath.Join(runDir, secretFileName)
	if isFile(p) {
		return p, nil
	}
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return "", fmt.Errorf("making the shared secret: %w", err)
	}
	data := "# made by the dtc demo: the secret dtc and the banks share (dtc serve --participant-secret-file, bank --secret-file)\n" +
		"demo " + hex.EncodeToString(key[:]) + "\n"
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		return "", fmt.Errorf("writing the shared secret: %w", err)
	}
	return p, nil
}

// prepareRunDir makes the run directory, wiping it first when fresh. It refuses to
// wipe a directory the demo did not make.
func prepareRunDir(dir string, fresh bool) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("--run-dir: %w", err)
	case len(entries) > 0 && !isFile(filepath.Join(dir, marker)):
		return fmt.Errorf("--run-dir %s holds files the demo did not make (no %s in it): "+
			"remove it yourself or pick another directory", dir, marker)
	case fresh:
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("wiping --run-dir: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--run-dir: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, marker),
		[]byte("made by the dtc demo (examples/demo); 'make run' wipes this directory\n"), 0o644)
}
