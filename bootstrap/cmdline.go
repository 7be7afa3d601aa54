package bootstrap

import (
	"strings"

	"github.com/imprint-dev/imprint/netdata"
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

// NetFromCmdline returns the network configuration of a kernel command
// line: ip= (or imprint.ip=), bond=, vlan=, ifname= and nameserver= in
// dracut's forms (see [netdata.FromCmdline]). With none of them the document
// is nil: DHCPv4 on every NIC with a link.
func NetFromCmdline(params []Param) (netdata.Cmdline, error) {
	ps := make([]netdata.Param, 0, len(params))
	for _, p := range params {
		ps = append(ps, netdata.Param{Key: p.Key, Value: p.Value})
	}
	return netdata.FromCmdline(ps)
}
