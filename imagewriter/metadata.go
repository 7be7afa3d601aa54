package imagewriter

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Metadata is the part of Fuel's image metadata YAML (docs/fuel-agent.md §13)
// the writer uses.
type Metadata struct {
	Images []MetadataImage `yaml:"images"`
}

// MetadataImage is one images[] entry.
type MetadataImage struct {
	Container     string `yaml:"container"`
	ContainerName string `yaml:"container_name"`
	ContainerMD5  string `yaml:"container_md5"`
	ContainerSize int64  `yaml:"container_size"`
	Format        string `yaml:"format"`
	RawMD5        string `yaml:"raw_md5"`
	RawSize       int64  `yaml:"raw_size"`
}

// ParseMetadata parses a Fuel image metadata YAML document.
func ParseMetadata(b []byte) (Metadata, error) {
	var m Metadata
	if err := yaml.Unmarshal(b, &m); err != nil {
		return Metadata{}, err
	}
	return m, nil
}

// Lookup returns the entry whose container_name equals the base name of the
// image URL, as fuel-agent matches them.
func (m Metadata) Lookup(imageURL string) (MetadataImage, bool) {
	name := baseName(imageURL)
	for _, im := range m.Images {
		if im.ContainerName == name {
			return im, true
		}
	}
	return MetadataImage{}, false
}

func baseName(u string) string {
	if p, err := url.Parse(u); err == nil && p.Path != "" {
		return path.Base(p.Path)
	}
	return path.Base(u)
}

// FuelMetadataURLs returns where fuel-agent looks for an image's metadata:
// the base name up to its FIRST dot, plus ".yaml", beside the image
// (…/env_1_ubuntu_1404_amd64.img.gz → …/env_1_ubuntu_1404_amd64.yaml). That
// quirk maps ubuntu-16.04.img.gz to ubuntu-16.yaml; for such dotted stems
// the name with the compression and ".img" suffixes removed
// (ubuntu-16.04.yaml) is returned second, and is tried only when fuel-agent's
// name does not exist.
func FuelMetadataURLs(imageURL string) ([]string, error) {
	u, err := url.Parse(imageURL)
	if err != nil || u.Path == "" || strings.HasSuffix(u.Path, "/") {
		return nil, fmt.Errorf("metadata: cannot derive a metadata URL from %q", imageURL)
	}
	dir, base := path.Split(u.Path)
	fuelStem, _, _ := strings.Cut(base, ".")
	stems := []string{fuelStem}
	full := base
	for _, ext := range []string{".gz", ".zst", ".xz", ".raw", ".img"} {
		full = strings.TrimSuffix(full, ext)
	}
	if full != fuelStem && full != "" {
		stems = append(stems, full)
	}
	var out []string
	for _, s := range stems {
		v := *u
		v.Path = dir + s + ".yaml"
		v.RawQuery, v.Fragment = "", ""
		out = append(out, v.String())
	}
	return out, nil
}

// expectations are the checks resolved from the request and metadata.
type expectations struct {
	rawSize int64
	rawMD5  string
	source  string // where rawSize/rawMD5 came from, for messages
}

// resolveMetadata merges the request's own RawSize/MD5 with the metadata's
// raw_size/raw_md5. An explicit MetadataURL must be readable and must list
// the image; the derived Fuel one is best effort, as in fuel-agent. Values
// given in both places must agree.
func resolveMetadata(ctx context.Context, req Request, opts *Options) (expectations, error) {
	exp := expectations{rawSize: req.RawSize, rawMD5: strings.ToLower(req.MD5), source: "request"}
	var (
		im    MetadataImage
		found bool
		from  string
	)
	switch {
	case req.MetadataURL != "":
		src, err := parseSource(req.MetadataURL)
		if err != nil {
			return exp, fmt.Errorf("metadata: %w", err)
		}
		b, err := fetchSmall(ctx, src, opts, 4<<20)
		if err != nil {
			return exp, fmt.Errorf("metadata: GET %s: %w", req.MetadataURL, err)
		}
		m, err := ParseMetadata(b)
		if err != nil {
			return exp, fmt.Errorf("metadata: parse %s: %w", req.MetadataURL, err)
		}
		if im, found = m.Lookup(req.URL); !found {
			return exp, fmt.Errorf("metadata: %s has no image with container_name %q", req.MetadataURL, baseName(req.URL))
		}
		from = req.MetadataURL
	case req.FuelMetadata:
		urls, err := FuelMetadataURLs(req.URL)
		if err != nil {
			opts.Logger.Warn("no image metadata", "err", err)
			return exp, nil
		}
		for _, mu := range urls {
			src, err := parseSource(mu)
			if err != nil {
				continue
			}
			b, err := fetchSmall(ctx, src, opts, 4<<20)
			if err != nil {
				// Only "there is none" (404/410, or no such file) means
				// no metadata; a server error or a dropped connection is a
				// failure, not a reason to skip verification.
				var se *httpStatusError
				if (errors.As(err, &se) && (se.code == http.StatusNotFound || se.code == http.StatusGone)) || errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return exp, fmt.Errorf("metadata %s: %w (%w)", mu, err, ErrSource)
			}
			m, err := ParseMetadata(b)
			if err != nil {
				return exp, fmt.Errorf("metadata %s: unparsable: %w", mu, err)
			}
			if im, found = m.Lookup(req.URL); found {
				from = mu
				break
			}
			opts.Logger.Warn("image metadata lists no such container_name", "url", mu, "container_name", baseName(req.URL))
			break
		}
		if !found {
			return exp, nil
		}
	default:
		return exp, nil
	}
	opts.Logger.Info("image metadata", "url", from, "raw_size", im.RawSize, "raw_md5", im.RawMD5)
	var errs []error
	if im.RawSize > 0 {
		if exp.rawSize > 0 && exp.rawSize != im.RawSize {
			errs = append(errs, fmt.Errorf("size: %d given but %s says raw_size %d", exp.rawSize, from, im.RawSize))
		}
		exp.rawSize = im.RawSize
	}
	if im.RawMD5 != "" {
		md := strings.ToLower(im.RawMD5)
		if exp.rawMD5 != "" && exp.rawMD5 != md {
			errs = append(errs, fmt.Errorf("md5: %s given but %s says raw_md5 %s", exp.rawMD5, from, md))
		}
		if im.RawSize <= 0 && exp.rawSize <= 0 {
			errs = append(errs, fmt.Errorf("metadata: %s gives raw_md5 without raw_size", from))
		}
		exp.rawMD5 = md
	}
	exp.source = from
	return exp, errors.Join(errs...)
}
