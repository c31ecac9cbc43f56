package handlers

import (
	"fmt"
	"strings"
)

// Visible returns s with the characters that can hide or disguise text shown to a person
// replaced by a visible mark such as "[U+202E]": control characters other than tab and
// line feed (NUL among them), and the Unicode bidirectional overrides and isolates that can
// make text read in another order than it was written (U+202A..U+202E, U+2066..U+2069).
// What a user writes goes through it before it reaches an agent's screen or a transcript.
func Visible(s string) string {
	if !strings.ContainsFunc(s, hidden) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if hidden(r) {
			fmt.Fprintf(&b, "[U+%04X]", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func hidden(r rune) bool {
	switch {
	case r == '\t' || r == '\n':
		return false
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}
