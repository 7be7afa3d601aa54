package membudget

import (
	"fmt"
	"strings"
	"testing"
)

type fakeTB struct{ failed string }

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
}

var sink []byte

func TestCheck(t *testing.T) {
	var tb fakeTB
	Check(&tb, "small", 1<<20, func() { sink = make([]byte, 1<<10) })
	if tb.failed != "" {
		t.Errorf("1 KiB against a 1 MiB budget failed: %s", tb.failed)
	}
	Check(&tb, "large", 1<<20, func() { sink = make([]byte, 4<<20) })
	if !strings.Contains(tb.failed, "large allocated 4.0 MiB, more than its budget of 1.0 MiB") {
		t.Errorf("4 MiB against a 1 MiB budget: %q", tb.failed)
	}
}

func TestAliasBomb(t *testing.T) {
	for _, size := range []int{2 << 10, 10 << 10, 64 << 10} {
		b := AliasBomb(size)
		if n := len(b); n < size*9/10 || n > size*11/10 {
			t.Errorf("AliasBomb(%d) is %d bytes", size, n)
		}
		if !strings.Contains(string(b), "l15: &l15 [*l14, *l14") {
			t.Errorf("AliasBomb(%d) lacks its deepest level:\n%s", size, b)
		}
	}
}

func TestAliasStringBomb(t *testing.T) {
	b := AliasStringBomb(10 << 10)
	if n := len(b); n < 9<<10 || n > 11<<10 {
		t.Errorf("AliasStringBomb(10 KiB) is %d bytes", n)
	}
	if !strings.Contains(string(b), "s5: &s5 [*s4, *s4, *s4, *s4, *s4, *s4, *s4, *s4, *s4, *s4]") {
		t.Errorf("AliasStringBomb lacks its last level:\n%.300s", b[len(b)-300:])
	}
}
