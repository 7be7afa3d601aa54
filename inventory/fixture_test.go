package inventory

import (
	"bufio"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// buildTree materializes testdata/sysfs/<name>.tree in a temporary
// directory and returns its root. A .tree is one entry a line:
//
//	d PATH            directory
//	l PATH TARGET     symlink (relative targets, as sysfs has them)
//	f PATH "TEXT"     text attribute: the Go-quoted TEXT and a newline
//	x PATH HEX        binary attribute (VPD pages), no newline added
//
// Lines starting with # are comments. capture.py writes trees from a live
// /sys, gen_fixtures.py the hand-built ones.
func buildTree(t *testing.T, name string) string {
	t.Helper()
	root := t.TempDir()
	if err := writeTree(root, filepath.Join("testdata", "sysfs", name+".tree")); err != nil {
		t.Fatal(err)
	}
	return root
}

func writeTree(root, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		kind, rest, _ := strings.Cut(line, " ")
		p, arg, _ := strings.Cut(rest, " ")
		if p == "" || strings.Contains(p, "..") || filepath.IsAbs(p) {
			return &treeError{file, n, "bad path " + strconv.Quote(p)}
		}
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		switch kind {
		case "d":
			err = os.MkdirAll(full, 0o755)
		case "l":
			err = os.Symlink(arg, full)
		case "f":
			var s string
			s, err = strconv.Unquote(arg)
			if err == nil {
				err = os.WriteFile(full, []byte(s+"\n"), 0o644)
			}
		case "x":
			var b []byte
			b, err = hex.DecodeString(arg)
			if err == nil {
				err = os.WriteFile(full, b, 0o644)
			}
		default:
			return &treeError{file, n, "unknown entry kind " + strconv.Quote(kind)}
		}
		if err != nil {
			return &treeError{file, n, err.Error()}
		}
	}
	return sc.Err()
}

type treeError struct {
	file string
	line int
	msg  string
}

func (e *treeError) Error() string { return e.file + ":" + strconv.Itoa(e.line) + ": " + e.msg }
