#!/usr/bin/env bash
# mkinitramfs.sh builds the imprint bootstrap ramdisk (`make initramfs`):
#
#   build/bootstrap/<flavour>/vmlinuz            the Debian kernel
#   build/bootstrap/<flavour>/initramfs.cpio.gz  u-root + imprint + tools + modules
#   build/bootstrap/<flavour>/kernel-release     the kernel's `uname -r`
#
# The initramfs is three concatenated cpio archives (the kernel unpacks them in
# order), so a change to one part does not rebuild the others:
#   base.cpio     u-root's init and console commands (busybox mode), the host
#                 storage tools with their shared libraries, lvm.conf, mke2fs.conf;
#                 /bin/uinit -> /bbin/imprint (`imprint ramdisk-init`)
#   modules.cpio  the kernel modules with their dependencies, modules.dep/alias
#                 (depmod -b) and etc/imprint/modules.conf, the always-load list
#   imprint.cpio  the static imprint binary at /bbin/imprint
#
# Environment:
#   KERNEL_FLAVOUR  amd64 (default: Debian's generic linux-image-amd64, which has
#                   the drivers real servers need) or cloud (linux-image-cloud-amd64,
#                   VM drivers only: smaller and faster to boot; the VM tests use it)
#   BUILD           output root (default build); base.cpio is shared by the
#                   flavours in build/bootstrap/common/
#
# Kernel packages are looked up through the flavour's metapackage (never a
# hard-coded version), fetched with `apt-get download` and unpacked with
# dpkg-deb into build/kernel/; everything is cached and keyed by its inputs, so
# a second run only re-packs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
# The Go release go.mod's toolchain line names (security fixes), fetched
# through the module proxy even where GOTOOLCHAIN=local is the default.
export GOTOOLCHAIN=auto
ROOT=$PWD

FLAVOUR=${KERNEL_FLAVOUR:-amd64}
BUILD=${BUILD:-build}
case $FLAVOUR in
amd64 | generic) FLAVOUR=amd64 META=linux-image-amd64 ;;
cloud | cloud-amd64) FLAVOUR=cloud META=linux-image-cloud-amd64 ;;
*)
	echo "mkinitramfs: KERNEL_FLAVOUR=$FLAVOUR: want amd64 or cloud" >&2
	exit 2
	;;
esac

OUT=$BUILD/bootstrap/$FLAVOUR
KDIR=$BUILD/kernel
TOOLS=$BUILD/tools
mkdir -p "$OUT" "$KDIR/debs" "$TOOLS"

log() { printf 'mkinitramfs: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}
need() { command -v "$1" >/dev/null || die "$1 not found (install the Debian package $2; see scripts/apt-packages.txt)"; }
need apt-get apt
need dpkg-deb dpkg
need depmod kmod
need cpio cpio
need gzip gzip
need go golang

# --- kernel -------------------------------------------------------------------
kpkg_of() { apt-cache depends "$1" 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}'; }
KPKG=$(kpkg_of "$META")
if [[ -z $KPKG && $(id -u) -eq 0 ]]; then
	log "apt-get update (no package lists know $META)"
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	KPKG=$(kpkg_of "$META")
fi
[[ -n $KPKG ]] || die "cannot resolve $META to a kernel package (apt-cache depends $META; run apt-get update)"
KVER=${KPKG#linux-image-}
KROOT=$KDIR/$KPKG
if [[ ! -f $KROOT/.extracted ]]; then
	deb=$(ls "$KDIR/debs/${KPKG}_"*.deb 2>/dev/null | head -n1 || true)
	if [[ -z $deb ]]; then
		log "downloading $KPKG"
		(cd "$KDIR/debs" && apt-get download -q "$KPKG" 2>&1 | grep -v 'unsandboxed' >&2) ||
			die "apt-get download $KPKG failed"
		deb=$(ls "$KDIR/debs/${KPKG}_"*.deb | head -n1)
	fi
	rm -rf "$KROOT"
	mkdir -p "$KROOT"
	dpkg-deb -x "$deb" "$KROOT"
	depmod -b "$KROOT" "$KVER"
	touch "$KROOT/.extracted"
fi
MODSRC=$KROOT/lib/modules/$KVER
[[ -f $MODSRC/modules.dep ]] || die "$MODSRC/modules.dep missing (depmod -b $KROOT $KVER)"
cp "$KROOT/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
echo "$KVER" >"$OUT/kernel-release"

# --- modules ------------------------------------------------------------------
# Hardware drivers: loaded by `imprint ramdisk-init` when a device's modalias
# matches (modules.alias), so a server only loads what it has. bonding and
# 8021q have no modalias: the network step loads them when the node's network
# document has a bond or a VLAN (a u-root image has no /sbin/modprobe for the
# kernel's own request_module).
DRIVERS=(
	ahci nvme megaraid_sas mpt3sas virtio_pci virtio_blk virtio_scsi sd_mod sr_mod
	e1000e igb ixgbe i40e ice mlx5_core bnxt_en tg3 virtio_net e1000
	virtio_rng
	bonding 8021q
)
# Always loaded, in this order (crc32c_generic first: on the generic kernel
# ext4/xfs ask for crypto-crc32c through /sbin/modprobe, which a u-root image
# does not have).
ALWAYS=(
	crc32c_generic dm_mod dm_mirror dm_snapshot dm_multipath dm_round_robin md_mod raid0 raid1 raid10 linear
	ext4 xfs vfat nls_cp437 nls_ascii nls_iso8859_1 nls_utf8 isofs loop
)
# Staged but not in the always-load list: loaded by ramdisk-init's efivars
# step only under UEFI (the module refuses to load under BIOS).
ONDEMAND=(efivarfs)
# Modules a flavour may lack (the cloud kernel has no bare-metal drivers).
modfile() { # name -> relative path from modules.dep, matching - and _ alike
	local n=${1//-/_}
	awk -F: -v n="$n" '{ f=$1; sub(/.*\//, "", f); sub(/\.ko(\.[a-z]+)?$/, "", f); gsub(/-/, "_", f); if (f == n) { print $1; exit } }' "$MODSRC/modules.dep"
}
builtin() { grep -qE "/${1//_/[-_]}\.ko$" "$MODSRC/modules.builtin"; }

MODSTAMP=$(printf '%s\n' "$KPKG" "${DRIVERS[@]}" -- "${ALWAYS[@]}" -- "${ONDEMAND[@]}" | cat - "$0" | sha256sum | cut -c1-16)
MODCPIO=$OUT/modules-$MODSTAMP.cpio
if [[ ! -f $MODCPIO ]]; then
	STAGE=$OUT/modules-stage
	rm -rf "$STAGE"
	mkdir -p "$STAGE/lib/modules/$KVER" "$STAGE/etc/imprint"
	declare -A seen=()
	want=()
	missing=()
	for m in "${DRIVERS[@]}" "${ALWAYS[@]}" "${ONDEMAND[@]}"; do
		p=$(modfile "$m")
		if [[ -n $p ]]; then
			want+=("$p")
		elif ! builtin "$m"; then
			missing+=("$m")
		fi
	done
	if ((${#missing[@]})); then
		if [[ $FLAVOUR == amd64 ]]; then
			die "kernel $KVER lacks modules: ${missing[*]}"
		fi
		log "kernel $KVER ($FLAVOUR) lacks: ${missing[*]} (fine for VMs)"
	fi
	# Dependency closure through modules.dep.
	while ((${#want[@]})); do
		p=${want[0]}
		want=("${want[@]:1}")
		[[ -n ${seen[$p]:-} ]] && continue
		seen[$p]=1
		mkdir -p "$STAGE/lib/modules/$KVER/$(dirname "$p")"
		cp "$MODSRC/$p" "$STAGE/lib/modules/$KVER/$p"
		read -r -a deps < <(awk -F': *' -v p="$p" '$1 == p { print $2; exit }' "$MODSRC/modules.dep")
		want+=("${deps[@]}")
	done
	for f in modules.builtin modules.builtin.modinfo modules.order; do
		[[ -f $MODSRC/$f ]] && cp "$MODSRC/$f" "$STAGE/lib/modules/$KVER/"
	done
	depmod -b "$STAGE" "$KVER"
	{
		echo "# Modules imprint ramdisk-init always loads, in order (hardware drivers"
		echo "# are loaded by matching /sys/devices/**/modalias against modules.alias)."
		for m in "${ALWAYS[@]}"; do
			if [[ -n $(modfile "$m") ]]; then echo "$m"; fi
		done
	} >"$STAGE/etc/imprint/modules.conf"
	log "staged ${#seen[@]} modules ($(du -sh "$STAGE/lib/modules" | cut -f1))"
	rm -f "$OUT"/modules-*.cpio
	(cd "$STAGE" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$MODCPIO.tmp"
	mv "$MODCPIO.tmp" "$MODCPIO"
	rm -rf "$STAGE"
fi

# --- u-root base --------------------------------------------------------------
UROOT_VERSION=$(go list -m -f '{{.Version}}' github.com/u-root/u-root)
UROOT=$TOOLS/u-root-$UROOT_VERSION
if [[ ! -x $UROOT ]]; then
	log "building u-root $UROOT_VERSION"
	GOBIN=$ROOT/$TOOLS/gobin go install "github.com/u-root/u-root@$UROOT_VERSION"
	mv "$TOOLS/gobin/u-root" "$UROOT"
fi
# Console commands for an operator debugging a node; pinned in internal/tools.
CMDS=($(sed -n 's|^\s*_ "\(github.com/u-root/u-root/cmds/[^"]*\)"|\1|p' internal/tools/tools.go))
HOSTBINS=(
	/sbin/lvm /sbin/dmsetup /sbin/mdadm /sbin/multipath /sbin/multipathd /sbin/kpartx
	/sbin/mke2fs /sbin/mkfs.ext4 /sbin/e2fsck /sbin/fsck.ext4 /sbin/resize2fs /sbin/tune2fs /sbin/dumpe2fs
	/sbin/mkfs.xfs /sbin/xfs_growfs /sbin/xfs_repair
	/sbin/mkfs.fat /sbin/mkfs.vfat /sbin/fsck.fat /sbin/fsck.vfat
	/sbin/blkid /sbin/wipefs /sbin/sgdisk /sbin/mkswap
	/bin/efibootmgr
	/usr/bin/flock
)
for b in "${HOSTBINS[@]}"; do [[ -e $b ]] || die "$b missing (install lvm2 mdadm multipath-tools kpartx e2fsprogs xfsprogs dosfstools util-linux gdisk efibootmgr)"; done
# The base is the same for every flavour: built once into build/bootstrap/common.
COMMON=$BUILD/bootstrap/common
ETC=$COMMON/etc
mkdir -p "$ETC/lvm"
# LVM without udev: udev_rules=0 makes LVM create /dev/mapper nodes itself
# (without it lvcreate fails "device not cleared").
cat >"$ETC/lvm/lvm.conf" <<'EOF'
# imprint bootstrap: no udev in the ramdisk.
devices {
	obtain_device_list_from_udev = 0
	external_device_info_source = "none"
}
activation {
	udev_sync = 0
	udev_rules = 0
	monitoring = 0
}
global {
	event_activation = 0
}
EOF
# dm-multipath without udev: WWIDs from sysfs (VPD page 0x83), a map only
# for a WWID seen on two paths or more (a single-path disk stays itself).
cat >"$ETC/multipath.conf" <<'EOF'
# imprint bootstrap: no udev in the ramdisk.
defaults {
	user_friendly_names yes
	find_multipaths yes
	uid_attribute ""
	enable_foreign "^$"
}
EOF
# The path checkers and prioritizers libmultipath loads with dlopen.
MPLIBS=($(ls /lib/multipath/libcheck*.so /lib/multipath/libprio*.so 2>/dev/null))
[[ ${#MPLIBS[@]} -gt 0 ]] || die "/lib/multipath/*.so missing (install multipath-tools)"
cp /etc/mke2fs.conf "$ETC/mke2fs.conf"
BASESTAMP=$( (
	echo "$UROOT_VERSION"
	go env GOVERSION
	printf '%s\n' "${CMDS[@]}"
	for f in $(for b in "${HOSTBINS[@]}"; do readlink -f "$b"; done) go.sum "$ETC/lvm/lvm.conf" "$ETC/mke2fs.conf" "$ETC/multipath.conf" "${MPLIBS[@]}"; do
		sha256sum <"$f"
	done
) | sha256sum | cut -c1-16)
BASECPIO=$COMMON/base-$BASESTAMP.cpio
if [[ ! -f $BASECPIO ]]; then
	log "u-root build (${#CMDS[@]} commands, ${#HOSTBINS[@]} host tools)"
	files=()
	for b in "${HOSTBINS[@]}"; do files+=(-files "$b"); done
	files+=(-files "$ETC/lvm/lvm.conf:etc/lvm/lvm.conf" -files "$ETC/mke2fs.conf:etc/mke2fs.conf" -files "$ETC/multipath.conf:etc/multipath.conf")
	for l in "${MPLIBS[@]}"; do files+=(-files "$l"); done
	# uinit: /bin/uinit -> /bbin/imprint; argv[0] "uinit" selects ramdisk-init.
	# GOROOT explicitly: u-root built under `make` (GOFLAGS=-trimpath) has no
	# GOROOT of its own and would look for the go tool at "bin/go".
	GOROOT=$(go env GOROOT) GOFLAGS= GOOS=linux GOARCH=amd64 GOAMD64=v1 CGO_ENABLED=0 "$UROOT" -o "$BASECPIO.tmp" \
		-uinitcmd="/bbin/imprint --i-am-the-ramdisk" -defaultsh=gosh \
		"${files[@]}" "${CMDS[@]}" 2>&1 | grep -v 'not using one of the recommended Go versions' >&2 || true
	[[ -s $BASECPIO.tmp ]] || die "u-root build failed"
	rm -f "$COMMON"/base-*.cpio
	mv "$BASECPIO.tmp" "$BASECPIO"
fi

# --- imprint ------------------------------------------------------------------
VERSION=$(git describe --always --dirty 2>/dev/null || echo dev)
# the node's commands only (-tags imprint_ramdisk): no controller, operator
# or image-builder code, nor SQLite, PostgreSQL and BMC clients (half the size)
GOOS=linux GOARCH=amd64 GOAMD64=v1 CGO_ENABLED=0 go build -trimpath -tags imprint_ramdisk \
	-ldflags "-s -w -X main.version=$VERSION" -o "$OUT/imprint" ./cmd/imprint
IMPSTAGE=$OUT/imprint-stage
rm -rf "$IMPSTAGE"
mkdir -p "$IMPSTAGE/bbin"
cp "$OUT/imprint" "$IMPSTAGE/bbin/imprint"
# fuel-agent's console scripts, as Astute runs them ("flock -n
# /var/lock/provision.lock provision"): names of the multi-call binary on
# u-root's PATH (/bbin).
FUEL_AGENT_NAMES=(provision fa_partition fa_configdrive fa_copyimage fa_bootloader)
for n in "${FUEL_AGENT_NAMES[@]}"; do ln -s imprint "$IMPSTAGE/bbin/$n"; done
mkdir -p "$IMPSTAGE/var/lock" # Astute's flock target
(cd "$IMPSTAGE" && printf '%s\n' bbin bbin/imprint "${FUEL_AGENT_NAMES[@]/#/bbin/}" var var/lock | cpio -o -H newc -R 0:0 --quiet) >"$OUT/imprint.cpio"
rm -rf "$IMPSTAGE"

# --- assemble -----------------------------------------------------------------
if command -v pigz >/dev/null; then GZ=(pigz -6); else GZ=(gzip -6); fi
cat "$BASECPIO" "$MODCPIO" "$OUT/imprint.cpio" | "${GZ[@]}" >"$OUT/initramfs.cpio.gz.tmp"
mv "$OUT/initramfs.cpio.gz.tmp" "$OUT/initramfs.cpio.gz"
raw=$(($(stat -c %s "$BASECPIO") + $(stat -c %s "$MODCPIO") + $(stat -c %s "$OUT/imprint.cpio")))
gz=$(stat -c %s "$OUT/initramfs.cpio.gz")
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "initramfs: $OUT/initramfs.cpio.gz $(mib "$gz") gzipped ($(mib "$raw") unpacked), kernel $KVER ($FLAVOUR): $OUT/vmlinuz"
if ((gz > 40 * 1048576)); then log "warning: the image is over the 40 MiB budget"; fi
