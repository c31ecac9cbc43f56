package imcodec

import (
	"html"
	"strings"
	"unicode"
)

// StripHTML turns HTML into readable text. Tags and comments are dropped, as
// is the content of script, style, head, title and template elements. <br>
// becomes a line break; block elements (p, div, li, tr, headings, lists,
// tables, blockquote, pre, hr) start and end lines; table cells are separated
// by spaces. Character references are unescaped with html.UnescapeString.
// Whitespace is collapsed as a browser would (runs of spaces become one
// space, so <pre> formatting is not kept), each line is trimmed, runs of
// blank lines are collapsed to one, and the result is trimmed. The output is
// valid UTF-8. Broken markup never panics: an unterminated tag or comment
// drops the rest of the input, and a "<" that cannot start a tag is text.
func StripHTML(s string) string {
	s = validUTF8String(s)
	lower := asciiLower(s)
	w := textWriter{atLineStart: true}
	w.b.Grow(len(s))
	textStart := 0
	i := 0
	for i < len(s) {
		if s[i] != '<' {
			i++
			continue
		}
		end, name, closing, ok := scanTag(s, i)
		if !ok {
			i++ // a literal '<'
			continue
		}
		w.text(s[textStart:i])
		i = end
		switch {
		case closing:
			w.closeTag(name)
		case name == "br":
			w.hardBreak()
		case name == "script" || name == "style" || name == "title" || name == "template":
			i = skipElement(s, lower, i, name, "")
		case name == "head":
			i = skipElement(s, lower, i, name, "<body")
		default:
			w.openTag(name)
		}
		textStart = i
	}
	if textStart < len(s) {
		w.text(s[textStart:])
	}
	return tidyLines(w.b.String())
}

// scanTag recognises markup starting at s[i] == '<'. It returns the index just
// after it, the lowercased tag name ("" for comments, doctypes and processing
// instructions) and whether it is an end tag. ok is false when the '<' starts
// no markup (it is then text). Unterminated markup runs to the end of s.
func scanTag(s string, i int) (end int, name string, closing, ok bool) {
	j := i + 1
	if j >= len(s) {
		return 0, "", false, false
	}
	switch c := s[j]; {
	case strings.HasPrefix(s[j:], "!--"):
		k := strings.Index(s[j+3:], "-->")
		if k < 0 {
			return len(s), "", false, true
		}
		return j + 3 + k + 3, "", false, true
	case c == '!' || c == '?':
		return skipTo(s, j, '>'), "", false, true
	case c == '/':
		closing = true
		j++
		if j >= len(s) || !isASCIILetter(s[j]) {
			if j < len(s) && s[j] == '>' {
				return j + 1, "", true, true // "</>" is ignored
			}
			return 0, "", false, false
		}
	case !isASCIILetter(c):
		return 0, "", false, false
	}
	k := j
	for k < len(s) && (isASCIILetter(s[k]) || s[k] >= '0' && s[k] <= '9' || s[k] == '-' || s[k] == ':') {
		k++
	}
	name = asciiLower(s[j:k])
	// Skip attributes up to '>', honouring quoted attribute values.
	for k < len(s) {
		switch s[k] {
		case '>':
			return k + 1, name, closing, true
		case '=':
			k++
			for k < len(s) && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n' || s[k] == '\r' || s[k] == '\f') {
				k++
			}
			if k < len(s) && (s[k] == '"' || s[k] == '\'') {
				q := s[k]
				e := strings.IndexByte(s[k+1:], q)
				if e < 0 {
					return len(s), name, closing, true
				}
				k += 1 + e + 1
			}
		default:
			k++
		}
	}
	return len(s), name, closing, true
}

// skipTo returns the index after the first c at or after j, or len(s).
func skipTo(s string, j int, c byte) int {
	if k := strings.IndexByte(s[j:], c); k >= 0 {
		return j + k + 1
	}
	return len(s)
}

// skipElement skips the content of element name starting at i (just after
// its start tag) and its end tag. If stop is not empty, the content also ends
// where stop starts (e.g. "<body" ends an unclosed head). lower is the
// ASCII-lowercased s.
func skipElement(s, lower string, i int, name, stop string) int {
	rest := lower[i:]
	endTag := strings.Index(rest, "</"+name)
	if stop != "" {
		if endTag >= 0 {
			rest = rest[:endTag]
		}
		if k := strings.Index(rest, stop); k >= 0 {
			return i + k
		}
	}
	if endTag < 0 {
		return len(s)
	}
	return skipTo(s, i+endTag, '>')
}

// textWriter accumulates text while tracking whether the current line holds
// anything but spaces.
type textWriter struct {
	b           strings.Builder
	atLineStart bool
}

// text appends an HTML text run: source whitespace becomes spaces, then
// character references are unescaped.
func (w *textWriter) text(t string) {
	if t == "" {
		return
	}
	t = strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\r', '\f':
			return ' '
		}
		return r
	}, t)
	if strings.IndexByte(t, '&') >= 0 {
		t = html.UnescapeString(t)
	}
	for _, r := range t {
		if r == '\n' {
			w.atLineStart = true
		} else if !unicode.IsSpace(r) {
			w.atLineStart = false
		}
	}
	w.b.WriteString(t)
}

// hardBreak always ends the line.
func (w *textWriter) hardBreak() {
	w.b.WriteByte('\n')
	w.atLineStart = true
}

// softBreak ends the line unless it is still empty.
func (w *textWriter) softBreak() {
	if !w.atLineStart {
		w.hardBreak()
	}
}

// isBlock reports whether element name starts and ends a line.
func isBlock(name string) bool {
	switch name {
	case "p", "div", "li", "tr", "ul", "ol", "dl", "dt", "dd", "table", "thead", "tbody", "tfoot",
		"h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "hr", "section", "article",
		"header", "footer", "nav", "aside", "address", "figure", "figcaption", "form", "fieldset",
		"body", "html", "center":
		return true
	}
	return false
}

func (w *textWriter) openTag(name string) {
	if isBlock(name) {
		w.softBreak()
	}
}

func (w *textWriter) closeTag(name string) {
	switch {
	case name == "td" || name == "th":
		w.b.WriteByte(' ')
	case isBlock(name):
		w.softBreak()
	}
}

// tidyLines collapses whitespace inside lines, keeps at most one blank line in
// a row and trims leading and trailing blank lines.
func tidyLines(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	blank := 0
	started := false
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		if len(f) == 0 {
			blank++
			continue
		}
		if started {
			b.WriteByte('\n')
			if blank > 0 {
				b.WriteByte('\n')
			}
		}
		started = true
		blank = 0
		for i, word := range f {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(word)
		}
	}
	return b.String()
}

func isASCIILetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// asciiLower lowercases ASCII letters only, so byte offsets are preserved.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
