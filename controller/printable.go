package controller

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Printable makes what a node reported safe for a terminal: control
// characters (escape sequences, carriage returns, newlines), Unicode line
// separators and bidirectional overrides become \x.., \u.... escapes, and
// invalid UTF-8 bytes \x..; everything else is kept as is.
func Printable(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r < 0x80 && unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029':
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}
