// Package imagewriter streams an OS image (raw, gzip, zstd or xz) from
// http, https or file onto a block device: verified inline, resumable,
// never leaving a half-written bootable disk behind. It is the agent's
// image_data step and `imprint write-image` (fuel-agent's fa_copyimage).
//
// # Pipeline
//
// Three goroutines joined by channels of reusable buffers:
//
//	download (8 × 512 KiB chunks, sha256/sha512 of the bytes as stored)
//	  → decompress (detects the container from magic bytes; klauspost gzip
//	    or zstd, `xz -dc` or ulikunitz/xz) into 4 × 4 MiB aligned buffers
//	  → write (md5 of the image for Fuel's raw_md5, O_DIRECT pwrite,
//	    fdatasync every 256 MiB, progress, "Next chunk: N" lines).
//
// An indexed gzip image (independent members whose headers give their
// lengths: IndexedGzipWriter's "IM" field, or BGZF's "BC") is inflated on
// Options.GzipWorkers goroutines, member by member, and reassembled in order
// (gzindex.go); to every other reader it is one ordinary gzip stream. A plain
// single-stream gzip has no restart points and is inflated on one core.
//
// A multi-frame zstd image (frames.go, framewrite.go: independent zstd
// frames of a fixed uncompressed size, with <image>.manifest.json beside it
// listing each frame's offset, lengths and sha256, and which frames are all
// zeroes) takes another path when its manifest is found (Request.ManifestURL,
// or "<URL>.manifest.json" for a .zst URL). One goroutine reads the frames in
// order, with a Range request from a frame boundary; Options.FrameWorkers
// goroutines decode them and check each frame's sha256 before it is handed
// on; the write stage takes them in order. A frame that fails its check
// never reaches the target. Zero frames are neither downloaded (unless the
// file's sha256 was asked for) nor decoded: the target zeroes them. When a
// connection breaks, stalls or answers wrongly, the frame is read again from
// its first byte on the next URL of Request.Mirrors; a mirror whose file has
// another size than the manifest says (truncated, or another image) is
// dropped. Memory: FrameWorkers+2 decoded frames and FrameWorkers+1
// compressed ones. Request.ManifestSHA256 anchors the manifest (and so the
// whole image); Request.SHA256 of the file is checked by hashing every frame
// in order (zero frames then decoded too, to prove their mark). The raw_md5 of Fuel metadata found beside the image is not
// computed for such an image (the frame digests cover it); raw_size is
// checked against the manifest.
//
// Memory is the buffers (about 22 MiB) plus the decoder's window, whatever
// the image size. O_DIRECT is used when the target accepts it (a tmpfs file
// does not: buffered writes then); an unaligned tail goes through a second,
// buffered descriptor; the final fdatasync covers both.
//
// # Verification
//
// SHA256/SHA512 cover the downloaded bytes (sha256sum IMAGE.gz). MD5 and
// RawSize cover the decompressed image, as Fuel's metadata raw_md5/raw_size
// (docs/fuel-agent.md §9: FuelMetadataURLs derives <stem>.yaml, entries are
// matched by container_name). A stream of another length than RawSize, a
// truncated compressed stream (every decoder checks its end-of-stream
// framing and checksum), a digest mismatch, a declared container the magic
// bytes contradict: all are failures.
//
// # Never a half-written bootable disk
//
// Before streaming, the first HoldBack bytes (1 MiB: MBR, primary GPT, an
// ext superblock) and, on a whole disk, the last MiB (backup GPT) are zeroed
// and synced, so even a killed process leaves nothing that boots or mounts.
// The image's own first MiB is kept in memory and written only after the
// whole stream was written and verified; on any failure the same areas are
// zeroed again.
//
// # Resume
//
// The download stage reads through resumingReader. Every byte it has
// returned is final: it has been fed, in order, to the digests and to the
// decompressor. When a connection breaks, stalls (no byte for IdleTimeout)
// or ends before Content-Length, the reader reopens the URL with
// "Range: bytes=N-", N being the count of bytes already delivered, and
// checks that the 206 answer starts at N and describes the same object
// (size, ETag, Last-Modified). The decompressor and the hash states are
// never rebuilt: they live on in memory, exactly as consistent with N as
// before the break, so a resumed write is byte-identical to an unbroken one
// and the digest covers each byte exactly once. A server that ignores Range
// (200 instead of 206) is read again from its start and the first N bytes
// are discarded, after the same same-object check. Retries are bounded
// (MaxRetries consecutive attempts without progress, exponential backoff);
// a 4xx other than 408/429 is not retried.
//
// What the durable offset is for: the writer syncs every SyncEvery bytes and
// reports BytesDurable, so progress is honest and the final flush short. It
// is deliberately not used to resume across a restart of the process.
// Resuming a compressed stream from a byte offset needs the decompressor's
// state there: a single-member gzip stream has no restart points (the
// 32 KiB window and the bit position live only in the decoder), and
// checkpointing at gzip member or zstd frame boundaries only works for
// images built with such boundaries at known output offsets, which would
// also need the hash state (encoding.BinaryMarshaler) persisted next to it.
// Inside one process none of that is needed, because the state is never
// lost; after a crash the agent rewrites the image from the start (the
// first MiB was zeroed first, so the half-written disk cannot boot).
//
// # Zero skipping and zero offload
//
// All-zero 64 KiB blocks are skipped only when the target provably reads
// back zeroes: a regular file that was created or empty at open, or when
// the caller asserts it with Options.TargetZeroed (after BLKZEROOUT, or a
// discard on a device that guarantees zeroes).
//
// Otherwise a run of at least 1 MiB of zeroes is not skipped but handed to
// the target to zero itself: fallocate(PUNCH_HOLE|KEEP_SIZE), which on a
// block device is the kernel's zeroout without fallback, a
// REQ_OP_WRITE_ZEROES the device guarantees to read back as zeroes
// (NVMe Write Zeroes, SCSI WRITE SAME, virtio-blk, loop, dm/md passing it
// down), refused with EOPNOTSUPP where it would have to be emulated; on a
// regular file it punches a hole. The first refusal turns it off and the
// zeroes are written like data. So old data under the image's free space
// never survives, and a partly empty filesystem image costs the disk only
// its data. Options.NoZeroOffload writes every zero byte.
//
// # Growing the filesystem
//
// With Request.Format and Options.Runner, ext2/3/4 get e2fsck -fy,
// resize2fs, e2fsck -fy; xfs is mounted on a temporary directory,
// xfs_growfs'd and unmounted (GrowPlan).
//
// # Progress and logs
//
// Options.Progress receives Progress events (bytes read/written/durable,
// totals, rate, ETA) at most once per ProgressInterval from the writer
// goroutine, then "grow" and "done". Options.ChunkLogger (default: Logger)
// receives fuel-agent's "Next chunk: N" line at Debug level once per MiB
// written (N counts from 0), the line Astute-style parsers count.
package imagewriter
