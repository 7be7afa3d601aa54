package inventory

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// sysfs reads a sysfs tree rooted at root ("/sys" on a live system, a
// directory of files and relative symlinks in tests). It models the parts of
// libudev's sd_device that the naming rules use: a device is a directory under
// devices/ that holds a uevent file; its parent is the nearest such ancestor;
// its subsystem is the base name of its subsystem link.
type sysfs struct {
	root string
}

// path joins elements below the root.
func (s sysfs) path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

// attr returns the attribute file's content with the trailing newline
// removed (as sd_device_get_sysattr_value does) and whether it could be read.
// Other whitespace is kept: callers that compare apply the udev trimming
// they need.
func (s sysfs) attr(dir, name string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "", false
	}
	return strings.TrimSuffix(string(b), "\n"), true
}

// attrTrim is attr with surrounding whitespace removed.
func (s sysfs) attrTrim(dir, name string) string {
	v, _ := s.attr(dir, name)
	return strings.TrimSpace(v)
}

// attrInt parses a decimal attribute; ok is false when it is missing or not a number.
func (s sysfs) attrInt(dir, name string) (int64, bool) {
	v := s.attrTrim(dir, name)
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// attrBytes returns a binary attribute (vpd pages).
func (s sysfs) attrBytes(dir, name string) []byte {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil
	}
	return b
}

// resolve follows every symlink of p, staying inside the tree: a link that
// leads outside the root is an error (a fixture pointing at the host's /sys
// must not be followed silently).
func (s sysfs) resolve(p string) (string, error) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", err
	}
	root, err := filepath.EvalSymlinks(s.root)
	if err != nil {
		return "", err
	}
	if real != root && !strings.HasPrefix(real, root+string(filepath.Separator)) {
		return "", &fs.PathError{Op: "resolve", Path: p, Err: errors.New("leads outside the sysfs root")}
	}
	return real, nil
}

// device is one sysfs device directory (resolved, absolute).
type device struct {
	fs   sysfs
	path string
}

func (d device) sysname() string { return filepath.Base(d.path) }

// subsystem is the base name of the subsystem link ("" when there is none).
func (d device) subsystem() string {
	t, err := os.Readlink(filepath.Join(d.path, "subsystem"))
	if err != nil {
		return ""
	}
	return filepath.Base(t)
}

// uevent returns one key of the device's uevent file (DEVTYPE, DEVNAME, ...).
func (d device) uevent(key string) string {
	v, _ := d.fs.attr(d.path, "uevent")
	for _, line := range strings.Split(v, "\n") {
		if k, val, ok := strings.Cut(line, "="); ok && k == key {
			return val
		}
	}
	return ""
}

func (d device) devtype() string { return d.uevent("DEVTYPE") }

// attr reads an attribute of this device.
func (d device) attr(name string) (string, bool) { return d.fs.attr(d.path, name) }

// parent is the nearest ancestor directory that is a device (has a uevent
// file), as sd_device_get_parent finds it; ok is false at the top.
func (d device) parent() (device, bool) {
	root, err := filepath.EvalSymlinks(d.fs.root)
	if err != nil {
		return device{}, false
	}
	devices := filepath.Join(root, "devices")
	p := d.path
	for {
		p = filepath.Dir(p)
		if p == devices || len(p) <= len(devices) {
			return device{}, false
		}
		if _, err := os.Stat(filepath.Join(p, "uevent")); err == nil {
			return device{fs: d.fs, path: p}, true
		}
	}
}

// parentWith walks up to the first ancestor (or d itself) of the subsystem and,
// when devtype is not empty, the devtype
// (sd_device_get_parent_with_subsystem_devtype, which starts at the parent).
func (d device) parentWith(subsystem, devtype string) (device, bool) {
	p, ok := d.parent()
	for ok {
		if p.subsystem() == subsystem && (devtype == "" || p.devtype() == devtype) {
			return p, true
		}
		p, ok = p.parent()
	}
	return device{}, false
}

// sysnum is the trailing decimal digits of the sysname (sd_device_get_sysnum).
func (d device) sysnum() string {
	n := d.sysname()
	i := len(n)
	for i > 0 && n[i-1] >= '0' && n[i-1] <= '9' {
		i--
	}
	return n[i:]
}

// classDevice finds a device by subsystem and sysname the way
// sd_device_new_from_subsystem_sysname does: subsystem/<s>/devices,
// bus/<s>/devices, class/<s>.
func (s sysfs) classDevice(subsystem, sysname string) (device, bool) {
	for _, p := range []string{
		s.path("subsystem", subsystem, "devices", sysname),
		s.path("bus", subsystem, "devices", sysname),
		s.path("class", subsystem, sysname),
	} {
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		real, err := s.resolve(p)
		if err != nil {
			continue
		}
		return device{fs: s, path: real}, true
	}
	return device{}, false
}

// listDir returns the entry names of a directory, sorted; nil when unreadable.
func listDir(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		return nil
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
