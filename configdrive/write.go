package configdrive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/imprint-dev/imprint/provision"
)

// Write builds the configdrive image of exactly size bytes and writes all of
// it (free space as zeroes) to w at offset 0: w is a partition device or a
// file the caller opened.
func Write(ctx context.Context, c *Content, f Format, w io.WriterAt, size int64, opts ImageOptions) (*Built, error) {
	b, err := Image(ctx, c, f, size, opts)
	if err != nil {
		return nil, err
	}
	if err := b.img.writeTo(w, false); err != nil {
		return nil, fmt.Errorf("configdrive: write image: %w", err)
	}
	return b, nil
}

// WriteFile writes the image to the regular file path, created or truncated
// to exactly size bytes (sparse where the image is empty).
func WriteFile(ctx context.Context, c *Content, f Format, path string, size int64, opts ImageOptions) (*Built, error) {
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("configdrive %q: not a regular file (use WriteDevice for devices)", path)
	}
	b, err := Image(ctx, c, f, size, opts)
	if err != nil {
		return nil, err
	}
	fh, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("configdrive %q: %w", path, err)
	}
	if err := fh.Truncate(size); err != nil {
		fh.Close()
		return nil, fmt.Errorf("configdrive %q: truncate to %d: %w", path, size, err)
	}
	if err := b.img.writeTo(fh, true); err != nil {
		fh.Close()
		return nil, fmt.Errorf("configdrive %q: write: %w", path, err)
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		return nil, fmt.Errorf("configdrive %q: sync: %w", path, err)
	}
	if err := fh.Close(); err != nil {
		return nil, fmt.Errorf("configdrive %q: close: %w", path, err)
	}
	return b, nil
}

// ErrDeviceTooSmall is returned by WriteDevice when size exceeds the device.
var ErrDeviceTooSmall = errors.New("configdrive larger than its partition")

// WriteDevice writes the image onto the block device dev (the plan's
// configdrive partition). The device is opened exclusively (the kernel
// refuses while it is mounted or held by md/LVM/dm). size 0 means the
// device's size; a size larger than the device is rejected. When
// opts.SectorSize is 0 the device's logical sector size is used, so a
// 4K-sector disk gets a 4 KiB-sector FAT (ISO formats are refused there).
// Everything is written, then fsynced.
func WriteDevice(ctx context.Context, c *Content, f Format, dev string, size int64, opts ImageOptions) (*Built, error) {
	st, err := os.Stat(dev)
	if err != nil {
		return nil, fmt.Errorf("configdrive %q: %w", dev, err)
	}
	if st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0 {
		return nil, fmt.Errorf("configdrive %q: not a block device", dev)
	}
	if opts.Guard != nil {
		if err := opts.Guard.Check(dev, "configdrive target"); err != nil {
			return nil, fmt.Errorf("configdrive: %w", err)
		}
	}
	fh, err := openExclusive(dev)
	if err != nil {
		return nil, fmt.Errorf("configdrive %q: open exclusively (mounted or in use?): %w", dev, err)
	}
	defer fh.Close()
	devSize, err := fh.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("configdrive %q: size: %w", dev, err)
	}
	if size == 0 {
		size = devSize
	}
	if size > devSize {
		return nil, fmt.Errorf("configdrive %q: size %d bytes: %w of %d bytes", dev, size, ErrDeviceTooSmall, devSize)
	}
	if opts.SectorSize == 0 {
		if opts.SectorSize, err = logicalSectorSize(fh); err != nil {
			return nil, fmt.Errorf("configdrive %q: logical sector size: %w", dev, err)
		}
	}
	b, err := Image(ctx, c, f, size, opts)
	if err != nil {
		return nil, fmt.Errorf("configdrive %q: %w", dev, err)
	}
	if err := b.img.writeTo(fh, false); err != nil {
		return nil, fmt.Errorf("configdrive %q: write: %w", dev, err)
	}
	if err := fh.Sync(); err != nil {
		return nil, fmt.Errorf("configdrive %q: fsync: %w", dev, err)
	}
	return b, nil
}

// ToDevice is the agent's one call: render doc's configdrive and write it in
// format f onto the partition dev of size bytes (0: the device's size).
// Content.Warnings carries what the caller should log.
func ToDevice(ctx context.Context, doc *provision.Document, dev string, size int64, f Format, opts Options) (*Content, *Built, error) {
	c, err := Build(doc, opts)
	if err != nil {
		return nil, nil, err
	}
	b, err := WriteDevice(ctx, c, f, dev, size, ImageOptions{})
	if err != nil {
		return c, nil, err
	}
	return c, b, nil
}
