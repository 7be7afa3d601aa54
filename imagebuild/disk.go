package imagebuild

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// OpGrubCfg writes Path (the image's boot/grub/grub.cfg) for the newest
// kernel under Source (the image's /boot) — the whole-disk image's boot
// menu.
const OpGrubCfg Op = "grub-cfg"

// DiskPart is one partition of the whole-disk image.
type DiskPart struct {
	Mount string
	File  string // raw filesystem image
	Start int64  // bytes
	Size  int64  // bytes
}

const mib = 1 << 20

// The whole-disk image's grub pieces in TmpDir. Their names do not end in
// .img, so they never clash with a filesystem image (imageFileName: the
// /boot filesystem is boot.img, which grub's boot code once overwrote).
const (
	grubBootCodeFile = "grub-boot-code.bin"
	grubCoreFile     = "grub-core-image.bin"
)

// DiskLayout orders the partitions of a whole-disk image: /boot first when
// there is one (GRUB's prefix lives on partition 1), then /, then the rest
// by depth; each starts on a MiB boundary, the first at 1 MiB (the gap
// holds grub's core.img), and is as large as its filesystem rounded up to a
// MiB, except / which gets what remains of diskSize (0: 1 GiB more than
// it needs). It returns the parts and the disk size (1 MiB spare at the end).
func DiskLayout(mounts []string, sizes map[string]int64, files map[string]string, diskSize int64) ([]DiskPart, int64) {
	ord := append([]string(nil), mounts...)
	sort.SliceStable(ord, func(i, j int) bool {
		rank := func(mp string) int {
			switch mp {
			case "/boot":
				return 0
			case "/":
				return 1
			}
			return 2 + depth(mp)
		}
		ri, rj := rank(ord[i]), rank(ord[j])
		if ri != rj {
			return ri < rj
		}
		return ord[i] < ord[j]
	})
	var parts []DiskPart
	off, need := int64(mib), int64(2*mib)
	for _, mp := range ord {
		need += (sizes[mp] + mib - 1) / mib * mib
	}
	extra := int64(1 << 30)
	if diskSize > 0 {
		extra = max(diskSize/mib*mib-need, 0)
	}
	for _, mp := range ord {
		sz := (sizes[mp] + mib - 1) / mib * mib
		if mp == "/" {
			sz += extra
		}
		parts = append(parts, DiskPart{Mount: mp, File: files[mp], Start: off, Size: sz})
		off += sz
	}
	return parts, off + mib
}

// MBR renders a DOS partition table sector with parts (type 0x83, the
// first one active), boot code bootCode[:440] (may be nil) and the disk
// signature sig. grub-bios-setup's adjustments for a hard disk are made:
// the BPB area is left zero and the boot drive check is disabled.
func MBR(parts []DiskPart, bootCode []byte, sig uint32) ([]byte, error) {
	if len(parts) > 4 {
		return nil, fmt.Errorf("mbr: %d partitions, at most 4", len(parts))
	}
	s := make([]byte, 512)
	if bootCode != nil {
		if len(bootCode) < 440 {
			return nil, fmt.Errorf("mbr: boot code of %d bytes, want 512", len(bootCode))
		}
		copy(s, bootCode[:440])
		for i := 0x3; i < 0x5a; i++ { // BPB: keep the (empty) original
			s[i] = 0
		}
		s[0x66], s[0x67] = 0x90, 0x90 // boot drive check off (grub-bios-setup on a hard disk)
	}
	binary.LittleEndian.PutUint32(s[440:], sig)
	for i, p := range parts {
		e := s[446+16*i : 446+16*(i+1)]
		if i == 0 {
			e[0] = 0x80
		}
		// CHS fields: the "use LBA" values
		copy(e[1:4], []byte{0xfe, 0xff, 0xff})
		e[4] = 0x83
		copy(e[5:8], []byte{0xfe, 0xff, 0xff})
		lba, n := p.Start/512, p.Size/512
		if lba+n > 1<<32 {
			return nil, errors.New("mbr: disk larger than 2 TiB")
		}
		binary.LittleEndian.PutUint32(e[8:], uint32(lba))
		binary.LittleEndian.PutUint32(e[12:], uint32(n))
	}
	s[510], s[511] = 0x55, 0xaa
	return s, nil
}

// GrubCfg renders the boot menu of the whole-disk image: the kernel and
// initrd at kernelPath/initrdPath on the filesystem with bootUUID, the root
// filesystem by rootUUID, consoles on the screen and the first serial port.
func GrubCfg(bootUUID, rootUUID, kernelPath, initrdPath string) string {
	return fmt.Sprintf(`# written by imprint build-image for the whole-disk image; the agent's grub-mkconfig replaces it
set timeout=2
set default=0
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
menuentry 'Debian GNU/Linux' {
	insmod part_msdos
	insmod ext2
	search --no-floppy --fs-uuid --set=root %s
	linux %s root=UUID=%s ro console=tty0 console=ttyS0,115200
	initrd %s
}
`, bootUUID, kernelPath, rootUUID, initrdPath)
}

// grubCfg writes s.Data to s.Path with {kver} replaced by the version of
// the newest vmlinuz-* under s.Source.
func (e *Executor) grubCfg(s Step) error {
	ks, _ := filepath.Glob(filepath.Join(s.Source, "vmlinuz-*"))
	if len(ks) == 0 {
		return fmt.Errorf("no kernel (vmlinuz-*) in %q: the whole-disk image needs one (add a linux-image package)", s.Source)
	}
	sort.Strings(ks)
	ver := strings.TrimPrefix(filepath.Base(ks[len(ks)-1]), "vmlinuz-")
	return writeFile(s.Path, []byte(strings.ReplaceAll(s.Data, "{kver}", ver)), 0o644)
}

// diskImage assembles the whole-disk image s.Path from the raw filesystem
// images of s.Source (the build's tmp dir): MBR with grub's boot.img,
// core.img in the gap, the filesystems in their partitions; qcow2 through
// qemu-img convert.
func (e *Executor) diskImage(ctx context.Context, s Step) error {
	mounts := slices.Sorted(maps.Keys(e.Config.ImageData))
	sizes, files := map[string]int64{}, map[string]string{}
	for _, mp := range mounts {
		f := filepath.Join(s.Source, imageFileName(mp))
		fi, err := os.Stat(f)
		if err != nil {
			return err
		}
		sizes[mp], files[mp] = fi.Size(), f
		if want := e.Config.ImageData[mp].Size; want > 0 {
			if want < fi.Size() {
				return fmt.Errorf("partition %s: size %d is smaller than its filesystem (%d bytes)", mp, want, fi.Size())
			}
			sizes[mp] = want
		}
	}
	parts, total := DiskLayout(mounts, sizes, files, s.Size)
	if s.Size > 0 && total > s.Size {
		return fmt.Errorf("disk image of %d MiB requested, but the filesystems need %d MiB", s.Size/mib, total/mib)
	}
	// grow the ext filesystems (already compressed) into their partitions
	for _, p := range parts {
		fi, err := os.Stat(p.File)
		if err != nil {
			return err
		}
		img := e.Config.ImageData[p.Mount]
		if !strings.HasPrefix(img.Format, "ext") || p.Size <= fi.Size() || (p.Mount != "/" && img.Size == 0) {
			continue
		}
		if err := os.Truncate(p.File, p.Size); err != nil {
			return err
		}
		if _, err := e.run(ctx, Cmd{Argv: []string{"resize2fs", p.File}}, nil); err != nil {
			return err
		}
	}
	boot, err := os.ReadFile(filepath.Join(s.Source, grubBootCodeFile))
	if err != nil {
		return fmt.Errorf("grub boot.img: %w", err)
	}
	core, err := os.ReadFile(filepath.Join(s.Source, grubCoreFile))
	if err != nil {
		return fmt.Errorf("grub core.img: %w", err)
	}
	if int64(len(core)) > parts[0].Start-512 {
		return fmt.Errorf("grub core.img of %d bytes does not fit before the first partition", len(core))
	}
	raw := s.Path
	if s.Data == "qcow2" {
		raw = filepath.Join(s.Source, "disk.raw")
	}
	part := raw + ".part"
	if err := os.MkdirAll(filepath.Dir(part), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer os.Remove(part)
	err = func() error {
		defer out.Close()
		if err := out.Truncate(total); err != nil {
			return err
		}
		mbr, err := MBR(parts, boot, 0x696d7072) // "impr"
		if err != nil {
			return err
		}
		if _, err := out.WriteAt(mbr, 0); err != nil {
			return err
		}
		if _, err := out.WriteAt(core, 512); err != nil {
			return err
		}
		for _, p := range parts {
			if err := copySparse(ctx, out, p.Start, p.File); err != nil {
				return fmt.Errorf("partition %s: %w", p.Mount, err)
			}
		}
		return out.Sync()
	}()
	if err != nil {
		return err
	}
	if err := os.Rename(part, raw); err != nil {
		return err
	}
	e.Log.Info("whole-disk image written", "file", raw, "size", total, "partitions", len(parts))
	if s.Data != "qcow2" {
		return nil
	}
	defer os.Remove(raw)
	qpart := s.Path + ".part"
	if _, err := e.run(ctx, Cmd{Argv: []string{"qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-c", raw, qpart}}, nil); err != nil {
		os.Remove(qpart)
		return err
	}
	return os.Rename(qpart, s.Path)
}

// copySparse copies the file src into dst at off, skipping all-zero
// blocks (dst was freshly truncated, so they read back as zeros).
func copySparse(ctx context.Context, dst *os.File, off int64, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	buf := make([]byte, 1<<20)
	var pos int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := io.ReadFull(in, buf)
		if n > 0 && !allZero(buf[:n]) {
			if _, werr := dst.WriteAt(buf[:n], off+pos); werr != nil {
				return werr
			}
		}
		pos += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
