package mountinfo

import "testing"

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/mnt/a\040b\011c`: "/mnt/a b\tc",
		"/plain":           "/plain",
		`/back\134slash`:   `/back\slash`,
		`/short\04`:        `/short\04`,
		`/not\999octal`:    `/not\999octal`,
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
