package imagebuild

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
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
	case "extra-data.d", "block-device.d", "cleanup.d":
		return true
	}
	return false
}

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

// LoadElements reads the hook directories of each element directory and
// returns the hooks of each phase merged over all elements, in C-locale
// lexical order of their names (dib-run-parts). Files whose names
// dib-run-parts would skip are ignored; a hook that is not executable, two
// hooks of one phase with the same name, an unknown *.d directory or an
// element that is not a directory are errors.
func LoadElements(dirs []string) (map[string][]Hook, error) {
	hooks := map[string][]Hook{}
	byName := map[string]string{}
	known := map[string]bool{"root.d": false, "first-boot.d": false, "environment.d": false}
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
				return nil, fmt.Errorf("element %q: %s: phase not supported (supported: %v)", dir, e.Name(), Phases)
			}
			phase := e.Name()
			files, err := os.ReadDir(filepath.Join(dir, phase))
			if err != nil {
				return nil, fmt.Errorf("element %q: %w", dir, err)
			}
			for _, f := range files {
				if !hookNameRe.MatchString(f.Name()) {
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
				if fi.Mode().Perm()&0o111 == 0 {
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
