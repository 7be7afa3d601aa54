package partition_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"testing"
)

// sha256File is the loop and VM tiers' check that a disk outside the plan
// is byte-for-byte unchanged.
func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
