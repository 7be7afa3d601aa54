package bootstrap

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Param is one kernel command-line parameter: key=value or a bare key.
type Param struct {
	Key      string
	Value    string
	HasValue bool
}

// ParseCmdline splits a kernel command line (/proc/cmdline) the way the
// kernel's next_arg does: on spaces, with double quotes grouping a value
// (key="a b") or a whole parameter ("key=a b"); the quotes are removed.
func ParseCmdline(s string) []Param {
	var out []Param
	for {
		s = strings.TrimLeft(s, " \t\n")
		if s == "" {
			return out
		}
		var tok strings.Builder
		inQuote := false
		i := 0
		for ; i < len(s); i++ {
			c := s[i]
			if c == '"' {
				inQuote = !inQuote
				continue
			}
			if !inQuote && (c == ' ' || c == '\t' || c == '\n') {
				break
			}
			tok.WriteByte(c)
		}
		s = s[i:]
		k, v, ok := strings.Cut(tok.String(), "=")
		out = append(out, Param{Key: k, Value: v, HasValue: ok})
	}
}

// Lookup returns the value of the last parameter named key (the kernel's and
// every init's rule: later wins).
func Lookup(params []Param, key string) (string, bool) {
	v, found := "", false
	for _, p := range params {
		if p.Key == key {
			v, found = p.Value, true
		}
	}
	return v, found
}

// NetMode is how the ramdisk configures the network.
type NetMode int

const (
	// NetDHCP asks DHCPv4 on every interface with a link (the default).
	NetDHCP NetMode = iota
	// NetStatic configures one address, from ip= or imprint.ip=.
	NetStatic
	// NetOff leaves the network alone (ip=off, ip=none).
	NetOff
)

func (m NetMode) String() string {
	switch m {
	case NetDHCP:
		return "dhcp"
	case NetStatic:
		return "static"
	case NetOff:
		return "off"
	}
	return fmt.Sprintf("NetMode(%d)", int(m))
}

// NetConfig is the network configuration requested on the command line.
type NetConfig struct {
	Mode     NetMode
	Device   string       // interface name; empty: every NIC (dhcp) or the first with a link (static)
	Addr     netip.Prefix // static address with its prefix length
	Gateway  netip.Addr   // static default route; zero: none
	Hostname string
	DNS      []netip.Addr
	Source   string // the parameter it came from: "ip", "imprint.ip" or "" (default)
}

// NetFromCmdline returns the network configuration of a kernel command line:
// imprint.ip= if present, else the kernel's ip=, else DHCP on every NIC.
func NetFromCmdline(params []Param) (NetConfig, error) {
	for _, key := range []string{"imprint.ip", "ip"} {
		if v, ok := Lookup(params, key); ok {
			nc, err := ParseIP(v)
			if err != nil {
				return NetConfig{}, fmt.Errorf("kernel command line %s=%q: %w", key, v, err)
			}
			nc.Source = key
			return nc, nil
		}
	}
	return NetConfig{Mode: NetDHCP}, nil
}

// ParseIP parses the value of the kernel's ip= parameter
// (Documentation/admin-guide/nfs/nfsroot.rst):
//
//	ip=<client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>:<dns0-ip>:<dns1-ip>:<ntp0-ip>
//
// or a bare autoconf value (dhcp, on, any, off, none). The client address may
// also carry a prefix length (10.0.0.5/24) instead of a netmask. The server
// and NTP fields are accepted and ignored.
func ParseIP(v string) (NetConfig, error) {
	switch v {
	case "", "dhcp", "on", "any", "bootp", "both":
		return NetConfig{Mode: NetDHCP}, nil
	case "off", "none":
		return NetConfig{Mode: NetOff}, nil
	case "rarp":
		return NetConfig{}, errors.New("autoconf rarp is not supported (use dhcp or a static address)")
	}
	f := strings.Split(v, ":")
	for len(f) < 10 {
		f = append(f, "")
	}
	if len(f) > 10 {
		return NetConfig{}, fmt.Errorf("%d fields, want at most 10 (client:server:gw:netmask:hostname:device:autoconf:dns0:dns1:ntp0)", len(f))
	}
	nc := NetConfig{Hostname: f[4], Device: f[5]}
	var errs []error
	switch f[6] {
	case "", "off", "none":
		nc.Mode = NetStatic
	case "dhcp", "on", "any", "bootp", "both":
		nc.Mode = NetDHCP
	default:
		errs = append(errs, fmt.Errorf("autoconf %q: want off, none, dhcp, on or any", f[6]))
	}
	if nc.Mode == NetStatic {
		if f[0] == "" {
			errs = append(errs, errors.New("client-ip: required for a static configuration"))
		} else if p, err := parseClient(f[0], f[3]); err != nil {
			errs = append(errs, err)
		} else {
			nc.Addr = p
		}
	}
	if f[2] != "" {
		gw, err := netip.ParseAddr(f[2])
		if err != nil || !gw.Is4() {
			errs = append(errs, fmt.Errorf("gw-ip %q: not an IPv4 address", f[2]))
		}
		nc.Gateway = gw
	}
	for i, s := range f[7:9] {
		if s == "" {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("dns%d-ip %q: not an IP address", i, s))
			continue
		}
		nc.DNS = append(nc.DNS, a)
	}
	if err := errors.Join(errs...); err != nil {
		return NetConfig{}, err
	}
	return nc, nil
}

func parseClient(client, mask string) (netip.Prefix, error) {
	if strings.Contains(client, "/") {
		p, err := netip.ParsePrefix(client)
		if err != nil || !p.Addr().Is4() {
			return netip.Prefix{}, fmt.Errorf("client-ip %q: not an IPv4 address/prefix", client)
		}
		if mask != "" {
			return netip.Prefix{}, fmt.Errorf("client-ip %q carries a prefix length and netmask %q is also set", client, mask)
		}
		return p, nil
	}
	a, err := netip.ParseAddr(client)
	if err != nil || !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("client-ip %q: not an IPv4 address", client)
	}
	bits := 24 // the kernel's default for a class C address; we default to /24 for all
	if mask != "" {
		m, err := netip.ParseAddr(mask)
		if err != nil || !m.Is4() {
			return netip.Prefix{}, fmt.Errorf("netmask %q: not a dotted IPv4 netmask", mask)
		}
		b := m.As4()
		n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		ones := 0
		for n&(1<<31) != 0 {
			ones++
			n <<= 1
		}
		if n != 0 {
			return netip.Prefix{}, fmt.Errorf("netmask %q: not contiguous", mask)
		}
		bits = ones
	}
	return netip.PrefixFrom(a, bits), nil
}
