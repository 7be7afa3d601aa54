package provision

import (
	"errors"
	"fmt"
	"net"
	"path"
	"regexp"
	"strings"
)

// The grammars of the values the agent writes into the target's files or
// passes to commands: a value that passes one of these is written as is
// (shell-quoted where a shell reads it) and means only what it says. Each
// rule lives here once; the packages that render the values (bootloader,
// configdrive, partition) call the same functions when they check
// defensively.

// CheckMountPoint checks an absolute mount point: it begins with "/", is
// clean (no "//", no trailing "/", no "." or ".." element: "/tmp/" and
// "/var/./log" are refused, not cleaned, as the document would not mean
// what it says), and holds only letters, digits and _ . + @ : - between
// the slashes: no white space, quote, backslash, "#" or control character,
// which would split or comment an fstab line or a shell word.
func CheckMountPoint(m string) error {
	switch {
	case m == "":
		return errors.New("empty")
	case !strings.HasPrefix(m, "/"):
		return errors.New("must be an absolute path")
	case len(m) > 4096:
		return errors.New("longer than 4096 bytes")
	}
	for _, r := range m {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/_.+@:-", r)) {
			return fmt.Errorf("holds %q: a path may hold only letters, digits and / _ . + @ : -", r)
		}
	}
	if c := path.Clean(m); c != m {
		return fmt.Errorf("is not a clean path (did you mean %q?)", c)
	}
	for _, e := range strings.Split(m[1:], "/") {
		if e == ".." || e == "." {
			return errors.New("must not hold . or .. elements")
		}
	}
	return nil
}

// checkMount applies the mount field's vocabulary: "", "swap", "none", or
// a mount point.
func checkMount(m string) error {
	switch m {
	case "", "swap", "none":
		return nil
	}
	if !strings.HasPrefix(m, "/") {
		return fmt.Errorf("must be an absolute path, \"swap\" or \"none\", got %q", m)
	}
	if err := CheckMountPoint(m); err != nil {
		return fmt.Errorf("%q %v", m, err)
	}
	return nil
}

var fsLabelRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:+-]{0,63}$`)

// CheckFSLabel checks a filesystem label (disk_label, fs_label): up to 64
// letters, digits and _ . : + -, not beginning with "-" or "." (mkfs cuts it
// to what the filesystem holds: 16 bytes for ext, 12 for xfs).
func CheckFSLabel(l string) error {
	if l == "" || fsLabelRE.MatchString(l) {
		return nil
	}
	return fmt.Errorf("%q is not a usable filesystem label (up to 64 letters, digits and _ . : + -, not beginning with - or .)", l)
}

var lvmNameRE = regexp.MustCompile(`^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$`)

// lvReserved are the LV name parts LVM keeps for itself (lvm(8), "VALID
// NAMES").
var lvReserved = []string{"_cdata", "_cmeta", "_corig", "_iorig", "_imeta", "_mimage", "_mlog", "_pmspare",
	"_rimage", "_rmeta", "_tdata", "_tmeta", "_vdata", "_vorigin", "_wcorig"}

func checkLVMName(kind, s string) error {
	switch {
	case s == "":
		return errors.New("required")
	case len(s) > 127:
		return fmt.Errorf("%q is not a valid %s name: longer than 127 characters", s, kind)
	case s == "." || s == "..", !lvmNameRE.MatchString(s):
		return fmt.Errorf("%q is not a valid %s name (letters, digits and + _ . -, not beginning with -, not . or ..)", s, kind)
	}
	return nil
}

// CheckVGName checks a volume group name by LVM's rules.
func CheckVGName(s string) error {
	if err := checkLVMName("volume group", s); err != nil {
		return err
	}
	if s == "snapshot" || s == "pvmove" {
		return fmt.Errorf("%q is not a valid volume group name (reserved by LVM)", s)
	}
	return nil
}

// CheckLVName checks a logical volume name by LVM's rules.
func CheckLVName(s string) error {
	if err := checkLVMName("logical volume", s); err != nil {
		return err
	}
	if strings.HasPrefix(s, "snapshot") || strings.HasPrefix(s, "pvmove") {
		return fmt.Errorf("%q is not a valid logical volume name (names beginning with snapshot or pvmove are LVM's)", s)
	}
	for _, r := range lvReserved {
		if strings.Contains(s, r) {
			return fmt.Errorf("%q is not a valid logical volume name (%s is LVM's)", s, r)
		}
	}
	return nil
}

func validLVMName(s string) bool { return checkLVMName("", s) == nil }

var userRE = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`)

// CheckUserName checks a user name: a lower-case letter or _, then up to
// 31 lower-case letters, digits and _ . - (useradd's portable names).
func CheckUserName(s string) error {
	if s == "" {
		return errors.New("required")
	}
	if !userRE.MatchString(s) {
		return fmt.Errorf("%q is not a valid user name (a lower-case letter or _, then up to 31 of a-z 0-9 _ . -)", s)
	}
	return nil
}

var hostLabelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// CheckHostname checks a host name by RFC 1123: dot-separated labels of
// 1 to 63 letters, digits and hyphens, not beginning or ending with a
// hyphen, 253 characters at most (one trailing dot allowed).
func CheckHostname(h string) error {
	t := strings.TrimSuffix(h, ".")
	if t == "" || len(t) > 253 {
		return fmt.Errorf("%q is not a valid host name", h)
	}
	for _, l := range strings.Split(t, ".") {
		if !hostLabelRE.MatchString(l) {
			return fmt.Errorf("%q is not a valid host name (RFC 1123: labels of letters, digits and -)", h)
		}
	}
	return nil
}

var ifnameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)

// CheckInterfaceName checks a network interface name as the kernel allows
// it and udev and cloud-init write it unquoted: 1 to 15 letters, digits
// and _ . -.
func CheckInterfaceName(s string) error {
	if !ifnameRE.MatchString(s) || s == "." || s == ".." {
		return fmt.Errorf("%q is not a usable interface name (1 to 15 letters, digits and _ . -)", s)
	}
	return nil
}

// CheckKernelParams checks pm_data.kernel_params, which becomes
// GRUB_CMDLINE_LINUX in the target's /etc/default/grub, a file
// grub-mkconfig sources with a shell: no kernel parameter needs "$", a
// backquote, a backslash or a control character, so they are refused
// (the value is single-quoted as well).
func CheckKernelParams(s string) error {
	for _, r := range s {
		switch {
		case r == '$', r == '`', r == '\\':
			return fmt.Errorf("holds %q: kernel parameters may not hold $, ` or \\ (they end up in a file a shell reads)", r)
		case r < 0x20 || r == 0x7f:
			return fmt.Errorf("holds the control character %q", r)
		}
	}
	return nil
}

// CheckUdevRules checks kernel_options.udevrules: comma-separated
// MAC_NAME entries (52:54:00:12:34:56_eth0), each MAC a MAC address and
// each NAME an interface name; it returns one error per bad entry.
func CheckUdevRules(s string) []error {
	var errs []error
	if strings.TrimSpace(s) == "" {
		return nil
	}
	for i, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		mac, name, ok := strings.Cut(e, "_")
		switch {
		case !ok || name == "":
			errs = append(errs, fmt.Errorf("entry %d %q: want MAC_NAME", i+1, e))
		case !validMAC(mac):
			errs = append(errs, fmt.Errorf("entry %d %q: invalid MAC address %q", i+1, e, mac))
		default:
			if err := CheckInterfaceName(name); err != nil {
				errs = append(errs, fmt.Errorf("entry %d %q: %v", i+1, e, err))
			}
		}
	}
	return errs
}

// CheckIP checks an IP address (v4 or v6).
func CheckIP(s string) error {
	if net.ParseIP(strings.TrimSpace(s)) == nil {
		return fmt.Errorf("%q is not an IP address", s)
	}
	return nil
}

// CheckIPv4 checks an IPv4 address.
func CheckIPv4(s string) error {
	if ip := net.ParseIP(strings.TrimSpace(s)); ip == nil || ip.To4() == nil {
		return fmt.Errorf("%q is not an IPv4 address", s)
	}
	return nil
}
