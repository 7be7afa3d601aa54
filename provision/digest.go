package provision

import "regexp"

var (
	sha256RE = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	sha512RE = regexp.MustCompile(`^[0-9a-fA-F]{128}$`)
)

// checkImageDigests checks imprint's sha256/sha512 extension of an
// image_data entry at path ip: hex of the right length, at most one given.
func checkImageDigests(f *findings, ip string, img ImageData) {
	if img.SHA256 != "" && !sha256RE.MatchString(img.SHA256) {
		f.err(field(ip, "sha256"), "must be 64 hex digits, got %q", shorten(img.SHA256))
	}
	if img.SHA512 != "" && !sha512RE.MatchString(img.SHA512) {
		f.err(field(ip, "sha512"), "must be 128 hex digits, got %q", shorten(img.SHA512))
	}
	if img.SHA256 != "" && img.SHA512 != "" {
		f.err(ip, "give sha256 or sha512, not both")
	}
}
