package partition

// DefaultLVMConfig is the lvm --config text for a ramdisk without udev
// (qemu-uroot.md §6): LVM creates its own /dev/mapper and /dev/VG nodes
// (udev_rules = 0; without it lvcreate fails with "device not cleared"),
// does not wait for udev, scans /dev itself, and starts no monitoring or
// event-based activation.
const DefaultLVMConfig = `activation { udev_rules = 0 udev_sync = 0 monitoring = 0 } ` +
	`devices { obtain_device_list_from_udev = 0 external_device_info_source = "none" } ` +
	`global { use_lvmetad = 0 event_activation = 0 }`

// lvmArgv is `lvm CMD --config CONF ARGS...` (no --config when conf is empty).
func lvmArgv(cmd, conf string, args ...string) []string {
	argv := []string{"lvm", cmd}
	if conf != "" {
		argv = append(argv, "--config", conf)
	}
	return append(argv, args...)
}
