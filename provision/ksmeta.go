package provision

import (
	"fmt"
	"net"
	"regexp"
	"sort"
	"strings"
	"time"

	// The zone names are checked against Go's copy of the IANA time zone
	// database when the host has none (the bootstrap ramdisk, an
	// operator's laptop), so that ks_meta.timezone is judged the same way
	// wherever a document is validated.
	_ "time/tzdata"
)

// --- ks_meta: the values the configdrive renders ---

var zoneRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$`)

// CheckTimezone checks ks_meta.timezone: an IANA zone name (Etc/UTC,
// America/Argentina/Buenos_Aires, Etc/GMT+5), by its grammar (elements of
// letters, digits and _ + -, separated by "/"; no "." or ".." element, no
// absolute path) and by the zone database: the host's
// /usr/share/zoneinfo when it has one, else Go's embedded copy of the
// same IANA data. The target OS reads the name from its own tzdata; a name
// the database does not know would leave the node in UTC, or make
// cloud-init's timezone module fail after the disks were written.
func CheckTimezone(tz string) error {
	if len(tz) > 255 || !zoneRE.MatchString(tz) || tz == "Local" {
		return fmt.Errorf("%q is not a time zone name (an IANA name such as Etc/UTC or Europe/Berlin)", tz)
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return fmt.Errorf("%q is not a time zone of the IANA database", tz)
	}
	return nil
}

// CloudInitTemplateVariants are the suffixes of fuel-agent's shipped
// cloud-init templates: ks_meta.cloud_init_templates[KIND] names
// KIND_SUFFIX.jinja2 (meta_data also accepts meta_data_json.jinja2).
var CloudInitTemplateVariants = []string{
	"ubuntu", "centos",
	"fuel_6.1_ubuntu", "fuel_6.1_centos", "fuel_7.0_ubuntu", "fuel_7.0_centos",
	"fuel_8.0_ubuntu", "fuel_9.0_ubuntu",
}

// CloudInitTemplateKinds are the keys of ks_meta.cloud_init_templates.
var CloudInitTemplateKinds = []string{"boothook", "cloud_config", "meta_data"}

// CheckCloudInitTemplate checks ks_meta.cloud_init_templates[kind] and
// returns the variant suffix it names.
func CheckCloudInitTemplate(kind, name string) (string, error) {
	suffix := strings.TrimSuffix(strings.TrimSpace(name), ".jinja2")
	suffix, found := strings.CutPrefix(suffix, kind+"_")
	if found && (oneOf(suffix, CloudInitTemplateVariants) || kind == "meta_data" && suffix == "json") {
		return suffix, nil
	}
	names := make([]string, 0, len(CloudInitTemplateVariants))
	for _, v := range CloudInitTemplateVariants {
		names = append(names, kind+"_"+v+".jinja2")
	}
	sort.Strings(names)
	return "", fmt.Errorf("unknown template %q (known: %s)", name, strings.Join(names, ", "))
}

func (d *Document) checkTemplates(f *findings) {
	for _, kind := range sortedKeys(d.KsMeta.CloudInitTemplates) {
		p := field(field(pathKsMeta, "cloud_init_templates"), kind)
		if !oneOf(kind, CloudInitTemplateKinds) {
			f.warn(p, "unknown template kind (want %s); ignored", list(CloudInitTemplateKinds))
			continue
		}
		if _, err := CheckCloudInitTemplate(kind, d.KsMeta.CloudInitTemplates[kind]); err != nil {
			f.err(p, "%v", err)
		}
	}
}

// ListItems splits a Nailgun list value ("a,b" or "a b"; Nailgun's
// literal quotes around it and its items dropped).
func ListItems(s string) []string {
	var out []string
	for _, it := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if it = strings.Trim(it, `"`); it != "" {
			out = append(out, it)
		}
	}
	return out
}

// checkKsMeta checks the ks_meta and top-level values the configdrive
// renders, when they are given (what a configdrive needs present is
// ValidateConfigdrive's).
func (d *Document) checkKsMeta(f *findings) {
	km := &d.KsMeta
	if v := strings.TrimSpace(km.MasterIP); v != "" {
		if err := CheckIP(v); err != nil {
			f.err(field(pathKsMeta, "master_ip"), "%v (NTP, DNS and syslog point there)", err)
		}
	}
	if v := strings.TrimSpace(km.Gw); v != "" {
		if err := CheckIPv4(v); err != nil {
			f.err(field(pathKsMeta, "gw"), "%v (the admin network's gateway)", err)
		}
	}
	if v := strings.TrimSpace(km.Timezone); v != "" {
		if err := CheckTimezone(v); err != nil {
			f.err(field(pathKsMeta, "timezone"), "%v", err)
		}
	}
	for _, ns := range ListItems(d.NameServers) {
		if err := CheckIP(ns); err != nil {
			f.err("name_servers", "%v", err)
		}
	}
	for _, dom := range ListItems(d.NameServersSearch) {
		if err := CheckHostname(dom); err != nil {
			f.err("name_servers_search", "%q is not a domain name", dom)
		}
	}
	for _, name := range sortedKeys(d.Interfaces) {
		if err := CheckInterfaceName(name); err != nil {
			f.err(field("interfaces", name), "%v", err)
		}
	}
	for i, k := range km.AuthorizedKeys {
		if strings.ContainsAny(k, "\n\r") {
			f.err(index(field(pathKsMeta, "authorized_keys"), i), "contains a line break (one key per entry)")
		}
	}
	if strings.ContainsAny(km.AuthKey, "\n\r") {
		f.err(field(pathKsMeta, "auth_key"), "contains a line break (one key)")
	}
	if km.McoEnable == 1 {
		for _, kv := range [][2]string{{"mco_host", km.McoHost}, {"mco_user", km.McoUser}, {"mco_password", km.McoPassword}, {"mco_vhost", km.McoVhost}} {
			if strings.TrimSpace(kv[1]) == "" {
				f.err(field(pathKsMeta, kv[0]), "required when ks_meta.mco_enable is 1")
			}
		}
		if km.McoConnector != "rabbitmq" && km.McoConnector != "stomp" {
			f.err(field(pathKsMeta, "mco_connector"), "%q: want rabbitmq or stomp", km.McoConnector)
		}
	}
	if km.PuppetEnable == 1 && strings.TrimSpace(km.PuppetMaster) == "" {
		f.err(field(pathKsMeta, "puppet_master"), "required when ks_meta.puppet_enable is 1")
	}
	for _, kv := range [][2]string{{"mco_host", km.McoHost}, {"mco_user", km.McoUser}, {"mco_password", km.McoPassword},
		{"mco_vhost", km.McoVhost}, {"mco_pskey", km.McoPskey}, {"puppet_master", km.PuppetMaster}} {
		if strings.ContainsAny(kv[1], "\n\r") {
			f.err(field(pathKsMeta, kv[0]), "contains a line break")
		}
	}
}

// ValidateConfigdrive checks what building a configdrive reads: Validate's
// rules of those fields (host, interfaces, ks_meta, accounts, templates:
// every problem outside the storage layout) and what a configdrive needs
// present besides: the admin interface (kernel_options
// ["netcfg/choose_interface"]) with an IPv4 address and a dotted IPv4
// netmask, and ks_meta.master_ip. It returns nil or a *ValidationError.
// After a Validate that passed it reports only the latter. configdrive.Build
// calls it; a caller that prepares a configdrive calls it before anything
// is written.
func (d *Document) ValidateConfigdrive() error {
	f := d.check()
	var ps []FieldError
	for _, p := range f.errs {
		if !isLayoutPath(p.Path) && p.Path != field(pathKsMeta, "image_data") {
			ps = append(ps, p)
		}
	}
	var need problems
	ko := field("kernel_options", chooseInterface)
	mac := strings.ToLower(strings.TrimSpace(d.KernelOptions.ChooseInterface))
	if mac == "" {
		need.add(ko, "required: the admin interface's MAC address (the configdrive configures its network)")
	} else if validMAC(mac) {
		var names []string
		for _, name := range sortedKeys(d.Interfaces) {
			if strings.EqualFold(strings.TrimSpace(d.Interfaces[name].MACAddress), mac) {
				names = append(names, name)
			}
		}
		if len(names) > 1 {
			need.add(ko, "MAC %s matches %s: one admin interface is needed", mac, "interfaces."+strings.Join(names, " and interfaces."))
		}
		if len(names) >= 1 {
			ifc := d.Interfaces[names[0]]
			p := field("interfaces", names[0])
			if ip := strings.TrimSpace(ifc.IPAddress); ip != "" && CheckIPv4(ip) != nil {
				need.add(field(p, "ip_address"), "%q is not an IPv4 address (the admin interface needs one)", ip)
			}
			if m := strings.TrimSpace(ifc.Netmask); m != "" {
				if err := checkDottedNetmask(m); err != nil {
					need.add(field(p, "netmask"), "%v", err)
				}
			}
		}
	}
	if strings.TrimSpace(d.KsMeta.MasterIP) == "" {
		need.add(field(pathKsMeta, "master_ip"), "required (NTP, DNS and syslog point there)")
	}
	ps = dedupe(append(ps, need...))
	if len(ps) == 0 {
		return nil
	}
	var pos map[string]int64
	if d.src != nil {
		pos = d.src.pos
	}
	sortProblems(ps, pos)
	return &ValidationError{Problems: ps}
}

// checkDottedNetmask: the admin netmask as cloud-init's network config
// takes it, a contiguous dotted IPv4 mask.
func checkDottedNetmask(s string) error {
	ip := net.ParseIP(s)
	if ip == nil || ip.To4() == nil {
		return fmt.Errorf("%q is not a dotted IPv4 netmask", s)
	}
	if _, bits := net.IPMask(ip.To4()).Size(); bits == 0 {
		return fmt.Errorf("%q is not a contiguous netmask", s)
	}
	return nil
}

func isLayoutPath(p string) bool {
	for _, pre := range layoutPrefixes {
		if strings.HasPrefix(p, pre) {
			return true
		}
	}
	return false
}
