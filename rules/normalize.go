package rules

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Text normalisation: patterns and messages are compared word by word after the same
// folding, so that "Café", "CAFE" and "cafe" are one word. A word is a run of letters and
// digits; apostrophes inside a word are dropped ("don't" is "dont"); everything else
// separates words. Letters are lower-cased and stripped of accents (NFKD, then combining
// marks removed, compatibility forms spelled out: ǆ→dz, ﬁ→fi), and a few letters that do not decompose are spelled out (ß→ss, æ→ae,
// œ→oe, ø→o, ł→l, đ→d, þ→th).

// token is one word of a message: its folded form and where it is in the original text.
type token struct {
	norm       string // folded word
	start, end int    // byte offsets in the original text
}

var special = map[rune]string{
	'ß': "ss", 'æ': "ae", 'œ': "oe", 'ø': "o", 'ł': "l", 'đ': "d", 'þ': "th", 'ð': "d",
	'ı': "i", 'ĸ': "k", 'ŀ': "l", 'ŉ': "n", 'ſ': "s",
}

func isApostrophe(r rune) bool { return r == '\'' || r == '’' || r == 'ʼ' }

func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r)
}

// foldTable holds the folded form of the Latin runes, the common case after ASCII.
var foldTable = func() (t [0x250]string) {
	for r := rune(0x80); r < 0x250; r++ {
		t[r] = string(slowFold(nil, r))
	}
	return t
}()

// appendFold appends the folded form of r to b.
func appendFold(b []byte, r rune) []byte {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return append(b, byte(r))
	}
	if r < rune(len(foldTable)) {
		return append(b, foldTable[r]...)
	}
	return slowFold(b, r)
}

func slowFold(b []byte, r rune) []byte {
	if unicode.Is(unicode.Mn, r) {
		return b
	}
	lr := unicode.ToLower(r)
	if s, ok := special[lr]; ok {
		return append(b, s...)
	}
	var tmp [utf8.UTFMax]byte
	n := utf8.EncodeRune(tmp[:], lr)
	d := norm.NFKD.Append(nil, tmp[:n]...)
	for len(d) > 0 {
		c, size := utf8.DecodeRune(d)
		d = d[size:]
		if unicode.Is(unicode.Mn, c) {
			continue
		}
		b = utf8.AppendRune(b, unicode.ToLower(c))
	}
	return b
}

// tokenize splits s into folded words, appending them to toks. The folded words share one
// allocation.
func tokenize(s string, toks []token) []token {
	// The folded words are built in buf, then copied into one string: on the stack for a
	// short text.
	var stack [128]byte
	buf := stack[:0]
	if len(s) > len(stack) {
		buf = make([]byte, 0, len(s))
	}
	type span struct{ a, b, start, end int }
	var spans [32]span
	sp := spans[:0]
	inWord := false
	var cur span
	for i, r := range s {
		switch {
		case isWordRune(r):
			if !inWord {
				inWord = true
				cur = span{a: len(buf), start: i}
			}
			buf = appendFold(buf, r)
			cur.end = i + utf8.RuneLen(r)
			if r == utf8.RuneError {
				cur.end = i + 1
			}
		case isApostrophe(r) && inWord:
			// dropped inside a word; a trailing apostrophe simply ends nothing
		default:
			if inWord {
				inWord = false
				cur.b = len(buf)
				if cur.b > cur.a {
					sp = append(sp, cur)
				}
			}
		}
	}
	if inWord {
		cur.b = len(buf)
		if cur.b > cur.a {
			sp = append(sp, cur)
		}
	}
	folded := string(buf)
	for _, x := range sp {
		toks = append(toks, token{norm: folded[x.a:x.b], start: x.start, end: x.end})
	}
	return toks
}

// foldWords returns the folded words of s.
func foldWords(s string) []string {
	toks := tokenize(s, nil)
	out := make([]string, len(toks))
	for i, t := range toks {
		out[i] = t.norm
	}
	return out
}

// Fold returns s as the matcher sees it: folded words joined by single spaces. It is exported
// for tools that want to show authors why a pattern did or did not match.
func Fold(s string) string { return strings.Join(foldWords(s), " ") }
