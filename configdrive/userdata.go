package configdrive

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/textproto"
	"strings"

	"go.yaml.in/yaml/v3"
)

func nocloudMetaData(n *node, iid string) ([]byte, error) {
	md := struct {
		InstanceID    quoted   `yaml:"instance-id"`
		LocalHostname quoted   `yaml:"local-hostname"`
		Hostname      quoted   `yaml:"hostname"`
		PublicKeys    []quoted `yaml:"public-keys,omitempty"`
	}{quoted(iid), quoted(n.hostname), quoted(n.hostname), quoteAll(n.rootKeys)}
	out, err := marshalYAML(md)
	if err != nil {
		return nil, fmt.Errorf("meta-data: %w", err)
	}
	return out, nil
}

func config2MetaData(n *node, iid string) ([]byte, error) {
	keys := map[string]string{}
	for i, k := range n.rootKeys {
		keys[fmt.Sprintf("key-%d", i)] = k
	}
	md := struct {
		UUID             string            `json:"uuid"`
		Hostname         string            `json:"hostname"`
		Name             string            `json:"name"`
		LaunchIndex      int               `json:"launch_index"`
		AvailabilityZone string            `json:"availability_zone"`
		PublicKeys       map[string]string `json:"public_keys,omitempty"`
		Meta             map[string]string `json:"meta"`
	}{iid, n.hostname, n.short, 0, "nova", keys, map[string]string{"imprint_uid": n.uid}}
	out, err := json.MarshalIndent(md, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("meta_data.json: %w", err)
	}
	return append(out, '\n'), nil
}

// cloud-config document. Field order is the order written.
type cloudCfg struct {
	ResizeRootfs       bool              `yaml:"resize_rootfs"`
	Growpart           map[string]string `yaml:"growpart"`
	DisableEC2Metadata bool              `yaml:"disable_ec2_metadata"`
	DisableRoot        bool              `yaml:"disable_root"`
	SSHPwauth          bool              `yaml:"ssh_pwauth"`
	Chpasswd           map[string]bool   `yaml:"chpasswd"`
	SSHAuthorizedKeys  []quoted          `yaml:"ssh_authorized_keys,omitempty"`
	Users              []cloudUser       `yaml:"users,omitempty"`
	Hostname           quoted            `yaml:"hostname"`
	FQDN               quoted            `yaml:"fqdn"`
	ManageEtcHosts     string            `yaml:"manage_etc_hosts"`
	Locale             quoted            `yaml:"locale"`
	Timezone           quoted            `yaml:"timezone"`
	Rsyslog            *rsyslogCfg       `yaml:"rsyslog,omitempty"`
	WriteFiles         []writeFile       `yaml:"write_files"`
	Runcmd             [][]string        `yaml:"runcmd,omitempty"`
	PhoneHome          *phoneHome        `yaml:"phone_home,omitempty"`
	FinalMessage       string            `yaml:"final_message,omitempty"`
}

type cloudUser struct {
	Name              quoted   `yaml:"name"`
	HashedPasswd      quoted   `yaml:"hashed_passwd,omitempty"`
	LockPasswd        bool     `yaml:"lock_passwd"`
	Homedir           quoted   `yaml:"homedir,omitempty"`
	Shell             quoted   `yaml:"shell"`
	Sudo              quoted   `yaml:"sudo,omitempty"`
	SSHAuthorizedKeys []quoted `yaml:"ssh_authorized_keys,omitempty"`
}

type rsyslogCfg struct {
	Configs []rsyslogFile `yaml:"configs"`
}

type rsyslogFile struct {
	Filename string `yaml:"filename"`
	Content  string `yaml:"content"`
}

type writeFile struct {
	Path        string `yaml:"path"`
	Content     string `yaml:"content"`
	Permissions quoted `yaml:"permissions"`
	Owner       string `yaml:"owner,omitempty"`
}

type phoneHome struct {
	URL   string   `yaml:"url"`
	Post  []string `yaml:"post"`
	Tries int      `yaml:"tries"`
}

func cloudConfig(n *node, opts Options) ([]byte, error) {
	km := n.km
	cfg := cloudCfg{
		ResizeRootfs:       false,
		Growpart:           map[string]string{"mode": "off"},
		DisableEC2Metadata: true,
		DisableRoot:        false,
		SSHPwauth:          false,
		Chpasswd:           map[string]bool{"expire": false},
		Hostname:           quoted(n.short),
		FQDN:               quoted(n.fqdn),
		ManageEtcHosts:     "localhost",
		Locale:             "en_US.UTF-8",
		Timezone:           quoted(n.timezone),
	}
	// Root's keys travel in the metadata (public-keys), which cloud-init
	// installs for root when disable_root is false; the pre-9.0 templates
	// also listed them here.
	if !n.cloudConfig.fuel9 {
		cfg.SSHAuthorizedKeys = quoteAll(n.rootKeys)
	}
	var sudoers []writeFile
	for _, u := range n.users {
		cu := cloudUser{Name: quoted(u.name), Homedir: quoted(u.homedir), Shell: quoted(u.shell),
			SSHAuthorizedKeys: quoteAll(u.keys)}
		switch len(u.sudo) {
		case 0:
		case 1:
			cu.Sudo = quoted(u.sudo[0])
		default:
			// cloud-init's schema takes one rule per user; more go to sudoers.d.
			var b strings.Builder
			for _, r := range u.sudo {
				fmt.Fprintf(&b, "%s %s\n", u.name, r)
			}
			sudoers = append(sudoers, writeFile{Path: "/etc/sudoers.d/90-imprint-" + strings.ReplaceAll(u.name, ".", "_"), Content: b.String(), Permissions: "0440"})
		}
		if u.hash != "" {
			cu.HashedPasswd = quoted(u.hash)
			cu.LockPasswd = false
		} else {
			cu.LockPasswd = true
		}
		if u.name == "root" {
			cu.Homedir = "" // root exists; cloud-init only updates it
			cu.SSHAuthorizedKeys = quoteAll(appendUnique(u.keys, n.rootKeys))
		}
		cfg.Users = append(cfg.Users, cu)
	}
	cfg.Rsyslog = &rsyslogCfg{Configs: []rsyslogFile{{
		Filename: "10-log2master.conf",
		// RFC 5424 over UDP to the master, as Fuel's LogToMaster template did.
		Content: "*.* @" + hostPort(n.masterIP) + ";RSYSLOG_SyslogProtocol23Format\n",
	}}}
	cfg.WriteFiles = append(cfg.WriteFiles,
		writeFile{Path: "/etc/nailgun_systemtype", Content: "target", Permissions: "0644"},
		writeFile{Path: "/etc/nailgun-agent/config.yaml", Content: "url: 'http://" + hostPort(n.masterIP) + ":8000/api'\n", Permissions: "0644"},
	)
	cfg.WriteFiles = append(cfg.WriteFiles, sudoers...)
	if len(n.udev) > 0 {
		var b strings.Builder
		b.WriteString("# Persistent network interface names, from Nailgun's kernel_options.udevrules.\n")
		for _, r := range n.udev {
			fmt.Fprintf(&b, "SUBSYSTEM==\"net\", ACTION==\"add\", DRIVERS==\"?*\", ATTR{address}==\"%s\", ATTR{type}==\"1\", KERNEL==\"eth*\", NAME=\"%s\"\n", r.mac, r.name)
		}
		cfg.WriteFiles = append(cfg.WriteFiles, writeFile{Path: "/etc/udev/rules.d/70-persistent-net.rules", Content: b.String(), Permissions: "0644"})
	}
	if km.McoEnable == 1 {
		cfg.WriteFiles = append(cfg.WriteFiles, writeFile{Path: "/etc/mcollective/server.cfg", Content: mcollectiveConf(n), Permissions: "0640", Owner: "root:root"})
	}
	if km.PuppetEnable == 1 {
		cfg.WriteFiles = append(cfg.WriteFiles, writeFile{Path: "/etc/puppet/puppet.conf", Content: puppetConf(n), Permissions: "0644"})
	}
	cfg.Runcmd = [][]string{
		{"sh", "-c", serviceToggle("mcollective", km.McoEnable == 1)},
		{"sh", "-c", serviceToggle("puppet", km.PuppetEnable == 1)},
		{"sh", "-c", "if command -v iptables >/dev/null; then iptables -F INPUT; iptables -F FORWARD; fi; true"},
		{"rm", "-f", "/etc/nailgun-agent/nodiscover"},
	}
	if opts.PhoneHomeURL != "" {
		cfg.PhoneHome = &phoneHome{URL: opts.PhoneHomeURL, Tries: 10,
			Post: []string{"instance_id", "hostname", "fqdn", "pub_key_rsa", "pub_key_ecdsa", "pub_key_ed25519"}}
	}
	cfg.FinalMessage = "imprint: " + n.fqdn + " configured by cloud-init $version after $UPTIME seconds"
	var buf bytes.Buffer
	buf.WriteString("#cloud-config\n")
	fmt.Fprintf(&buf, "# Rendered by imprint from Nailgun's provision data (templates: boothook %s, cloud_config %s).\n", n.boothook.name, n.cloudConfig.name)
	body, err := marshalYAML(cfg)
	if err != nil {
		return nil, fmt.Errorf("cloud-config: %w", err)
	}
	buf.Write(body)
	return buf.Bytes(), nil
}

func appendUnique(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, s := range b {
		dup := false
		for _, t := range out {
			dup = dup || t == s
		}
		if !dup {
			out = append(out, s)
		}
	}
	return out
}

// hostPort brackets IPv6 literals.
func hostPort(ip string) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]"
	}
	return ip
}

func serviceToggle(svc string, enable bool) string {
	if enable {
		return fmt.Sprintf("if command -v systemctl >/dev/null; then systemctl enable %[1]s && systemctl restart %[1]s; elif command -v update-rc.d >/dev/null; then update-rc.d %[1]s enable; service %[1]s restart; fi; true", svc)
	}
	return fmt.Sprintf("if command -v systemctl >/dev/null; then systemctl disable --now %[1]s; elif command -v update-rc.d >/dev/null; then update-rc.d %[1]s disable; service %[1]s stop; fi 2>/dev/null; true", svc)
}

func mcollectiveConf(n *node) string {
	km := n.km
	var b strings.Builder
	w := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, v) }
	w("main_collective", "mcollective")
	w("collectives", "mcollective")
	w("libdir", "/usr/share/mcollective/plugins")
	w("logfile", "/var/log/mcollective.log")
	w("loglevel", "debug")
	w("daemonize", "1")
	w("direct_addressing", "1")
	w("ttl", "4294957")
	w("securityprovider", "psk")
	w("plugin.psk", km.McoPskey)
	w("identity", fmt.Sprint(km.McoIdentity))
	switch km.McoConnector {
	case "stomp":
		w("connector", "stomp")
		w("plugin.stomp.host", km.McoHost)
		w("plugin.stomp.port", "61613")
		w("plugin.stomp.user", km.McoUser)
		w("plugin.stomp.password", km.McoPassword)
	default:
		w("connector", "rabbitmq")
		w("plugin.rabbitmq.vhost", km.McoVhost)
		w("plugin.rabbitmq.pool.size", "1")
		w("plugin.rabbitmq.pool.1.host", km.McoHost)
		w("plugin.rabbitmq.pool.1.port", "61613")
		w("plugin.rabbitmq.pool.1.user", km.McoUser)
		w("plugin.rabbitmq.pool.1.password", km.McoPassword)
		w("plugin.rabbitmq.heartbeat_interval", "30")
	}
	w("factsource", "yaml")
	w("plugin.yaml", "/etc/mcollective/facts.yaml")
	return b.String()
}

func puppetConf(n *node) string {
	return "[main]\n" +
		"logdir = /var/log/puppet\n" +
		"rundir = /var/run/puppet\n" +
		"ssldir = $vardir/ssl\n" +
		"server = " + strings.TrimSpace(n.km.PuppetMaster) + "\n" +
		"pluginsync = true\n" +
		"stringify_facts = false\n" +
		"\n[agent]\n" +
		"classfile = $vardir/classes.txt\n" +
		"localconfig = $vardir/localconfig\n"
}

// boothook is the text/cloud-boothook part: it runs early in every boot,
// each step guarded by cloud-init-per so it happens once per instance.
func boothook(n *node) []byte {
	var b strings.Builder
	b.WriteString("#cloud-boothook\n#!/bin/sh\n")
	fmt.Fprintf(&b, "# Rendered by imprint for %s (template boothook %s): once per instance,\n", n.fqdn, n.boothook.name)
	b.WriteString("# point DNS and NTP at the master, tune the kernel, quiet sshd lookups.\n\n")

	var resolv strings.Builder
	if len(n.searchDomains) > 0 {
		fmt.Fprintf(&resolv, "search %s\\n", strings.Join(n.searchDomains, " "))
		fmt.Fprintf(&resolv, "domain %s\\n", n.searchDomains[0])
	}
	fmt.Fprintf(&resolv, "nameserver %s\\n", n.masterIP)
	fmt.Fprintf(&b, "cloud-init-per instance imprint_resolv sh -c 'printf \"%s\" > /etc/resolv.conf.imprint && if [ -d /etc/resolvconf/resolv.conf.d ]; then cp /etc/resolv.conf.imprint /etc/resolvconf/resolv.conf.d/head; fi && if [ ! -L /etc/resolv.conf ]; then cp /etc/resolv.conf.imprint /etc/resolv.conf; fi; rm -f /etc/resolv.conf.imprint'\n", resolv.String())

	b.WriteString("cloud-init-per instance imprint_sysctl sh -c 'printf \"kernel.panic = 60\\nnet.nf_conntrack_max = 1048576\\n\" > /etc/sysctl.d/60-imprint.conf; modprobe nf_conntrack 2>/dev/null; sysctl -q -p /etc/sysctl.d/60-imprint.conf 2>/dev/null; true'\n")
	b.WriteString("cloud-init-per instance imprint_dhclient sh -c 'for f in /etc/dhcp/dhclient.conf /etc/dhcp3/dhclient.conf; do if [ -f \"$f\" ] && ! grep -q \"^supersede routers\" \"$f\"; then echo \"supersede routers 0;\" >> \"$f\"; fi; done; true'\n")

	ntp := n.masterIP
	fmt.Fprintf(&b, "cloud-init-per instance imprint_ntp sh -c '"+
		"if [ -f /etc/ntp.conf ]; then sed -i -e \"/^\\(server\\|pool\\) /d\" /etc/ntp.conf; printf \"tinker panic 0\\nserver %[1]s burst iburst\\n\" >> /etc/ntp.conf; fi; "+
		"if [ -f /etc/chrony/chrony.conf ]; then sed -i -e \"/^\\(server\\|pool\\) /d\" /etc/chrony/chrony.conf; echo \"server %[1]s iburst\" >> /etc/chrony/chrony.conf; fi; "+
		"if [ -f /etc/chrony.conf ]; then sed -i -e \"/^\\(server\\|pool\\) /d\" /etc/chrony.conf; echo \"server %[1]s iburst\" >> /etc/chrony.conf; fi; "+
		"if [ -d /etc/systemd ]; then mkdir -p /etc/systemd/timesyncd.conf.d && printf \"[Time]\\nNTP=%[1]s\\n\" > /etc/systemd/timesyncd.conf.d/60-imprint.conf; fi; "+
		"if command -v ntpdate >/dev/null; then ntpdate -t 4 -b %[1]s; fi; true'\n", ntp)

	b.WriteString("cloud-init-per instance imprint_sshd sh -c 'if [ -f /etc/ssh/sshd_config ]; then sed -i -e \"/^UseDNS/d\" -e \"/^GSSAPIAuthentication/d\" /etc/ssh/sshd_config; printf \"UseDNS no\\nGSSAPIAuthentication no\\n\" >> /etc/ssh/sshd_config; fi; true'\n")
	b.WriteString("cloud-init-per instance imprint_root_skel sh -c 'for f in .bashrc .profile; do if [ -f /etc/skel/$f ] && [ ! -f /root/$f ]; then cp /etc/skel/$f /root/$f; fi; done; true'\n")
	if n.boothook.family == "centos" {
		b.WriteString("cloud-init-per instance imprint_peerdns sh -c 'for f in /etc/sysconfig/network-scripts/ifcfg-*; do [ -f \"$f\" ] && sed -i -e \"/^PEERDNS=/d\" \"$f\" && echo PEERDNS=no >> \"$f\"; done; true'\n")
	}
	return []byte(b.String())
}

type mimePart struct {
	contentType, filename string
	body                  []byte
}

// mimeMultipart assembles parts like cloud-utils' write-mime-multipart. The
// boundary is derived from the content (deterministic output) and checked
// not to occur in it.
func mimeMultipart(parts []mimePart) ([]byte, error) {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p.body)
	}
	boundary := "===============imprint" + hex.EncodeToString(h.Sum(nil))[:24] + "=="
	for _, p := range parts {
		if bytes.Contains(p.body, []byte(boundary)) {
			return nil, fmt.Errorf("user-data: part %s contains the MIME boundary", p.filename)
		}
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "Content-Type: multipart/mixed; boundary=\"%s\"\nMIME-Version: 1.0\n\n", boundary)
	mw := multipart.NewWriter(&buf)
	if err := mw.SetBoundary(boundary); err != nil {
		return nil, fmt.Errorf("user-data: %w", err)
	}
	for _, p := range parts {
		hdr := textproto.MIMEHeader{}
		hdr.Set("Content-Type", p.contentType+"; charset=\"utf-8\"")
		hdr.Set("MIME-Version", "1.0")
		hdr.Set("Content-Transfer-Encoding", "8bit")
		hdr.Set("Content-Disposition", "attachment; filename=\""+p.filename+"\"")
		w, err := mw.CreatePart(hdr)
		if err != nil {
			return nil, fmt.Errorf("user-data: %w", err)
		}
		if _, err := w.Write(p.body); err != nil {
			return nil, fmt.Errorf("user-data: %w", err)
		}
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("user-data: %w", err)
	}
	return buf.Bytes(), nil
}

func marshalYAML(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
