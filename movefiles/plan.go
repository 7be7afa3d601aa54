// Package movefiles moves what an image holds under a mount point into the
// separate filesystem mounted there, as fuel-agent's
// move_files_to_their_places does: with Fuel's layouts the root image has
// /var/log/apt, /var/lib/mysql, ... while /var/log and /var/lib/mysql are
// their own (freshly made, empty) logical volumes, so without the move the
// booted OS would see empty filesystems mounted over the image's files.
//
// Plan is pure: which directory of which filesystem goes into which
// filesystem, in which order. Apply (Linux) mounts the filesystems on
// private directories and copies each tree keeping ownership, modes, ACLs
// and other extended attributes, hard links, holes of sparse files, device
// nodes, FIFOs and symlinks, then empties the source directory (the mount
// point stays, empty, with its metadata). Running it again finds every
// source empty and does nothing.
package movefiles

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/imprint-dev/imprint/partition"
)

// Move is one step: the contents of directory Path of the filesystem on
// From (an image target) go to the root of the filesystem on To.
type Move struct {
	FromDevice string `json:"from_device"`
	FromMount  string `json:"from_mount"` // the source filesystem's mount point
	Path       string `json:"path"`       // relative to FromMount, never empty
	ToDevice   string `json:"to_device"`
	ToMount    string `json:"to_mount"`
	ToType     string `json:"to_type"`
	FromType   string `json:"from_type"`
}

func (m Move) String() string {
	return fmt.Sprintf("%s:%s (%s) -> %s (%s)", m.FromMount, m.Path, m.FromDevice, m.ToMount, m.ToDevice)
}

// Plan lists the moves the plan's filesystems need, deepest destination
// first: a filesystem mounted at M that no image fills receives what the
// nearest image-filled filesystem above it holds at M. Deepest first means
// every byte is copied once: /var/log/audit's files leave the root image
// before /var/log's remaining files, and those before /var's. A
// filesystem an image fills is never a destination (its image is what it
// holds), swap and unmounted filesystems take no part, and a destination
// with no image-filled filesystem above it gets nothing. A kept filesystem
// (keep_data) is not a destination either: a reprovision must not write
// the new image's files over the data it keeps; the image's copy stays
// hidden under it.
func Plan(fss []partition.FS) []Move {
	mounted := map[string]partition.FS{}
	for _, fs := range fss {
		if !strings.HasPrefix(fs.Mount, "/") || fs.Type == "swap" {
			continue
		}
		mounted[path.Clean(fs.Mount)] = fs
	}
	var out []Move
	for m, fs := range mounted {
		if fs.Image || fs.KeepData || m == "/" {
			continue
		}
		src, ok := imageAncestor(mounted, m)
		if !ok {
			continue
		}
		sm := path.Clean(src.Mount)
		rel := strings.TrimPrefix(m, sm)
		rel = strings.TrimPrefix(rel, "/")
		out = append(out, Move{
			FromDevice: src.Device, FromMount: sm, FromType: src.Type, Path: rel,
			ToDevice: fs.Device, ToMount: m, ToType: fs.Type,
		})
	}
	sort.Slice(out, func(i, j int) bool {
		di, dj := depth(out[i].ToMount), depth(out[j].ToMount)
		if di != dj {
			return di > dj
		}
		return out[i].ToMount < out[j].ToMount
	})
	return out
}

// imageAncestor is the nearest filesystem above m that an image fills.
// Plain filesystems in between are skipped: they start empty, the files
// for m are still where the image put them (/var/log of the root image
// when /var is a plain filesystem too).
func imageAncestor(mounted map[string]partition.FS, m string) (partition.FS, bool) {
	for p := m; p != "/"; {
		p = path.Dir(p)
		if fs, ok := mounted[p]; ok && fs.Image {
			return fs, true
		}
	}
	return partition.FS{}, false
}

func depth(m string) int {
	if m == "/" {
		return 0
	}
	return strings.Count(m, "/")
}
