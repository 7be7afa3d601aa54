package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/internal/membudget"
	"github.com/imprint-dev/imprint/provision"
)

// The CLI reads at most provision.MaxDocumentBytes of a document (a file or
// stdin) and names the input it refused; an alias bomb is a syntax error
// (exit 2), as from the API.
func TestPlanCommandInputLimits(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(big, []byte(`{"hostname": "`+strings.Repeat("a", provision.MaxDocumentBytes)+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := planRun(t, "", big)
	if code == 0 || !strings.Contains(errs, big+": input larger than 1048576 bytes") {
		t.Errorf("plan of a %d-byte file: exit %d, stderr %q; want a failure naming the file and the limit", provision.MaxDocumentBytes+16, code, errs)
	}
	code, _, errs = planRun(t, strings.Repeat(" ", provision.MaxDocumentBytes+1), "-")
	if code == 0 || !strings.Contains(errs, "stdin: input larger than") {
		t.Errorf("plan of an oversized stdin: exit %d, stderr %q", code, errs)
	}
	code, _, errs = planRun(t, string(membudget.AliasBomb(10<<10)), "-")
	if code != 2 || !strings.Contains(errs, "aliases expand to more than") {
		t.Errorf("plan of an alias bomb: exit %d, stderr %q; want 2 and the alias budget", code, errs)
	}
}
