package agent

import (
	"errors"

	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/configdrive"
)

// Config is the agent's configuration, resolved from flags, environment and
// the kernel command line (see Settings and Resolve).
type Config struct {
	Listen     string        // address the API listens on
	Token      string        // bearer token every /v1 call must carry
	TokenFile  string        // file the token was read from, if any
	Controller string        // base URL of the controller's callback API
	Insecure   bool          // serve /v1 without a token
	TLS        bool          // serve HTTPS with a certificate generated at start
	LogFormat  string        // json or text
	LogLevel   string        // debug, info, warn, error
	Heartbeat  time.Duration // interval of progress heartbeats to the controller
	Input      string        // provision document read by `imprint provision`
	StateDir   string        // where the lock file (node provisioned) is kept
	NodeID     string        // identity sent to the controller (default: DMI uuid or hostname)
	PowerOff   bool          // allow /v1/reboot and /v1/poweroff to act on this machine
	// ZeroOffload lets the image writer hand runs of zeroes to the disk as
	// write-zeroes (imagewriter.Options.NoZeroOffload when false).
	ZeroOffload bool
	// Destructive allows provisioning (wipes, partitions, image writes) on
	// this machine: by default only inside the bootstrap ramdisk.
	Destructive bool
	// FileImages admits file:// image URLs (local testing only).
	FileImages bool
	// RequireDigest refuses documents whose images carry no sha256/sha512.
	RequireDigest bool
	// ConfigdriveFormat is the configdrive written when the document has
	// no ks_meta.configdrive_format (configdrive.Formats).
	ConfigdriveFormat configdrive.Format
}

// Setting is one configuration knob: its flag, environment variable and
// kernel command-line parameter, default and meaning. Settings() is the single
// table the command's flags, the README and Resolve are built from.
type Setting struct {
	Name    string // flag name without dashes: listen
	Env     string // IMPRINT_LISTEN
	Cmdline string // imprint.listen
	Default string
	Bool    bool
	Usage   string
}

// Settings returns the configuration table, in documentation order.
func Settings() []Setting {
	s := func(name, def string, boolean bool, usage string) Setting {
		return Setting{
			Name:    name,
			Env:     "IMPRINT_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")),
			Cmdline: "imprint." + strings.ReplaceAll(name, "-", "_"),
			Default: def,
			Bool:    boolean,
			Usage:   usage,
		}
	}
	return []Setting{
		s("listen", ":9999", false, "address (host:port) the API listens on"),
		s("token", "", false, "bearer token required on every /v1 call (prefer token-file or the kernel command line; never put it in a URL)"),
		s("token-file", "/etc/imprint/token", false, "file holding the token (e.g. added by an extra initrd); a missing default file is ignored"),
		s("controller", "", false, "controller base URL: discovery, heartbeats and the final result are POSTed to <url>/discovery, /progress, /result"),
		s("insecure", "false", true, "serve /v1 and accept provisioning without a token (lab use only)"),
		s("tls", "false", true, "serve HTTPS with a self-signed certificate generated at start; its SHA-256 fingerprint is logged and sent in discovery"),
		s("log-format", "json", false, "log format on stderr: json or text"),
		s("log-level", "info", false, "log level: debug, info, warn, error"),
		s("heartbeat", "10s", false, "interval of progress heartbeats to the controller"),
		s("input", "/tmp/provision.json", false, "provision document read by `imprint provision` (Astute uploads it there)"),
		s("state-dir", "/run/imprint", false, "directory of the provisioned-node lock file (tmpfs in the ramdisk)"),
		s("node-id", "", false, "node identity sent to the controller (default: DMI system UUID, else hostname)"),
		s("zero-offload", "true", true, "have the disk zero an image's runs of 1 MiB or more of zeroes itself (write-zeroes, where it guarantees zeroes) instead of writing them; false for disks whose write-zeroes is slower than writing"),
		s("power", "auto", false, "act on /v1/reboot and /v1/poweroff (sync, then reboot(2)): auto = only when / is the initramfs (rootfs, ramfs or tmpfs), yes, no"),
		s("destructive", "auto", false, "accept provisioning (wipe, partition, write images) on this machine: auto = only when / is the initramfs, yes, no; also read by `imprint provision`, `partition`, `write-image`, `configdrive` and `bootloader` when they would write a block device"),
		s("file-images", "false", true, "admit file:// image URLs in provision documents (local testing only; never under /dev, /proc, /sys, the state directory or the token file)"),
		s("require-digest", "false", true, "refuse a provision document any of whose images has no sha256 or sha512 in its image_data entry"),
		s("configdrive-format", string(configdrive.DefaultFormat), false, "configdrive written when the document has no ks_meta.configdrive_format: config2-vfat, config2-iso, nocloud-vfat or nocloud-iso"),
	}
}

// Source says where a resolved value came from.
type Source string

// Sources, highest precedence first.
const (
	FromFlag    Source = "flag"
	FromEnv     Source = "env"
	FromCmdline Source = "cmdline"
	FromDefault Source = "default"
)

// Values are raw setting values by Setting.Name.
type Values map[string]string

// Resolve merges the sources (flags > environment > kernel command line >
// defaults) and validates the result, reporting every problem with the
// setting's name. flags holds only the flags given explicitly; getenv looks
// up the environment; cmdline is the kernel command line's contents (may be
// empty). It also returns where each value came from, for logging.
func Resolve(flags Values, getenv func(string) string, cmdline string) (Config, map[string]Source, error) {
	kc := ParseCmdline(cmdline)
	raw := Values{}
	src := map[string]Source{}
	for _, s := range Settings() {
		v, from := s.Default, FromDefault
		c, ok := kc[s.Cmdline]
		if !ok { // imprint.log-format works as well as imprint.log_format
			c, ok = kc["imprint."+s.Name]
		}
		if ok {
			v, from = c, FromCmdline
			if s.Bool && c == "" {
				v = "true" // bare imprint.insecure
			}
		}
		if getenv != nil {
			if e := getenv(s.Env); e != "" {
				v, from = e, FromEnv
			}
		}
		if f, ok := flags[s.Name]; ok {
			v, from = f, FromFlag
		}
		raw[s.Name], src[s.Name] = v, from
	}

	var errs []error
	bad := func(name string, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s (from %s): %s", name, src[name], fmt.Sprintf(format, a...)))
	}
	boolean := func(name string) bool {
		b, err := strconv.ParseBool(raw[name])
		if err != nil {
			bad(name, "%q is not a boolean", raw[name])
		}
		return b
	}
	cfg := Config{
		Listen:        raw["listen"],
		Token:         raw["token"],
		Controller:    strings.TrimRight(raw["controller"], "/"),
		Insecure:      boolean("insecure"),
		TLS:           boolean("tls"),
		ZeroOffload:   boolean("zero-offload"),
		FileImages:    boolean("file-images"),
		RequireDigest: boolean("require-digest"),
		LogFormat:     raw["log-format"],
		LogLevel:      raw["log-level"],
		Input:         raw["input"],
		StateDir:      raw["state-dir"],
		NodeID:        raw["node-id"],
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		bad("listen", "%q is not host:port: %v", cfg.Listen, err)
	}
	if cfg.Token == "" && raw["token-file"] != "" {
		b, err := os.ReadFile(raw["token-file"])
		switch {
		case err == nil:
			cfg.Token = strings.TrimSpace(string(b))
			cfg.TokenFile = raw["token-file"]
			if cfg.Token == "" {
				bad("token-file", "%q is empty", raw["token-file"])
			}
		case errors.Is(err, os.ErrNotExist) && src["token-file"] == FromDefault:
			// the default file only exists when an extra initrd adds it
		default:
			bad("token-file", "%v", err)
		}
	}
	if strings.ContainsAny(cfg.Token, " \t\r\n") {
		bad("token", "must not contain whitespace")
	}
	if cfg.Controller != "" {
		u, err := url.Parse(cfg.Controller)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("controller", "%q is not an http(s)://host[:port][/path] URL", cfg.Controller)
		} else if u.User != nil || u.RawQuery != "" {
			bad("controller", "%q: credentials and query strings do not belong in the URL", cfg.Controller)
		}
	}
	switch cfg.LogFormat {
	case "json", "text":
	default:
		bad("log-format", "%q is not json or text", cfg.LogFormat)
	}
	switch cfg.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", "%q is not debug, info, warn or error", cfg.LogLevel)
	}
	if f, err := configdrive.ParseFormat(raw["configdrive-format"]); err != nil {
		bad("configdrive-format", "%v", err)
	} else {
		cfg.ConfigdriveFormat = f
	}
	hb, err := time.ParseDuration(raw["heartbeat"])
	if err != nil || hb <= 0 {
		bad("heartbeat", "%q is not a positive duration", raw["heartbeat"])
	}
	cfg.Heartbeat = hb
	var err2 error
	if cfg.PowerOff, err2 = autoYesNo(raw["power"]); err2 != nil {
		bad("power", "%v", err2)
	}
	if cfg.Destructive, err2 = autoYesNo(raw["destructive"]); err2 != nil {
		bad("destructive", "%v", err2)
	}
	return cfg, src, errors.Join(errs...)
}

// ParseCmdline splits a kernel command line into its parameters. Values may
// be double-quoted (imprint.x="a b"); a parameter without '=' maps to "".
// Later parameters override earlier ones, as the kernel does for most.
func ParseCmdline(s string) map[string]string {
	out := map[string]string{}
	var fields []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			have = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			if have {
				fields = append(fields, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		fields = append(fields, cur.String())
	}
	for _, f := range fields {
		k, v, _ := strings.Cut(f, "=")
		out[k] = v
	}
	return out
}

// IsRamdisk reports whether the root filesystem is a ramfs/tmpfs, i.e. the
// agent runs in the bootstrap initramfs rather than on an installed system
// (a developer's box). It only reads /proc/mounts.
func IsRamdisk() bool {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return false
	}
	return rootIsRAM(string(b))
}

func rootIsRAM(mounts string) bool {
	fstype := ""
	for _, line := range strings.Split(mounts, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[1] == "/" {
			fstype = f[2] // the last mount on / wins
		}
	}
	return fstype == "rootfs" || fstype == "ramfs" || fstype == "tmpfs"
}

// autoYesNo reads an auto|yes|no setting: auto is yes only inside the
// bootstrap ramdisk.
func autoYesNo(v string) (bool, error) {
	switch v {
	case "auto":
		return IsRamdisk(), nil
	case "yes", "true":
		return true, nil
	case "no", "false":
		return false, nil
	}
	return false, fmt.Errorf("%q is not auto, yes or no", v)
}

// ErrNotDestructive refuses a destructive call where the destructive
// setting does not allow it.
var ErrNotDestructive = fmt.Errorf("%w: refusing to write disks: this is not the bootstrap ramdisk (/ is not an initramfs); set destructive=yes (--destructive, IMPRINT_DESTRUCTIVE or imprint.destructive) to provision this machine anyway", api.ErrRefused)

// DestructiveAllowed resolves the destructive setting alone, from the
// environment and the kernel command line (for the CLI commands that
// write block devices): nil when allowed, ErrNotDestructive otherwise.
func DestructiveAllowed(getenv func(string) string, cmdline string) error {
	v := "auto"
	kc := ParseCmdline(cmdline)
	if c, ok := kc["imprint.destructive"]; ok && c != "" {
		v = c
	}
	if getenv != nil {
		if e := getenv("IMPRINT_DESTRUCTIVE"); e != "" {
			v = e
		}
	}
	ok, err := autoYesNo(v)
	if err != nil {
		return fmt.Errorf("destructive: %w", err)
	}
	if !ok {
		return ErrNotDestructive
	}
	return nil
}
