package imagebuild

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/kdomanski/iso9660"
)

// ImageKind is what GetKernel was given.
type ImageKind string

// Image kinds get-kernel reads.
const (
	KindQcow2 ImageKind = "qcow2"      // converted to raw (qemu-img), then a disk or a filesystem
	KindISO   ImageKind = "iso9660"    // read with kdomanski/iso9660
	KindDisk  ImageKind = "disk"       // MBR or GPT partition table: each partition's ext filesystem, at its offset
	KindFS    ImageKind = "filesystem" // an ext filesystem, raw or compressed (gzip, zstd, xz)
)

// DetectImage tells the kind of an image from its first 36 KiB: the
// qcow2 magic, an ISO 9660 volume descriptor at 32 KiB (checked before
// the partition table: hybrid ISOs have an MBR too), an ext superblock, an
// MBR or GPT; anything else is taken for a (compressed) filesystem image.
func DetectImage(head []byte) ImageKind {
	at := func(off int, magic string) bool {
		return len(head) >= off+len(magic) && string(head[off:off+len(magic)]) == magic
	}
	switch {
	case at(0, "QFI\xfb"):
		return KindQcow2
	case at(0x8001, "CD001"):
		return KindISO
	case at(1080, "\x53\xef"):
		return KindFS
	case at(512, "EFI PART"), at(510, "\x55\xaa") && len(head) >= 512 && hasMBRPartition(head[:512]):
		return KindDisk
	}
	return KindFS
}

func hasMBRPartition(mbr []byte) bool {
	for i := 0; i < 4; i++ {
		e := mbr[446+16*i : 446+16*(i+1)]
		if e[4] != 0 && binary.LittleEndian.Uint32(e[12:]) != 0 {
			return true
		}
	}
	return false
}

// Partition is one entry of a partition table, in bytes.
type Partition struct {
	Number      int
	Start, Size int64
}

// ReadPartitions reads the partition table of a whole-disk image: GPT
// (behind a protective MBR) or MBR primary partitions (extended ones
// skipped).
func ReadPartitions(r io.ReaderAt) ([]Partition, error) {
	buf := make([]byte, 1024)
	if _, err := r.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if string(buf[512:520]) == "EFI PART" {
		return readGPT(r, buf[512:1024])
	}
	if buf[510] != 0x55 || buf[511] != 0xaa {
		return nil, errors.New("no MBR or GPT partition table")
	}
	var parts []Partition
	for i := 0; i < 4; i++ {
		e := buf[446+16*i : 446+16*(i+1)]
		typ, lba, n := e[4], binary.LittleEndian.Uint32(e[8:]), binary.LittleEndian.Uint32(e[12:])
		if typ == 0 || n == 0 || typ == 0x05 || typ == 0x0f || typ == 0x85 {
			continue
		}
		if typ == 0xee {
			return nil, errors.New("protective MBR without a GPT header at LBA 1")
		}
		parts = append(parts, Partition{Number: i + 1, Start: int64(lba) * 512, Size: int64(n) * 512})
	}
	return parts, nil
}

func readGPT(r io.ReaderAt, hdr []byte) ([]Partition, error) {
	entriesLBA := binary.LittleEndian.Uint64(hdr[72:])
	count := binary.LittleEndian.Uint32(hdr[80:])
	size := binary.LittleEndian.Uint32(hdr[84:])
	if size < 128 || size > 4096 || count > 1024 {
		return nil, fmt.Errorf("gpt: implausible header (%d entries of %d bytes)", count, size)
	}
	tbl := make([]byte, int(count)*int(size))
	if _, err := r.ReadAt(tbl, int64(entriesLBA)*512); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("gpt entries: %w", err)
	}
	var parts []Partition
	for i := 0; i < int(count); i++ {
		e := tbl[i*int(size) : (i+1)*int(size)]
		if bytes.Equal(e[:16], make([]byte, 16)) {
			continue
		}
		first, last := binary.LittleEndian.Uint64(e[32:]), binary.LittleEndian.Uint64(e[40:])
		if last < first {
			continue
		}
		parts = append(parts, Partition{Number: i + 1, Start: int64(first) * 512, Size: int64(last-first+1) * 512})
	}
	return parts, nil
}

// GetKernel extracts the newest kernel and its initrd from an image
// (diskimage-builder's disk-image-get-kernel) into
// <outDir>/<prefix>-vmlinuz and <outDir>/<prefix>-initrd, creating outDir:
//   - a filesystem image built by Build, raw or compressed (gzip, zstd,
//     xz): ext2/3/4, the root (kernels in /boot) or a separate /boot;
//   - a whole-disk image (MBR or GPT): the first partition whose ext
//     filesystem holds a kernel, read at its offset;
//   - a qcow2 of either, converted to raw with qemu-img first;
//   - an ISO 9660 image (live or installer): vmlinuz* and its initrd*.
//
// Ext filesystems are read with debugfs, so nothing is mounted.
func GetKernel(ctx context.Context, r Runner, image, outDir, prefix string) (kernel, initrd string, err error) {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", "", fmt.Errorf("get kernel: output directory: %w", err)
	}
	kernel, initrd, err = getKernel(ctx, r, image, outDir, prefix, true)
	if err != nil {
		return "", "", fmt.Errorf("get kernel from %q: %w", image, err)
	}
	return kernel, initrd, nil
}

func getKernel(ctx context.Context, r Runner, image, outDir, prefix string, convert bool) (string, string, error) {
	f, err := os.Open(image)
	if err != nil {
		return "", "", err
	}
	head := make([]byte, 36<<10)
	n, err := f.ReadAt(head, 0)
	f.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return "", "", err
	}
	kernel, initrd := filepath.Join(outDir, prefix+"-vmlinuz"), filepath.Join(outDir, prefix+"-initrd")
	switch kind := DetectImage(head[:n]); {
	case kind == KindQcow2 && convert:
		tmp, err := os.CreateTemp(outDir, ".get-kernel-*.raw")
		if err != nil {
			return "", "", err
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		if _, err := r.RunCmd(ctx, Cmd{Argv: []string{"qemu-img", "convert", "-f", "qcow2", "-O", "raw", image, tmp.Name()}}); err != nil {
			return "", "", fmt.Errorf("qcow2 to raw: %w", err)
		}
		return getKernel(ctx, r, tmp.Name(), outDir, prefix, false)
	case kind == KindISO:
		return isoKernel(image, kernel, initrd)
	case kind == KindDisk:
		return diskKernel(ctx, r, image, kernel, initrd)
	case kind == KindFS:
		raw, cleanup, err := rawImage(ctx, image, outDir)
		if err != nil {
			return "", "", err
		}
		defer cleanup()
		ok, err := extKernel(ctx, r, raw, kernel, initrd)
		if err != nil {
			return "", "", err
		}
		if !ok {
			return "", "", errors.New("no vmlinuz-* in /boot or / of the filesystem")
		}
		return kernel, initrd, nil
	default:
		return "", "", fmt.Errorf("%s inside a qcow2: not an image get-kernel reads", kind)
	}
}

// diskKernel tries each partition's ext filesystem at its offset.
func diskKernel(ctx context.Context, r Runner, image, kernel, initrd string) (string, string, error) {
	f, err := os.Open(image)
	if err != nil {
		return "", "", err
	}
	parts, err := ReadPartitions(f)
	f.Close()
	if err != nil {
		return "", "", err
	}
	var tried []string
	for _, p := range parts {
		ok, err := extKernel(ctx, r, image+"?offset="+strconv.FormatInt(p.Start, 10), kernel, initrd)
		if err != nil {
			tried = append(tried, fmt.Sprintf("partition %d: %v", p.Number, err))
			continue
		}
		if ok {
			return kernel, initrd, nil
		}
		tried = append(tried, fmt.Sprintf("partition %d: no vmlinuz-* in /boot or /", p.Number))
	}
	return "", "", fmt.Errorf("no partition of %d holds a kernel (%s)", len(parts), strings.Join(tried, "; "))
}

// extKernel extracts the newest vmlinuz-VER and initrd.img-VER of the ext
// filesystem fsPath (a file, or file?offset=N) with debugfs; false when it
// has none.
func extKernel(ctx context.Context, r Runner, fsPath, kernel, initrd string) (bool, error) {
	var dir, ver string
	for _, d := range []string{"/boot", "/"} {
		out, err := r.RunCmd(ctx, Cmd{Argv: []string{"debugfs", "-R", "ls -p " + d, fsPath}})
		if err != nil {
			return false, err
		}
		if v := newestKernel(string(out)); v != "" {
			dir, ver = d, v
			break
		}
	}
	if ver == "" {
		return false, nil
	}
	for src, dst := range map[string]string{inDir(dir, "vmlinuz-"+ver): kernel, inDir(dir, "initrd.img-"+ver): initrd} {
		os.Remove(dst)
		if _, err := r.RunCmd(ctx, Cmd{Argv: []string{"debugfs", "-R", "dump " + src + " " + dst, fsPath}}); err != nil {
			return false, err
		}
		if fi, err := os.Stat(dst); err != nil || fi.Size() == 0 {
			return false, fmt.Errorf("%s missing or empty in the filesystem", src)
		}
	}
	return true, nil
}

var (
	isoKernelRe = regexp.MustCompile(`^(vmlinuz|bzimage|linux)([-_.].*)?$`)
	isoInitrdRe = regexp.MustCompile(`^(initrd|initramfs)([-_.].*)?$`)
)

type isoFile struct {
	dir, name string
	f         *iso9660.File
}

// isoKernel finds the kernel of a live or installer ISO: every
// vmlinuz*/bzImage/linux* file, the newest version, and the initrd*/
// initramfs* beside it (the one of the same version when there are
// several).
func isoKernel(image, kernel, initrd string) (string, string, error) {
	f, err := os.Open(image)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	img, err := iso9660.OpenImage(f)
	if err != nil {
		return "", "", fmt.Errorf("iso9660: %w", err)
	}
	root, err := img.RootDir()
	if err != nil {
		return "", "", fmt.Errorf("iso9660: %w", err)
	}
	var kernels, initrds []isoFile
	var walk func(dir string, d *iso9660.File, depth int) error
	walk = func(dir string, d *iso9660.File, depth int) error {
		if depth > 8 {
			return nil
		}
		children, err := d.GetChildren()
		if err != nil {
			return fmt.Errorf("iso9660 %s: %w", dir, err)
		}
		for _, c := range children {
			name := strings.ToLower(c.Name())
			if c.IsDir() {
				if err := walk(path.Join(dir, name), c, depth+1); err != nil {
					return err
				}
				continue
			}
			switch {
			case isoKernelRe.MatchString(name) && !strings.HasSuffix(name, ".cfg") && !strings.HasSuffix(name, ".c32"):
				kernels = append(kernels, isoFile{dir, name, c})
			case isoInitrdRe.MatchString(name):
				initrds = append(initrds, isoFile{dir, name, c})
			}
		}
		return nil
	}
	if err := walk("/", root, 0); err != nil {
		return "", "", err
	}
	if len(kernels) == 0 {
		return "", "", errors.New("iso9660: no vmlinuz*, bzImage or linux* file")
	}
	sort.SliceStable(kernels, func(i, j int) bool { return versionLess(kernels[i].name, kernels[j].name) })
	k := kernels[len(kernels)-1]
	suffix := strings.TrimLeft(strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(k.name, "vmlinuz"), "bzimage"), "linux"), "-_.")
	var ird *isoFile
	for i := range initrds {
		c := initrds[i]
		if c.dir != k.dir {
			continue
		}
		if ird == nil || suffix != "" && strings.Contains(c.name, suffix) {
			ird = &initrds[i]
		}
	}
	if ird == nil {
		return "", "", fmt.Errorf("iso9660: kernel %s has no initrd* or initramfs* beside it", path.Join(k.dir, k.name))
	}
	for _, c := range []struct {
		f   isoFile
		dst string
	}{{k, kernel}, {*ird, initrd}} {
		if err := writeReader(c.dst, c.f.f.Reader()); err != nil {
			return "", "", fmt.Errorf("iso9660 %s: %w", path.Join(c.f.dir, c.f.name), err)
		}
	}
	return kernel, initrd, nil
}

func writeReader(dst string, r io.Reader) error {
	part := dst + ".part"
	out, err := os.Create(part)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		os.Remove(part)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(part)
		return err
	}
	return os.Rename(part, dst)
}
