package imagebuild

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/imprint-dev/imprint/imagewriter"
)

// GetKernel extracts the newest kernel and its initrd from a filesystem
// image built by Build (diskimage-builder's disk-image-get-kernel): the
// image may be raw or compressed (gzip, zstd or xz, told by its magic bytes)
// and must hold an ext2/3/4 filesystem, the root (kernels in /boot) or a
// separate /boot (kernels at its top). They are written as
// <outDir>/<prefix>-vmlinuz and <outDir>/<prefix>-initrd, read with
// debugfs, so nothing is mounted.
func GetKernel(ctx context.Context, r Runner, image, outDir, prefix string) (kernel, initrd string, err error) {
	raw, cleanup, err := rawImage(ctx, image, outDir)
	if err != nil {
		return "", "", fmt.Errorf("get kernel from %q: %w", image, err)
	}
	defer cleanup()
	var dir, ver string
	for _, d := range []string{"/boot", "/"} {
		out, err := r.RunCmd(ctx, Cmd{Argv: []string{"debugfs", "-R", "ls -p " + d, raw}})
		if err != nil {
			return "", "", fmt.Errorf("get kernel from %q: %w", image, err)
		}
		if v := newestKernel(string(out)); v != "" {
			dir, ver = d, v
			break
		}
	}
	if ver == "" {
		return "", "", fmt.Errorf("get kernel from %q: no vmlinuz-* in /boot or / of the filesystem", image)
	}
	kernel = filepath.Join(outDir, prefix+"-vmlinuz")
	initrd = filepath.Join(outDir, prefix+"-initrd")
	for src, dst := range map[string]string{inDir(dir, "vmlinuz-"+ver): kernel, inDir(dir, "initrd.img-"+ver): initrd} {
		if _, err := r.RunCmd(ctx, Cmd{Argv: []string{"debugfs", "-R", "dump " + src + " " + dst, raw}}); err != nil {
			return "", "", fmt.Errorf("get kernel from %q: %w", image, err)
		}
		if fi, err := os.Stat(dst); err != nil || fi.Size() == 0 {
			return "", "", fmt.Errorf("get kernel from %q: %s missing or empty in the image", image, src)
		}
	}
	return kernel, initrd, nil
}

func inDir(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// newestKernel picks the highest vmlinuz-VERSION of a `debugfs ls -p`
// listing (/inode/mode/uid/gid/name/size/ lines).
func newestKernel(ls string) string {
	var vers []string
	sc := bufio.NewScanner(strings.NewReader(ls))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "/")
		if len(f) < 6 {
			continue
		}
		if v, ok := strings.CutPrefix(f[5], "vmlinuz-"); ok && v != "" {
			vers = append(vers, v)
		}
	}
	sort.Slice(vers, func(i, j int) bool { return versionLess(vers[i], vers[j]) })
	if len(vers) == 0 {
		return ""
	}
	return vers[len(vers)-1]
}

// versionLess compares kernel versions by their numeric runs (6.1.0-9 <
// 6.1.0-10).
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		na, ra := leadingNum(a)
		nb, rb := leadingNum(b)
		if na != "" && nb != "" {
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			if na != nb {
				return na < nb
			}
			a, b = ra, rb
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func leadingNum(s string) (string, string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return strings.TrimLeft(s[:i], "0"), s[i:]
}

// rawImage returns a raw filesystem file for image: itself, or a
// decompressed temporary copy in dir (removed by cleanup) when it is in a
// container the image writer knows (gzip, zstd, xz).
func rawImage(ctx context.Context, image, dir string) (string, func(), error) {
	f, err := os.Open(image)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	dec, c, err := imagewriter.Decompress(ctx, f)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", image, err)
	}
	defer dec.Close()
	if c == imagewriter.ContainerRaw {
		return image, func() {}, nil
	}
	tmp, err := os.CreateTemp(dir, ".get-kernel-*.raw")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.Remove(tmp.Name()) }
	if _, err := io.Copy(tmp, ctxReader{ctx, dec}); err != nil {
		tmp.Close()
		cleanup()
		return "", nil, fmt.Errorf("decompress: %w", err)
	}
	if err := tmp.Close(); err != nil {
		cleanup()
		return "", nil, err
	}
	return tmp.Name(), cleanup, nil
}
