// Package ramdiskelem adds diskimage-builder-style elements to the bootstrap
// ramdisk (`imprint build-ramdisk`, diskimage-builder's ramdisk-image-create
// with elements). The elements' contents become one extra cpio archive
// appended to the base initramfs; the kernel unpacks it over the base.
//
// What an element may hold (every other *.d directory is refused: the
// ramdisk has no package manager or chroot phase):
//
//	element-deps     element names this one needs (resolved as build-image does: ELEMENTS_PATH, cycles refused)
//	binary-deps.d/*  lists of binaries (one per line, '#' comments), copied from the build host
//	                 at their host path, with their shared libraries and ELF interpreter
//	ramdisk-files/   a tree copied as is into the ramdisk's root
//	extra-data.d/*   hooks run on the build host, in name order over all elements, with
//	                 TARGET_ROOT (the staging tree that becomes the archive) and TMP_HOOKS_PATH set
//	init.d/*         scripts installed in /etc/imprint/init.d; ramdisk-init runs them once,
//	                 in name order, before the agent starts
//
// The work is split as the project's style asks: [Load] reads element
// directories, [Build] is the pure plan (what goes where, the hooks'
// order), [Apply] stages the plan, runs the hooks and writes the archive.
package ramdiskelem

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/imprint-dev/imprint/bootstrap"
	"github.com/imprint-dev/imprint/imagebuild"
)

// InitDir is where init.d scripts are installed in the ramdisk (without
// the leading slash, as the archive stores it); bootstrap's InitScripts
// step runs what it finds there.
var InitDir = strings.TrimPrefix(bootstrap.DefaultInitDir, "/")

// Element directories and files build-ramdisk understands.
const (
	BinaryDeps   = "binary-deps.d"
	RamdiskFiles = "ramdisk-files"
	ExtraData    = "extra-data.d"
	InitD        = "init.d"
)

// Element is one element as read from its directory.
type Element struct {
	Name string
	Dir  string
	// Binaries are the binary-deps.d entries, in file-name then line order:
	// a name looked up in the host's PATH, or an absolute path.
	Binaries []string
	// Files is the ramdisk-files tree, in walk (lexical) order.
	Files []File
	// ExtraData and Init are the hooks of extra-data.d and init.d.
	ExtraData []imagebuild.Hook
	Init      []imagebuild.Hook
}

// File is one entry of an element's ramdisk-files tree.
type File struct {
	Rel    string      // path below ramdisk-files, slash-separated
	Source string      // host path
	Mode   fs.FileMode // type and permission bits
	Link   string      // symlink target
}

// hookNameRe is dib-run-parts' rule, as imagebuild applies it.
var hookNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Load reads the element directories (already resolved, in dependency
// order) into Elements.
func Load(dirs []string) ([]Element, error) {
	var out []Element
	for _, dir := range dirs {
		e, err := loadOne(dir)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func loadOne(dir string) (Element, error) {
	e := Element{Name: filepath.Base(filepath.Clean(dir)), Dir: dir}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return e, fmt.Errorf("element %q: %w", dir, err)
	}
	for _, ent := range entries {
		name := ent.Name()
		if !ent.IsDir() || filepath.Ext(name) != ".d" {
			continue
		}
		switch name {
		case BinaryDeps:
			if e.Binaries, err = readBinaryDeps(filepath.Join(dir, name)); err != nil {
				return e, fmt.Errorf("element %q: %w", dir, err)
			}
		case ExtraData, InitD:
			hs, err := readHooks(e.Name, dir, name)
			if err != nil {
				return e, err
			}
			if name == ExtraData {
				e.ExtraData = hs
			} else {
				e.Init = hs
			}
		default:
			return e, fmt.Errorf("element %q: %s: not supported by build-ramdisk (supported: %s, %s, %s, %s/ and element-deps)",
				dir, name, BinaryDeps, ExtraData, InitD, RamdiskFiles)
		}
	}
	root := filepath.Join(dir, RamdiskFiles)
	if st, err := os.Stat(root); err == nil && st.IsDir() {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == root {
				return err
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			f := File{Rel: filepath.ToSlash(rel), Source: p, Mode: fi.Mode()}
			switch {
			case fi.Mode()&fs.ModeSymlink != 0:
				if f.Link, err = os.Readlink(p); err != nil {
					return err
				}
			case fi.IsDir(), fi.Mode().IsRegular():
			default:
				return fmt.Errorf("%s: not a regular file, directory or symlink", p)
			}
			e.Files = append(e.Files, f)
			return nil
		})
		if err != nil {
			return e, fmt.Errorf("element %q: %s: %w", dir, RamdiskFiles, err)
		}
	}
	return e, nil
}

// readBinaryDeps reads every file of a binary-deps.d directory (names as
// dib-run-parts allows), one binary per whitespace-separated word.
func readBinaryDeps(d string) ([]string, error) {
	files, err := os.ReadDir(d)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range files {
		if f.IsDir() || !hookNameRe.MatchString(f.Name()) {
			continue
		}
		fh, err := os.Open(filepath.Join(d, f.Name()))
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			line, _, _ := strings.Cut(sc.Text(), "#")
			out = append(out, strings.Fields(line)...)
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s/%s: %w", BinaryDeps, f.Name(), err)
		}
	}
	return out, nil
}

func readHooks(elem, dir, phase string) ([]imagebuild.Hook, error) {
	files, err := os.ReadDir(filepath.Join(dir, phase))
	if err != nil {
		return nil, fmt.Errorf("element %q: %w", dir, err)
	}
	var hs []imagebuild.Hook
	for _, f := range files {
		if !hookNameRe.MatchString(f.Name()) {
			continue // README.md, backups: dib-run-parts skips them too
		}
		p := filepath.Join(dir, phase, f.Name())
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("element %q: %s/%s: %w", dir, phase, f.Name(), err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		if fi.Mode().Perm()&0o111 == 0 {
			return nil, fmt.Errorf("element %q: %s/%s is not executable (chmod +x it)", dir, phase, f.Name())
		}
		hs = append(hs, imagebuild.Hook{Element: elem, Phase: phase, Name: f.Name(), Path: p})
	}
	return hs, nil
}

// Host answers questions about the build host's binaries.
type Host interface {
	// LookPath finds a binary-deps name in PATH.
	LookPath(name string) (string, error)
	// Deps returns the files a binary needs to run: its ELF interpreter and
	// shared libraries, with the symlinks leading to them (Link set).
	Deps(bin string) ([]HostFile, error)
}

// HostFile is a file of the build host.
type HostFile struct {
	Path string
	Link string // symlink target, "" for a regular file
}

// Entry is one path of the element archive.
type Entry struct {
	Path   string      // in the archive: slash-separated, relative, clean
	Dir    bool        // a directory
	Link   string      // symlink target
	Source string      // host file to copy (regular files)
	Mode   fs.FileMode // permission bits
	From   string      // what wanted it, for messages: "element e: binary jq"
}

// Plan is what Apply does: the entries in path order, then the extra-data.d
// hooks in run order, and the init.d scripts in run order (archive paths).
type Plan struct {
	Entries []Entry
	Hooks   []imagebuild.Hook
	Init    []string
}

// Build plans the element archive. It refuses a binary that is not found,
// a path escaping the archive (.., or a path through a symlink of the
// plan), two different files for one path, and two hooks of one phase
// with the same name.
func Build(elems []Element, host Host) (*Plan, error) {
	b := &planner{byPath: map[string]Entry{}}
	for _, e := range elems {
		for _, name := range e.Binaries {
			if err := b.binary(e.Name, name, host); err != nil {
				return nil, err
			}
		}
		for _, f := range e.Files {
			from := "element " + e.Name + ": " + RamdiskFiles + "/" + f.Rel
			var err error
			switch {
			case f.Mode&fs.ModeSymlink != 0:
				err = b.add(Entry{Path: f.Rel, Link: f.Link, Mode: 0o777, From: from})
			case f.Mode.IsDir():
				err = b.add(Entry{Path: f.Rel, Dir: true, Mode: f.Mode.Perm(), From: from})
			default:
				err = b.add(Entry{Path: f.Rel, Source: f.Source, Mode: f.Mode.Perm(), From: from})
			}
			if err != nil {
				return nil, err
			}
		}
	}
	p := &Plan{}
	var err error
	if p.Hooks, err = mergeHooks(elems, ExtraData); err != nil {
		return nil, err
	}
	inits, err := mergeHooks(elems, InitD)
	if err != nil {
		return nil, err
	}
	for _, h := range inits {
		ap := InitDir + "/" + h.Name
		if err := b.add(Entry{Path: ap, Source: h.Path, Mode: 0o755, From: "element " + h.Element + ": " + InitD + "/" + h.Name}); err != nil {
			return nil, err
		}
		p.Init = append(p.Init, ap)
	}
	// every parent directory, and nothing below a symlink of the plan
	for _, en := range b.list() {
		for d := path.Dir(en.Path); d != "."; d = path.Dir(d) {
			if o, ok := b.byPath[d]; ok {
				if o.Link != "" {
					return nil, fmt.Errorf("%s: %s is below %s, a symlink (%s) of %s: the path would escape the archive", en.From, en.Path, d, o.Link, o.From)
				}
				if !o.Dir {
					return nil, fmt.Errorf("%s: %s is below %s, a file of %s", en.From, en.Path, d, o.From)
				}
				continue
			}
			b.byPath[d] = Entry{Path: d, Dir: true, Mode: 0o755, From: en.From}
		}
	}
	p.Entries = b.list()
	return p, nil
}

type planner struct{ byPath map[string]Entry }

func (b *planner) list() []Entry {
	out := make([]Entry, 0, len(b.byPath))
	for _, e := range b.byPath {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// archivePath cleans p into an archive path, refusing one that leaves the
// archive's root.
func archivePath(p string) (string, error) {
	c := path.Clean("/" + p)
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", fmt.Errorf("%q escapes the archive (..)", p)
		}
	}
	if c == "/" {
		return "", fmt.Errorf("%q is the archive's root", p)
	}
	return strings.TrimPrefix(c, "/"), nil
}

func (b *planner) add(e Entry) error {
	ap, err := archivePath(e.Path)
	if err != nil {
		return fmt.Errorf("%s: %w", e.From, err)
	}
	e.Path = ap
	if o, ok := b.byPath[ap]; ok {
		if o.Dir && e.Dir || o.Link != "" && o.Link == e.Link || o.Source != "" && o.Source == e.Source {
			return nil // the same thing twice (a library two binaries need)
		}
		return fmt.Errorf("%s: %s is also %s", e.From, ap, o.From)
	}
	b.byPath[ap] = e
	return nil
}

func (b *planner) binary(elem, name string, host Host) error {
	from := "element " + elem + ": " + BinaryDeps + " " + name
	p := name
	if !filepath.IsAbs(name) {
		if strings.Contains(name, "/") {
			return fmt.Errorf("%s: want a name looked up in PATH or an absolute path", from)
		}
		var err error
		if p, err = host.LookPath(name); err != nil {
			return fmt.Errorf("%s: binary not found on the build host: %w", from, err)
		}
	}
	deps, err := host.Deps(p)
	if err != nil {
		return fmt.Errorf("%s: %s: shared libraries: %w", from, p, err)
	}
	if err := b.add(Entry{Path: p, Source: p, Mode: 0o755, From: from}); err != nil {
		return err
	}
	for _, d := range deps {
		e := Entry{Path: d.Path, Source: d.Path, Mode: 0o755, From: from + ": " + d.Path}
		if d.Link != "" {
			e = Entry{Path: d.Path, Link: d.Link, Mode: 0o777, From: e.From}
		}
		if err := b.add(e); err != nil {
			return err
		}
	}
	return nil
}

// mergeHooks merges phase's hooks of every element in name order
// (dib-run-parts over the merged directory); a name twice is an error.
func mergeHooks(elems []Element, phase string) ([]imagebuild.Hook, error) {
	var hs []imagebuild.Hook
	seen := map[string]string{}
	for _, e := range elems {
		list := e.ExtraData
		if phase == InitD {
			list = e.Init
		}
		for _, h := range list {
			if other, dup := seen[h.Name]; dup {
				return nil, fmt.Errorf("element %q: %s/%s is also in element %q (names must be unique per phase)", e.Name, phase, h.Name, other)
			}
			seen[h.Name] = e.Name
			hs = append(hs, h)
		}
	}
	sort.SliceStable(hs, func(i, j int) bool { return hs[i].Name < hs[j].Name })
	return hs, nil
}
