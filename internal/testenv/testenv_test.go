package testenv

import (
	"fmt"
	"strings"
	"testing"
)

// recorder stands in for a *testing.T: it records Skipf and Fatalf instead
// of stopping the test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
}

func TestCI(t *testing.T) {
	for _, tt := range []struct {
		env  string
		want bool
	}{
		{"", false}, {"0", false}, {"false", false}, {"FALSE", false},
		{"true", true}, {"1", true}, {"yes", true},
	} {
		t.Setenv("CI", tt.env)
		if got := CI(); got != tt.want {
			t.Errorf("CI=%q: CI() = %v, want %v", tt.env, got, tt.want)
		}
	}
}

func TestRequireTool(t *testing.T) {
	for _, ci := range []string{"", "true"} {
		t.Run("CI="+ci, func(t *testing.T) {
			t.Setenv("CI", ci)
			r := &recorder{TB: t}
			RequireTool(r, "sh", "imprint-no-such-tool-a", "imprint-no-such-tool-b")
			const want = "imprint-no-such-tool-a, imprint-no-such-tool-b not installed"
			got := r.skipped
			if ci != "" {
				got = r.failed
				if r.skipped != "" {
					t.Errorf("skipped under CI: %q", r.skipped)
				}
			} else if r.failed != "" {
				t.Errorf("failed outside CI: %q", r.failed)
			}
			if !strings.Contains(got, want) {
				t.Errorf("message %q does not name the missing tools (%q)", got, want)
			}
			r = &recorder{TB: t}
			RequireTool(r, "sh")
			if r.skipped != "" || r.failed != "" {
				t.Errorf("sh is installed, yet: skipped %q failed %q", r.skipped, r.failed)
			}
		})
	}
}

func TestSkipfUnderCI(t *testing.T) {
	t.Setenv("CI", "true")
	r := &recorder{TB: t}
	Skipf(r, "cannot mount %s", "ext4")
	if r.skipped != "" || r.failed != "testenv: CI=true, so this test may not skip: cannot mount ext4" {
		t.Errorf("skipped %q failed %q", r.skipped, r.failed)
	}
}

func TestHasTool(t *testing.T) {
	t.Setenv("CI", "")
	r := &recorder{TB: t}
	if !HasTool(r, "sh") || HasTool(r, "imprint-no-such-tool") || r.failed != "" {
		t.Errorf("outside CI: HasTool(sh) should be true, HasTool(missing) false without failing (failed %q)", r.failed)
	}
	t.Setenv("CI", "true")
	HasTool(r, "imprint-no-such-tool")
	if !strings.Contains(r.failed, "imprint-no-such-tool not installed") {
		t.Errorf("under CI a missing tool must fail the test; failed %q", r.failed)
	}
}

// As root (the loop tier), RequireLoop only checks the tools.
func TestRequireLoop(t *testing.T) {
	RequireRoot(t, "RequireLoop checks its tools only as root")
	t.Setenv("CI", "true")
	r := &recorder{TB: t}
	RequireLoop(r, "imprint-no-such-tool")
	if !strings.Contains(r.failed, "imprint-no-such-tool not installed") {
		t.Errorf("failed %q", r.failed)
	}
	r = &recorder{TB: t}
	RequireLoop(r)
	if r.failed != "" || r.skipped != "" {
		t.Errorf("losetup is installed, yet: skipped %q failed %q", r.skipped, r.failed)
	}
}
