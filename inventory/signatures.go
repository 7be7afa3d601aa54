package inventory

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Signature names, as blkid calls them where it has a name (the partition
// table ones are blkid's PTTYPE; gpt_backup is ours).
const (
	SigGPT        = "gpt"               // primary GPT header at LBA 1 (512 or 4096 byte sectors)
	SigGPTBackup  = "gpt_backup"        // backup GPT header in the last sector
	SigMBR        = "mbr"               // DOS partition table (not a protective MBR, not a FAT boot sector)
	SigExt2       = "ext2"              //
	SigExt3       = "ext3"              //
	SigExt4       = "ext4"              //
	SigXFS        = "xfs"               //
	SigSwap       = "swap"              // SWAPSPACE2 / SWAP-SPACE at the end of the first page
	SigVFAT       = "vfat"              //
	SigISO9660    = "iso9660"           //
	SigBtrfs      = "btrfs"             //
	SigLVM2       = "LVM2_member"       // LABELONE + LVM2 001 in one of the first four sectors
	SigRAIDMember = "linux_raid_member" // md superblock 0.90 (end), 1.0 (end), 1.1 (0), 1.2 (4 KiB)
)

// ProbeSignatures reports the signatures present on a device or image of
// size bytes read through r: partition tables (gpt, gpt_backup, mbr),
// filesystems (ext2/3/4, xfs, swap, vfat, iso9660, btrfs), LVM2_member and
// linux_raid_member (metadata 0.90 and 1.x). It looks only at magic bytes at
// their fixed offsets, as wipefs does, so a stale signature left behind by an
// earlier layout is reported too. Regions beyond size are not read; an I/O
// error other than a short read is returned.
func ProbeSignatures(r io.ReaderAt, size int64) ([]string, error) {
	p := prober{r: r, size: size}
	var sigs []string
	add := func(ok bool, name string) {
		if ok {
			sigs = append(sigs, name)
		}
	}

	sector0 := p.read(0, 512)
	gptPrimary := p.gptAt(512) || p.gptAt(4096)
	gptBackup := (size >= 1024 && p.gptAt(size-512)) || (size >= 8192 && p.gptAt(size-4096))
	fat := isFAT(sector0)
	add(gptPrimary, SigGPT)
	add(gptBackup, SigGPTBackup)
	add(!fat && isMBR(sector0), SigMBR)

	if sb := p.read(1024, 1024); len(sb) == 1024 && binary.LittleEndian.Uint16(sb[56:]) == 0xEF53 {
		sigs = append(sigs, extKind(sb))
	}
	add(bytes.Equal(p.read(0, 4), []byte("XFSB")), SigXFS)
	for _, page := range []int64{4096, 8192, 16384, 65536} {
		m := p.read(page-10, 10)
		if bytes.Equal(m, []byte("SWAPSPACE2")) || bytes.Equal(m, []byte("SWAP-SPACE")) {
			sigs = append(sigs, SigSwap)
			break
		}
	}
	add(fat, SigVFAT)
	add(bytes.Equal(p.read(32769, 5), []byte("CD001")), SigISO9660)
	add(bytes.Equal(p.read(65536+64, 8), []byte("_BHRfS_M")), SigBtrfs)
	for i := int64(0); i < 4; i++ {
		l := p.read(i*512, 32)
		if len(l) == 32 && bytes.Equal(l[:8], []byte("LABELONE")) && bytes.Equal(l[24:32], []byte("LVM2 001")) {
			sigs = append(sigs, SigLVM2)
			break
		}
	}
	add(p.mdAny(), SigRAIDMember)
	if p.err != nil {
		return nil, fmt.Errorf("probe signatures: %w", p.err)
	}
	return sigs, nil
}

type prober struct {
	r    io.ReaderAt
	size int64
	err  error
}

// read returns n bytes at off, or fewer (nil) when the region is not fully
// inside the device. The first real I/O error is kept in p.err.
func (p *prober) read(off, n int64) []byte {
	if off < 0 || n <= 0 || off+n > p.size || p.err != nil {
		return nil
	}
	b := make([]byte, n)
	m, err := p.r.ReadAt(b, off)
	if err != nil && !(errors.Is(err, io.EOF) && int64(m) == n) {
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			p.err = fmt.Errorf("read %d bytes at %d: %w", n, off, err)
		}
		return nil
	}
	return b
}

// gptAt reports a GPT header signature with a plausible header size at off.
func (p *prober) gptAt(off int64) bool {
	h := p.read(off, 92)
	if len(h) < 92 || !bytes.Equal(h[:8], []byte("EFI PART")) {
		return false
	}
	hs := binary.LittleEndian.Uint32(h[12:])
	return hs >= 92 && hs <= 4096
}

// isMBR reports a DOS partition table: the 0x55AA mark and at least one
// entry that is not empty and not the protective 0xEE of a GPT disk.
func isMBR(s []byte) bool {
	if len(s) < 512 || s[510] != 0x55 || s[511] != 0xAA {
		return false
	}
	for i := 0; i < 4; i++ {
		e := s[446+16*i : 446+16*(i+1)]
		if e[0] != 0 && e[0] != 0x80 {
			return false // boot indicator must be 0 or 0x80: not a partition table
		}
		if t := e[4]; t != 0 && t != 0xEE {
			return true
		}
	}
	return false
}

// isFAT recognizes a FAT boot sector as blkid's vfat probe does in
// essence: a jump, a power-of-two sector size, and the FAT type string.
func isFAT(s []byte) bool {
	if len(s) < 512 || s[510] != 0x55 || s[511] != 0xAA {
		return false
	}
	if s[0] != 0xEB && s[0] != 0xE9 {
		return false
	}
	bps := binary.LittleEndian.Uint16(s[11:])
	if bps < 512 || bps > 4096 || bps&(bps-1) != 0 {
		return false
	}
	if spc := s[13]; spc == 0 || spc&(spc-1) != 0 {
		return false
	}
	return bytes.HasPrefix(s[54:62], []byte("FAT1")) || bytes.HasPrefix(s[82:90], []byte("FAT32")) ||
		bytes.HasPrefix(s[3:11], []byte("MSDOS")) || bytes.HasPrefix(s[3:11], []byte("MSWIN")) || bytes.HasPrefix(s[3:11], []byte("mkfs.fat"))
}

// extKind tells ext2, ext3 and ext4 apart from the feature flags, as blkid does.
func extKind(sb []byte) string {
	const (
		compatHasJournal = 0x0004
		ext3IncompatSupp = 0x0002 | 0x0004 | 0x0010 // filetype, recover, meta_bg
		ext3ROCompatSupp = 0x0001 | 0x0002 | 0x0004 // sparse_super, large_file, btree_dir
	)
	compat := binary.LittleEndian.Uint32(sb[92:])
	incompat := binary.LittleEndian.Uint32(sb[96:])
	ro := binary.LittleEndian.Uint32(sb[100:])
	switch {
	case incompat&^ext3IncompatSupp != 0 || ro&^ext3ROCompatSupp != 0:
		return SigExt4 // extents, 64bit, flex_bg, huge_file, metadata_csum, ...
	case compat&compatHasJournal != 0:
		return SigExt3
	default:
		return SigExt2
	}
}

// mdAny looks for an md superblock where each metadata version keeps it.
func (p *prober) mdAny() bool {
	const magic = 0xa92b4efc
	check := func(off int64, major uint32) bool {
		b := p.read(off, 8)
		if len(b) < 8 {
			return false
		}
		if m := binary.LittleEndian.Uint32(b); m == magic {
			return binary.LittleEndian.Uint32(b[4:]) == major
		}
		if m := binary.BigEndian.Uint32(b); m == magic && major == 0 {
			return binary.BigEndian.Uint32(b[4:]) == 0
		}
		return false
	}
	// 0.90: the last 64 KiB-aligned 64 KiB block.
	if p.size >= 128*1024 && check((p.size&^(65536-1))-65536, 0) {
		return true
	}
	// 1.1 at 0, 1.2 at 4 KiB.
	if check(0, 1) || check(4096, 1) {
		return true
	}
	// 1.0: 8 KiB before the end, rounded down to 4 KiB.
	if sectors := p.size / 512; sectors >= 16 {
		return check(((sectors-16)&^7)*512, 1)
	}
	return false
}
