package configdrive

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/fat12"
	"github.com/diskfs/go-diskfs/filesystem/fat16"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

// Format is a configdrive layout (which datasource reads it) on a filesystem.
type Format string

// Formats.
const (
	// NoCloudVFAT: meta-data, user-data, network-config at the root of a FAT
	// filesystem labelled "cidata" (cloud-init's NoCloud datasource).
	NoCloudVFAT Format = "nocloud-vfat"
	// NoCloudISO: the same files on ISO9660 (Rock Ridge and Joliet names),
	// volume id "cidata": what fuel-agent wrote with genisoimage up to 9.0.
	NoCloudISO Format = "nocloud-iso"
	// Config2VFAT: openstack/latest/{meta_data.json,user_data,network_data.json}
	// on FAT labelled "config-2" (cloud-init's ConfigDrive datasource).
	Config2VFAT Format = "config2-vfat"
	// Config2ISO: the config-2 tree on ISO9660, volume id "config-2".
	Config2ISO Format = "config2-iso"
)

// DefaultFormat is what the agent writes when nothing is asked: config-2 (the
// label fuel-agent settled on) on FAT, which works on 512-byte and 4K-sector
// disks alike.
const DefaultFormat = Config2VFAT

// Formats lists every format, for help texts.
var Formats = []Format{NoCloudVFAT, NoCloudISO, Config2VFAT, Config2ISO}

// ParseFormat checks a format name; "" is DefaultFormat.
func ParseFormat(s string) (Format, error) {
	if s == "" {
		return DefaultFormat, nil
	}
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	names := make([]string, len(Formats))
	for i, f := range Formats {
		names[i] = string(f)
	}
	return "", fmt.Errorf("format %q: unknown (want one of %s)", s, strings.Join(names, ", "))
}

// NoCloud reports whether f is a NoCloud layout.
func (f Format) NoCloud() bool { return f == NoCloudVFAT || f == NoCloudISO }

// ISO reports whether f is on ISO9660.
func (f Format) ISO() bool { return f == NoCloudISO || f == Config2ISO }

// Label is the filesystem label cloud-init looks for.
func (f Format) Label() string {
	if f.NoCloud() {
		return "cidata"
	}
	return "config-2"
}

// File is one file of a configdrive, Path relative to the filesystem root.
type File struct {
	Path string
	Data []byte
}

// Files is the file tree of c in layout f, sorted by path.
func (c *Content) Files(f Format) []File {
	var files []File
	if f.NoCloud() {
		files = []File{
			{"meta-data", c.MetaData},
			{"user-data", c.UserData},
			{"network-config", c.NetworkConfig},
		}
	} else {
		files = []File{
			{"openstack/latest/meta_data.json", c.MetaDataJSON},
			{"openstack/latest/user_data", c.UserData},
			{"openstack/latest/network_data.json", c.NetworkDataJSON},
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files
}

// Sector sizes.
const (
	SectorSize512  = 512
	SectorSize4096 = 4096
)

// ErrTooSmall is returned when the content does not fit the requested size.
var ErrTooSmall = errors.New("configdrive does not fit")

// MinSize and MaxSize bound the image size (bytes). The image is built in
// memory, sparsely; MaxSize keeps a typo from building a disk-sized image.
const (
	MinSize = 1 << 20
	MaxSize = 4 << 30
)

// ImageOptions tunes Image.
type ImageOptions struct {
	// SectorSize is the logical sector size of the disk the image goes to:
	// 512 (default) or 4096. On 4096 only vfat formats work (Linux cannot
	// mount 2 KiB-block ISO9660 there) and the FAT uses 4 KiB sectors.
	SectorSize int
	// TempDir is where the ISO9660 writer stages its files ("" = os.TempDir()).
	TempDir string
	// Guard, when set, must admit the device WriteDevice opens (the
	// agent's devguard.Set of the prepared job).
	Guard interface {
		Check(path, what string) error
	}
}

// Image builds the configdrive filesystem of exactly size bytes and returns
// it as an io.ReaderAt together with the filesystem type it chose
// ("vfat/FAT16", "vfat/FAT32", "vfat/FAT12", "iso9660").
func Image(ctx context.Context, c *Content, f Format, size int64, opts ImageOptions) (*Built, error) {
	if _, err := ParseFormat(string(f)); err != nil {
		return nil, err
	}
	if c == nil {
		return nil, errors.New("configdrive: no content")
	}
	sector := opts.SectorSize
	if sector == 0 {
		sector = SectorSize512
	}
	if sector != SectorSize512 && sector != SectorSize4096 {
		return nil, fmt.Errorf("sector size %d: must be 512 or 4096", sector)
	}
	if f.ISO() && sector != SectorSize512 {
		return nil, fmt.Errorf("format %s: ISO9660 cannot be read from a %d-byte-sector disk; use %s or %s", f, sector, NoCloudVFAT, Config2VFAT)
	}
	if size < MinSize || size > MaxSize {
		return nil, fmt.Errorf("size %d bytes: must be between %d and %d", size, MinSize, MaxSize)
	}
	if size%int64(sector) != 0 {
		return nil, fmt.Errorf("size %d bytes: not a multiple of the %d-byte sector", size, sector)
	}
	files := c.Files(f)
	var payload int64
	for _, fl := range files {
		payload += int64(len(fl.Data))
	}
	// FAT tables, directories and cluster slack: generous but cheap.
	if need := payload + 256<<10; need > size {
		return nil, fmt.Errorf("size: %w: content is %d bytes, partition %d bytes", ErrTooSmall, payload, size)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	img := newSparseImage(size)
	b := &Built{Format: f, Size: size, img: img}
	var err error
	if f.ISO() {
		b.FSType, err = buildISO(img, f, files, opts.TempDir)
	} else {
		b.FSType, err = buildFAT(img, f, files, sector)
	}
	if err != nil {
		return nil, fmt.Errorf("configdrive %s (%d bytes): %w", f, size, err)
	}
	return b, nil
}

// Built is a configdrive image held in memory.
type Built struct {
	Format Format
	FSType string // vfat/FAT12, vfat/FAT16, vfat/FAT32 or iso9660
	Size   int64
	img    *sparseImage
}

// ReadAt reads the image.
func (b *Built) ReadAt(p []byte, off int64) (int, error) { return b.img.ReadAt(p, off) }

// WriteTo writes the whole image (holes as zeroes) to w at offset 0.
func (b *Built) WriteTo(w io.WriterAt) error { return b.img.writeTo(w, false) }

func buildFAT(img *sparseImage, f Format, files []File, sector int) (string, error) {
	label := strings.ToUpper(f.Label()) // FAT labels are upper case by convention (mkfs.fat, blkid report them as is)
	size := img.size
	var (
		fsys   filesystem.FileSystem
		fsType string
		err    error
	)
	// FAT16 where the cluster count is legal for it (about 4.1 MiB .. 2 GiB on
	// 512-byte sectors): a 20 MiB FAT32 has far fewer than the 65525 clusters
	// the specification requires, which some readers reject.
	switch {
	case sector == SectorSize512 && size >= 5<<20 && size <= 2<<30-1:
		fsys, err = fat16.Create(img, size, 0, int64(sector), label, false)
		fsType = "vfat/FAT16"
	case sector == SectorSize512 && size < 5<<20:
		fsys, err = fat12.Create(img, size, 0, int64(sector), label, false)
		fsType = "vfat/FAT12"
	default:
		fsys, err = fat32.Create(img, size, 0, int64(sector), label, false)
		fsType = "vfat/FAT32"
	}
	if err != nil {
		return "", fmt.Errorf("create %s: %w", fsType, err)
	}
	if err := populate(fsys, files); err != nil {
		return "", fmt.Errorf("%s: %w", fsType, err)
	}
	if fsType == "vfat/FAT32" {
		if err := fixFAT32DotDot(img); err != nil {
			return "", fmt.Errorf("%s: fix '..' entries: %w", fsType, err)
		}
	} else if err := releaseCluster2(img, fsType == "vfat/FAT12"); err != nil {
		return "", fmt.Errorf("%s: fix cluster 2: %w", fsType, err)
	}
	return fsType, nil
}

func populate(fsys filesystem.FileSystem, files []File) error {
	made := map[string]bool{}
	for _, fl := range files {
		if dir := path.Dir(fl.Path); dir != "." && !made[dir] {
			if err := fsys.Mkdir("/" + dir); err != nil {
				return fmt.Errorf("mkdir %s: %w", dir, err)
			}
			made[dir] = true
		}
		w, err := fsys.OpenFile("/"+fl.Path, os.O_CREATE|os.O_RDWR|os.O_TRUNC)
		if err != nil {
			return fmt.Errorf("create %s: %w", fl.Path, err)
		}
		if _, err := w.Write(fl.Data); err != nil {
			w.Close()
			if strings.Contains(err.Error(), "space") {
				return fmt.Errorf("write %s: %w: %v", fl.Path, ErrTooSmall, err)
			}
			return fmt.Errorf("write %s: %w", fl.Path, err)
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("close %s: %w", fl.Path, err)
		}
	}
	return nil
}

// buildISO writes ISO9660 with Rock Ridge names (what Linux reads by
// default: lower case, hyphens). Joliet is added only to the flat NoCloud
// tree: go-diskfs v1.9.4 writes broken Joliet records for subdirectories.
func buildISO(img *sparseImage, f Format, files []File, tmp string) (string, error) {
	work, err := os.MkdirTemp(tmp, "imprint-configdrive-")
	if err != nil {
		return "", fmt.Errorf("iso9660 staging dir: %w", err)
	}
	defer os.RemoveAll(work)
	fsys, err := iso9660.Create(img, 0, 0, 2048, work)
	if err != nil {
		return "", fmt.Errorf("create iso9660: %w", err)
	}
	if err := populate(fsys, files); err != nil {
		return "", fmt.Errorf("iso9660: %w", err)
	}
	if err := fsys.Finalize(iso9660.FinalizeOptions{RockRidge: true, Joliet: f.NoCloud(), VolumeIdentifier: f.Label()}); err != nil {
		if strings.Contains(err.Error(), "beyond the end") {
			return "", fmt.Errorf("finalize iso9660: %w: %v", ErrTooSmall, err)
		}
		return "", fmt.Errorf("finalize iso9660: %w", err)
	}
	return "iso9660", nil
}

// releaseCluster2 undoes a go-diskfs v1.9.4 slip on FAT12/FAT16: it marks
// cluster 2 end-of-chain as if it held the root directory (FAT32 style),
// although the root has its own region there and nothing uses the cluster,
// so fsck.fat reports it as lost. The entry is cleared in every FAT copy.
func releaseCluster2(img *sparseImage, fat12bits bool) error {
	bpb := make([]byte, 512)
	if _, err := img.ReadAt(bpb, 0); err != nil {
		return err
	}
	bps := int64(binary.LittleEndian.Uint16(bpb[11:]))
	reserved := int64(binary.LittleEndian.Uint16(bpb[14:]))
	fats := int64(bpb[16])
	perFAT := int64(binary.LittleEndian.Uint16(bpb[22:]))
	if bps == 0 || perFAT == 0 || fats == 0 {
		return errors.New("unexpected boot sector")
	}
	for i := range fats {
		start := (reserved + i*perFAT) * bps
		e := make([]byte, 2)
		off := start + 4 // FAT16: entry 2 is bytes 4-5
		if fat12bits {
			off = start + 3 // FAT12: entry 2 is the low 12 bits at byte 3
		}
		if _, err := img.ReadAt(e, off); err != nil {
			return err
		}
		v := binary.LittleEndian.Uint16(e)
		if fat12bits {
			if v&0x0fff < 0x0ff8 {
				continue // in use: leave it
			}
			v &^= 0x0fff
		} else {
			if v < 0xfff8 {
				continue
			}
			v = 0
		}
		binary.LittleEndian.PutUint16(e, v)
		if _, err := img.WriteAt(e, off); err != nil {
			return err
		}
	}
	return nil
}

// fixFAT32DotDot undoes another go-diskfs v1.9.4 slip: in a directory whose
// parent is the root, ".." must name cluster 0, not the root's cluster
// (fsck.fat: "Invalid '..' entry in the second slot"). Only directories in
// the root's first cluster are visited; configdrives have one or two.
func fixFAT32DotDot(img *sparseImage) error {
	bpb := make([]byte, 512)
	if _, err := img.ReadAt(bpb, 0); err != nil {
		return err
	}
	bps := int64(binary.LittleEndian.Uint16(bpb[11:]))
	spc := int64(bpb[13])
	reserved := int64(binary.LittleEndian.Uint16(bpb[14:]))
	fats := int64(bpb[16])
	perFAT := int64(binary.LittleEndian.Uint32(bpb[36:]))
	rootCluster := binary.LittleEndian.Uint32(bpb[44:])
	if bps == 0 || spc == 0 || perFAT == 0 {
		return errors.New("unexpected FAT32 boot sector")
	}
	clusterBytes := bps * spc
	dataStart := (reserved + fats*perFAT) * bps
	clusterOff := func(c uint32) int64 { return dataStart + int64(c-2)*clusterBytes }
	root := make([]byte, clusterBytes)
	if _, err := img.ReadAt(root, clusterOff(rootCluster)); err != nil {
		return err
	}
	for i := 0; i+32 <= len(root); i += 32 {
		e := root[i : i+32]
		if e[0] == 0 {
			break
		}
		if e[0] == 0xe5 || e[11] == 0x0f || e[11]&0x10 == 0 || e[0] == '.' {
			continue
		}
		c := uint32(binary.LittleEndian.Uint16(e[20:]))<<16 | uint32(binary.LittleEndian.Uint16(e[26:]))
		if c < 2 {
			continue
		}
		dotdot := make([]byte, 32)
		off := clusterOff(c) + 32
		if _, err := img.ReadAt(dotdot, off); err != nil {
			return err
		}
		pc := uint32(binary.LittleEndian.Uint16(dotdot[20:]))<<16 | uint32(binary.LittleEndian.Uint16(dotdot[26:]))
		if string(dotdot[:2]) != ".." || pc != rootCluster {
			continue
		}
		clear(dotdot[20:22])
		clear(dotdot[26:28])
		if _, err := img.WriteAt(dotdot, off); err != nil {
			return err
		}
	}
	return nil
}
