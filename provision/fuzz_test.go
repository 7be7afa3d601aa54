package provision

import (
	"errors"
	"fmt"
	"testing"

	"github.com/imprint-dev/imprint/internal/membudget"
)

// FuzzParse: parsing and validating any input never panics, always answers
// with a document or a typed error, answers the same way twice, and stays
// within a memory budget (membudget.ForInput: aliases, nesting and counts
// must not make a small input expensive). The seed corpus is
// testdata/fuzz/FuzzParse plus the fixtures.
func FuzzParse(f *testing.F) {
	for _, name := range append(fixtures, "ks_spaces_variants.json") {
		f.Add(readFixture(f, name))
	}
	f.Add([]byte(handYAML))
	f.Add([]byte(`{"ks_meta": {"pm_data": {"ks_spaces": [{"type": "disk", "size": "abc"}]}}}`))
	f.Add([]byte("a: &x [*x, *x]\nb: *x\n"))
	f.Add([]byte("<<: {hostname: h}\nks_meta: {pm_data: {ks_spaces: [], kernel_params: ''}}\n"))
	f.Add(membudget.AliasBomb(2 << 10))
	f.Add(membudget.AliasStringBomb(2 << 10))
	f.Fuzz(func(t *testing.T, data []byte) {
		var doc *Document
		var err error
		membudget.Check(t, fmt.Sprintf("ParseAndValidate of %d bytes", len(data)), membudget.ForInput(len(data)), func() {
			doc, err = ParseAndValidate(data)
		})
		var ve *ValidationError
		var se *SyntaxError
		switch {
		case err == nil:
			if doc == nil {
				t.Fatal("nil document without an error")
			}
		case errors.As(err, &ve):
			_ = ve.Error()
			if len(ve.Problems) == 0 {
				t.Fatal("ValidationError without problems")
			}
			for _, p := range ve.Problems {
				if p.Path == "" || p.Msg == "" {
					t.Fatalf("problem without path or message: %+v", p)
				}
			}
		case errors.As(err, &se):
			if doc != nil {
				t.Fatal("document with a syntax error")
			}
		default:
			t.Fatalf("untyped error %T: %v", err, err)
		}
		if doc == nil {
			return
		}
		_ = doc.Warnings()
		again, err2 := ParseAndValidate(data)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) || again == nil {
			t.Fatalf("not deterministic: %v / %v", err, err2)
		}
	})
}
