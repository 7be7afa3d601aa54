package controller

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/imprint-dev/imprint/bootstrap/nodearchive"
)

// NodeArchives says what one node's per-node initramfs archive carries (its
// token, network document, CA bundle); ok false: not a node we know.
type NodeArchives interface {
	NodeArchive(mac net.HardwareAddr) (c nodearchive.Contents, ok bool, err error)
}

// NodeArchiveFunc adapts a function to NodeArchives.
type NodeArchiveFunc func(mac net.HardwareAddr) (nodearchive.Contents, bool, error)

// NodeArchive implements NodeArchives.
func (f NodeArchiveFunc) NodeArchive(mac net.HardwareAddr) (nodearchive.Contents, bool, error) {
	return f(mac)
}

// errNotBootstrapping: the node is known but has no archive to fetch now
// (InitrdHandler answers 409).
var errNotBootstrapping = errors.New("not bootstrapping")

// InitrdHandler serves GET .../{mac}: the shared bootstrap initramfs (the
// file base, stored once) with the node's own archive appended (the kernel
// unpacks concatenated archives in order, so the node's files land on top).
// The MAC is the last path element (52:54:00:12:34:56 or 52-54-00-12-34-56,
// as iPXE's ${net0/mac} and ${net0/mac:hexhyp} give it). The answer carries
// the node's credentials: it is never cached, and an unknown MAC gets 404.
//
// The reference controller routes it at /boot/initramfs/{mac} and puts that
// URL in the node's iPXE script instead of the shared one; the token is no
// longer on the kernel command line. A NodeArchives error wrapping
// errNotBootstrapping is a 409.
func InitrdHandler(base string, nodes NodeArchives, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			httpError(w, http.StatusMethodNotAllowed, "GET or HEAD only")
			return
		}
		raw := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		mac, err := net.ParseMAC(strings.ReplaceAll(raw, "-", ":"))
		if err != nil || len(mac) != 6 {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("%q is not a MAC address (want e.g. 52:54:00:12:34:56)", raw))
			return
		}
		c, ok, err := nodes.NodeArchive(mac)
		if errors.Is(err, errNotBootstrapping) {
			log.Warn("per-node initramfs refused", "mac", mac.String(), "remote", r.RemoteAddr, "err", err)
			httpError(w, http.StatusConflict, "per-node archive of "+mac.String()+": "+err.Error())
			return
		}
		if err != nil {
			log.Error("per-node initramfs: archive contents", "mac", mac.String(), "err", err)
			httpError(w, http.StatusInternalServerError, "per-node archive of "+mac.String()+": "+err.Error())
			return
		}
		if !ok {
			httpError(w, http.StatusNotFound, "no node with MAC "+mac.String())
			return
		}
		archive, err := nodearchive.Build(c)
		if err != nil {
			log.Error("per-node initramfs: build archive", "mac", mac.String(), "err", err)
			httpError(w, http.StatusInternalServerError, "per-node archive of "+mac.String()+": "+err.Error())
			return
		}
		f, err := os.Open(base)
		if err != nil {
			log.Error("per-node initramfs: base", "err", err)
			httpError(w, http.StatusInternalServerError, "bootstrap initramfs: "+err.Error())
			return
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			httpError(w, http.StatusInternalServerError, "bootstrap initramfs: "+err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(fi.Size()+int64(len(archive)), 10))
		w.Header().Set("Cache-Control", "no-store") // it carries the node's token
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return
		}
		n, err := io.Copy(w, f)
		if err == nil && n != fi.Size() {
			err = fmt.Errorf("base changed while serving: %d of %d bytes", n, fi.Size())
		}
		if err == nil {
			_, err = w.Write(archive)
		}
		if err != nil {
			log.Warn("per-node initramfs: send", "mac", mac.String(), "remote", r.RemoteAddr, "err", err)
			return
		}
		log.Info("per-node initramfs served", "mac", mac.String(), "remote", r.RemoteAddr, "base", fi.Size(), "archive", len(archive),
			"network", c.Network != nil, "ca", c.CABundle != nil)
	})
}
