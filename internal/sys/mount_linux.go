package sys

import (
	"os"
	"syscall"
	"time"

	"github.com/imprint-dev/imprint/internal/mountinfo"
)

// Mounter is the one mount(2) adapter: the bootloader step and the image
// builder declare the part of it they use. MountInfo is the mount table it
// reads (/proc/self/mountinfo when empty).
type Mounter struct {
	MountInfo string
}

// Mount mounts source on target with the filesystem options data; bind
// makes a plain (non-recursive) bind mount, which one plain umount undoes.
// Errors are *os.PathError naming the operation, source and target.
func (Mounter) Mount(source, target, fstype string, bind bool, data string) error {
	var flags uintptr
	op := "mount " + source
	if bind {
		flags, fstype, op = syscall.MS_BIND, "", "bind "+source
	}
	if err := syscall.Mount(source, target, fstype, flags, data); err != nil {
		return &os.PathError{Op: op, Path: target, Err: err}
	}
	return nil
}

// Unmount unmounts target (never lazily), retried for a few seconds while
// busy (a process started in a chroot may still be exiting).
func (Mounter) Unmount(target string) error {
	var err error
	for i := 0; i < 10; i++ {
		if err = syscall.Unmount(target, 0); err != syscall.EBUSY {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		return &os.PathError{Op: "umount", Path: target, Err: err}
	}
	return nil
}

// MountedUnder lists the mount points at or below dir, deepest last as the
// mount table has them.
func (m Mounter) MountedUnder(dir string) ([]string, error) {
	mi := m.MountInfo
	if mi == "" {
		mi = "/proc/self/mountinfo"
	}
	return mountinfo.Under(mi, dir)
}
