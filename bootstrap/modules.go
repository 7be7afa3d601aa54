package bootstrap

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ModuleName normalizes a module name or file name the way the kernel does:
// directory and .ko(.xz|.zst|.gz) removed, '-' and '_' equivalent ('_').
func ModuleName(s string) string {
	s = path.Base(s)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		s = strings.TrimSuffix(s, ext)
	}
	s = strings.TrimSuffix(s, ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// Alias is one line of modules.alias: a glob over modalias strings and the
// module that drives devices matching it.
type Alias struct {
	Pattern string
	Module  string
}

// ParseAliases reads modules.alias ("alias PATTERN MODULE" lines).
func ParseAliases(r io.Reader) ([]Alias, error) {
	var out []Alias
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "alias" {
			continue
		}
		out = append(out, Alias{Pattern: f[1], Module: ModuleName(f[2])})
	}
	return out, sc.Err()
}

// MatchAliases returns the modules whose alias patterns match any of the
// devices' modaliases, each once, in the order of first match.
func MatchAliases(aliases []Alias, modaliases []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, ma := range modaliases {
		for _, a := range aliases {
			if !seen[a.Module] && Glob(a.Pattern, ma) {
				seen[a.Module] = true
				out = append(out, a.Module)
			}
		}
	}
	return out
}

// Glob reports whether s matches the fnmatch(3) pattern (no flags) that
// modules.alias uses: '*', '?' and bracket classes; '/' is not special.
func Glob(pattern, s string) bool {
	p, n := 0, 0
	starP, starN := -1, 0
	for n < len(s) {
		if p < len(pattern) {
			switch c := pattern[p]; c {
			case '*':
				starP, starN = p, n
				p++
				continue
			case '?':
				p++
				n++
				continue
			case '[':
				if ok, width, valid := matchClass(pattern[p:], s[n]); valid {
					if ok {
						p += width
						n++
						continue
					}
				} else if s[n] == '[' { // unterminated class: a literal '['
					p++
					n++
					continue
				}
			default:
				if c == s[n] {
					p++
					n++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starN++
		p, n = starP+1, starN
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// matchClass matches c against the bracket expression at the start of p
// ("[abc]", "[a-z]", "[!x]"); width is the expression's length.
func matchClass(p string, c byte) (ok bool, width int, valid bool) {
	i := 1
	neg := false
	if i < len(p) && (p[i] == '!' || p[i] == '^') {
		neg = true
		i++
	}
	first := true
	for i < len(p) && (first || p[i] != ']') {
		first = false
		lo := p[i]
		hi := lo
		if i+2 < len(p) && p[i+1] == '-' && p[i+2] != ']' {
			hi = p[i+2]
			i += 2
		}
		if lo <= c && c <= hi {
			ok = true
		}
		i++
	}
	if i >= len(p) {
		return false, 0, false
	}
	return ok != neg, i + 1, true
}

// DepTable is modules.dep: each module's file (relative to the modules
// directory) and the modules it needs, deepest first as depmod writes them.
type DepTable map[string]DepEntry

// DepEntry is one module in modules.dep.
type DepEntry struct {
	Path string
	Deps []string // module names
}

// ParseDeps reads modules.dep ("kernel/x/a.ko: kernel/y/b.ko kernel/z/c.ko").
func ParseDeps(r io.Reader) (DepTable, error) {
	t := DepTable{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		file, deps, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		e := DepEntry{Path: strings.TrimSpace(file)}
		for _, d := range strings.Fields(deps) {
			e.Deps = append(e.Deps, ModuleName(d))
		}
		t[ModuleName(e.Path)] = e
	}
	return t, sc.Err()
}

// LoadOrder returns the files to load, dependencies first, for the named
// modules; every file appears once. Names missing from the table are errors
// (the caller decides whether a builtin explains them).
func (t DepTable) LoadOrder(names ...string) ([]string, error) {
	var out []string
	done := map[string]bool{}
	var errs []error
	var visit func(n string, stack []string) error
	visit = func(n string, stack []string) error {
		if done[n] {
			return nil
		}
		for _, s := range stack {
			if s == n {
				return fmt.Errorf("module %q: dependency cycle %s", n, strings.Join(append(stack, n), " -> "))
			}
		}
		e, ok := t[n]
		if !ok {
			return fmt.Errorf("module %q: %w", n, ErrNoModule)
		}
		for _, d := range e.Deps {
			if err := visit(d, append(stack, n)); err != nil {
				return err
			}
		}
		done[n] = true
		out = append(out, e.Path)
		return nil
	}
	for _, n := range names {
		if err := visit(ModuleName(n), nil); err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// ErrNoModule is a module that is neither in modules.dep nor built in.
var ErrNoModule = errors.New("not in modules.dep")

// ParseModuleList reads a modules-load list: one module name per line,
// '#' comments and blank lines ignored.
func ParseModuleList(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if f := strings.Fields(line); len(f) > 0 {
			out = append(out, ModuleName(f[0]))
		}
	}
	return out, sc.Err()
}

// ModuleSys is what loading modules needs of the kernel; the real one is
// finit_module(2) and /proc/modules.
type ModuleSys interface {
	// Load loads the module file at path; an already loaded module is no error.
	Load(path string) error
	// Loaded returns the names of the modules currently loaded.
	Loaded() (map[string]bool, error)
}

// ModulesStep loads the always-load list, then the drivers of the devices
// present, by modalias, until a pass loads nothing new.
type ModulesStep struct {
	Dir      string // /lib/modules/$(uname -r)
	ListFile string // /etc/imprint/modules.conf; missing is no error
	SysRoot  string // /sys
	Sys      ModuleSys
	Log      *slog.Logger
	// MaxPasses bounds the coldplug rounds (default 4: PCI, then virtio, then
	// devices behind those).
	MaxPasses int
}

// Name implements Step.
func (s *ModulesStep) Name() string { return "modules" }

// Run implements Step. A module that fails to load is logged and reported
// at the end; the others are still loaded.
func (s *ModulesStep) Run(ctx context.Context) error {
	deps, err := readDeps(filepath.Join(s.Dir, "modules.dep"))
	if err != nil {
		return err
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(s.Dir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			builtin[ModuleName(l)] = true
		}
	}
	var aliases []Alias
	if f, err := os.Open(filepath.Join(s.Dir, "modules.alias")); err == nil {
		aliases, err = ParseAliases(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("read %s/modules.alias: %w", s.Dir, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var always []string
	if s.ListFile != "" {
		if f, err := os.Open(s.ListFile); err == nil {
			always, err = ParseModuleList(f)
			f.Close()
			if err != nil {
				return fmt.Errorf("read %s: %w", s.ListFile, err)
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}

	var errs []error
	attempted := map[string]bool{}
	loadedFiles := map[string]bool{} // a dependency shared by several modules is loaded once
	load := func(names []string, why string) int {
		n := 0
		for _, name := range names {
			if attempted[name] || builtin[name] {
				continue
			}
			attempted[name] = true
			files, err := deps.LoadOrder(name)
			if err != nil {
				errs = append(errs, err)
				s.Log.Warn("module not found", "module", name, "reason", why, "err", err)
				continue
			}
			for _, f := range files {
				if loadedFiles[f] {
					continue
				}
				loadedFiles[f] = true
				if err := s.Sys.Load(filepath.Join(s.Dir, f)); err != nil {
					err = fmt.Errorf("module %q: load %s: %w", name, f, err)
					errs = append(errs, err)
					s.Log.Warn("module load failed", "module", name, "reason", why, "err", err)
					break
				}
			}
			n++
			s.Log.Debug("module loaded", "module", name, "reason", why)
		}
		return n
	}
	load(always, "modules.conf")
	passes := s.MaxPasses
	if passes <= 0 {
		passes = 4
	}
	for pass := 1; pass <= passes; pass++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		mas, err := Modaliases(s.SysRoot)
		if err != nil {
			return err
		}
		loaded, err := s.Sys.Loaded()
		if err != nil {
			return err
		}
		var todo []string
		for _, m := range MatchAliases(aliases, mas) {
			if !loaded[m] {
				todo = append(todo, m)
			}
		}
		n := load(todo, "modalias")
		s.Log.Info("coldplug pass", "pass", pass, "devices", len(mas), "loaded", n)
		if n == 0 {
			break
		}
	}
	if loaded, err := s.Sys.Loaded(); err == nil {
		s.Log.Info("modules loaded", "count", len(loaded))
	}
	return errors.Join(errs...)
}

func readDeps(p string) (DepTable, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("modules: %w", err)
	}
	defer f.Close()
	t, err := ParseDeps(f)
	if err != nil {
		return nil, fmt.Errorf("modules: read %s: %w", p, err)
	}
	return t, nil
}

// Modaliases returns the distinct modalias strings of every device under
// sysRoot/devices (symlinks are not followed, so each device is seen once).
func Modaliases(sysRoot string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	root := filepath.Join(sysRoot, "devices")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			return nil // unreadable corners of sysfs are skipped
		}
		if d.Name() != "modalias" || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		if m := strings.TrimSpace(string(b)); m != "" && !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("modules: scan %s: %w", root, err)
	}
	return out, nil
}
