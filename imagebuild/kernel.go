package imagebuild

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/imprint-dev/imprint/imagewriter"
)

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
