package imcodec

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/encoding/htmlindex"
)

// maxXMLTokens bounds the XML tokens read from one body.
const maxXMLTokens = 4096

// maxRefresh caps an isComposing refresh interval.
const maxRefresh = 24 * time.Hour

// NSIsComposing is the RFC 3994 XML namespace.
const NSIsComposing = "urn:ietf:params:xml:ns:im-iscomposing"

// Keyboard activity bodies sent in OCS/Lync INFO requests.
const (
	keyboardType = `<?xml version="1.0"?><KeyboardActivity><status status="type" /></KeyboardActivity>`
	keyboardIdle = `<?xml version="1.0"?><KeyboardActivity><status status="idle" /></KeyboardActivity>`
)

// newXMLDecoder returns a lenient decoder for a small XML body: non-strict
// parsing, a UTF-8 BOM skipped, and 8-bit encodings declared in the XML
// declaration decoded via the WHATWG encoding index.
func newXMLDecoder(body []byte) *xml.Decoder {
	d := xml.NewDecoder(bytes.NewReader(bytes.TrimPrefix(body, []byte(bomUTF8))))
	d.Strict = false
	d.CharsetReader = func(label string, input io.Reader) (io.Reader, error) {
		enc, err := htmlindex.Get(label)
		if err != nil {
			return nil, fmt.Errorf("%w: xml encoding %q", ErrUnsupportedType, label)
		}
		return enc.NewDecoder().Reader(input), nil
	}
	return d
}

// nextToken reads the next XML token, counting against *n.
func nextToken(d *xml.Decoder, n *int) (xml.Token, error) {
	*n++
	if *n > maxXMLTokens {
		return nil, fmt.Errorf("%w: more than %d xml tokens", ErrMalformed, maxXMLTokens)
	}
	tok, err := d.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: xml: %w", ErrMalformed, err)
	}
	return tok, nil
}

// ParseKeyboardActivity parses an OCS/Lync KeyboardActivity INFO body such as
//
//	<?xml version="1.0"?><KeyboardActivity><status status="type" /></KeyboardActivity>
//
// and reports whether the peer is typing: status "type" means active, "idle"
// means not active (both case-insensitive). The XML declaration, attribute
// order and whitespace do not matter. A missing KeyboardActivity root or
// status element, or another status value, yields an error wrapping
// ErrMalformed.
func ParseKeyboardActivity(body []byte) (active bool, err error) {
	d := newXMLDecoder(body)
	depth, n := 0, 0
	for {
		tok, err := nextToken(d, &n)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return false, fmt.Errorf("%w: KeyboardActivity: no status element", ErrMalformed)
			}
			return false, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 {
				if !strings.EqualFold(t.Name.Local, "KeyboardActivity") {
					return false, fmt.Errorf("%w: root element %q is not KeyboardActivity", ErrMalformed, t.Name.Local)
				}
				continue
			}
			if !strings.EqualFold(t.Name.Local, "status") {
				continue
			}
			for _, a := range t.Attr {
				if !strings.EqualFold(a.Name.Local, "status") {
					continue
				}
				switch v := strings.ToLower(strings.TrimSpace(a.Value)); v {
				case "type":
					return true, nil
				case "idle":
					return false, nil
				default:
					return false, fmt.Errorf("%w: KeyboardActivity status %q", ErrMalformed, v)
				}
			}
			return false, fmt.Errorf("%w: KeyboardActivity status element without status attribute", ErrMalformed)
		case xml.EndElement:
			depth--
		}
	}
}

// KeyboardActivity returns the INFO body announcing that the bot is typing
// (active, status "type") or stopped (status "idle"). Send it with
// Content-Type TypeKeyboard.
func KeyboardActivity(active bool) []byte {
	if active {
		return []byte(keyboardType)
	}
	return []byte(keyboardIdle)
}

// Composing is an RFC 3994 isComposing status message.
type Composing struct {
	// Active is true for state "active", false for "idle".
	Active bool
	// Refresh is the announced refresh interval (0 if absent or invalid;
	// capped at 24h). A receiver falls back to idle when it passes without
	// an update; RFC 3994 uses 120s when it is absent.
	Refresh time.Duration
	// ContentType is the type of the message being composed ("" if absent).
	ContentType string
	// LastActive is when the composer was last active (zero if absent or
	// invalid).
	LastActive time.Time
}

// ParseIsComposing parses an application/im-iscomposing+xml body. The root
// must be an isComposing element (its namespace and prefix are not checked,
// so bodies without xmlns or with extra namespaces such as xmlns:xsi are
// accepted). The state element is required and must be "active" or "idle".
// Invalid optional elements (refresh, lastactive) are ignored; unknown
// elements are skipped.
func ParseIsComposing(body []byte) (Composing, error) {
	d := newXMLDecoder(body)
	var (
		c        Composing
		state    string
		sawState bool
		field    string // local name of the depth-2 element being read
		text     strings.Builder
		depth, n int
	)
loop:
	for {
		tok, err := nextToken(d, &n)
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return Composing{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch depth {
			case 1:
				if !strings.EqualFold(t.Name.Local, "isComposing") {
					return Composing{}, fmt.Errorf("%w: root element %q is not isComposing", ErrMalformed, t.Name.Local)
				}
			case 2:
				field = strings.ToLower(t.Name.Local)
				text.Reset()
			}
		case xml.CharData:
			if depth == 2 && text.Len() < 1024 {
				text.Write(t)
			}
		case xml.EndElement:
			if depth == 2 {
				v := strings.TrimSpace(text.String())
				switch field {
				case "state":
					state, sawState = strings.ToLower(v), true
				case "contenttype":
					c.ContentType = v
				case "refresh":
					c.Refresh = parseRefresh(v)
				case "lastactive":
					if tm, err := time.Parse(time.RFC3339, v); err == nil {
						c.LastActive = tm
					}
				}
				field = ""
			}
			depth--
			if depth <= 0 {
				break loop
			}
		}
	}
	if !sawState {
		return Composing{}, fmt.Errorf("%w: isComposing without state", ErrMalformed)
	}
	switch state {
	case "active":
		c.Active = true
	case "idle":
	default:
		return Composing{}, fmt.Errorf("%w: isComposing state %q", ErrMalformed, state)
	}
	return c, nil
}

// parseRefresh parses a refresh interval in seconds; invalid or non-positive
// values yield 0, huge ones maxRefresh.
func parseRefresh(v string) time.Duration {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return maxRefresh
		}
		return 0
	}
	if n > uint64(maxRefresh/time.Second) {
		return maxRefresh
	}
	return time.Duration(n) * time.Second
}

// IsComposing builds an RFC 3994 isComposing body with state "active" or
// "idle" and contenttype text/plain. <refresh> (in whole seconds, rounded up,
// at most 24h) is included only when active and refresh > 0. Send it with Content-Type
// TypeIsComposing.
func IsComposing(active bool, refresh time.Duration) []byte {
	var b bytes.Buffer
	b.Grow(200)
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<isComposing xmlns="` + NSIsComposing + `">`)
	if active {
		b.WriteString(`<state>active</state>`)
	} else {
		b.WriteString(`<state>idle</state>`)
	}
	b.WriteString(`<contenttype>text/plain</contenttype>`)
	if active && refresh > 0 {
		refresh = min(refresh, maxRefresh)
		secs := (refresh + time.Second - 1) / time.Second
		b.WriteString(`<refresh>`)
		b.WriteString(strconv.FormatInt(int64(secs), 10))
		b.WriteString(`</refresh>`)
	}
	b.WriteString(`</isComposing>`)
	return b.Bytes()
}
