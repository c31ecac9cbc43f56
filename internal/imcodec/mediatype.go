package imcodec

import (
	"errors"
	"strconv"
	"strings"
)

// Media types of the bodies exchanged in SIP IM.
const (
	// TypePlain is plain text, the type a bot should send.
	TypePlain = "text/plain"
	// TypeHTML is HTML text (OCS/Lync clients may send it).
	TypeHTML = "text/html"
	// TypeMultipartAlt carries the same text in several formats.
	TypeMultipartAlt = "multipart/alternative"
	// TypeIsComposing is the RFC 3994 typing notification.
	TypeIsComposing = "application/im-iscomposing+xml"
	// TypeKeyboard is the Content-Type of the OCS/Lync KeyboardActivity INFO body.
	TypeKeyboard = "application/xml"
	// TypeIMDN is the RFC 5438 delivery/display notification.
	TypeIMDN = "message/imdn+xml"
	// TypeCPIM is the RFC 3862 Common Presence and Instant Messaging wrapper.
	TypeCPIM = "message/cpim"
	// TypeSDP is the session description carried by an IM INVITE.
	TypeSDP = "application/sdp"
	// PlainUTF8 is the Content-Type value to put on outgoing text.
	PlainUTF8 = "text/plain;charset=UTF-8"
)

// ErrUnsupportedType reports a media type or charset that this package does
// not decode (a runtime answers 415 with an Accept header).
var ErrUnsupportedType = errors.New("imcodec: unsupported media type")

// ErrMalformed is wrapped by every parse failure (a runtime answers 400).
var ErrMalformed = errors.New("imcodec: malformed body")

// ErrTooLarge is wrapped when a decoded body exceeds a size limit. Such errors
// also match [ErrMalformed].
var ErrTooLarge = errors.New("imcodec: body too large")

// tooLargeError matches both ErrTooLarge and ErrMalformed.
type tooLargeError struct{ limit int }

func (e tooLargeError) Error() string {
	return "imcodec: body too large: decoded size exceeds " + strconv.Itoa(e.limit) + " bytes"
}

func (e tooLargeError) Unwrap() []error { return []error{ErrTooLarge, ErrMalformed} }

// MediaType parses a Content-Type value leniently. It returns the lowercased
// media type ("type/subtype", spaces removed) and the parameters with
// lowercased keys and unquoted values; params is nil when there are none (reading
// a nil map is fine; do not write to it). A parameter
// without a value maps to "", and the first occurrence of a repeated parameter
// wins. It never fails: junk yields whatever could be recognised.
func MediaType(contentType string) (mediaType string, params map[string]string) {
	if isPlainType(contentType) {
		return strings.ToLower(contentType), nil // the common case, without splitting
	}
	segs := splitQuoted(contentType, ';')
	if len(segs) == 0 {
		return "", nil
	}
	mediaType = normalizeType(segs[0])
	for _, seg := range segs[1:] {
		key, val, hasVal := strings.Cut(seg, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		if key == "" {
			continue
		}
		if _, dup := params[key]; dup {
			continue
		}
		if params == nil {
			params = make(map[string]string, 2)
		}
		if hasVal {
			val = unquote(strings.TrimSpace(val))
		}
		params[key] = val
	}
	return mediaType, params
}

// isPlainType reports whether s is a bare "type/subtype" of token characters, with nothing
// around it: then it is its own media type, lowercased.
func isPlainType(s string) bool {
	slash := strings.IndexByte(s, '/')
	if slash <= 0 || slash == len(s)-1 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if i != slash && !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// normalizeType lowercases "type / subtype", keeping only the RFC 2045 token
// characters next to the slash (so junk around it is dropped).
func normalizeType(s string) string {
	typ, sub, ok := strings.Cut(s, "/")
	if !ok {
		return strings.ToLower(leadingToken(strings.TrimSpace(s)))
	}
	typ = strings.TrimSpace(typ)
	i := len(typ)
	for i > 0 && isTokenChar(typ[i-1]) {
		i--
	}
	return strings.ToLower(typ[i:] + "/" + leadingToken(strings.TrimSpace(sub)))
}

// leadingToken returns the token characters at the start of s.
func leadingToken(s string) string {
	i := 0
	for i < len(s) && isTokenChar(s[i]) {
		i++
	}
	return s[:i]
}

// isTokenChar reports whether c may appear in an RFC 2045 token.
func isTokenChar(c byte) bool {
	return c > ' ' && c < 0x7f && strings.IndexByte(`()<>@,;:\"/[]?=`, c) < 0
}

// splitQuoted splits s at sep outside double quotes. A backslash inside quotes
// escapes the next byte. An unterminated quote runs to the end of s.
func splitQuoted(s string, sep byte) []string {
	var out []string
	start, inQuote := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// unquote removes surrounding double quotes and backslash escapes. A value
// with an opening quote but no closing one is taken up to the end.
func unquote(s string) string {
	if len(s) == 0 || s[0] != '"' {
		return s
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == '"':
			return b.String()
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// SplitAcceptHeader splits an Accept header value such as
// "text/plain, application/im-iscomposing+xml;q=0.5" into lowercased media
// types with their parameters dropped. Empty elements, duplicates and ranges
// explicitly refused with q=0 are left out.
func SplitAcceptHeader(v string) []string {
	var out []string
	for _, elem := range splitQuoted(v, ',') {
		mt, params := MediaType(elem)
		if mt == "" || qualityZero(params) {
			continue
		}
		dup := false
		for _, have := range out {
			if have == mt {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, mt)
		}
	}
	return out
}

// qualityZero reports whether params carry q=0 (not acceptable).
func qualityZero(params map[string]string) bool {
	q, ok := params["q"]
	if !ok {
		return false
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(q), 64)
	return err == nil && f <= 0
}

// AcceptsType reports whether list accepts media type mt. Elements of list
// are media ranges as found in a=accept-types or an Accept header: they may
// carry parameters (q=0 refuses), contain several comma-separated ranges, and
// use "*/*" (or "*") and "type/*". The most specific matching range decides,
// so "text/plain;q=0, */*" refuses text/plain. Parameters of mt are ignored
// and matching is case-insensitive.
func AcceptsType(list []string, mt string) bool {
	want, _ := MediaType(mt)
	wantMain, _, _ := strings.Cut(want, "/")
	if want == "" {
		return false
	}
	best, accepted := 0, false // specificity: 1 */*, 2 type/*, 3 exact
	for _, entry := range list {
		for _, elem := range splitQuoted(entry, ',') {
			r, params := MediaType(elem)
			spec := 0
			switch {
			case r == "*/*" || r == "*":
				spec = 1
			case strings.HasSuffix(r, "/*") && strings.TrimSuffix(r, "/*") == wantMain:
				spec = 2
			case r == want:
				spec = 3
			}
			if spec > best {
				best, accepted = spec, !qualityZero(params)
			}
		}
	}
	return accepted
}
