package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDemo runs the whole demo against the machine's PostgreSQL and MariaDB with freshly
// built binaries: every step must end as it says (run returns an error otherwise), and
// the balances read back from both databases must add up.
func TestDemo(t *testing.T) {
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(os.PathSeparator),
		"github.com/dtc-project/dtc/cmd/dtc", "github.com/dtc-project/dtc/cmd/dtc-sql")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := run([]string{"--bin", bin, "--log-dir", t.TempDir()}, &out, &out)
	t.Logf("%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"PostgreSQL alice 70, MariaDB bob 130",
		"violates check constraint",
		"voted TIMEOUT",
		"status committed",
		"PostgreSQL alice 45, MariaDB bob 155 (total 200)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's output does not say %q", want)
		}
	}
	if strings.Contains(out.String(), "UNEXPECTED") {
		t.Error("a step ended otherwise than it should")
	}
}
