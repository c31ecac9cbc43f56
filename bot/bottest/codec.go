package bottest

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/xml"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"
)

// Dialect selects how a session is opened and how typing is signalled.
type Dialect int

// The dialects of IM sessions.
const (
	// DialectMS is the Microsoft OCS/Lync/Skype for Business dialect: the
	// INVITE carries Ms-Conversation-ID, ms-text-format (with the first
	// line, [FirstLine], in ms-body), Supported: ms-sender and a From with
	// ;epid=; texts are sent as text/plain with an msgr parameter, and
	// typing as INFO application/xml KeyboardActivity.
	DialectMS Dialect = iota
	// DialectIETF is a standard client: no ms-* headers, and typing as RFC
	// 3994 isComposing MESSAGEs.
	DialectIETF
)

// String returns "ms" or "ietf".
func (d Dialect) String() string {
	switch d {
	case DialectMS:
		return "ms"
	case DialectIETF:
		return "ietf"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// AcceptTypes returns the a=accept-types the peer offers in this dialect's
// INVITE.
func (d Dialect) AcceptTypes() []string {
	if d == DialectMS {
		return []string{"text/plain", "text/html", "multipart/alternative", "application/im-iscomposing+xml"}
	}
	return []string{"text/plain", "application/im-iscomposing+xml"}
}

// FirstLine is the text a DialectMS INVITE carries, base64-encoded, in the
// ms-body parameter of its ms-text-format header. The peer never sends it
// again by itself: the test sends the first MESSAGE.
const FirstLine = "Hi"

// Content types the kit sends and recognises.
const (
	ContentTypeText        = "text/plain;charset=UTF-8"
	ContentTypeIsComposing = "application/im-iscomposing+xml"
	ContentTypeXML         = "application/xml"
	ContentTypeSDP         = "application/sdp"
)

// msgr is the msgr content-type parameter as SIPE computes it: base64 of
// the UTF-16LE "X-MMS-IM-Format" string, without padding.
var msgr = func() string {
	u := utf16.Encode([]rune("X-MMS-IM-Format: FN=Segoe%20UI; EF=; CO=0; CS=0; PF=0\r\n\r\n"))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return strings.TrimRight(base64.StdEncoding.EncodeToString(b), "=")
}()

// contentTypeText is the Content-Type of a text MESSAGE in dialect d.
func contentTypeText(d Dialect) string {
	if d == DialectMS {
		return "text/plain; charset=UTF-8;msgr=" + msgr
	}
	return ContentTypeText
}

// OfferSDP returns the SDP offer the peer puts in an INVITE:
// "m=message <port> sip null" with the given a=accept-types (DialectIETF's
// when none are given).
func (p *Peer) OfferSDP(acceptTypes ...string) []byte {
	if len(acceptTypes) == 0 {
		acceptTypes = DialectIETF.AcceptTypes()
	}
	return []byte("v=0\r\n" +
		"o=- 0 0 IN IP4 127.0.0.1\r\n" +
		"s=session\r\n" +
		"c=IN IP4 127.0.0.1\r\n" +
		"t=0 0\r\n" +
		fmt.Sprintf("m=message %d sip null\r\n", p.port) +
		"a=accept-types:" + strings.Join(acceptTypes, " ") + "\r\n")
}

// DialectHeaders returns the headers OpenSession adds to an INVITE in
// dialect d, for use with Invite: for DialectMS a From with a fresh tag and
// the peer's ;epid=, Supported: ms-sender, Supported:
// ms-renders-mime-alternative, a random Ms-Conversation-ID and
// ms-text-format carrying FirstLine; nothing for DialectIETF.
func (p *Peer) DialectHeaders(d Dialect) []sip.Header {
	if d != DialectMS {
		return nil
	}
	from := p.newFrom()
	from.Params.Add("epid", p.epid)
	return []sip.Header{
		from,
		sip.NewHeader("Supported", "ms-sender"),
		sip.NewHeader("Supported", "ms-renders-mime-alternative"),
		sip.NewHeader("Ms-Conversation-ID", sip.GenerateTagN(16)),
		sip.NewHeader("ms-text-format", "text/plain; charset=UTF-8;msgr="+msgr+
			";ms-body="+base64.StdEncoding.EncodeToString([]byte(FirstLine))),
	}
}

// keyboardActivity returns a KeyboardActivity INFO body.
func keyboardActivity(active bool) []byte {
	status := "idle"
	if active {
		status = "type"
	}
	return []byte(`<?xml version="1.0"?><KeyboardActivity><status status="` + status + `" /></KeyboardActivity>`)
}

// isComposing returns an RFC 3994 isComposing body.
func isComposing(active bool) []byte {
	if active {
		return []byte(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
			`<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state>` +
			`<contenttype>text/plain</contenttype><refresh>60</refresh></isComposing>`)
	}
	return []byte(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>idle</state></isComposing>`)
}

type keyboardActivityDoc struct {
	XMLName xml.Name `xml:"KeyboardActivity"`
	Status  struct {
		Status string `xml:"status,attr"`
	} `xml:"status"`
}

// parseKeyboardActivity decodes a KeyboardActivity document: "type" is
// active, "idle" is not.
func parseKeyboardActivity(body []byte) (active, ok bool) {
	var doc keyboardActivityDoc
	if err := xml.Unmarshal(body, &doc); err != nil {
		return false, false
	}
	switch strings.TrimSpace(doc.Status.Status) {
	case "type":
		return true, true
	case "idle":
		return false, true
	}
	return false, false
}

type isComposingDoc struct {
	XMLName xml.Name `xml:"urn:ietf:params:xml:ns:im-iscomposing isComposing"`
	State   string   `xml:"state"`
	Refresh string   `xml:"refresh"`
}

// parseIsComposing decodes an RFC 3994 document; the namespace is required.
func parseIsComposing(body []byte) (active bool, refresh time.Duration, ok bool) {
	var doc isComposingDoc
	if err := xml.Unmarshal(body, &doc); err != nil {
		return false, 0, false
	}
	if r := strings.TrimSpace(doc.Refresh); r != "" {
		var n int
		if _, err := fmt.Sscan(r, &n); err != nil || n < 0 {
			return false, 0, false
		}
		refresh = time.Duration(n) * time.Second
	}
	switch strings.TrimSpace(doc.State) {
	case "active":
		return true, refresh, true
	case "idle":
		return false, refresh, true
	}
	return false, 0, false
}

// mediaType returns the lower-case media type and the parameters of a
// Content-Type value, leniently.
func mediaType(ct string) (string, map[string]string) {
	if ct == "" {
		return "", nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		mt, _, _ = strings.Cut(ct, ";")
		return strings.ToLower(strings.TrimSpace(mt)), nil
	}
	return mt, params
}

// decodeText extracts the text of a MESSAGE body of media type mt.
func decodeText(mt string, params map[string]string, body []byte) (string, bool) {
	switch {
	case strings.HasPrefix(mt, "text/"):
		return toUTF8(body, params["charset"]), true
	case strings.HasPrefix(mt, "multipart/"):
		return decodeMultipart(params["boundary"], body)
	case mt == "message/cpim":
		return decodeCPIM(body)
	}
	return "", false
}

// toUTF8 decodes body in charset (UTF-8 unless ISO-8859-1/Latin-1).
func toUTF8(body []byte, charset string) string {
	switch strings.ToLower(charset) {
	case "iso-8859-1", "latin1", "latin-1", "iso_8859-1":
		r := make([]rune, len(body))
		for i, c := range body {
			r[i] = rune(c)
		}
		return string(r)
	}
	if !utf8.Valid(body) {
		return strings.ToValidUTF8(string(body), "\uFFFD")
	}
	return string(body)
}

// decodeMultipart returns the text/plain part of a multipart body, or its
// first text part.
func decodeMultipart(boundary string, body []byte) (string, bool) {
	if boundary == "" {
		return "", false
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	var first string
	found := false
	for {
		part, err := mr.NextPart()
		if err != nil {
			break
		}
		data, err := io.ReadAll(part)
		if err != nil {
			break
		}
		mt, params := mediaType(part.Header.Get("Content-Type"))
		if mt == "" {
			mt = "text/plain"
		}
		text, ok := decodeText(mt, params, data)
		if !ok {
			continue
		}
		if mt == "text/plain" {
			return text, true
		}
		if !found {
			first, found = text, true
		}
	}
	return first, found
}

// decodeCPIM returns the text inside an RFC 3862 message/cpim body.
func decodeCPIM(body []byte) (string, bool) {
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(body)))
	if _, err := r.ReadMIMEHeader(); err != nil { // CPIM message headers
		return "", false
	}
	h, err := r.ReadMIMEHeader() // MIME headers of the payload
	if err != nil {
		return "", false
	}
	inner, err := io.ReadAll(r.R)
	if err != nil {
		return "", false
	}
	mt, params := mediaType(h.Get("Content-Type"))
	return decodeText(mt, params, inner)
}

// classify builds the Record of a request from the bot (without Time and
// Status).
func classify(req *sip.Request) Record {
	r := Record{Method: string(req.Method), Kind: KindOther, Request: req.Clone()}
	if h := req.CallID(); h != nil {
		r.CallID = h.Value()
	}
	if h := req.CSeq(); h != nil {
		r.CSeq = h.SeqNo
	}
	if h := req.To(); h != nil {
		_, r.InDialog = h.Params.Get("tag")
	}
	if h := req.ContentType(); h != nil {
		r.ContentType = h.Value()
	}
	body := req.Body()
	mt, params := mediaType(r.ContentType)
	switch {
	case req.Method == sip.BYE:
		r.Kind = KindBye
	case mt == ContentTypeIsComposing:
		if active, refresh, ok := parseIsComposing(body); ok {
			r.Kind, r.Dialect, r.Active, r.Refresh = KindTyping, DialectIETF, active, refresh
		}
	case req.Method == sip.INFO && (mt == ContentTypeXML || mt == "text/xml"):
		if active, ok := parseKeyboardActivity(body); ok {
			r.Kind, r.Dialect, r.Active = KindTyping, DialectMS, active
		}
	case req.Method == sip.MESSAGE:
		if text, ok := decodeText(mt, params, body); ok {
			r.Kind, r.Text = KindText, text
		}
	}
	return r
}

// offersIM reports whether an SDP body has an "m=message" (or LCS-era
// "m=x-ms-message") media line.
func offersIM(sdp []byte) bool {
	for _, line := range strings.Split(string(sdp), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "m=message ") || strings.HasPrefix(line, "m=x-ms-message ") {
			return true
		}
	}
	return false
}
