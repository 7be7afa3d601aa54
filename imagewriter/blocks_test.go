package imagewriter

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestEncodeBlocks(t *testing.T) {
	upper := func() (Encoder[string], error) {
		return func(in []byte) (string, error) {
			// later blocks finish first: emit must still see input order
			if len(in) > 0 && in[0] == 'a' {
				time.Sleep(10 * time.Millisecond)
			}
			return strings.ToUpper(string(in)), nil
		}, nil
	}
	collect := func(src io.Reader, size int) ([]string, error) {
		var got []string
		err := EncodeBlocks(context.Background(), src, size, 3, upper, func(in []byte, out string) error {
			if strings.ToUpper(string(in)) != out {
				t.Errorf("emit(%q, %q): not its block", in, out)
			}
			got = append(got, out)
			return nil
		})
		return got, err
	}
	got, err := collect(strings.NewReader("aaabbbcccdd"), 3)
	if err != nil || strings.Join(got, ",") != "AAA,BBB,CCC,DD" {
		t.Errorf("blocks = %q, %v; want AAA,BBB,CCC,DD in order", got, err)
	}
	if got, err := collect(strings.NewReader(""), 3); err != nil || len(got) != 1 || got[0] != "" {
		t.Errorf("empty input: %q, %v; want one empty block", got, err)
	}
	boom := errors.New("boom")
	if _, err := collect(iotest.ErrReader(boom), 3); !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "read: ") {
		t.Errorf("read error = %v, want read: boom", err)
	}
	failing := func() (Encoder[int], error) {
		return func(in []byte) (int, error) {
			if bytes.Equal(in, []byte("bb")) {
				return 0, boom
			}
			return len(in), nil
		}, nil
	}
	n := 0
	err = EncodeBlocks(context.Background(), strings.NewReader("aabbccdd"), 2, 2, failing, func([]byte, int) error { n++; return nil })
	if !errors.Is(err, boom) || n != 1 {
		t.Errorf("encoder error: %v after %d blocks emitted, want boom after 1", err, n)
	}
	stop := errors.New("stop")
	err = EncodeBlocks(context.Background(), strings.NewReader(strings.Repeat("x", 1000)), 1, 2, upper, func([]byte, string) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("emit error = %v, want stop", err)
	}
}
