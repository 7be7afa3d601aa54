//go:build !linux

package configdrive

import (
	"errors"
	"os"
)

func openExclusive(dev string) (*os.File, error) {
	return nil, errors.New("writing to block devices is only supported on Linux")
}

func logicalSectorSize(*os.File) (int, error) { return SectorSize512, nil }
