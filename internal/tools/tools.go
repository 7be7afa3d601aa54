//go:build tools

// Package tools pins the modules the build uses outside ordinary imports: the
// u-root commands baked into the bootstrap initramfs, and libraries whose
// first importer may land later than go.mod.
package tools

import (
	_ "github.com/diskfs/go-diskfs"
	_ "github.com/go-chi/chi/v5"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/kdomanski/iso9660"
	_ "github.com/klauspost/compress/zstd"
	_ "github.com/ulikunitz/xz"
	_ "gopkg.in/yaml.v3"
	_ "sigs.k8s.io/yaml"

	_ "github.com/u-root/u-root/cmds/core/cat"
	_ "github.com/u-root/u-root/cmds/core/cp"
	_ "github.com/u-root/u-root/cmds/core/dhclient"
	_ "github.com/u-root/u-root/cmds/core/dmesg"
	_ "github.com/u-root/u-root/cmds/core/gosh"
	_ "github.com/u-root/u-root/cmds/core/init"
	_ "github.com/u-root/u-root/cmds/core/ip"
	_ "github.com/u-root/u-root/cmds/core/ls"
	_ "github.com/u-root/u-root/cmds/core/lsmod"
	_ "github.com/u-root/u-root/cmds/core/mkdir"
	_ "github.com/u-root/u-root/cmds/core/mount"
	_ "github.com/u-root/u-root/cmds/core/ping"
	_ "github.com/u-root/u-root/cmds/core/poweroff"
	_ "github.com/u-root/u-root/cmds/core/ps"
	_ "github.com/u-root/u-root/cmds/core/rm"
	_ "github.com/u-root/u-root/cmds/core/sync"
	_ "github.com/u-root/u-root/cmds/core/umount"
	_ "github.com/u-root/u-root/cmds/core/wget"
	_ "github.com/u-root/u-root/cmds/exp/modprobe"
)
