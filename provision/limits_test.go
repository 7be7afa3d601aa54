package provision

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/internal/membudget"
)

// A 10 KB document of nested YAML aliases ("billion laughs") is refused as a
// syntax error naming the alias's line, quickly and within a small memory
// budget (before the budget it took the agent past 1 GB).
func TestYAMLAliasBombRefused(t *testing.T) {
	bomb := membudget.AliasBomb(10 << 10)
	if n := len(bomb); n < 9<<10 || n > 11<<10 {
		t.Fatalf("bomb is %d bytes, want about 10 KB", n)
	}
	start := time.Now()
	var err error
	membudget.Check(t, "parsing the alias bomb", 16<<20, func() { _, err = ParseAndValidate(bomb) })
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusing the alias bomb took %v", d)
	}
	var se *SyntaxError
	if !errors.As(err, &se) || !strings.Contains(se.Msg, "aliases expand to more than") || se.Line < 3 {
		t.Fatalf("err = %v; want a YAML syntax error about alias expansion naming the line", err)
	}
	t.Logf("%d bytes: %v", len(bomb), err)

	// Long strings multiplied by aliases hit the byte budget.
	long := fmt.Sprintf("hostname: n\ns: &s %q\nl: &l [*s, *s, *s, *s, *s, *s, *s, *s, *s, *s]\nm: [%s*l]\n",
		strings.Repeat("x", 64<<10), strings.Repeat("*l, ", 20))
	if _, err := ParseAndValidate([]byte(long)); !errors.As(err, &se) || !strings.Contains(se.Msg, "bytes") {
		t.Errorf("aliased long strings: err = %v; want the alias budget's syntax error", err)
	}
}

// Aliases and merge keys an operator uses to share an entry keep working.
func TestYAMLAliasesWithinBudget(t *testing.T) {
	doc := `hostname: node-9.example.test
ks_meta:
  image_data:
    /: &img {uri: "http://10.0.2.2:8080/root.img.zst", format: ext4, container: zstd}
    /srv: {<<: *img, uri: "http://10.0.2.2:8080/srv.img.zst"}
  pm_data:
    kernel_params: console=ttyS0
    ks_spaces:
      - &disk
        type: disk
        id: vda
        name: vda
        extra: []
        size: 20480
        free_space: 0
        volumes:
          - {type: boot, size: 300}
          - {type: partition, mount: /, file_system: ext4, size: 16000}
      - <<: *disk
        id: vdb
        name: vdb
        volumes: [{type: partition, mount: /srv, file_system: ext4, size: 16000}]
`
	d, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.KsMeta.ImageData["/srv"]; got.Container != "zstd" || got.URI != "http://10.0.2.2:8080/srv.img.zst" {
		t.Errorf(`image_data["/srv"] = %+v; want the merged entry`, got)
	}
	if ks := d.KsMeta.PmData.KsSpaces; len(ks) != 2 || ks[1].Name != "vdb" || ks[1].Size != 20480 {
		t.Errorf("ks_spaces = %+v; want vdb with vda's size", ks)
	}
}

func TestDocumentSizeLimit(t *testing.T) {
	for _, tc := range []struct{ name, doc, format string }{
		{"json", `{"hostname": "` + strings.Repeat("a", MaxDocumentBytes) + `"}`, "json"},
		{"yaml", "hostname: " + strings.Repeat("a", MaxDocumentBytes), "yaml"},
	} {
		_, err := Parse([]byte(tc.doc))
		var se *SyntaxError
		if !errors.As(err, &se) || se.Format != tc.format || !strings.Contains(se.Msg, fmt.Sprintf("more than the %d allowed", MaxDocumentBytes)) {
			t.Errorf("%s: err = %v; want a %s syntax error naming the limit", tc.name, err, tc.format)
		}
	}
	ok := strings.NewReader(strings.Repeat(" ", MaxDocumentBytes))
	if b, err := ReadDocument(ok, "doc.json"); err != nil || len(b) != MaxDocumentBytes {
		t.Errorf("ReadDocument at the limit = %d bytes, %v", len(b), err)
	}
	big := strings.NewReader(strings.Repeat(" ", MaxDocumentBytes+1))
	if _, err := ReadDocument(big, "doc.json"); err == nil || !strings.Contains(err.Error(), "doc.json: input larger than") {
		t.Errorf("ReadDocument over the limit: err = %v; want one naming doc.json and the limit", err)
	}
}
