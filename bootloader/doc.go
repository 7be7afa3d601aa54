// Package bootloader is the provisioning job's bootloader step
// (fuel-agent's do_bootloader, docs/fuel-agent.md §11): it mounts the
// target's filesystems by depth under a directory, binds /dev, /proc and
// /sys, writes /etc/fstab by UUID, edits /etc/default/grub
// (GRUB_CMDLINE_LINUX = pm_data.kernel_params, GRUB_TIMEOUT=10), runs
// grub-mkconfig and grub-install (BIOS, i386-pc) on every disk the plan
// marks inside the target with chroot, writes the persistent NIC udev rules,
// and unmounts everything in reverse order — also on failure, never lazily.
//
// Commands go through a Runner and mounts through a Mounter, both declared
// here; Exec and SysMounter are the real ones, tests use fakes.
package bootloader
