// Package mountinfo reads the kernel's mount tables (/proc/mounts,
// /proc/self/mountinfo); it imports nothing of imprint, so every layer may
// use it.
package mountinfo

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Unescape undoes the octal escapes (\040 for a space, \011, \012,
// \134) the kernel writes into the path fields of /proc/mounts and
// /proc/self/mountinfo.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// UnderTable lists the mount points of the mount table text (the format of
// /proc/self/mountinfo) at or below dir, in table order.
func UnderTable(table, dir string) []string {
	dir = filepath.Clean(dir)
	var out []string
	sc := bufio.NewScanner(strings.NewReader(table))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		mp := Unescape(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// Under reads the mount table at path and lists the mount points at or
// below dir.
func Under(path, dir string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return UnderTable(string(data), dir), nil
}
