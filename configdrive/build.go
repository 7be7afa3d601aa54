package configdrive

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
	"sort"
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

var (
	hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$`)
	ifnameRE   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
	userRE     = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}\$?$`)
	tzRE       = regexp.MustCompile(`^[A-Za-z0-9_+./-]+$`)
)

func validate(doc *provision.Document, opts Options) (*node, []string, error) {
	var errs []error
	var warnings []string
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	km := &doc.KsMeta
	n := &node{km: km, uid: doc.UID}

	n.hostname = strings.TrimSuffix(strings.TrimSpace(doc.Hostname), ".")
	switch {
	case n.hostname == "":
		bad("hostname", "required")
	case !hostnameRE.MatchString(n.hostname) || len(n.hostname) > 253:
		bad("hostname", "%q is not a valid host name", n.hostname)
	}
	n.fqdn = n.hostname
	n.short, _, _ = strings.Cut(n.hostname, ".")

	// Admin NIC: the interface whose MAC is netcfg/choose_interface.
	adminMAC := strings.ToLower(unquote(doc.KernelOptions.ChooseInterface))
	const macField = "kernel_options.netcfg/choose_interface"
	if adminMAC == "" {
		bad(macField, "required: the admin interface's MAC address")
	} else if _, err := net.ParseMAC(adminMAC); err != nil {
		bad(macField, "%q is not a MAC address", adminMAC)
	} else {
		names := make([]string, 0, len(doc.Interfaces))
		for name := range doc.Interfaces {
			names = append(names, name)
		}
		sort.Strings(names)
		var have []string
		for _, name := range names {
			ifc := doc.Interfaces[name]
			have = append(have, name+"="+ifc.MACAddress)
			if strings.EqualFold(strings.TrimSpace(ifc.MACAddress), adminMAC) {
				if n.admin.name != "" {
					bad(macField, "MAC %s matches both interfaces.%s and interfaces.%s", adminMAC, n.admin.name, name)
				}
				n.admin = adminNIC{name: name, mac: adminMAC, ip: strings.TrimSpace(ifc.IPAddress), netmask: strings.TrimSpace(ifc.Netmask)}
			}
		}
		if n.admin.name == "" {
			bad(macField, "MAC %s matches no interface in interfaces (have %s)", adminMAC, strings.Join(have, ", "))
		}
	}
	if n.admin.name != "" {
		f := "interfaces." + n.admin.name
		if !ifnameRE.MatchString(n.admin.name) {
			bad(f, "%q is not a usable interface name", n.admin.name)
		}
		if ip := net.ParseIP(n.admin.ip); ip == nil || ip.To4() == nil {
			bad(f+".ip_address", "%q is not an IPv4 address (the admin interface needs one)", n.admin.ip)
		}
		mask := net.ParseIP(n.admin.netmask)
		if mask == nil || mask.To4() == nil {
			bad(f+".netmask", "%q is not a dotted IPv4 netmask", n.admin.netmask)
		} else if ones, bits := net.IPMask(mask.To4()).Size(); bits == 0 {
			bad(f+".netmask", "%q is not a contiguous netmask", n.admin.netmask)
		} else {
			n.admin.prefix = ones
		}
	}

	if gw := strings.TrimSpace(km.Gw); gw != "" {
		if ip := net.ParseIP(gw); ip == nil || ip.To4() == nil {
			bad("ks_meta.gw", "%q is not an IPv4 address", gw)
		} else {
			n.gateway = gw
			if a := net.ParseIP(n.admin.ip); a != nil && n.admin.prefix > 0 {
				m := net.CIDRMask(n.admin.prefix, 32)
				if !a.Mask(m).Equal(ip.Mask(m)) {
					warnings = append(warnings, fmt.Sprintf("ks_meta.gw: %s is outside the admin network %s/%d", gw, n.admin.ip, n.admin.prefix))
				}
			}
		}
	}
	n.masterIP = strings.TrimSpace(km.MasterIP)
	if ip := net.ParseIP(n.masterIP); ip == nil {
		bad("ks_meta.master_ip", "%q is not an IP address (NTP, DNS and syslog point there)", n.masterIP)
	}
	for i, s := range splitList(doc.NameServers) {
		if net.ParseIP(s) == nil {
			bad(fmt.Sprintf("name_servers[%d]", i), "%q is not an IP address", s)
			continue
		}
		n.nameServers = append(n.nameServers, s)
	}
	if len(n.nameServers) == 0 && net.ParseIP(n.masterIP) != nil {
		n.nameServers = []string{n.masterIP}
	}
	for i, s := range splitList(doc.NameServersSearch) {
		if !hostnameRE.MatchString(s) {
			bad(fmt.Sprintf("name_servers_search[%d]", i), "%q is not a domain name", s)
			continue
		}
		n.searchDomains = append(n.searchDomains, s)
	}

	n.timezone = strings.TrimSpace(km.Timezone)
	if n.timezone == "" {
		n.timezone = defaultTimezone
	} else if !tzRE.MatchString(n.timezone) || strings.Contains(n.timezone, "..") {
		bad("ks_meta.timezone", "%q is not a time zone name", n.timezone)
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

	names := map[string]int{}
	for i, ua := range km.UserAccounts {
		f := fmt.Sprintf("ks_meta.user_accounts[%d]", i)
		u := user{name: strings.TrimSpace(ua.Name), homedir: strings.TrimSpace(ua.Homedir), shell: strings.TrimSpace(ua.Shell)}
		if !userRE.MatchString(u.name) {
			bad(f+".name", "%q is not a valid user name", u.name)
		}
		if j, dup := names[u.name]; dup {
			bad(f+".name", "%q already defined by ks_meta.user_accounts[%d]", u.name, j)
		}
		names[u.name] = i
		if u.shell == "" {
			u.shell = "/bin/bash"
		}
		if u.homedir != "" && !strings.HasPrefix(u.homedir, "/") {
			bad(f+".homedir", "%q is not an absolute path", u.homedir)
		}
		if ua.Password != "" {
			h, err := HashPassword(ua.Password, opts.Rand)
			if err != nil {
				bad(f+".password", "%v", err)
			}
			u.hash = h
		}
		for j, s := range ua.Sudo {
			s = strings.TrimSpace(unquote(s))
			if strings.ContainsAny(s, "\n\r") {
				bad(fmt.Sprintf("%s.sudo[%d]", f, j), "contains a line break")
				continue
			}
			if s != "" {
				u.sudo = append(u.sudo, s)
			}
		}
		for j, k := range ua.SSHKeys {
			k = unquote(k)
			if k == "" {
				continue
			}
			if strings.ContainsAny(k, "\n\r") {
				bad(fmt.Sprintf("%s.ssh_keys[%d]", f, j), "contains a line break")
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
		for i, item := range strings.Split(unquote(r), ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			f := fmt.Sprintf("kernel_options.udevrules[%d]", i)
			mac, name, ok := strings.Cut(item, "_")
			if _, err := net.ParseMAC(mac); !ok || err != nil || !ifnameRE.MatchString(name) {
				bad(f, "%q is not MAC_NAME", item)
				continue
			}
			n.udev = append(n.udev, udevRule{strings.ToLower(mac), name})
		}
	}

	if km.McoEnable == 1 {
		for _, kv := range [][2]string{{"mco_host", km.McoHost}, {"mco_user", km.McoUser}, {"mco_password", km.McoPassword}, {"mco_vhost", km.McoVhost}} {
			if strings.TrimSpace(kv[1]) == "" {
				bad("ks_meta."+kv[0], "required when ks_meta.mco_enable is 1")
			}
		}
		switch km.McoConnector {
		case "rabbitmq", "stomp":
		default:
			bad("ks_meta.mco_connector", "%q: want rabbitmq or stomp", km.McoConnector)
		}
	}
	if km.PuppetEnable == 1 && strings.TrimSpace(km.PuppetMaster) == "" {
		bad("ks_meta.puppet_master", "required when ks_meta.puppet_enable is 1")
	}
	for _, kv := range [][2]string{{"mco_host", km.McoHost}, {"mco_user", km.McoUser}, {"mco_password", km.McoPassword},
		{"mco_vhost", km.McoVhost}, {"mco_pskey", km.McoPskey}, {"puppet_master", km.PuppetMaster}} {
		if strings.ContainsAny(kv[1], "\n\r") {
			bad("ks_meta."+kv[0], "contains a line break")
		}
	}
	if u := opts.PhoneHomeURL; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			bad("phone-home URL", "%q is not an http(s) URL", u)
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
		return nil, warnings, fmt.Errorf("configdrive: invalid provision document:\n%w", errors.Join(errs...))
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
