// Package nodearchive makes the per-node initramfs archive: a small cpio
// (newc, gzip-compressed) that a server appends to the shared bootstrap
// initramfs when it serves it to one node. The kernel unpacks concatenated
// archives in order, so the node's files land on top of the shared image:
//
//	etc/imprint/token              the agent's bearer token (mode 0600; the agent reads it through --token-file)
//	etc/imprint/network_data.json  the node's network document (ramdisk-init applies it before the agent starts)
//	etc/imprint/ca.pem             an optional CA bundle the agent trusts for HTTPS to its controller
//
// This keeps credentials off the kernel command line (and out of console
// logs and /proc/cmdline) and lets the base image be stored once. The
// archive is deterministic: the same contents give the same bytes.
package nodearchive

import (
	"bytes"
	"compress/gzip"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/imprint-dev/imprint/netdata"
	"github.com/u-root/u-root/pkg/cpio"
)

// Paths inside the initramfs (without the leading slash, as cpio stores them).
const (
	Dir          = "etc/imprint"
	TokenFile    = Dir + "/token"
	NetworkFile  = Dir + "/network_data.json"
	CABundleFile = Dir + "/ca.pem"
)

// Contents is what one node's archive carries.
type Contents struct {
	// Token is the agent's bearer token (required: an archive exists to
	// carry the node's credentials).
	Token string
	// Network is the node's network document; nil: none (the ramdisk then
	// uses the kernel command line, or DHCP on every NIC).
	Network *netdata.Document
	// CABundle is PEM certificates; nil: none.
	CABundle []byte
}

// MaxTokenLen bounds the token.
const MaxTokenLen = 4096

// Validate checks c, naming the field of every problem.
func (c Contents) Validate() error {
	var errs []error
	switch {
	case c.Token == "":
		errs = append(errs, errors.New("token: required"))
	case len(c.Token) > MaxTokenLen:
		errs = append(errs, fmt.Errorf("token: %d bytes, more than %d", len(c.Token), MaxTokenLen))
	case strings.ContainsFunc(c.Token, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		errs = append(errs, errors.New("token: must not contain whitespace or control characters"))
	}
	if c.Network != nil {
		if err := c.Network.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("network: %w", err))
		}
	}
	if c.CABundle != nil {
		if err := checkPEM(c.CABundle); err != nil {
			errs = append(errs, fmt.Errorf("ca bundle: %w", err))
		}
	}
	return errors.Join(errs...)
}

func checkPEM(b []byte) error {
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			if n > 0 && len(bytes.TrimSpace(rest)) > 0 {
				return errors.New("data after the last PEM block")
			}
			break
		}
		if blk.Type != "CERTIFICATE" {
			return fmt.Errorf("PEM block %d is %q, want CERTIFICATE", n, blk.Type)
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %w", n, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("no PEM certificate")
	}
	return nil
}

// Build returns the node's archive: newc cpio, gzip-compressed.
func Build(c Contents) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("node archive: %w", err)
	}
	recs := []cpio.Record{
		cpio.Directory("etc", 0o755),
		cpio.Directory(Dir, 0o755),
		cpio.StaticFile(TokenFile, c.Token+"\n", 0o600),
	}
	if c.Network != nil {
		b, err := c.Network.Marshal()
		if err != nil {
			return nil, fmt.Errorf("node archive: network: %w", err)
		}
		recs = append(recs, cpio.StaticFile(NetworkFile, string(b), 0o644))
	}
	if c.CABundle != nil {
		recs = append(recs, cpio.StaticFile(CABundleFile, string(c.CABundle), 0o644))
	}
	b, err := WriteGzip(recs)
	if err != nil {
		return nil, fmt.Errorf("node archive: %w", err)
	}
	return b, nil
}

// WriteGzip writes recs as one newc cpio archive, gzip-compressed, to be
// appended to an initramfs (the kernel unpacks concatenated, separately
// compressed archives in order). Inode numbers are assigned in order, so
// the same records give the same bytes. Both the per-node archive and
// `imprint build-ramdisk`'s element archive are written by it.
func WriteGzip(recs []cpio.Record) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	w := cpio.Newc.Writer(zw)
	for i, r := range recs {
		r.Info.Ino = uint64(i + 1) // fixed: deterministic bytes, distinct inodes (no hard links)
		r.Info.NLink = 1
		if err := w.WriteRecord(r); err != nil {
			return nil, fmt.Errorf("%s: %w", r.Name, err)
		}
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return nil, fmt.Errorf("trailer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// File is one entry of an archive read back.
type File struct {
	Mode    uint64 // with the type bits (cpio.S_IFREG...)
	Content []byte
}

// Read reads a (gzip-compressed or plain) newc archive's entries by path.
// It reads one archive: the first gzip member or cpio up to its trailer.
func Read(b []byte) (map[string]File, error) {
	if len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		zr.Multistream(false)
		if b, err = io.ReadAll(io.LimitReader(zr, 64<<20)); err != nil {
			return nil, err
		}
	}
	r := cpio.Newc.Reader(bytes.NewReader(b))
	out := map[string]File{}
	for {
		rec, err := r.ReadRecord()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if rec.Name == cpio.Trailer {
			return out, nil
		}
		var content []byte
		if rec.ReaderAt != nil && rec.FileSize > 0 {
			content = make([]byte, rec.FileSize)
			if _, err := rec.ReadAt(content, 0); err != nil && err != io.EOF {
				return nil, fmt.Errorf("%s: %w", rec.Name, err)
			}
		}
		out[rec.Name] = File{Mode: rec.Mode, Content: content}
	}
}
