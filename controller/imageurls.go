package controller

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
)

// resolveImageServing fills the defaults of the image-serving settings
// (transfer limit, metrics) and checks the image server URLs.
func (cfg *Config) resolveImageServing(bad func(field, format string, a ...any)) {
	if cfg.MaxTransfers == 0 {
		cfg.MaxTransfers = DefaultMaxTransfers
	}
	if cfg.TransferWait <= 0 {
		cfg.TransferWait = DefaultTransferWait
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if strings.ContainsAny(cfg.MetricsToken, " \t\r\n\"") {
		bad("metrics-token", "must not contain whitespace or quotes")
	}
	if cfg.MetricsToken != "" && cfg.MetricsToken == cfg.Token {
		bad("metrics-token", "must differ from the operator token (a scraper must not be able to reprovision nodes)")
	}
	for i, u := range cfg.ImageURLs {
		cfg.ImageURLs[i] = checkImageBase("image-url", u, bad)
	}
	groups := make([]string, 0, len(cfg.GroupImageURLs))
	for g := range cfg.GroupImageURLs {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		if g == "" || strings.ContainsAny(g, " \t\r\n\"=,") {
			bad("group-image-url", "group %q: empty or contains a space, quote, '=' or ','", g)
		}
		urls := cfg.GroupImageURLs[g]
		if len(urls) == 0 {
			bad("group-image-url", "group %q: no URL", g)
		}
		for i, u := range urls {
			urls[i] = checkImageBase("group-image-url["+g+"]", u, bad)
		}
	}
}

// checkImageBase checks one image server base URL and returns it without
// a trailing slash.
func checkImageBase(field, raw string, bad func(field, format string, a ...any)) string {
	s := strings.TrimRight(raw, "/")
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		bad(field, "%q is not an http(s)://host[:port][/path] URL without credentials or query", raw)
	} else if strings.ContainsAny(s, " \t\"") {
		bad(field, "%q contains a space or quote", raw)
	}
	return s
}

// imageServers are the base URLs a node fetches its images from, in
// order: its group's servers (else Config.ImageURLs), then the controller
// itself (base + "/images") as the last mirror.
func (c *Controller) imageServers(n Node, base string) []string {
	servers := c.cfg.ImageURLs
	if g, ok := c.cfg.GroupImageURLs[n.Group]; ok && n.Group != "" {
		servers = g
	}
	out := append([]string(nil), servers...)
	return append(out, base+"/images")
}

// nodeImages are the images of a node's document: the URI on its first
// image server, the others as mirrors.
func (c *Controller) nodeImages(n Node, base string) []ComposeImage {
	servers := c.imageServers(n, base)
	images := make([]ComposeImage, len(c.rootImg))
	for i, im := range c.rootImg {
		name := strings.TrimPrefix(im.URI, "/images/") // already path-escaped
		im.URI = servers[0] + "/" + name
		im.Mirrors = nil
		for _, s := range servers[1:] {
			im.Mirrors = append(im.Mirrors, s+"/"+name)
		}
		images[i] = im
	}
	return images
}

// image serves GET /images/{name}: an image file (within the transfer
// limit), its frame manifest or its Fuel metadata.
func (c *Controller) image(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	p, ok := c.images[name]
	if !ok {
		httpError(w, http.StatusNotFound, "no such image: "+r.URL.Path)
		return
	}
	kind := "image"
	switch {
	case strings.HasSuffix(name, frameManifestSuffix):
		kind = "manifest"
	case strings.HasSuffix(name, ".yaml"):
		kind = "metadata"
	}
	if kind == "image" && c.limit != nil && r.Method == http.MethodGet {
		release, err := c.limit.acquire(r.Context())
		if err != nil {
			if errors.Is(err, errNoSlot) {
				c.log.Warn("image transfer refused: every slot busy", "image", name, "remote", r.RemoteAddr, "max_transfers", c.cfg.MaxTransfers, "waited", c.cfg.TransferWait)
				w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
				httpError(w, http.StatusServiceUnavailable, fmt.Sprintf("%s: all %d image transfer slots are busy; retry later", r.URL.Path, c.cfg.MaxTransfers))
			}
			return // the client went away
		}
		defer release()
	}
	c.file(p, kind)(w, r)
}

// retryAfterSeconds is the Retry-After of a refused image transfer.
const retryAfterSeconds = 5
