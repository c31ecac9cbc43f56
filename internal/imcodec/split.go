package imcodec

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Split breaks text into chunks of at most max bytes, for sending a long
// reply as several messages (e.g. to keep UDP requests under 1300 bytes).
//
// Leading and trailing whitespace of text is dropped. Each cut happens at
// whitespace: at the last newline that fits if it lies in the second half of
// the chunk (so paragraphs stay together without producing tiny chunks), else
// at the last whitespace that fits. Only a word longer than max is cut inside
// the word, and then at a UTF-8 rune boundary. The whitespace at a cut is
// removed, so no chunk starts or ends with whitespace, and joining the chunks
// with single spaces reproduces the words of text in order. Whitespace inside
// a chunk is kept. max < 4 is treated as 4 (the longest UTF-8 rune). Empty or
// all-whitespace text yields nil.
func Split(text string, max int) []string {
	max = maxOf(max, utf8.UTFMax)
	s := strings.TrimFunc(text, unicode.IsSpace)
	if s == "" {
		return nil
	}
	var out []string
	for len(s) > max {
		cut, next := cutPoint(s, max)
		out = append(out, s[:cut])
		s = s[next:]
	}
	return append(out, s)
}

func maxOf(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// cutPoint chooses where to cut s (len(s) > max, s not starting with
// whitespace): s[:cut] is the chunk and s[next:] the rest, both without
// whitespace at the cut.
func cutPoint(s string, max int) (cut, next int) {
	lastNL, lastSpace, lastRune := -1, -1, 0
	for i := 0; i <= max && i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		if i > 0 {
			lastRune = i
			if unicode.IsSpace(r) {
				lastSpace = i
				if r == '\n' {
					lastNL = i
				}
			}
		}
		i += w
	}
	ws := lastSpace
	if lastNL > 0 && lastNL >= max/2 {
		ws = lastNL
	}
	if ws <= 0 {
		// One word longer than max: cut at the last rune boundary that fits.
		return lastRune, lastRune
	}
	cut = len(strings.TrimRightFunc(s[:ws], unicode.IsSpace))
	next = len(s) - len(strings.TrimLeftFunc(s[ws:], unicode.IsSpace))
	return cut, next
}
