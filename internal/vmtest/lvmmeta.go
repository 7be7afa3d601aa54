package vmtest

import (
	"encoding/binary"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// LVExtent finds logical volume lv of volume group vg in the LVM2 text
// metadata of the PV that starts at pvStart bytes into img, without host
// LVM or device-mapper (this host has none): the mda header at 4 KiB, the
// newest metadata text it points to, the VG's extent size, the PV's
// pe_start and the LV's one linear segment. It returns the LV's byte
// offset in img and its size. Only single-PV, single-segment LVs.
func LVExtent(img string, pvStart int64, vg, lv string) (off, size int64, err error) {
	f, err := os.Open(img)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	hdr := make([]byte, 512)
	mda := pvStart + 4096
	if _, err := f.ReadAt(hdr, mda); err != nil {
		return 0, 0, fmt.Errorf("vmtest: %s: read mda header at %d: %w", img, mda, err)
	}
	if string(hdr[4:20]) != " LVM2 x[5A%r0N*>" {
		return 0, 0, fmt.Errorf("vmtest: %s: no LVM2 metadata area at %d", img, mda)
	}
	// raw_locn[0]: offset (from the mda start), size, checksum, flags
	locOff := int64(binary.LittleEndian.Uint64(hdr[40:48]))
	locSize := int64(binary.LittleEndian.Uint64(hdr[48:56]))
	if locSize <= 0 || locSize > 16<<20 {
		return 0, 0, fmt.Errorf("vmtest: %s: metadata size %d", img, locSize)
	}
	text := make([]byte, locSize)
	if _, err := f.ReadAt(text, mda+locOff); err != nil {
		return 0, 0, fmt.Errorf("vmtest: %s: read metadata: %w", img, err)
	}
	s := string(text)
	if !strings.HasPrefix(s, vg+" {") {
		return 0, 0, fmt.Errorf("vmtest: %s: metadata is not volume group %q's: %.40q", img, vg, s)
	}
	num := func(re, in string) (int64, error) {
		m := regexp.MustCompile(re).FindStringSubmatch(in)
		if m == nil {
			return 0, fmt.Errorf("vmtest: %s: %s not in the metadata of %s", img, re, vg)
		}
		return strconv.ParseInt(m[1], 10, 64)
	}
	ext, err := num(`extent_size = (\d+)`, s)
	if err != nil {
		return 0, 0, err
	}
	pe, err := num(`pe_start = (\d+)`, s)
	if err != nil {
		return 0, 0, err
	}
	i := strings.Index(s, "logical_volumes {")
	if i < 0 {
		return 0, 0, fmt.Errorf("vmtest: %s: volume group %q has no LVs", img, vg)
	}
	loc := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(lv) + ` \{`).FindStringIndex(s[i:])
	if loc == nil {
		return 0, 0, fmt.Errorf("vmtest: %s: no LV %s/%s", img, vg, lv)
	}
	body := s[i+loc[1]:]
	if n, _ := num(`segment_count = (\d+)`, body); n != 1 {
		return 0, 0, fmt.Errorf("vmtest: %s: LV %s/%s has %d segments, want 1", img, vg, lv, n)
	}
	count, err := num(`extent_count = (\d+)`, body)
	if err != nil {
		return 0, 0, err
	}
	first, err := num(`"pv0",\s*(\d+)`, body)
	if err != nil {
		return 0, 0, err
	}
	return pvStart + pe*512 + first*ext*512, count * ext * 512, nil
}

// DebugfsWrite writes content as file path (in the root directory) of the
// ext filesystem at offset in img, with debugfs on the image file.
func DebugfsWrite(img string, offset int64, path, content string) error {
	src, err := os.CreateTemp("", "imprint-marker-")
	if err != nil {
		return err
	}
	defer os.Remove(src.Name())
	if _, err := src.WriteString(content); err != nil {
		return err
	}
	src.Close()
	argv := []string{"debugfs", "-w", "-R", "write " + src.Name() + " " + path, fmt.Sprintf("%s?offset=%d", img, offset)}
	if _, stderr, err := run(argv); err != nil || strings.Contains(stderr, "rror") {
		return fmt.Errorf("vmtest: %s: %v (stderr: %q)", strings.Join(argv, " "), err, stderr)
	}
	return nil
}

// DebugfsCat is the content of file path of the ext filesystem at offset
// in img ("" and no error when it does not exist).
func DebugfsCat(img string, offset int64, path string) (string, error) {
	argv := []string{"debugfs", "-R", "cat " + path, fmt.Sprintf("%s?offset=%d", img, offset)}
	out, stderr, err := run(argv)
	if err != nil {
		return "", fmt.Errorf("vmtest: %s: %w (stderr: %q)", strings.Join(argv, " "), err, stderr)
	}
	if strings.Contains(stderr, "File not found") {
		return "", nil
	}
	return out, nil
}
