// Package membudget lets tests and fuzz targets assert how much memory a
// piece of work may allocate: a hostile document (YAML aliases, deep
// nesting, huge counts) must be refused before it costs the agent memory.
package membudget

import (
	"fmt"
	"runtime"
	"strings"
)

// ForInput is the allocation budget for parsing, validating and planning
// one provision document of n bytes: a fixed allowance plus a bounded
// amount per input byte. The fixtures allocate about 20 bytes per input
// byte to parse and validate; the worst shape (a 1 MiB YAML list of empty
// maps, yaml.v3's own node tree) about 100. A document that expands
// (aliases, repeated structure) past the budget is a resource-exhaustion
// bug.
func ForInput(n int) uint64 {
	return 16<<20 + 256*uint64(n)
}

// Measure runs f and returns the bytes it allocated (the growth of the
// runtime's cumulative allocation counter, an upper bound of the heap f
// needed at its peak). Other goroutines allocating meanwhile are counted
// too, so budgets must be generous enough for that noise.
func Measure(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TB is the part of testing.TB Check uses.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Check runs f and fails t when f allocated more than budget bytes.
func Check(t TB, what string, budget uint64, f func()) {
	t.Helper()
	if got := Measure(f); got > budget {
		t.Fatalf("%s allocated %s, more than its budget of %s", what, human(got), human(budget))
	}
}

func human(b uint64) string {
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

// AliasBomb returns a YAML provision document of about size bytes whose
// nested aliases ("billion laughs") expand to far more values than any
// memory holds: levels of anchors, each a list of aliases of the one
// before, as wide as the size allows at a shallow depth.
func AliasBomb(size int) []byte {
	const levels = 15
	fanout := max((size-120)*2/(levels*11), 2) // "*lN, " and "*lNN, ": 5.5 bytes on average
	var b strings.Builder
	b.WriteString("hostname: node-1\nl0: &l0 [" + strings.Repeat("lol", 30) + "]\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "l%d: &l%d [", i, i)
		for j := range fanout {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*l%d", i-1)
		}
		b.WriteString("]\n")
	}
	fmt.Fprintf(&b, "ks_meta: {pm_data: {kernel_params: '', ks_spaces: *l%d}}\n", levels)
	return []byte(b.String())
}

// AliasStringBomb returns a YAML document of about size bytes in which one
// long string is aliased through levels of ten-fold lists: few values
// (10^5), but each a copy of the string wherever the document is rendered
// again (unknown keys are kept as JSON), hundreds of megabytes in all.
func AliasStringBomb(size int) []byte {
	var b strings.Builder
	b.WriteString("hostname: node-1\n")
	fmt.Fprintf(&b, "s0: &s0 %s\n", strings.Repeat("x", max(size-400, 16)))
	for i := 1; i <= 5; i++ {
		fmt.Fprintf(&b, "s%d: &s%d [%s*s%d]\n", i, i, strings.Repeat(fmt.Sprintf("*s%d, ", i-1), 9), i-1)
	}
	b.WriteString("ks_meta: {pm_data: {kernel_params: '', ks_spaces: []}}\n")
	return []byte(b.String())
}
