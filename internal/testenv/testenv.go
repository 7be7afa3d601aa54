// Package testenv decides what a test does when its environment lacks
// something it needs (root, a host tool, a mount the kernel refuses).
//
// On a workstation such a test is skipped, with the reason. Under CI
// (CI=true in the environment, as `make test` in CI runs) it fails instead:
// there a skipped test is a hole nobody sees, and everything the tests need
// is installed by the repository itself (scripts/apt-packages.txt,
// scripts/deps.sh), so a missing tool is a bug in the repository.
//
// Skips that are a choice, such as the slow scenarios behind
// IMPRINT_VM_SLOW=1, use t.Skip directly: they are not a missing part.
package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// CI reports whether the tests run under CI: the CI variable is set to
// anything but "", "0" or "false".
func CI() bool {
	v := strings.TrimSpace(os.Getenv("CI"))
	return v != "" && v != "0" && !strings.EqualFold(v, "false")
}

// Skipf skips the test outside CI and fails it under CI, with the same
// message; the test stops either way.
func Skipf(t testing.TB, format string, args ...any) {
	t.Helper()
	if CI() {
		t.Fatalf("testenv: CI=true, so this test may not skip: "+format, args...)
		return
	}
	t.Skipf(format, args...)
}

// RequireRoot stops the test (skip, or fail under CI) unless it runs as
// root; why says what needs root, e.g. "losetup, mount".
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skipf(t, "needs root (%s)", why)
	}
}

// RequireTool stops the test (skip, or fail under CI) unless every named
// program is found on PATH.
func RequireTool(t testing.TB, names ...string) {
	t.Helper()
	var missing []string
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		Skipf(t, "%s not installed (scripts/apt-packages.txt lists the Debian packages the tests need)", strings.Join(missing, ", "))
	}
}

// HasTool reports whether the named program is on PATH, for a cross-check
// a test makes only where the tool exists. Under CI a missing tool fails the
// test instead: there every tool the tests use is installed.
func HasTool(t testing.TB, name string) bool {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if CI() {
			t.Fatalf("testenv: CI=true, so this check may not be left out: %s not installed (scripts/apt-packages.txt lists the Debian packages the tests need)", name)
		}
		return false
	}
	return true
}

// RequireLoop is the loop tier's precondition: root (loop devices, mkfs,
// mount) and losetup plus the named tools.
func RequireLoop(t testing.TB, tools ...string) {
	t.Helper()
	RequireRoot(t, "loop devices")
	RequireTool(t, append([]string{"losetup"}, tools...)...)
}
