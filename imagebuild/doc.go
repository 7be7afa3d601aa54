// Package imagebuild builds target OS images the way fuel-agent's
// fa_build_image does (fuel-agent.md §6), with diskimage-builder-style
// elements: one filesystem image per mount point of the Fuel build JSON,
// each on its own loop device, debootstrapped and configured in a chroot,
// shrunk to its minimum, compressed, and described by the metadata YAML the
// image writer reads (raw_size, raw_md5).
//
// # Plan and apply
//
// Plan is a pure function from a validated Config and Options to the
// ordered list of Steps (commands, mounts, files written, hooks run).
// Steps are data: loop devices are named symbolically ({loop:/boot}) and
// resolved by the Executor, which performs them through small interfaces
// (Runner for commands, Mounter for mount(2)) and keeps a cleanup stack:
// whatever was mounted, attached or started is undone on success, on
// failure and on cancellation (SIGTERM), chroot processes first (any
// process whose /proc/PID/root lies inside the chroot is killed). A
// failure is a *StepError naming the step.
//
// # Elements
//
// An element is a directory with hook directories, as in
// diskimage-builder: extra-data.d (host, TMP_HOOKS_PATH), pre-install.d,
// install.d, post-install.d (in the chroot), block-device.d (host,
// IMAGE_BLOCK_DEVICE), finalise.d (chroot) and cleanup.d (host,
// TARGET_ROOT). The hooks of all elements are merged per phase and run in
// C-locale lexical order of their file names, like dib-run-parts.
//
// # Outputs
//
// Each filesystem image is written to <output>/<basename(uri)> as gzip
// made of independent members (one per 8 MiB of input, so a reader may
// decode in parallel; every gzip reader accepts it) or zstd, and the
// metadata YAML to <output>/<stem of the root image>.yaml with exactly the
// keys of fuel-agent.md §6.3. Optionally a whole-disk image (raw or qcow2,
// MBR with grub's boot code) and a rootfs tarball for `docker import`.
package imagebuild
