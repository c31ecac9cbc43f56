package imcodec

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func FuzzParseOffer(f *testing.F) {
	f.Add([]byte(crlf(ocsOffer)))
	f.Add([]byte(ocsOffer))
	f.Add([]byte(msrpOffer))
	f.Add([]byte("v=0\r\nm=x-ms-message 5060 sip null\r\na=accept-types:text/plain\r\n"))
	f.Add([]byte("v=0\nm=audio 4000 RTP/AVP 0\n"))
	f.Add([]byte("m=message 5061/2 SIP x\n\x00=\nm=\n"))
	f.Add([]byte("v=0\nm=audio 49170 RTP/AVP 0\nm=message 5060 sip sip:alice@example.com\nm=message 1 sip null\n"))
	f.Add([]byte("v=0\nm=message 2855 TCP/MSRP *\nm=\nm=video 5\nm=X-MS-MESSAGE 1 SIP null 0\x01\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, body []byte) {
		o, err := ParseOffer(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if o.MSDialect && !o.Message {
			t.Fatalf("MSDialect without Message: %+v", o)
		}
		if o.Port < 0 || o.Port > 65535 {
			t.Fatalf("port out of range: %d", o.Port)
		}
		if len(o.AcceptTypes) > maxAcceptTypes {
			t.Fatalf("%d accept types", len(o.AcceptTypes))
		}
		for _, at := range o.AcceptTypes {
			if at == "" || strings.ContainsFunc(at, func(r rune) bool { return r == ' ' || r == '\n' || r == '\r' }) {
				t.Fatalf("bad accept type %q", at)
			}
		}
		if o.Message {
			// Answering with the offered types parses back to the same stream.
			back, err := ParseOffer(Answer("192.0.2.20", o.Port, "sip:bot@example.com", o.AcceptTypes, o.MSDialect))
			if err != nil || !back.Message || back.MSDialect != o.MSDialect || back.Port != o.Port {
				t.Fatalf("answer round trip: %+v, %v (offer %+v)", back, err, o)
			}
		}
		// The answer to the offer has its m= lines in order: the message stream
		// accepted, the others rejected with port 0.
		back, err := ParseOffer(AnswerOffer(o, "192.0.2.20", 5061, "sip:bot@example.com", o.AcceptTypes))
		if err != nil || len(back.Media) != len(o.Media) || back.Message != o.Message ||
			back.MSDialect != o.MSDialect || back.MSRP != o.MSRP {
			t.Fatalf("AnswerOffer: %+v, %v (offer %+v)", back, err, o)
		}
		accepted := slices.IndexFunc(o.Media, Media.sipMessage)
		if o.Message != (accepted >= 0) {
			t.Fatalf("Message = %v, but the sip message stream is m= line %d", o.Message, accepted)
		}
		for i, m := range back.Media {
			wantPort := 0
			if i == accepted {
				wantPort = 5061
			}
			if m.Port != wantPort || !strings.EqualFold(m.Type, orDash(o.Media[i].Type)) ||
				!strings.EqualFold(m.Proto, orDash(o.Media[i].Proto)) {
				t.Fatalf("answer m= line %d = %+v, offer %+v (accepted: line %d)", i, m, o.Media[i], accepted)
			}
		}
	})
}

func FuzzParseKeyboardActivity(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0"?><KeyboardActivity><status status="type" /></KeyboardActivity>`))
	f.Add([]byte(`<?xml version="1.0"?><KeyboardActivity><status status="idle" /></KeyboardActivity>`))
	f.Add([]byte(`<KeyboardActivity><status status=type></KeyboardActivity>`))
	f.Add([]byte(`<?xml version="1.0" encoding="ISO-8859-1"?><KeyboardActivity><status status="type"/></KeyboardActivity>`))
	f.Add([]byte(`<action xmlns="http://schemas.microsoft.com/sip/multiparty/"><RequestRM uri="sip:a" bid="1"/></action>`))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, err := ParseKeyboardActivity(body); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		for _, active := range []bool{true, false} {
			if got, err := ParseKeyboardActivity(KeyboardActivity(active)); err != nil || got != active {
				t.Fatalf("round trip of %v = %v, %v", active, got, err)
			}
		}
	})
}

func FuzzParseIsComposing(f *testing.F) {
	f.Add([]byte(rfcIsComposing), true, uint32(60))
	f.Add([]byte(linphoneIsComposing), false, uint32(0))
	f.Add([]byte(`<ic:isComposing xmlns:ic="urn:ietf:params:xml:ns:im-iscomposing"><ic:state>idle</ic:state></ic:isComposing>`), true, uint32(1))
	f.Add([]byte(`<isComposing><state>active</state><refresh>99999999999999999999</refresh></isComposing>`), true, uint32(1<<31))
	f.Add([]byte(""), false, uint32(5))
	f.Fuzz(func(t *testing.T, body []byte, active bool, refreshSecs uint32) {
		c, err := ParseIsComposing(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
		} else if c.Refresh < 0 || c.Refresh > maxRefresh {
			t.Fatalf("refresh out of range: %v", c.Refresh)
		}
		refresh := time.Duration(refreshSecs) * time.Second
		back, err := ParseIsComposing(IsComposing(active, refresh))
		if err != nil || back.Active != active {
			t.Fatalf("round trip of %v = %+v, %v", active, back, err)
		}
		want := time.Duration(0)
		if active && refresh > 0 {
			want = min(refresh, maxRefresh)
		}
		if back.Refresh != want {
			t.Fatalf("round trip refresh = %v, want %v", back.Refresh, want)
		}
	})
}

func FuzzDecodeText(f *testing.F) {
	f.Add("text/plain;charset=UTF-8", []byte("hello, bot!"))
	f.Add("text/plain; charset=ISO-8859-1", []byte("caf\xe9"))
	f.Add("text/plain; charset=utf-16", []byte("\xff\xfeh\x00i\x00"))
	f.Add("text/html", []byte("<b>Hi</b> &amp; <script>x</script>bye<br>"))
	f.Add("multipart/alternative; boundary=b1_9d1f", []byte(ocsAlternative))
	f.Add("multipart/alternative; boundary=b1_9d1f", []byte(crlf(ocsAlternative)))
	f.Add("multipart/mixed; boundary=B", []byte(mkMultipart(
		"Content-Type: multipart/alternative; boundary=C\r\n\r\n--C\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9\r\n--C--",
		"Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+aGk8L2I+")))
	f.Add("multipart/related; boundary=\"x y\"", []byte("--x y\nContent-Type: text/html\n\nhi\n--x y--"))
	f.Add("multipart/alternative", []byte("--\r\n\r\n"))
	f.Add("image/gif", []byte("GIF89a"))
	f.Add("", []byte{})
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		got, err := DecodeText(contentType, body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedType) {
				t.Fatalf("error %v wraps neither ErrMalformed nor ErrUnsupportedType", err)
			}
			return
		}
		if !utf8.ValidString(got.Plain) || !utf8.ValidString(got.HTML) {
			t.Fatalf("invalid UTF-8: %+q", got)
		}
		switch got.MediaType {
		case TypePlain:
			if got.HTML != "" {
				t.Fatalf("HTML set for plain text: %+q", got)
			}
		case TypeHTML:
			if got.Plain != StripHTML(got.HTML) {
				t.Fatalf("Plain is not StripHTML(HTML): %+q", got)
			}
		default:
			t.Fatalf("unexpected media type %q", got.MediaType)
		}
		if mt, p := MediaType(contentType); (mt == TypePlain || mt == "") && p["charset"] == "" &&
			utf8.Valid(body) && !bytes.HasPrefix(body, []byte(bomUTF16BE)) && !bytes.HasPrefix(body, []byte(bomUTF16LE)) {
			if want := strings.TrimPrefix(string(body), bomUTF8); got.Plain != want {
				t.Fatalf("UTF-8 text changed: %q -> %q", body, got.Plain)
			}
		}
	})
}

func FuzzDecodeCharset(f *testing.F) {
	for _, cs := range []string{"", "utf-8", "UTF-8", "iso-8859-1", "windows-1252", "us-ascii", "utf-16", "utf-16le", "utf-16be", "utf-32", "shift_jis", "gb18030", "iso-2022-jp", "x-nope"} {
		f.Add(cs, []byte("h\x00\xe9llo \xff\xfe\xef\xbb\xbf\x1b$B"))
	}
	f.Fuzz(func(t *testing.T, charset string, b []byte) {
		s, err := DecodeCharset(charset, b)
		if err != nil {
			if !errors.Is(err, ErrUnsupportedType) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v wraps neither ErrUnsupportedType nor ErrMalformed", err)
			}
			return
		}
		if !utf8.ValidString(s) {
			t.Fatalf("invalid UTF-8 output %q", s)
		}
		if cs := strings.ToLower(charset); (cs == "" || cs == "utf-8") && utf8.Valid(b) &&
			!bytes.HasPrefix(b, []byte(bomUTF16BE)) && !bytes.HasPrefix(b, []byte(bomUTF16LE)) {
			if want := strings.TrimPrefix(string(b), bomUTF8); s != want {
				t.Fatalf("valid UTF-8 changed: %q -> %q", b, s)
			}
		}
	})
}

func FuzzStripHTML(f *testing.F) {
	f.Add(`<span style="font-family:Segoe UI;">It is <b>12:31</b> UTC.</span>`)
	f.Add("<html><head><title>T</title></head><body><p>a</p><p>b<br>c</p></body></html>")
	f.Add("a<!-- x --><script>y</script>&lt;z&gt;&#233;&nbsp;<a title='>'>q</a>")
	f.Add("<table><tr><td>1</td><td>2</td></tr></table>")
	f.Add("1 < 2 <b unterminated")
	f.Add("\xff<\xfe")
	f.Fuzz(func(t *testing.T, s string) {
		out := StripHTML(s)
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 output %q", out)
		}
		if strings.TrimSpace(out) != out {
			t.Fatalf("output not trimmed: %q", out)
		}
		if strings.Contains(out, "\n\n\n") {
			t.Fatalf("blank lines not collapsed: %q", out)
		}
		if !strings.ContainsAny(s, "<&") && utf8.ValidString(s) {
			// Without markup only whitespace may change.
			if !slices.Equal(strings.Fields(out), strings.Fields(s)) {
				t.Fatalf("text without markup changed: %q -> %q", s, out)
			}
		}
	})
}

func FuzzSplit(f *testing.F) {
	f.Add("The quick brown fox jumps over the lazy dog.", 10)
	f.Add("first line\nsecond line\n\nthird paragraph", 12)
	f.Add("ééééé 😀😀 abcdefghijklmnop", 5)
	f.Add("aaa\u3000bbb\u00a0ccc", 4)
	f.Add("\xff\xfe\xfd\xfc\xfb", 1)
	f.Add("", 0)
	f.Fuzz(func(t *testing.T, text string, maxBytes int) {
		maxBytes %= 2048
		chunks := Split(text, maxBytes)
		if strings.TrimSpace(text) == "" && chunks != nil {
			t.Fatalf("blank text gave %q", chunks)
		}
		checkSplit(t, text, maxBytes, chunks)
		if utf8.ValidString(text) {
			for _, c := range chunks {
				if !utf8.ValidString(c) {
					t.Fatalf("chunk split inside a rune: %q", c)
				}
			}
		}
	})
}

func FuzzParseCPIM(f *testing.F) {
	f.Add([]byte(protocolCPIM))
	f.Add([]byte(crlf(protocolCPIM)))
	f.Add([]byte("NS: rcs <urn:ietf:params:imdn>\nrcs.Message-ID: 1\nRCS.message-id: 2\n\nContent-Type: text/plain\n\nx"))
	f.Add([]byte("From: a\n folded\nto: b\nTo: c\n\nHello"))
	f.Add([]byte("NS: <urn:ietf:params:imdn>\nMessage-ID: 3\n\n\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := ParseCPIM(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if len(c.Headers) == 0 {
			t.Fatal("no headers without error")
		}
		if !bytes.HasSuffix(body, c.Body) {
			t.Fatalf("Body %q is not the tail of the input", c.Body)
		}
		for k, v := range c.Headers {
			if got := c.Header(k); got != v {
				t.Fatalf("Header(%q) = %q, want %q", k, got, v)
			}
			for k2 := range c.Headers {
				if k2 != k && strings.EqualFold(k, k2) {
					t.Fatalf("case-colliding keys %q and %q", k, k2)
				}
			}
		}
		for _, d := range c.Disposition {
			if d == "" || d != strings.ToLower(strings.TrimSpace(d)) {
				t.Fatalf("disposition not normalised: %q", d)
			}
		}
	})
}

func FuzzParseIMDN(f *testing.F) {
	f.Add([]byte(DeliveryNotification("Xy12Ab34", testTime)))
	f.Add([]byte(`<imdn xmlns="http://schemas.microsoft.com/rtc/2005/08/imdn"><message-id>7</message-id><recipient uri="sip:b@x"><status>408</status></recipient></imdn>`))
	f.Add([]byte(`<imdn><message-id>1</message-id><display-notification><status><displayed/></status></display-notification></imdn>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParseIMDN(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if m.MessageID == "" {
			t.Fatal("empty MessageID without error")
		}
		back, err := ParseIMDN(DeliveryNotification(m.MessageID, testTime))
		if err != nil || back.Status != "delivered" {
			t.Fatalf("notification for %q: %+v, %v", m.MessageID, back, err)
		}
	})
}

func FuzzInflate(f *testing.F) {
	f.Add([]byte{0x78, 0x9c, 0x4b, 0x4c, 0x4a, 0x06, 0x00, 0x02, 0x4d, 0x01, 0x27}, 16)
	f.Add([]byte{0x1f, 0x8b}, 1)
	f.Add([]byte("plain"), 0)
	f.Fuzz(func(t *testing.T, b []byte, maxOut int) {
		maxOut %= 1 << 16
		out, err := Inflate(b, maxOut)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		limit := maxOut
		if limit <= 0 {
			limit = DefaultMaxInflate
		}
		if len(out) > limit {
			t.Fatalf("output %d bytes over limit %d", len(out), limit)
		}
	})
}

func FuzzMediaType(f *testing.F) {
	f.Add("text/plain; charset=UTF-8;msgr=WAAtAE0ATQBT…;ms-body=SGksIGFyZSB5b3UgdGhlcmU/")
	f.Add(`multipart/alternative; boundary="a;b=c"; x`)
	f.Add("text/plain, application/im-iscomposing+xml;q=0.5, */*;q=0")
	f.Add(`"unterminated; a="b\`)
	f.Fuzz(func(t *testing.T, v string) {
		mt, params := MediaType(v)
		if isPlainType(v) && mt != normalizeType(v) {
			t.Fatalf("fast path %q, general path %q", mt, normalizeType(v))
		}
		if mt != strings.ToLower(mt) || strings.ContainsAny(mt, " \t\r\n") {
			t.Fatalf("media type not normalised: %q", mt)
		}
		for k := range params {
			if k == "" || k != strings.ToLower(k) {
				t.Fatalf("param key not normalised: %q", k)
			}
		}
		list := SplitAcceptHeader(v)
		for _, typ := range list {
			if typ == "" || typ != strings.ToLower(typ) {
				t.Fatalf("accept element not normalised: %q", typ)
			}
			if !AcceptsType(list, typ) {
				t.Fatalf("AcceptsType(%q, %q) = false", list, typ)
			}
		}
	})
}
