#!/usr/bin/env bash
# bench-image.sh: `make bench`. Builds a realistic OS image (a 2 GiB ext4
# filesystem holding ~700 MiB of real files from /usr, so partly sparse),
# compresses it (gzip -6, zstd -3, xz -6), serves it on 127.0.0.1 and writes
# it with imprint write-image and with the shell pipelines fuel-agent and
# curtin use, onto a loop device (root, direct I/O on) and a fresh file.
# Prints median MB/s of uncompressed output, min/max, peak RSS (largest
# process of the command, GNU time %M), the median CPU seconds of all its
# processes (user+system: the measure that holds when other work shares the
# cores) and the imprint/contender ratio.
#
# Environment: BENCH_DIR (default build/bench; artifacts are reused),
# BENCH_RUNS (default 3), BENCH_TARGETS (default "loop file"; loop needs
# root), BENCH_SIZE (default 2G), BENCH_ROOT_MIB (default 700),
# BENCH_FORMATS (default "gzip gzip-indexed zstd zstd-frames xz": the rows
# to run), BENCH_FRAME_MIB (default 4: the frame size of the multi-frame
# zstd image, made by `imprint convert-image` into x.f<MiB>.zst).
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${BENCH_DIR:-build/bench}
RUNS=${BENCH_RUNS:-3}
TARGETS=${BENCH_TARGETS:-loop file}
SIZE=${BENCH_SIZE:-2G}
ROOT_MIB=${BENCH_ROOT_MIB:-700}
FORMATS=${BENCH_FORMATS:-gzip gzip-indexed zstd zstd-frames xz}
FRAME_MIB=${BENCH_FRAME_MIB:-4}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
want() { [[ " $FORMATS " == *" $1 "* ]]; }

need=(curl gzip pigz igzip zstd xz dd bmaptool mkfs.ext4 /usr/bin/time)
missing=()
for t in "${need[@]}"; do command -v "$t" >/dev/null || missing+=("$t"); done
if ((${#missing[@]})); then
	if [[ $(id -u) -eq 0 ]]; then
		echo "bench: installing contenders (missing: ${missing[*]})"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends curl gzip pigz isal zstd xz-utils coreutils bmap-tools e2fsprogs time >/dev/null
	else
		echo "bench: missing ${missing[*]} (run as root to install)" >&2
		exit 1
	fi
fi
if [[ $(id -u) -ne 0 && " $TARGETS " == *" loop "* ]]; then
	echo "bench: not root: loop device target skipped"
	TARGETS=${TARGETS//loop/}
fi

echo "bench: building imprint and the file server"
# imprint is built as scripts/mkinitramfs.sh builds the ramdisk's, the one
# that writes images on the nodes: the node's commands only, static, no cgo,
# baseline amd64, stripped (its mapped pages count in the RSS measured)
build_imprint() { # OUT [EXTRA_TAG]
	GOOS=linux GOARCH=amd64 GOAMD64=v1 CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
		-tags "imprint_ramdisk${2:+,$2}" -o "$1" ./cmd/imprint
}
build_imprint "$DIR/imprint"
if want zstd-frames; then
	# A measuring build that does not check the frames' sha256 (it says so
	# in its log): the row beside imprint's gives the digests' cost.
	build_imprint "$DIR/imprint-nodigest" imprint_bench_nodigest
fi
go build -o "$DIR/benchserve" ./scripts/benchserve
go build -o "$DIR/indexgz" ./scripts/indexgz

img=$DIR/x.img
if [[ ! -s $img.done ]]; then
	echo "bench: building a $SIZE ext4 image with ~$ROOT_MIB MiB of files from /usr"
	root=$DIR/root
	rm -rf "$root" && mkdir -p "$root/usr/lib" "$root/usr/share"
	budget=$((ROOT_MIB * 1024 * 1024))
	# whole directories first (what research/perf-baseline.md used), then
	# single files from /usr/lib/x86_64-linux-gnu up to the budget
	for d in /usr/bin /usr/sbin /usr/include /usr/libexec /usr/lib/python3* /usr/lib/gcc /etc; do
		[[ -e $d ]] || continue
		used=$(du -sb --apparent-size "$root" | cut -f1)
		size=$(du -sb --apparent-size "$d" | cut -f1)
		((used + size <= budget)) || continue
		mkdir -p "$root$(dirname "$d")"
		cp -a "$d" "$root$(dirname "$d")/" 2>/dev/null || true
	done
	used=$(du -sb --apparent-size "$root" | cut -f1)
	while read -r size f; do
		((used + size <= budget)) || continue
		cp -a --parents "$f" "$root/" 2>/dev/null && used=$((used + size))
		((used < budget - 65536)) || break
	done < <(find /usr/lib/x86_64-linux-gnu /usr/share -xdev -type f -printf '%s %p\n' 2>/dev/null)
	echo "bench: $((used / 1048576)) MiB of files"
	rm -f "$img" && truncate -s "$SIZE" "$img"
	mkfs.ext4 -q -F -d "$root" "$img"
	rm -rf "$root"
	date >"$img.done"
fi
# each compressed artifact is made once, when a selected format needs it
make_art() { # FILE COMMAND...
	local f=$1
	shift
	[[ -s $f ]] && return 0
	echo "bench: making $(basename "$f")"
	"$@" >"$f.part" && mv "$f.part" "$f"
}
FRAMES=$DIR/x.f$FRAME_MIB.zst
SHA_GZ="" SHA_IGZ="" SHA_ZST="" SHA_XZ="" SHA_FR="" SHA_MAN=""
if want gzip; then
	make_art "$img.gz" gzip -6 -c "$img"
	[[ -s $DIR/x.bmap ]] || bmaptool -q create -o "$DIR/x.bmap" "$img"
	SHA_GZ=$(sha256sum "$img.gz" | cut -d' ' -f1)
fi
if want gzip-indexed; then
	make_art "$img.igz" sh -c '"$0" -l 6 <"$1"' "$DIR/indexgz" "$img"
	SHA_IGZ=$(sha256sum "$img.igz" | cut -d' ' -f1)
fi
if want zstd; then
	make_art "$img.zst" zstd -q -3 -T1 -c "$img"
	SHA_ZST=$(sha256sum "$img.zst" | cut -d' ' -f1)
fi
if want xz; then
	make_art "$img.xz" xz -6 -T2 -c "$img"
	SHA_XZ=$(sha256sum "$img.xz" | cut -d' ' -f1)
fi
if want zstd-frames; then
	if [[ ! -s $FRAMES || ! -s $FRAMES.manifest.json ]]; then
		echo "bench: making $(basename "$FRAMES") ($FRAME_MIB MiB frames, zstd level 3)"
		"$DIR/imprint" convert-image --frame-size "$FRAME_MIB" --level 3 "$img" "$FRAMES"
	fi
	SHA_FR=$(sha256sum "$FRAMES" | cut -d' ' -f1)
	SHA_MAN=$(sha256sum "$FRAMES.manifest.json" | cut -d' ' -f1)
	FR_SIZE=$(stat -c %s "$FRAMES")
fi
RAW=$(stat -c %s "$img")
# Go's crypto/sha256 uses the CPU's SHA extensions where there are some:
# the frames' digests cost about three times as much without.
if grep -qw sha_ni /proc/cpuinfo; then shani=yes; else shani="no (sha256 in software)"; fi
echo "bench: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), SHA extensions (sha_ni): $shani"
echo "bench: image $RAW bytes; compressed:"
for f in "$img".gz "$img".igz "$img".zst "$img".xz "$FRAMES"; do [[ -s $f ]] && echo "  $(basename "$f") $(stat -c %s "$f")"; done

rm -f "$DIR/serve.addr"
"$DIR/benchserve" -dir "$DIR" >"$DIR/serve.addr" 2>"$DIR/serve.log" &
SERVER=$!
LOOP=""
cleanup() {
	kill "$SERVER" 2>/dev/null || true
	[[ -n $LOOP ]] && losetup -d "$LOOP" 2>/dev/null || true
	rm -f "$DIR/target.img" "$DIR/loop-backing.img"
}
trap cleanup EXIT
for _ in $(seq 50); do [[ -s $DIR/serve.addr ]] && break; sleep 0.1; done
URL=http://$(cat "$DIR/serve.addr")

if [[ " $TARGETS " == *" loop "* ]]; then
	truncate -s "$RAW" "$DIR/loop-backing.img"
	LOOP=$(losetup --find --show --direct-io=on "$DIR/loop-backing.img")
	[[ $LOOP == /dev/loop* ]] || { echo "bench: losetup gave '$LOOP'" >&2; exit 1; }
	echo "bench: loop target $LOOP (direct-io on) over $DIR/loop-backing.img"
	# the only block device imprint writes here is the loop device just
	# created over the bench's own file
	export IMPRINT_DESTRUCTIVE=yes
fi

DD="dd bs=4M iflag=fullblock oflag=direct conv=fsync status=none"
# contender name @ format @ command (TARGET and FILEFLAG substituted)
contenders=(
	"imprint@gzip@$DIR/imprint write-image $URL/x.img.gz TARGET --sha256 $SHA_GZ --progress 0 FILEFLAG"
	"imprint, no zero offload@gzip@$DIR/imprint write-image $URL/x.img.gz TARGET --sha256 $SHA_GZ --progress 0 --no-zero-offload FILEFLAG"
	"curl | gzip -dc | dd@gzip@curl -s $URL/x.img.gz | gzip -dc | $DD of=TARGET"
	"curl | pigz -dc | dd@gzip@curl -s $URL/x.img.gz | pigz -dc | $DD of=TARGET"
	"curl | igzip -dc | dd@gzip@curl -s $URL/x.img.gz | igzip -dc | $DD of=TARGET"
	"imprint@gzip-indexed@$DIR/imprint write-image $URL/x.img.igz TARGET --sha256 $SHA_IGZ --progress 0 FILEFLAG"
	"imprint, no checksum@gzip-indexed@$DIR/imprint write-image $URL/x.img.igz TARGET --progress 0 FILEFLAG"
	"curl | igzip -dc | dd@gzip-indexed@curl -s $URL/x.img.igz | igzip -dc | $DD of=TARGET"
	"bmaptool copy@gzip@bmaptool -q copy --bmap $DIR/x.bmap $URL/x.img.gz TARGET"
	"imprint@zstd@$DIR/imprint write-image $URL/x.img.zst TARGET --sha256 $SHA_ZST --progress 0 FILEFLAG"
	"curl | zstd -dc | dd@zstd@curl -s $URL/x.img.zst | zstd -dc | $DD of=TARGET"
	"imprint@xz@$DIR/imprint write-image $URL/x.img.xz TARGET --sha256 $SHA_XZ --progress 0 FILEFLAG"
	"curl | xz -dc | dd@xz@curl -s $URL/x.img.xz | xz -dc | $DD of=TARGET"
)
# multi-frame zstd: the same file for every row. imprint authenticates the
# whole image by the manifest's sha256 (the frames' digests cover every
# byte); the --sha256 row also hashes the whole file, the last row checks
# only the frames against an unauthenticated manifest. The measuring build
# without frame digests and `curl | zstd -dc | dd` run right after imprint,
# so that each round's pairs share the machine's load (ratios per round). The mirror row starts
# a server that dies after sending half the file; imprint must finish from
# the main server (--mirror) at the frame where the first died.
FR=$(basename "$FRAMES")
contenders+=(
	"imprint@zstd-frames@$DIR/imprint write-image $URL/$FR TARGET --manifest-sha256 $SHA_MAN --progress 0 FILEFLAG"
	"imprint, no frame digests (measuring build)@zstd-frames@$DIR/imprint-nodigest write-image $URL/$FR TARGET --manifest-sha256 $SHA_MAN --progress 0 FILEFLAG"
	"curl | zstd -dc | dd@zstd-frames@curl -s $URL/$FR | zstd -dc | $DD of=TARGET"
	"imprint, --sha256 of the file@zstd-frames@$DIR/imprint write-image $URL/$FR TARGET --sha256 $SHA_FR --progress 0 FILEFLAG"
	"imprint, frame digests only@zstd-frames@$DIR/imprint write-image $URL/$FR TARGET --progress 0 FILEFLAG"
	"imprint, GOMAXPROCS=1@zstd-frames@GOMAXPROCS=1 $DIR/imprint write-image $URL/$FR TARGET --manifest-sha256 $SHA_MAN --progress 0 FILEFLAG"
	"imprint, GOMAXPROCS=2@zstd-frames@GOMAXPROCS=2 $DIR/imprint write-image $URL/$FR TARGET --manifest-sha256 $SHA_MAN --progress 0 FILEFLAG"
	"imprint, mirror killed half-way@zstd-frames@$DIR/benchserve -dir $DIR -die-after $((${FR_SIZE:-2} / 2)) >$DIR/die.addr 2>>$DIR/die.log & for i in \$(seq 50); do [[ -s $DIR/die.addr ]] && break; sleep 0.02; done; $DIR/imprint write-image http://\$(cat $DIR/die.addr)/$FR TARGET --mirror $URL/$FR --manifest-sha256 $SHA_MAN --progress 0 FILEFLAG; rc=\$?; kill %1 2>/dev/null; rm -f $DIR/die.addr; exit \$rc"
	"curl | zstd -T0 -dc | dd@zstd-frames@curl -s $URL/$FR | zstd -T0 -dc | $DD of=TARGET"
)

results=$DIR/results.txt
: >"$results"
for round in $(seq "$RUNS"); do
	# imprint and its measuring build without frame digests swap places
	# every other round, so that neither always runs first
	order=("${contenders[@]}")
	if ((round % 2 == 0)); then
		for i in "${!order[@]}"; do
			case ${order[i]} in
			"imprint@zstd-frames@"*) a=$i ;;
			"imprint, no frame digests"*) b=$i ;;
			esac
		done
		if [[ -n ${a:-} && -n ${b:-} ]]; then
			t=${order[a]} && order[a]=${order[b]} && order[b]=$t
		fi
	fi
	for tgt in $TARGETS; do
		for c in "${order[@]}"; do
			IFS=@ read -r name fmt cmd <<<"$c"
			want "$fmt" || continue
			if [[ $tgt == loop ]]; then
				dev=$LOOP
				cmd=${cmd//FILEFLAG/}
				# every row starts on the same device: the backing file
				# emptied (all holes). Without this, a row after one that
				# wrote every byte (dd) pays for punching the holes its
				# zero runs leave, and the row after imprint does not.
				blkdiscard -f "$LOOP" 2>/dev/null || { echo "bench: blkdiscard $LOOP failed" >&2; exit 1; }
			else
				dev=$DIR/target.img
				rm -f "$dev"
				cmd=${cmd//FILEFLAG/--file}
			fi
			cmd=${cmd//TARGET/$dev}
			sync
			t0=$(date +%s%N)
			if ! /usr/bin/time -f '%M %U %S' -o "$DIR/time.out" bash -o pipefail -c "$cmd" >"$DIR/run.log" 2>&1; then
				echo "bench: FAILED: $cmd" >&2
				tail -5 "$DIR/run.log" >&2
				exit 1
			fi
			t1=$(date +%s%N)
			read -r rss usr sys < <(tail -1 "$DIR/time.out")
			cpu=$(awk -v u="$usr" -v s="$sys" 'BEGIN{printf "%.2f", u + s}')
			mbs=$(awk -v b="$RAW" -v ns=$((t1 - t0)) 'BEGIN{printf "%.0f", b / (ns / 1e9) / 1e6}')
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tgt" "$fmt" "$name" "$mbs" "$rss" "$cpu" "$round" >>"$results"
			printf 'round %d  %-5s %-5s %-22s %6s MB/s  %6d KiB RSS  %5s s CPU\n' "$round" "$tgt" "$fmt" "$name" "$mbs" "$rss" "$cpu"
		done
	done
done

echo
echo "Median of $RUNS runs, MB/s of uncompressed output ($RAW bytes), peak RSS of the largest process:"
echo
# the median of a space-separated list, for both summaries below
AWK_MEDIAN='
function median(s,   a, n, i, j, t) {
	n = split(s, a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
'
awk -F'\t' "$AWK_MEDIAN"'
function minv(s,   a, n, i, m) { n = split(s, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] + 0 < m + 0) m = a[i]; return m }
function maxv(s,   a, n, i, m) { n = split(s, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] + 0 > m + 0) m = a[i]; return m }
{
	k = $1 SUBSEP $2 SUBSEP $3
	if (!(k in mbs)) order[++nk] = k
	mbs[k] = mbs[k] " " $4
	rss[k] = rss[k] " " $5
	cpu[k] = cpu[k] " " $6
}
END {
	for (i = 1; i <= nk; i++) { split(order[i], f, SUBSEP); if (f[3] == "imprint") imp[f[1] SUBSEP f[2]] = median(mbs[order[i]]) }
	printf "| target | format | command | median MB/s | min | max | peak RSS MiB | CPU s | imprint / this |\n"
	printf "|---|---|---|---|---|---|---|---|---|\n"
	for (i = 1; i <= nk; i++) {
		split(order[i], f, SUBSEP)
		name = f[3]; gsub(/\|/, "\\|", name)
		m = median(mbs[order[i]])
		r = imp[f[1] SUBSEP f[2]]
		ratio = (f[3] == "imprint" || m == 0) ? "—" : sprintf("%.2f×", r / m)
		printf "| %s | %s | `%s` | %.0f | %s | %s | %.1f | %.2f | %s |\n", f[1], f[2], name, m, minv(mbs[order[i]]), maxv(mbs[order[i]]), maxv(rss[order[i]]) / 1024, median(cpu[order[i]]), ratio
	}
}' "$results"
if want zstd-frames; then
	# Paired per round (the rows ran seconds apart, under the same load):
	# imprint against the measuring build without frame digests, and
	# against `curl | zstd -dc | dd` on the same file.
	echo
	awk -F'\t' "$AWK_MEDIAN"'
	$2 == "zstd-frames" { k = $1 SUBSEP $7; m[k, $3] = $4; c[k, $3] = $6; keys[k] = $1 }
	END {
		for (k in keys) {
			t = keys[k]
			if ((k, "imprint") in m && (k, "imprint, no frame digests (measuring build)") in m) {
				nd = k SUBSEP "imprint, no frame digests (measuring build)"
				wall[t] = wall[t] " " (m[nd] / m[k, "imprint"] - 1) * 100
				cpu[t] = cpu[t] " " (c[k, "imprint"] / c[nd] - 1) * 100
			}
			if ((k, "imprint") in m && (k, "curl | zstd -dc | dd") in m) {
				ratio[t] = ratio[t] " " m[k, "imprint"] / m[k, "curl | zstd -dc | dd"]
			}
		}
		for (t in wall) printf "%s: frame digests cost (median of rounds) %.1f%% of wall time, %.1f%% of CPU time; per round:%s (wall %%)\n", t, median(wall[t]), median(cpu[t]), wall[t]
		for (t in ratio) printf "%s: imprint / curl | zstd -dc | dd, same round: median %.2fx; per round:%s\n", t, median(ratio[t]), ratio[t]
	}' "$results"
fi
