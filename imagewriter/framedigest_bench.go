//go:build imprint_bench_nodigest

package imagewriter

// A MEASURING BUILD, never a product: `make bench` builds imprint a second
// time with -tags imprint_bench_nodigest to measure what the per-frame
// sha256 costs (README, multi-frame zstd). Frames are then decoded without
// their digest being checked (zstd's XXH64 and the size still are), and
// every multi-frame write logs that it is such a build.
const checkFrameDigests = false
