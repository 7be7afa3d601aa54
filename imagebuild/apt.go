package imagebuild

import (
	"bufio"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strings"
)

// Apt files the build writes into the image (fuel-agent's names) and
// removes again at cleanup.
const (
	aptSourcesDir = "etc/apt/sources.list.d"
	aptPrefsDir   = "etc/apt/preferences.d"
	aptConfDir    = "etc/apt/apt.conf.d"
)

// SourcesListPath is where repo r's sources line goes in the image.
func SourcesListPath(r Repo) string { return aptSourcesDir + "/fuel-image-" + r.Name + ".list" }

// PrefsPath is where repo r's pin goes in the image.
func PrefsPath(r Repo) string { return aptPrefsDir + "/fuel-image-" + r.Name + ".pref" }

// SourcesList renders the one-line sources entry of r: "deb URI SUITE
// SECTION..." or, for a flat repository, "deb URI SUITE".
func SourcesList(r Repo) string {
	if r.Flat() {
		return fmt.Sprintf("%s %s %s\n", r.Type, r.URI, r.Suite)
	}
	return fmt.Sprintf("%s %s %s %s\n", r.Type, r.URI, r.Suite, r.Section)
}

// ReleaseInfo holds the fields of a Release file a pin can match.
type ReleaseInfo struct {
	Suite, Codename, Version, Origin, Label string
}

// ParseRelease reads a Release or InRelease file (the clear-signed
// wrapper is skipped): the fields before the first empty line.
func ParseRelease(data string) ReleaseInfo {
	var ri ReleaseInfo
	sc := bufio.NewScanner(strings.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	inHeader := false
	started := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "-----BEGIN PGP SIGNED MESSAGE-----") {
			inHeader = true
			continue
		}
		if inHeader {
			if strings.TrimSpace(line) == "" {
				inHeader = false
			}
			continue
		}
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "-----BEGIN PGP SIGNATURE") {
			if started {
				break
			}
			continue
		}
		started = true
		if line[0] == ' ' {
			continue // a continuation line (checksums)
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Suite":
			ri.Suite = v
		case "Codename":
			ri.Codename = v
		case "Version":
			ri.Version = v
		case "Origin":
			ri.Origin = v
		case "Label":
			ri.Label = v
		}
	}
	return ri
}

// Preferences renders the apt pin of r (nil priority: none): Pin-Priority
// is the repo's priority; the pin matches the repo's Release fields as
// fuel-agent does (a=Suite, n=Codename, v=Version, o=Origin, l=Label).
// With no Release fields known it pins by the suite name (or, for a flat
// repository, by the host of its URI).
func Preferences(r Repo, ri ReleaseInfo) string {
	if r.Priority == nil {
		return ""
	}
	var conds []string
	for _, kv := range [][2]string{{"a", ri.Suite}, {"n", ri.Codename}, {"v", ri.Version}, {"o", ri.Origin}, {"l", ri.Label}} {
		if kv[1] != "" {
			conds = append(conds, kv[0]+"="+kv[1])
		}
	}
	pin := "release " + strings.Join(conds, ",")
	if len(conds) == 0 {
		if r.Flat() {
			host := ""
			if u, err := url.Parse(r.URI); err == nil {
				host = u.Hostname()
			}
			pin = fmt.Sprintf("origin %q", host)
		} else {
			pin = "release n=" + r.Suite
		}
	}
	return fmt.Sprintf("Package: *\nPin: %s\nPin-Priority: %d\n", pin, *r.Priority)
}

// ReleaseListNames are the names apt gives r's InRelease and Release files
// under /var/lib/apt/lists (apt's URItoFileName), in the order to try.
func ReleaseListNames(r Repo) []string {
	base := strings.TrimSuffix(r.URI, "/")
	var rel string
	if r.Flat() {
		rel = base + "/" + r.Suite
	} else {
		rel = base + "/dists/" + r.Suite + "/"
	}
	return []string{uriToFileName(rel + "InRelease"), uriToFileName(rel + "Release")}
}

// uriToFileName is apt's URItoFileName: the URI without scheme and user
// information, special characters %-quoted, slashes turned into '_'.
func uriToFileName(uri string) string {
	u := uri
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
	} else {
		u = strings.TrimPrefix(u, "file:")
	}
	if at := strings.Index(u, "@"); at >= 0 && at < strings.Index(u+"/", "/") {
		u = u[at+1:]
	}
	var b strings.Builder
	for _, c := range []byte(u) {
		if strings.IndexByte("\\|{}[]<>\"^~_=!@#$%^&*", c) >= 0 || c <= 0x20 || c >= 0x7f {
			fmt.Fprintf(&b, "%%%02x", c)
			continue
		}
		b.WriteByte(c)
	}
	return strings.ReplaceAll(strings.TrimLeft(b.String(), "/"), "/", "_")
}

// AptConfFiles are the apt.conf.d files of the build: no Recommends or
// Suggests, the proxies (Acquire::<proto>::proxy, DIRECT for the listed
// hosts) and, when allowUnsigned, unauthenticated packages allowed.
// Keys are paths relative to the image root.
func AptConfFiles(p *Proxies, allowUnsigned bool) map[string]string {
	files := map[string]string{
		aptConfDir + "/install_rule":   "APT::Install-Recommends \"false\";\nAPT::Install-Suggests \"false\";\n",
		aptConfDir + "/pipeline_depth": "Acquire::http::Pipeline-Depth 0;\n",
	}
	if allowUnsigned {
		files[aptConfDir+"/allow_unsigned_packages"] = "APT::Get::AllowUnauthenticated 1;\n"
	}
	if p != nil {
		for proto, uri := range p.Protocols {
			var b strings.Builder
			fmt.Fprintf(&b, "Acquire::%s::proxy %q;\n", proto, uri)
			for _, addr := range p.DirectRepoAddrList {
				fmt.Fprintf(&b, "Acquire::%s::proxy::%s \"DIRECT\";\n", proto, addr)
			}
			files[aptConfDir+"/01fuel_agent-use-proxy-"+proto] = b.String()
		}
	}
	return files
}

// ProxyEnv is the environment for debootstrap and apt from p:
// <proto>_proxy for each protocol, no_proxy from direct_repo_addr_list.
func ProxyEnv(p *Proxies) []string {
	if p == nil {
		return nil
	}
	var env []string
	for _, proto := range slices.Sorted(maps.Keys(p.Protocols)) {
		env = append(env, proto+"_proxy="+p.Protocols[proto])
	}
	if len(p.DirectRepoAddrList) > 0 {
		addrs := append([]string(nil), p.DirectRepoAddrList...)
		sort.Strings(addrs)
		env = append(env, "no_proxy="+strings.Join(addrs, ","))
	}
	return env
}
