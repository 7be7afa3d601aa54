package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Every command of the full build runs something: the host commands' table
// (hostCommandList) and their functions (hostcommands.go) are kept in step.
func TestFullBuildCommandsRun(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range commands() {
		if c.run == nil {
			t.Errorf("command %q has no run function", c.name)
		}
		if seen[c.name] {
			t.Errorf("command %q listed twice", c.name)
		}
		seen[c.name] = true
	}
	for _, c := range hostCommandList {
		if !seen[c.name] {
			t.Errorf("host command %q missing from commands()", c.name)
		}
	}
}

// The ramdisk's imprint, built as scripts/mkinitramfs.sh builds it: it
// links none of the controller's, the operator's or the builders' modules,
// runs the node's commands, and names the missing ones with a clear error.
func TestRamdiskBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary twice")
	}
	dir := t.TempDir()
	build := func(out string, tags ...string) {
		args := append([]string{"build", "-trimpath", "-ldflags", "-s -w"}, tags...)
		cmd := exec.Command("go", append(args, "-o", out, ".")...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, b)
		}
	}
	rd, full := filepath.Join(dir, "imprint-ramdisk"), filepath.Join(dir, "imprint")
	build(rd, "-tags", "imprint_ramdisk")
	build(full)

	mods, err := exec.Command("go", "version", "-m", rd).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"modernc.org/sqlite", "github.com/jackc/pgx", "github.com/stmcginnis/gofish",
		"github.com/bougou/go-ipmi", "github.com/kdomanski/iso9660", "github.com/olekukonko/tablewriter"} {
		if strings.Contains(string(mods), "\t"+m) {
			t.Errorf("the ramdisk's build links %s", m)
		}
	}
	for _, m := range []string{"github.com/diskfs/go-diskfs", "github.com/klauspost/compress", "github.com/go-chi/chi/v5"} {
		if !strings.Contains(string(mods), "\t"+m) {
			t.Errorf("the ramdisk's build does not link %s: is it still the agent?", m)
		}
	}
	fiRD, err := os.Stat(rd)
	if err != nil {
		t.Fatal(err)
	}
	fiFull, err := os.Stat(full)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ramdisk build %d bytes, full build %d bytes", fiRD.Size(), fiFull.Size())
	if fiRD.Size() > fiFull.Size()*3/4 {
		t.Errorf("the ramdisk's build is %d bytes, the full one %d: expected it well under", fiRD.Size(), fiFull.Size())
	}

	run := func(bin string, args ...string) (string, int) {
		cmd := exec.CommandContext(context.Background(), bin, args...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s %v: %v", bin, args, err)
		}
		return string(out), code
	}
	for _, args := range [][]string{{"version"}, {"write-image", "--help"}, {"plan", "--help"}, {"inventory", "--help"}} {
		if out, code := run(rd, args...); code != 0 {
			t.Errorf("ramdisk build: imprint %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
	}
	for _, c := range hostCommandList {
		out, code := run(rd, c.name)
		if code != 2 || !strings.Contains(out, "imprint "+c.name+": not in this build") {
			t.Errorf("ramdisk build: imprint %s: exit %d, want 2 and a 'not in this build' error; output:\n%s", c.name, code, out)
		}
		// the full build knows it: it answers its own usage, not that
		out, _ = run(full, c.name, "--help")
		if strings.Contains(out, "not in this build") {
			t.Errorf("full build: imprint %s --help: %s", c.name, out)
		}
	}
	// fuel-agent's console scripts the ramdisk links to the binary
	link := filepath.Join(dir, "fa_copyimage")
	if err := os.Symlink(rd, link); err != nil {
		t.Fatal(err)
	}
	if out, code := run(link, "--help"); code != 0 || !strings.Contains(out, "fa_copyimage") {
		t.Errorf("ramdisk build as fa_copyimage --help: exit %d\n%s", code, out)
	}
}
