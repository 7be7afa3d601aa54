package configdrive

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"

	"github.com/imprint-dev/imprint/provision"
)

// Options tunes Build.
type Options struct {
	// InstanceID overrides the instance id (default: a UUID derived from the
	// node's uid, hostname and admin MAC, stable across rebuilds).
	InstanceID string
	// PhoneHomeURL, when set, adds a cloud-config phone_home that POSTs the
	// instance id, hostname, fqdn and SSH host keys there once per instance.
	PhoneHomeURL string
	// Rand is the randomness for password salts (default crypto/rand).
	Rand io.Reader
}

// Fuel's default when ks_meta.timezone is absent.
const defaultTimezone = "America/Los_Angeles"

// node is the validated, quote-stripped view of a Document Build renders.
type node struct {
	hostname, short, fqdn string
	uid                   string
	admin                 adminNIC
	gateway               string
	masterIP              string
	nameServers           []string
	searchDomains         []string
	timezone              string
	rootKeys              []string
	users                 []user
	udev                  []udevRule
	km                    *provision.KsMeta
	boothook, cloudConfig variant
}

type adminNIC struct {
	name, mac, ip, netmask string
	prefix                 int
}

type user struct {
	name, hash, homedir, shell string
	sudo, keys                 []string
}

type udevRule struct{ mac, name string }

// Build renders the configdrive content for doc: meta-data with a stable
// instance id, the admin NIC's static network configuration and MIME
// multipart user-data (boothook + cloud-config). Every problem in doc is
// reported, each prefixed by its field path. Suspicious but usable input
// (a key that is not an SSH public key) is passed on and listed in
// Content.Warnings.
func Build(doc *provision.Document, opts Options) (*Content, error) {
	if doc == nil {
		return nil, errors.New("configdrive: no provision document")
	}
	n, warnings, err := validate(doc, opts)
	if err != nil {
		return nil, err
	}
	iid := opts.InstanceID
	if iid == "" {
		iid = instanceID(n.uid, n.hostname, n.admin.mac)
	}
	c := &Content{InstanceID: iid, Hostname: n.hostname, Warnings: warnings}
	if c.MetaData, err = nocloudMetaData(n, iid); err != nil {
		return nil, err
	}
	if c.MetaDataJSON, err = config2MetaData(n, iid); err != nil {
		return nil, err
	}
	if c.NetworkConfig, err = networkConfigV1(n); err != nil {
		return nil, err
	}
	if c.NetworkDataJSON, err = networkDataJSON(n); err != nil {
		return nil, err
	}
	c.Boothook = boothook(n)
	if c.CloudConfig, err = cloudConfig(n, opts); err != nil {
		return nil, err
	}
	if c.UserData, err = mimeMultipart([]mimePart{
		{"text/cloud-boothook", "boothook.txt", c.Boothook},
		{"text/cloud-config", "cloud_config.txt", c.CloudConfig},
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// unquote strips the literal double quotes Nailgun wraps around some values
// (`"\"10.20.0.2\""`). Idempotent: the parser may already have done it.
func unquote(s string) string {
	s = strings.TrimSpace(s)
	for len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	return s
}

// splitList splits a Nailgun list value ("a,b" or "a b") after unquoting.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(unquote(s), func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if f = unquote(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// validate checks doc with provision's rules of what a configdrive reads
// (doc.ValidateConfigdrive: the rules live there, once) and derives the
// node Build renders. Only what no document rule can know is an error of
// its own here: the password hashing failing, a bad phone-home option.
func validate(doc *provision.Document, opts Options) (*node, []string, error) {
	if err := doc.ValidateConfigdrive(); err != nil {
		return nil, nil, fmt.Errorf("configdrive: invalid provision document:\n%w", err)
	}
	var errs []error
	var warnings []string
	km := &doc.KsMeta
	n := &node{km: km, uid: doc.UID}

	n.hostname = strings.TrimSuffix(strings.TrimSpace(doc.Hostname), ".")
	n.fqdn = n.hostname
	n.short, _, _ = strings.Cut(n.hostname, ".")

	// Admin NIC: the interface whose MAC is netcfg/choose_interface.
	adminMAC := strings.ToLower(unquote(doc.KernelOptions.ChooseInterface))
	if name, ok := doc.AdminInterface(); ok {
		ifc := doc.Interfaces[name]
		n.admin = adminNIC{name: name, mac: adminMAC, ip: strings.TrimSpace(ifc.IPAddress), netmask: strings.TrimSpace(ifc.Netmask)}
		if mask := net.ParseIP(n.admin.netmask); mask != nil && mask.To4() != nil {
			n.admin.prefix, _ = net.IPMask(mask.To4()).Size()
		}
	}
	if gw := strings.TrimSpace(km.Gw); gw != "" {
		n.gateway = gw
		if a, ip := net.ParseIP(n.admin.ip), net.ParseIP(gw); a != nil && ip != nil && n.admin.prefix > 0 {
			m := net.CIDRMask(n.admin.prefix, 32)
			if !a.Mask(m).Equal(ip.Mask(m)) {
				warnings = append(warnings, fmt.Sprintf("ks_meta.gw: %s is outside the admin network %s/%d", gw, n.admin.ip, n.admin.prefix))
			}
		}
	}
	n.masterIP = strings.TrimSpace(km.MasterIP)
	n.nameServers = splitList(doc.NameServers)
	if len(n.nameServers) == 0 {
		n.nameServers = []string{n.masterIP}
	}
	n.searchDomains = splitList(doc.NameServersSearch)

	n.timezone = strings.TrimSpace(km.Timezone)
	if n.timezone == "" {
		n.timezone = defaultTimezone
	}

	// Root keys: authorized_keys plus auth_key, Nailgun's quotes stripped.
	seen := map[string]bool{}
	addRoot := func(field, k string) {
		k = unquote(k)
		if k == "" || seen[k] {
			return
		}
		seen[k] = true
		if err := checkSSHKey(k); err != nil {
			warnings = append(warnings, fmt.Sprintf("%s: passed on, but %v", field, err))
		}
		n.rootKeys = append(n.rootKeys, k)
	}
	for i, k := range km.AuthorizedKeys {
		addRoot(fmt.Sprintf("ks_meta.authorized_keys[%d]", i), k)
	}
	addRoot("ks_meta.auth_key", km.AuthKey)

	for i, ua := range km.UserAccounts {
		f := fmt.Sprintf("ks_meta.user_accounts[%d]", i)
		u := user{name: strings.TrimSpace(ua.Name), homedir: strings.TrimSpace(ua.Homedir), shell: strings.TrimSpace(ua.Shell)}
		if u.shell == "" {
			u.shell = "/bin/bash"
		}
		if ua.Password != "" {
			h, err := HashPassword(ua.Password, opts.Rand)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s.password: %w", f, err))
			}
			u.hash = h
		}
		for _, s := range ua.Sudo {
			if s = strings.TrimSpace(unquote(s)); s != "" {
				u.sudo = append(u.sudo, s)
			}
		}
		for j, k := range ua.SSHKeys {
			if k = unquote(k); k == "" {
				continue
			}
			if err := checkSSHKey(k); err != nil {
				warnings = append(warnings, fmt.Sprintf("%s.ssh_keys[%d]: passed on, but %v", f, j, err))
			}
			u.keys = append(u.keys, k)
		}
		n.users = append(n.users, u)
	}

	if r := strings.TrimSpace(doc.KernelOptions.UdevRules); r != "" {
		for _, item := range strings.Split(unquote(r), ",") {
			if mac, name, ok := strings.Cut(strings.TrimSpace(item), "_"); ok {
				n.udev = append(n.udev, udevRule{strings.ToLower(mac), name})
			}
		}
	}

	if u := opts.PhoneHomeURL; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			errs = append(errs, fmt.Errorf("phone-home URL: %q is not an http(s) URL", u))
		}
	}

	var err error
	if n.boothook, err = selectVariant(doc, "boothook"); err != nil {
		errs = append(errs, err)
	}
	if n.cloudConfig, err = selectVariant(doc, "cloud_config"); err != nil {
		errs = append(errs, err)
	}
	if _, err = selectVariant(doc, "meta_data"); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, warnings, fmt.Errorf("configdrive: %w", errors.Join(errs...))
	}
	return n, warnings, nil
}

// instanceID is a name-based (version 5) UUID over the node identity: the
// same node gets the same id on every build, two nodes never share one.
func instanceID(uid, hostname, mac string) string {
	ns, _ := hex.DecodeString("6f8a3e1c2b7d4e59a0c1d2e3f4a5b6c7") // imprint configdrive namespace
	h := sha1.New()
	h.Write(ns)
	h.Write([]byte(strings.Join([]string{uid, strings.ToLower(hostname), strings.ToLower(mac)}, "\x00")))
	s := h.Sum(nil)[:16]
	s[6] = s[6]&0x0f | 0x50
	s[8] = s[8]&0x3f | 0x80
	x := hex.EncodeToString(s)
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
}
