package bootloader

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// fakeRunner records argv and answers blkid with a UUID derived from the
// device; fail makes any command whose argv contains it fail.
type fakeRunner struct {
	mu    sync.Mutex
	calls []string
	fail  string
}

func (f *fakeRunner) RunChroot(ctx context.Context, root, name string, args ...string) ([]byte, error) {
	return f.Run(ctx, "chroot", append([]string{root, name}, args...)...)
}

func (f *fakeRunner) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	argv := strings.Join(append([]string{name}, args...), " ")
	f.mu.Lock()
	f.calls = append(f.calls, argv)
	f.mu.Unlock()
	if f.fail != "" && strings.Contains(argv, f.fail) {
		return nil, fmt.Errorf("%s: exit status 1 (stderr: %q)", argv, "boom")
	}
	if name == "blkid" {
		dev := args[len(args)-1]
		return []byte("uuid-" + filepath.Base(dev) + "\n"), nil
	}
	return nil, nil
}

// fakeMounter records mounts and unmounts; failMount makes mounting that
// source fail.
type fakeMounter struct {
	mounted   []string // currently mounted targets, in order
	log       []string
	failMount string
}

func (f *fakeMounter) Mount(source, target, fstype string, bind bool, data string) error {
	if bind {
		f.mounted = append(f.mounted, target)
		f.log = append(f.log, "bind "+source+" "+target)
		return nil
	}
	if source == f.failMount {
		return &os.PathError{Op: "mount " + source, Path: target, Err: os.ErrPermission}
	}
	f.mounted = append(f.mounted, target)
	f.log = append(f.log, "mount -t "+fstype+" "+source+" "+target)
	return nil
}

func (f *fakeMounter) Unmount(target string) error {
	if len(f.mounted) == 0 || f.mounted[len(f.mounted)-1] != target {
		return fmt.Errorf("unmount %q out of order (mounted: %v)", target, f.mounted)
	}
	f.mounted = f.mounted[:len(f.mounted)-1]
	f.log = append(f.log, "umount "+target)
	return nil
}
