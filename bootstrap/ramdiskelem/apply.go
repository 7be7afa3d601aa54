package ramdiskelem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/imprint-dev/imprint/bootstrap/nodearchive"
	"github.com/u-root/u-root/pkg/cpio"
	"github.com/u-root/u-root/pkg/ldd"
)

// OSHost is the build host itself: PATH lookups and u-root's ldd (the ELF
// interpreter lists the shared libraries; symlinks to them are followed).
type OSHost struct{}

// LookPath implements Host.
func (OSHost) LookPath(name string) (string, error) { return exec.LookPath(name) }

// Deps implements Host.
func (OSHost) Deps(bin string) ([]HostFile, error) {
	paths, err := ldd.FList(bin)
	if err != nil {
		return nil, err
	}
	var out []HostFile
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, err
		}
		f := HostFile{Path: p}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if f.Link, err = os.Readlink(p); err != nil {
				return nil, err
			}
		}
		out = append(out, f)
	}
	return out, nil
}

// Apply stages the plan under work/root (TARGET_ROOT), runs the
// extra-data.d hooks on the host in order (their output to out), and
// returns the staging tree as one gzip-compressed newc cpio archive.
// Writes into the staging tree go through an os.Root, so a symlink there
// cannot redirect them onto the host.
func Apply(ctx context.Context, p *Plan, work string, out io.Writer, log *slog.Logger) ([]byte, error) {
	stage := filepath.Join(work, "root")
	hooksTmp := filepath.Join(work, "hooks")
	for _, d := range []string{stage, hooksTmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("staging: %w", err)
		}
	}
	root, err := os.OpenRoot(stage)
	if err != nil {
		return nil, fmt.Errorf("staging: %w", err)
	}
	defer root.Close()
	for _, e := range p.Entries {
		if err := stageEntry(root, e); err != nil {
			return nil, fmt.Errorf("%s: stage %s: %w", e.From, e.Path, err)
		}
	}
	for _, h := range p.Hooks {
		t0 := time.Now()
		log.Info("extra-data.d hook", "element", h.Element, "hook", h.Name)
		cmd := exec.CommandContext(ctx, h.Path)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "TARGET_ROOT="+stage, "TMP_HOOKS_PATH="+hooksTmp, "IMPRINT_ELEMENT="+h.Element)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("element %q: %s/%s: %w", h.Element, h.Phase, h.Name, err)
		}
		log.Info("extra-data.d hook done", "hook", h.Name, "duration", time.Since(t0).Round(time.Millisecond))
	}
	recs, err := records(stage)
	if err != nil {
		return nil, err
	}
	b, err := nodearchive.WriteGzip(recs)
	if err != nil {
		return nil, fmt.Errorf("element archive: %w", err)
	}
	return b, nil
}

func stageEntry(root *os.Root, e Entry) error {
	name := filepath.FromSlash(e.Path)
	switch {
	case e.Dir:
		if err := root.Mkdir(name, e.Mode.Perm()); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		return root.Chmod(name, e.Mode.Perm())
	case e.Link != "":
		return root.Symlink(e.Link, name)
	}
	src, err := os.Open(e.Source)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, e.Mode.Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	return root.Chmod(name, e.Mode.Perm()) // the umask does not decide an archive's modes
}

// maxArchive bounds what the staging tree may hold (the archive is held in
// memory and in the node's RAM).
const maxArchive = 1 << 30

// records walks the staging tree (symlinks not followed) into cpio records,
// parents before children, owned by root.
func records(stage string) ([]cpio.Record, error) {
	var recs []cpio.Record
	var total int64
	err := filepath.WalkDir(stage, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == stage {
			return err
		}
		rel, _ := filepath.Rel(stage, p)
		name := filepath.ToSlash(rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		perm := uint64(fi.Mode().Perm())
		switch {
		case fi.IsDir():
			recs = append(recs, cpio.Directory(name, perm))
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			recs = append(recs, cpio.Symlink(name, t))
		case fi.Mode().IsRegular():
			if total += fi.Size(); total > maxArchive {
				return fmt.Errorf("more than %d MiB staged", maxArchive>>20)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			recs = append(recs, cpio.StaticFile(name, string(b), perm))
		default:
			return fmt.Errorf("%s: %v: only files, directories and symlinks go into the archive", name, fi.Mode().Type())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("element archive: %w", err)
	}
	return recs, nil
}

// Concat returns base followed by the element archive, after checking
// that base looks like an initramfs (gzip, or a newc cpio).
func Concat(base, archive []byte) ([]byte, error) {
	switch {
	case len(base) >= 2 && base[0] == 0x1f && base[1] == 0x8b:
	case len(base) >= 6 && strings.HasPrefix(string(base[:6]), "07070"):
	default:
		return nil, errors.New("not an initramfs (neither gzip nor a newc cpio archive)")
	}
	out := make([]byte, 0, len(base)+len(archive))
	return append(append(out, base...), archive...), nil
}
