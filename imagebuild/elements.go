package imagebuild

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Hook phases in the order diskimage-builder runs them, after the root
// filesystem was created (root.d's job, done here by debootstrap).
var Phases = []string{
	"extra-data.d",   // host: copy data from the host under TMP_HOOKS_PATH
	"pre-install.d",  // chroot: before the packages (add repositories)
	"install.d",      // chroot: after the packages
	"post-install.d", // chroot: after install.d
	"block-device.d", // host: IMAGE_BLOCK_DEVICE is the root filesystem's device
	"finalise.d",     // chroot: last changes, the image's own filesystems mounted
	"cleanup.d",      // host: TARGET_ROOT still mounted, before unmounting
}

// HostPhase reports whether hooks of phase run on the host (else in the
// chroot), as diskimage-builder defines it.
func HostPhase(phase string) bool {
	switch phase {
	case "extra-data.d", "block-device.d", "cleanup.d", RootPhase:
		return true
	}
	return false
}

// Special element directories besides Phases: root.d makes the root
// filesystem (on the host, TARGET_ROOT; debootstrap is not run when there
// is one), first-boot.d is installed into the image and run once on its
// first boot before rc.local, environment.d holds shell files sourced
// before every hook.
const (
	RootPhase      = "root.d"
	FirstBootPhase = "first-boot.d"
	EnvPhase       = "environment.d"
)

// Hook is one executable of an element's phase directory.
type Hook struct {
	Element string // element directory name
	Phase   string // one of Phases
	Name    string // file name; hooks of a phase run in lexical order of Name
	Path    string // file on the host
}

// hookNameRe is dib-run-parts' rule: letters, digits, '_' and '-' only
// (so README.md, *.orig and editor backups are never run).
var hookNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// envNameRe is what environment.d files may be called (diskimage-builder's
// are e.g. 10-dib-init-system.bash); README.md, *.orig and editor backups
// are skipped.
var envNameRe = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9_.-]*$`)

// elementNameRe is what an element's name may be.
var elementNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// skipEnvFile reports whether an environment.d file is documentation or a
// backup rather than something to source.
func skipEnvFile(name string) bool {
	return !envNameRe.MatchString(name) || strings.HasSuffix(name, ".md") || strings.HasSuffix(name, ".orig") ||
		strings.HasSuffix(name, ".rej") || strings.HasSuffix(name, ".swp") || strings.HasPrefix(name, "README")
}

// LoadElements reads the hook directories of each element directory and
// returns the hooks of each phase merged over all elements, in C-locale
// lexical order of their names (dib-run-parts). Files whose names
// dib-run-parts would skip are ignored; a hook that is not executable, two
// hooks of one phase with the same name, an unknown *.d directory or an
// element that is not a directory are errors.
func LoadElements(dirs []string) (map[string][]Hook, error) {
	hooks := map[string][]Hook{}
	byName := map[string]string{}
	known := map[string]bool{RootPhase: true, FirstBootPhase: true, EnvPhase: true}
	for _, p := range Phases {
		known[p] = true
	}
	for _, dir := range dirs {
		st, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("element %q: %w", dir, err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("element %q: not a directory", dir)
		}
		elem := filepath.Base(filepath.Clean(dir))
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("element %q: %w", dir, err)
		}
		for _, e := range entries {
			if !e.IsDir() || filepath.Ext(e.Name()) != ".d" {
				continue
			}
			supported, isKnown := known[e.Name()]
			if !isKnown || !supported {
				return nil, fmt.Errorf("element %q: %s: phase not supported (supported: %v, %s, %s, %s)", dir, e.Name(), Phases, RootPhase, FirstBootPhase, EnvPhase)
			}
			phase := e.Name()
			files, err := os.ReadDir(filepath.Join(dir, phase))
			if err != nil {
				return nil, fmt.Errorf("element %q: %w", dir, err)
			}
			for _, f := range files {
				if phase == EnvPhase && skipEnvFile(f.Name()) || phase != EnvPhase && !hookNameRe.MatchString(f.Name()) {
					continue
				}
				p := filepath.Join(dir, phase, f.Name())
				fi, err := os.Stat(p)
				if err != nil {
					return nil, fmt.Errorf("element %q: hook %s/%s: %w", dir, phase, f.Name(), err)
				}
				if !fi.Mode().IsRegular() {
					continue
				}
				if phase != EnvPhase && fi.Mode().Perm()&0o111 == 0 {
					return nil, fmt.Errorf("element %q: hook %s/%s is not executable (chmod +x it)", dir, phase, f.Name())
				}
				key := phase + "/" + f.Name()
				if other, dup := byName[key]; dup {
					return nil, fmt.Errorf("element %q: hook %s is also in element %q (names must be unique per phase)", dir, key, other)
				}
				byName[key] = dir
				hooks[phase] = append(hooks[phase], Hook{Element: elem, Phase: phase, Name: f.Name(), Path: p})
			}
		}
	}
	for _, hs := range hooks {
		sort.Slice(hs, func(i, j int) bool { return hs[i].Name < hs[j].Name })
	}
	return hooks, nil
}
