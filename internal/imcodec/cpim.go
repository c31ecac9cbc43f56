package imcodec

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Namespaces used with CPIM and IMDN.
const (
	// NSIMDNHeaders is the CPIM header namespace of IMDN (RFC 5438), declared
	// as "NS: imdn <urn:ietf:params:imdn>".
	NSIMDNHeaders = "urn:ietf:params:imdn"
	// NSIMDN is the XML namespace of message/imdn+xml bodies.
	NSIMDN = "urn:ietf:params:xml:ns:imdn"
)

// maxCPIMHeaders bounds the header lines of each CPIM header block.
const maxCPIMHeaders = 64

// CPIM is a parsed RFC 3862 message/cpim body.
type CPIM struct {
	// From and To are the first From and To message header values as
	// written (e.g. "<sip:carol@example.com>").
	From, To string
	// Headers holds the message headers (not the inner MIME headers), keyed
	// by name as first written, including any namespace prefix (e.g.
	// "imdn.Message-ID"). Names differing only in case are merged; repeated
	// headers are joined with ", ". Use Header for case-insensitive lookups.
	Headers map[string]string
	// ContentType is the inner Content-Type ("" if absent).
	ContentType string
	// Body is the inner body, byte for byte.
	Body []byte
	// MessageID is the <prefix>.Message-ID header value, where <prefix> is
	// any name bound to urn:ietf:params:imdn by an NS header; "" otherwise.
	MessageID string
	// Disposition lists the <prefix>.Disposition-Notification values
	// (e.g. "positive-delivery", "display"), lowercased and trimmed.
	Disposition []string
}

// Header returns the value of message header name, matched
// case-insensitively, or "".
func (c *CPIM) Header(name string) string {
	if v, ok := c.Headers[name]; ok {
		return v
	}
	for k, v := range c.Headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// ParseCPIM parses a message/cpim body: message headers, a blank line, the
// inner MIME headers, a blank line, then the inner body. Lines may end in
// CRLF or LF, header lines may be folded, and lines without a colon are
// ignored. Leading blank lines are skipped. If the line after the first blank
// line is not a header, the inner headers are taken to be absent. An error
// wrapping ErrMalformed is returned when there are no message headers, no
// blank line after them, or more than 64 header lines in a block.
func ParseCPIM(body []byte) (CPIM, error) {
	pos := 0
	for pos < len(body) {
		line, next := nextLine(body, pos)
		if len(line) != 0 {
			break
		}
		pos = next
	}
	msgHdrs, pos, complete, err := readHeaderBlock(body, pos)
	if err != nil {
		return CPIM{}, fmt.Errorf("%w: cpim message headers: %w", ErrMalformed, err)
	}
	if len(msgHdrs) == 0 {
		return CPIM{}, fmt.Errorf("%w: cpim: no message headers", ErrMalformed)
	}
	if !complete {
		return CPIM{}, fmt.Errorf("%w: cpim: no blank line after the message headers", ErrMalformed)
	}
	c := CPIM{Headers: make(map[string]string, len(msgHdrs))}
	var imdnPrefixes []string
	for _, h := range msgHdrs {
		switch {
		case strings.EqualFold(h.name, "From") && c.From == "":
			c.From = h.value
		case strings.EqualFold(h.name, "To") && c.To == "":
			c.To = h.value
		case strings.EqualFold(h.name, "NS"):
			if prefix, uri, ok := parseNS(h.value); ok && strings.EqualFold(uri, NSIMDNHeaders) {
				imdnPrefixes = append(imdnPrefixes, prefix)
			}
		}
		c.addHeader(h.name, h.value)
	}
	for _, p := range imdnPrefixes {
		dot := p + "."
		if p == "" {
			dot = ""
		}
		if c.MessageID == "" {
			c.MessageID = c.Header(dot + "Message-ID")
		}
		if c.Disposition == nil {
			for v := range strings.SplitSeq(c.Header(dot+"Disposition-Notification"), ",") {
				if v = strings.ToLower(strings.TrimSpace(v)); v != "" {
					c.Disposition = append(c.Disposition, v)
				}
			}
		}
	}

	// Inner MIME headers, unless the body follows directly.
	if line, _ := nextLine(body, pos); len(line) > 0 && isHeaderLine(line) {
		inner, p, _, err := readHeaderBlock(body, pos)
		if err != nil {
			return CPIM{}, fmt.Errorf("%w: cpim content headers: %w", ErrMalformed, err)
		}
		pos = p
		for _, h := range inner {
			if strings.EqualFold(h.name, "Content-Type") && c.ContentType == "" {
				c.ContentType = h.value
			}
		}
	}
	c.Body = body[pos:]
	return c, nil
}

// addHeader records a message header, merging names that differ in case.
func (c *CPIM) addHeader(name, value string) {
	key := name
	if _, ok := c.Headers[key]; !ok {
		for k := range c.Headers {
			if strings.EqualFold(k, name) {
				key = k
				break
			}
		}
	}
	if old, ok := c.Headers[key]; ok {
		c.Headers[key] = old + ", " + value
		return
	}
	c.Headers[key] = value
}

// parseNS parses an NS header value: "[prefix] <uri>".
func parseNS(v string) (prefix, uri string, ok bool) {
	i := strings.IndexByte(v, '<')
	j := strings.LastIndexByte(v, '>')
	if i < 0 || j < i {
		return "", "", false
	}
	return strings.TrimSpace(v[:i]), strings.TrimSpace(v[i+1 : j]), true
}

type header struct{ name, value string }

// nextLine returns the line starting at pos without its line end, and the
// position of the following line.
func nextLine(b []byte, pos int) (line []byte, next int) {
	i := bytes.IndexByte(b[pos:], '\n')
	if i < 0 {
		return bytes.TrimSuffix(b[pos:], []byte("\r")), len(b)
	}
	return bytes.TrimSuffix(b[pos:pos+i], []byte("\r")), pos + i + 1
}

// isHeaderLine reports whether line looks like "Name: value".
func isHeaderLine(line []byte) bool {
	name, _, ok := bytes.Cut(line, []byte(":"))
	return ok && len(bytes.TrimSpace(name)) > 0 && bytes.IndexAny(bytes.TrimSpace(name), " \t") < 0
}

// readHeaderBlock reads header lines from pos up to and including a blank
// line. complete is false when the input ended first.
func readHeaderBlock(b []byte, pos int) (hdrs []header, next int, complete bool, err error) {
	lines := 0
	for pos < len(b) {
		line, n := nextLine(b, pos)
		pos = n
		if len(line) == 0 {
			return hdrs, pos, true, nil
		}
		if lines++; lines > maxCPIMHeaders {
			return nil, pos, false, fmt.Errorf("more than %d header lines", maxCPIMHeaders)
		}
		if (line[0] == ' ' || line[0] == '\t') && len(hdrs) > 0 {
			last := &hdrs[len(hdrs)-1]
			last.value = strings.TrimSpace(last.value + " " + string(bytes.TrimSpace(line)))
			continue
		}
		if !isHeaderLine(line) {
			continue
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		hdrs = append(hdrs, header{
			name:  string(bytes.TrimSpace(name)),
			value: string(bytes.TrimSpace(value)),
		})
	}
	return hdrs, pos, false, nil
}

// IMDN is a parsed RFC 5438 message/imdn+xml notification (also the
// Microsoft application/ms-imdn+xml flavour, whose status is a code).
type IMDN struct {
	// MessageID identifies the message the notification is about.
	MessageID string
	// Status is the disposition, e.g. "delivered", "failed", "displayed",
	// "processed", "forbidden", "error" (the name of the first element
	// inside <status>), or the text of <status> when it has no element (as
	// in Microsoft's "408").
	Status string
	// Notification is the kind: "delivery-notification",
	// "display-notification" or "processing-notification" ("" if absent).
	Notification string
	// DateTime is the <datetime> value (zero if absent or invalid).
	DateTime time.Time
}

// ParseIMDN parses an IMDN body. The root must be an imdn element (any
// namespace) and a message-id is required; otherwise the error wraps
// ErrMalformed.
func ParseIMDN(body []byte) (IMDN, error) {
	d := newXMLDecoder(body)
	var (
		m        IMDN
		text     strings.Builder
		path     []string // lowercased local names from the root down
		inStatus bool
		n        int
	)
loop:
	for {
		tok, err := nextToken(d, &n)
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return IMDN{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			name := strings.ToLower(t.Name.Local)
			if len(path) == 0 && name != "imdn" {
				return IMDN{}, fmt.Errorf("%w: root element %q is not imdn", ErrMalformed, t.Name.Local)
			}
			if inStatus && m.Status == "" {
				m.Status = name
			}
			path = append(path, name)
			text.Reset()
			switch {
			case name == "status":
				inStatus = true
			case len(path) == 2 && strings.HasSuffix(name, "-notification"):
				m.Notification = name
			}
		case xml.CharData:
			if text.Len() < 1024 {
				text.Write(t)
			}
		case xml.EndElement:
			if len(path) == 0 {
				break loop
			}
			name := path[len(path)-1]
			v := strings.TrimSpace(text.String())
			switch {
			case name == "message-id" && m.MessageID == "":
				m.MessageID = v
			case name == "datetime" && len(path) == 2:
				if tm, err := time.Parse(time.RFC3339, v); err == nil {
					m.DateTime = tm
				}
			case name == "status":
				inStatus = false
				if m.Status == "" {
					m.Status = v
				}
			}
			text.Reset()
			path = path[:len(path)-1]
			if len(path) == 0 {
				break loop
			}
		}
	}
	if m.MessageID == "" {
		return IMDN{}, fmt.Errorf("%w: imdn without message-id", ErrMalformed)
	}
	return m, nil
}

// DeliveryNotification builds an RFC 5438 "delivered" notification for the
// message messageID, dated at (in UTC, RFC 3339). Send it with Content-Type
// TypeIMDN (optionally CPIM-wrapped) to the sender of the message.
func DeliveryNotification(messageID string, at time.Time) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<imdn xmlns="` + NSIMDN + `"><message-id>`)
	_ = xml.EscapeText(&b, []byte(validUTF8String(messageID)))
	b.WriteString(`</message-id><datetime>`)
	b.WriteString(at.UTC().Format(time.RFC3339))
	b.WriteString(`</datetime><delivery-notification><status><delivered/></status></delivery-notification></imdn>`)
	return b.Bytes()
}
