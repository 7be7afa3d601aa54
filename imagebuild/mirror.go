package imagebuild

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
)

// AptSource is one "deb" entry of an apt sources file.
type AptSource struct {
	URI        string
	Suites     []string
	Components []string
	File       string // where it was read, for messages
}

// HostAptSources reads the apt sources of the system whose root is fsys
// (os.DirFS("/") for this machine): etc/apt/sources.list, then
// etc/apt/sources.list.d/*.list and *.sources in lexical order (other
// names, such as *.disabled, are ignored as apt ignores them). Only
// enabled binary (deb) entries with http, https or file URIs are returned.
func HostAptSources(fsys fs.FS) ([]AptSource, error) {
	files := []string{"etc/apt/sources.list"}
	entries, err := fs.ReadDir(fsys, "etc/apt/sources.list.d")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read apt sources: %w", err)
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() && (strings.HasSuffix(n, ".list") || strings.HasSuffix(n, ".sources")) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		files = append(files, path.Join("etc/apt/sources.list.d", n))
	}
	var out []AptSource
	for _, f := range files {
		data, err := fs.ReadFile(fsys, f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read apt sources: %w", err)
		}
		var src []AptSource
		if strings.HasSuffix(f, ".sources") {
			src = parseDeb822Sources(string(data))
		} else {
			src = parseOneLineSources(string(data))
		}
		for i := range src {
			src[i].File = "/" + f
			u := src[i].URI
			if strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "file:") {
				out = append(out, src[i])
			}
		}
	}
	return out, nil
}

// HostMirror picks the distribution mirror among the host's apt sources:
// the first entry carrying the suite codename itself, else the first entry
// with a plain suite (no -security, -updates, -backports), else an error
// that says which files were read.
func HostMirror(fsys fs.FS, codename string) (string, error) {
	srcs, err := HostAptSources(fsys)
	if err != nil {
		return "", err
	}
	for _, s := range srcs {
		for _, su := range s.Suites {
			if su == codename {
				return s.URI, nil
			}
		}
	}
	for _, s := range srcs {
		for _, su := range s.Suites {
			if !strings.Contains(su, "-") && !strings.Contains(su, "/") {
				return s.URI, nil
			}
		}
	}
	return "", errors.New("no Debian mirror in /etc/apt/sources.list or /etc/apt/sources.list.d/*.list|*.sources: give repos in the config or --mirror")
}

// parseOneLineSources parses "deb [opts] uri suite [component...]" lines.
func parseOneLineSources(data string) []AptSource {
	var out []AptSource
	sc := bufio.NewScanner(strings.NewReader(data))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") {
			// options: up to the field that ends with "]"
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) == 0 {
				continue
			}
			f = f[1:]
		}
		if len(f) < 2 {
			continue
		}
		out = append(out, AptSource{URI: f[0], Suites: []string{f[1]}, Components: f[2:]})
	}
	return out
}

// parseDeb822Sources parses deb822 stanzas (Types, URIs, Suites,
// Components, Enabled); one AptSource per URI of a stanza of type deb.
func parseDeb822Sources(data string) []AptSource {
	var out []AptSource
	flush := func(st map[string]string) {
		if len(st) == 0 {
			return
		}
		if strings.EqualFold(st["enabled"], "no") {
			return
		}
		if !slices.Contains(strings.Fields(st["types"]), "deb") {
			return
		}
		for _, u := range strings.Fields(st["uris"]) {
			out = append(out, AptSource{URI: u, Suites: strings.Fields(st["suites"]), Components: strings.Fields(st["components"])})
		}
	}
	st := map[string]string{}
	last := ""
	sc := bufio.NewScanner(strings.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		if strings.TrimSpace(line) == "" {
			flush(st)
			st, last = map[string]string{}, ""
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && last != "" {
			st[last] += " " + strings.TrimSpace(line)
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		last = strings.ToLower(strings.TrimSpace(k))
		st[last] = strings.TrimSpace(v)
	}
	flush(st)
	return out
}
