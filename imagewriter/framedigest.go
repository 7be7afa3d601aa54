//go:build !imprint_bench_nodigest

package imagewriter

// checkFrameDigests: every frame's sha256 is checked against the manifest
// before the frame is decoded. Only the bench's measuring build
// (framedigest_bench.go) turns it off.
const checkFrameDigests = true
