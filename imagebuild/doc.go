// Package imagebuild builds target OS images the way fuel-agent's
// fa_build_image does (docs/fuel-agent.md §12), with diskimage-builder-style
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
// # Shrinking
//
// After the chroot is left, each filesystem is made as small as it can
// be, so the image writer copies and the nodes inflate only what is
// used. ext2/3/4 shrink in place (e2fsck -fy, resize2fs -M, the file
// truncated to the block count dumpe2fs reports). xfs cannot shrink, so
// the shrink-xfs step copies it: the size of the new filesystem is the
// content (blocks in use minus those an empty mkfs.xfs of the same size
// uses) plus what an empty filesystem of the new size needs (log, AG
// headers: probed with mkfs.xfs on sparse files, the original options)
// plus a margin for xfs's reserve pool and per-AG reservations; at
// least 300 MiB, mkfs.xfs's minimum. The new filesystem is made with the
// original's label, UUID and options, filled by xfsdump | xfsrestore
// (every attribute namespace, ACLs, inode flags, holes, hard links,
// device nodes; nanosecond times put back afterwards), checked with
// xfs_repair -n and renamed over the original. The image writer grows
// either back to the partition (resize2fs; xfs_growfs on a temporary
// mount).
//
// # Elements
//
// An element is a directory with hook directories, as in
// diskimage-builder: extra-data.d (host, TMP_HOOKS_PATH), pre-install.d,
// install.d, post-install.d (in the chroot), block-device.d (host,
// IMAGE_BLOCK_DEVICE), finalise.d (chroot) and cleanup.d (host,
// TARGET_ROOT). The hooks of all elements are merged per phase and run in
// C-locale lexical order of their file names, like dib-run-parts.
// Elements are named (found through the ELEMENTS_PATH search path) or given
// as directories; their element-deps are added before them (a cycle or a
// missing element is an error). environment.d files are sourced (bash,
// exported) before every hook; root.d hooks (host, TARGET_ROOT) make the
// root tree instead of debootstrap; first-boot.d hooks are installed in
// the image and run once on its first boot by imprint-first-boot.service,
// before rc.local and cloud-init's final stage.
//
// # Octavia
//
// PrepareOctavia maps Octavia's diskimage-create.sh command line (the
// amphora image: -a -b -c -i -o -r -s -t -w, DIB_* variables) onto the same
// build: the default is a Debian bookworm amd64 qcow2 of 5 GB with the
// amphora packages and the built-in haproxy element (WriteBuiltinElements).
//
// # Outputs
//
// Each filesystem image is written to <output>/<basename(uri)> as gzip
// made of independent members (one per 4 MiB of input, so a reader may
// decode in parallel; every gzip reader accepts it) or zstd made of
// independent frames with <image>.manifest.json beside it
// (imagewriter.WriteFrames: the agent decodes the frames on every core and
// checks each; it finds the manifest by itself when the uri ends in .zst),
// and the metadata YAML to <output>/<stem of the root image>.yaml with exactly
// the keys of docs/fuel-agent.md §13. Optionally a whole-disk image (raw or qcow2,
// MBR with grub's boot code) and a rootfs tarball for `docker import`.
package imagebuild
