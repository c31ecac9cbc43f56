package imcodec

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/encoding/unicode/utf32"
)

// Byte order marks.
const (
	bomUTF8    = "\xEF\xBB\xBF"
	bomUTF16BE = "\xFE\xFF"
	bomUTF16LE = "\xFF\xFE"
)

// DecodeCharset converts b, encoded in the named charset, to a valid UTF-8
// string. Invalid input bytes become U+FFFD and a leading byte order mark is
// removed.
//
// Labels are case-insensitive and may be quoted. An empty label means UTF-8
// (a UTF-16 byte order mark is still honoured). US-ASCII is decoded as UTF-8
// when the bytes are valid UTF-8 (mislabelled UTF-8 is common) and as
// windows-1252 otherwise. "utf-16" (also "ucs-2", "unicode") follows the byte
// order mark, else guesses the byte order from the position of NUL bytes
// (big endian by default, RFC 2781); "utf-16le", "utf-16be" and the UTF-32
// labels are supported too. Any other label known to the WHATWG encoding
// index (golang.org/x/text/encoding/htmlindex) is accepted; there
// "iso-8859-1" and "latin1" mean windows-1252, as in browsers. Unknown labels
// yield an error wrapping ErrUnsupportedType.
func DecodeCharset(charset string, b []byte) (string, error) {
	label := strings.ToLower(strings.Trim(strings.TrimSpace(charset), `"'`))
	switch label {
	case "":
		if bytes.HasPrefix(b, []byte(bomUTF16BE)) || bytes.HasPrefix(b, []byte(bomUTF16LE)) {
			return decodeUTF16(b)
		}
		return validUTF8(bytes.TrimPrefix(b, []byte(bomUTF8))), nil
	case "us-ascii", "ascii", "us", "ansi_x3.4-1968", "iso646-us", "iso_646.irv:1991",
		"iso-ir-6", "ibm367", "cp367", "csascii":
		b = bytes.TrimPrefix(b, []byte(bomUTF8))
		if utf8.Valid(b) {
			return string(b), nil
		}
		return decodeWith("windows-1252", b)
	case "utf-16", "utf16", "ucs-2", "ucs2", "iso-10646-ucs-2", "unicode", "csunicode":
		return decodeUTF16(b)
	case "utf-16le", "utf16le", "ucs-2le":
		return decodeWithEncoding(charset, unicode.UTF16(unicode.LittleEndian, unicode.UseBOM), b)
	case "utf-16be", "utf16be", "ucs-2be":
		return decodeWithEncoding(charset, unicode.UTF16(unicode.BigEndian, unicode.UseBOM), b)
	case "utf-32", "utf32", "ucs-4":
		return decodeWithEncoding(charset, utf32.UTF32(utf32.BigEndian, utf32.UseBOM), b)
	case "utf-32le", "utf32le":
		return decodeWithEncoding(charset, utf32.UTF32(utf32.LittleEndian, utf32.UseBOM), b)
	case "utf-32be", "utf32be":
		return decodeWithEncoding(charset, utf32.UTF32(utf32.BigEndian, utf32.UseBOM), b)
	}
	return decodeWith(label, b)
}

// decodeWith decodes b with the htmlindex encoding named label.
func decodeWith(label string, b []byte) (string, error) {
	enc, err := htmlindex.Get(label)
	if err != nil {
		return "", fmt.Errorf("%w: charset %q", ErrUnsupportedType, label)
	}
	if name, _ := htmlindex.Name(enc); name == "utf-8" {
		return validUTF8(bytes.TrimPrefix(b, []byte(bomUTF8))), nil
	}
	return decodeWithEncoding(label, enc, b)
}

// decodeUTF16 decodes UTF-16 following its BOM; without one it guesses the
// byte order from where NUL bytes are (most text is Latin script).
func decodeUTF16(b []byte) (string, error) {
	order := unicode.BigEndian
	if !bytes.HasPrefix(b, []byte(bomUTF16BE)) && !bytes.HasPrefix(b, []byte(bomUTF16LE)) {
		even, odd := 0, 0
		for i, c := range b {
			if c == 0 {
				if i%2 == 0 {
					even++
				} else {
					odd++
				}
			}
		}
		if odd > even {
			order = unicode.LittleEndian
		}
	}
	return decodeWithEncoding("utf-16", unicode.UTF16(order, unicode.UseBOM), b)
}

// decodeWithEncoding runs enc's decoder and guarantees valid UTF-8 output
// without a leading BOM.
func decodeWithEncoding(label string, enc encoding.Encoding, b []byte) (string, error) {
	out, err := enc.NewDecoder().Bytes(b)
	if err != nil {
		return "", fmt.Errorf("%w: charset %q: %w", ErrMalformed, label, err)
	}
	return validUTF8(bytes.TrimPrefix(out, []byte(bomUTF8))), nil
}

// validUTF8 returns b as a string with every invalid byte replaced by U+FFFD.
func validUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			sb.WriteRune(utf8.RuneError)
		} else {
			sb.Write(b[:n])
		}
		b = b[n:]
	}
	return sb.String()
}

// validUTF8String is validUTF8 for strings.
func validUTF8String(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return validUTF8([]byte(s))
}
