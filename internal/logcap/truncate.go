package logcap

import (
	"encoding"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// maxRuneWidth is the most output one rune of a string value can take in a text or JSON
// log line: strconv.Quote writes a non-printable rune above U+FFFF as \UXXXXXXXX.
const maxRuneWidth = 10

// capRecord returns r with its message and attributes truncated, and whether it had to
// build a new record for that. A record that needs no cut is returned as it is.
func (h *Handler) capRecord(r slog.Record) (slog.Record, bool) {
	msg, cut := capString(r.Message, h.maxValue)
	if !cut {
		r.Attrs(func(a slog.Attr) bool {
			_, cut = h.capAttr(a)
			return !cut
		})
	}
	if !cut {
		return r, false
	}
	attrs := make([]slog.Attr, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool {
		a, _ = h.capAttr(a)
		attrs = append(attrs, a)
		return true
	})
	out := slog.NewRecord(r.Time, r.Level, msg, r.PC)
	out.AddAttrs(attrs...)
	return out, true
}

// capAttr returns a with its key and value truncated, and whether anything was cut.
func (h *Handler) capAttr(a slog.Attr) (slog.Attr, bool) {
	if slices.Contains(h.uncut, a.Key) {
		return a, false
	}
	key, keyCut := capString(a.Key, h.maxValue)
	v, valCut := h.capValue(a.Value)
	if !keyCut && !valCut {
		return a, false
	}
	return slog.Attr{Key: key, Value: v}, true
}

// capValue returns v truncated, and whether anything was cut. A LogValuer is resolved to be
// measured; it is returned unresolved when nothing was cut.
func (h *Handler) capValue(v slog.Value) (slog.Value, bool) {
	rv := v.Resolve()
	switch rv.Kind() {
	case slog.KindString:
		if s, cut := capString(rv.String(), h.maxValue); cut {
			return slog.StringValue(s), true
		}
	case slog.KindGroup:
		group := rv.Group()
		var out []slog.Attr // nil until an attribute is cut
		for i, a := range group {
			c, cut := h.capAttr(a)
			if cut && out == nil {
				out = append(make([]slog.Attr, 0, len(group)), group[:i]...)
			}
			if out != nil {
				out = append(out, c)
			}
		}
		if out != nil {
			return slog.GroupValue(out...), true
		}
	case slog.KindAny:
		if s, ok := formatAny(rv.Any(), h.maxValue); ok {
			if s, cut := capString(s, h.maxValue); cut {
				return slog.StringValue(s), true
			}
		}
	}
	return v, false
}

// formatAny returns x as a text handler formats it, or false when x is too short to need a
// look or its formatting fails (the wrapped handler then reports the failure as it does).
// Any other value than a []byte is formatted, to be measured.
func formatAny(x any, maxValue int) (s string, ok bool) {
	defer func() {
		if recover() != nil { // a String or Error method that panics, on a nil pointer say
			s, ok = "", false
		}
	}()
	switch x := x.(type) {
	case encoding.TextMarshaler:
		b, err := x.MarshalText()
		if err != nil {
			return "", false
		}
		return string(b), true
	case []byte:
		if len(x) <= maxValue/maxRuneWidth {
			return "", false
		}
		return string(x), true
	case fmt.Formatter:
		return fmt.Sprintf("%+v", x), true
	case error:
		return x.Error(), true
	case fmt.Stringer:
		return x.String(), true
	}
	return fmt.Sprintf("%+v", x), true
}

// capString returns s cut to maxValue bytes of log output followed by a marker saying how
// many bytes were cut, and whether it was cut. A string that fits is returned as it is.
func capString(s string, maxValue int) (string, bool) {
	if len(s) <= maxValue/maxRuneWidth {
		return s, false
	}
	n := fit(s, maxValue)
	if n == len(s) {
		return s, false
	}
	return s[:n] + "...[" + strconv.Itoa(len(s)-n) + " bytes cut]", true
}

// fit returns the length of the longest prefix of s, cut between runes, whose output in a
// text or JSON log line takes at most maxValue bytes: a printable rune takes its own bytes;
// a quote, a backslash, a newline, a carriage return or a tab two; another control
// character, an invalid byte or a non-printable rune the longest escape of the two handlers
// (\u00XX, \ufffd, \uXXXX: six bytes, \UXXXXXXXX: ten).
func fit(s string, maxValue int) int {
	w := 0
	for i := 0; i < len(s); {
		c := s[i]
		var size, cw int
		if c < utf8.RuneSelf {
			size = 1
			switch {
			case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
				cw = 2
			case c < 0x20 || c == 0x7f:
				cw = 6
			default:
				cw = 1
			}
		} else {
			var r rune
			r, size = utf8.DecodeRuneInString(s[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				cw = 6
			case r == '\u2028' || r == '\u2029' || !unicode.IsPrint(r):
				cw = 6
				if r > 0xffff {
					cw = maxRuneWidth
				}
			default:
				cw = size
			}
		}
		if w+cw > maxValue {
			return i
		}
		w += cw
		i += size
	}
	return len(s)
}
