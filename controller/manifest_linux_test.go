package controller

import (
	"testing"

	"github.com/imprint-dev/imprint/imagewriter"
)

func TestFrameManifestSuffix(t *testing.T) {
	if frameManifestSuffix != imagewriter.FrameManifestSuffix {
		t.Fatalf("controller serves manifests at %q, the image writer looks for %q", frameManifestSuffix, imagewriter.FrameManifestSuffix)
	}
}
