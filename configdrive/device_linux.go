package configdrive

import (
	"os"

	"golang.org/x/sys/unix"
)

func openExclusive(dev string) (*os.File, error) {
	return os.OpenFile(dev, os.O_RDWR|unix.O_EXCL|unix.O_CLOEXEC, 0)
}

func logicalSectorSize(f *os.File) (int, error) {
	return unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
}
