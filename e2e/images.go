package e2e

import (
	"github.com/imprint-dev/imprint/controller"
	"github.com/imprint-dev/imprint/internal/vmtest"
)

// TargetImages are the controller's images for a target image built by
// vmtest.BuildTargetImage: Fuel's "/" ext4 and "/boot" ext2 pair.
func TargetImages(ti vmtest.TargetImage) []controller.Image {
	return []controller.Image{
		{MountPoint: "/", Path: ti.Root, Format: "ext4"},
		{MountPoint: "/boot", Path: ti.Boot, Format: "ext2"},
	}
}
