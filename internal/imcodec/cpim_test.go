package imcodec

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// PROTOCOL.md §2.3.
const protocolCPIM = `From: <sip:carol@example.com>
To: <sip:bob@example.com>
DateTime: 2026-11-25T12:00:00Z
NS: imdn <urn:ietf:params:imdn>
imdn.Message-ID: Xy12Ab34
imdn.Disposition-Notification: positive-delivery, display

Content-Type: text/plain;charset=UTF-8

Hello Bob`

func TestParseCPIM(t *testing.T) {
	protoHeaders := map[string]string{
		"From":                          "<sip:carol@example.com>",
		"To":                            "<sip:bob@example.com>",
		"DateTime":                      "2026-11-25T12:00:00Z",
		"NS":                            "imdn <urn:ietf:params:imdn>",
		"imdn.Message-ID":               "Xy12Ab34",
		"imdn.Disposition-Notification": "positive-delivery, display",
	}
	tests := []struct {
		name    string
		body    string
		want    CPIM
		wantErr bool
	}{
		{"protocol example LF", protocolCPIM, CPIM{
			From: "<sip:carol@example.com>", To: "<sip:bob@example.com>", Headers: protoHeaders,
			ContentType: "text/plain;charset=UTF-8", Body: []byte("Hello Bob"),
			MessageID: "Xy12Ab34", Disposition: []string{"positive-delivery", "display"},
		}, false},
		{"protocol example CRLF", crlf(protocolCPIM) + "\r\n", CPIM{
			From: "<sip:carol@example.com>", To: "<sip:bob@example.com>", Headers: protoHeaders,
			ContentType: "text/plain;charset=UTF-8", Body: []byte("Hello Bob\r\n"),
			MessageID: "Xy12Ab34", Disposition: []string{"positive-delivery", "display"},
		}, false},
		{"other prefix bound to imdn", "NS: rcs <URN:IETF:PARAMS:IMDN>\nFrom: a\nrcs.message-id: 42\nRCS.Disposition-Notification:  Positive-Delivery ,\n\nContent-Type: text/plain\n\nx",
			CPIM{From: "a", Headers: map[string]string{"NS": "rcs <URN:IETF:PARAMS:IMDN>", "From": "a", "rcs.message-id": "42", "RCS.Disposition-Notification": "Positive-Delivery ,"},
				ContentType: "text/plain", Body: []byte("x"), MessageID: "42", Disposition: []string{"positive-delivery"}}, false},
		{"imdn header without NS is not trusted", "From: a\nimdn.Message-ID: 1\n\nContent-Type: text/plain\n\nx",
			CPIM{From: "a", Headers: map[string]string{"From": "a", "imdn.Message-ID": "1"}, ContentType: "text/plain", Body: []byte("x")}, false},
		{"repeated and case-varied headers merged", "To: <sip:a@x>\nto: <sip:b@x>\nFrom: f\n\nContent-Type: text/plain\n\n",
			CPIM{From: "f", To: "<sip:a@x>", Headers: map[string]string{"To": "<sip:a@x>, <sip:b@x>", "From": "f"}, ContentType: "text/plain", Body: []byte{}}, false},
		{"folded header and junk line", "From: a\nSubject: one\n two\nnot a header\n\nContent-Type: text/plain\n\nbody",
			CPIM{From: "a", Headers: map[string]string{"From": "a", "Subject": "one two"}, ContentType: "text/plain", Body: []byte("body")}, false},
		{"leading blank lines", "\r\n\r\nFrom: a\r\n\r\nContent-Type: text/plain\r\n\r\nb",
			CPIM{From: "a", Headers: map[string]string{"From": "a"}, ContentType: "text/plain", Body: []byte("b")}, false},
		{"body keeps blank lines", "From: a\n\nContent-Type: text/plain\n\nline1\n\nline3\n",
			CPIM{From: "a", Headers: map[string]string{"From": "a"}, ContentType: "text/plain", Body: []byte("line1\n\nline3\n")}, false},
		{"no inner headers", "From: a\n\nHello there",
			CPIM{From: "a", Headers: map[string]string{"From": "a"}, Body: []byte("Hello there")}, false},
		{"inner headers without blank line", "From: a\n\nContent-Type: message/imdn+xml",
			CPIM{From: "a", Headers: map[string]string{"From": "a"}, ContentType: "message/imdn+xml", Body: []byte{}}, false},
		{"no blank line", "From: a\nTo: b\n", CPIM{}, true},
		{"only blank lines", "\r\n\r\n", CPIM{}, true},
		{"only junk", "hello world\n\nbody", CPIM{}, true},
		{"empty", "", CPIM{}, true},
		{"too many headers", strings.Repeat("X-A: 1\n", maxCPIMHeaders+1) + "\n\n", CPIM{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCPIM([]byte(tt.body))
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got.From != tt.want.From || got.To != tt.want.To || got.ContentType != tt.want.ContentType || got.MessageID != tt.want.MessageID {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if string(got.Body) != string(tt.want.Body) {
				t.Errorf("Body = %q, want %q", got.Body, tt.want.Body)
			}
			if !maps.Equal(got.Headers, tt.want.Headers) {
				t.Errorf("Headers = %q, want %q", got.Headers, tt.want.Headers)
			}
			if !slices.Equal(got.Disposition, tt.want.Disposition) {
				t.Errorf("Disposition = %q, want %q", got.Disposition, tt.want.Disposition)
			}
		})
	}
}

func TestCPIMHeader(t *testing.T) {
	c, err := ParseCPIM([]byte(protocolCPIM))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, key, want string }{
		{"exact", "imdn.Message-ID", "Xy12Ab34"},
		{"lower", "imdn.message-id", "Xy12Ab34"},
		{"upper", "DATETIME", "2026-11-25T12:00:00Z"},
		{"absent", "Subject", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.Header(tt.key); got != tt.want {
				t.Errorf("Header(%q) = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
	var zero CPIM
	if got := zero.Header("From"); got != "" {
		t.Errorf("zero CPIM Header = %q", got)
	}
}

// A CPIM-wrapped IMDN as sent per RFC 5438 (and, unwrapped, by linphone 5.1).
func TestParseCPIMWrappedIMDN(t *testing.T) {
	body := "From: <sip:bob@example.com>\r\nTo: <sip:carol@example.com>\r\nNS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: 9o0p\r\nContent-Disposition: notification\r\n\r\n" +
		"Content-Type: message/imdn+xml\r\nContent-Disposition: notification\r\n\r\n" +
		string(DeliveryNotification("Xy12Ab34", time.Date(2026, 11, 25, 12, 0, 1, 0, time.UTC)))
	c, err := ParseCPIM([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if mt, _ := MediaType(c.ContentType); mt != TypeIMDN {
		t.Fatalf("inner type = %q", c.ContentType)
	}
	n, err := ParseIMDN(c.Body)
	if err != nil {
		t.Fatal(err)
	}
	if n.MessageID != "Xy12Ab34" || n.Status != "delivered" {
		t.Errorf("IMDN = %+v", n)
	}
}

func TestParseIMDN(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 1, 0, time.UTC)
	tests := []struct {
		name    string
		body    string
		want    IMDN
		wantErr bool
	}{
		{"protocol delivered", `<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>Xy12Ab34</message-id><datetime>2026-11-25T12:00:01Z</datetime><delivery-notification><status><delivered/></status></delivery-notification></imdn>`,
			IMDN{MessageID: "Xy12Ab34", Status: "delivered", Notification: "delivery-notification", DateTime: at}, false},
		{"linphone failed with reason", `<?xml version="1.0" encoding="UTF-8"?>
<imdn xmlns="urn:ietf:params:xml:ns:imdn" xmlns:imdn="urn:ietf:params:xml:ns:imdn">
  <message-id>6c1e0b2f9a</message-id>
  <datetime>2026-11-25T12:00:01Z</datetime>
  <delivery-notification>
    <status><failed/><imdn:reason code="415">Unsupported Media Type</imdn:reason></status>
  </delivery-notification>
</imdn>`, IMDN{MessageID: "6c1e0b2f9a", Status: "failed", Notification: "delivery-notification", DateTime: at}, false},
		{"display", `<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id> m1 </message-id><display-notification><status><displayed/></status></display-notification></imdn>`,
			IMDN{MessageID: "m1", Status: "displayed", Notification: "display-notification"}, false},
		{"microsoft ms-imdn", `<imdn xmlns="http://schemas.microsoft.com/rtc/2005/08/imdn"><message-id>7</message-id><recipient uri="sip:b@x"><status>408</status></recipient></imdn>`,
			IMDN{MessageID: "7", Status: "408"}, false},
		{"bad datetime ignored", `<imdn><message-id>1</message-id><datetime>soon</datetime></imdn>`, IMDN{MessageID: "1"}, false},
		{"missing message-id", `<imdn xmlns="urn:ietf:params:xml:ns:imdn"><delivery-notification><status><delivered/></status></delivery-notification></imdn>`, IMDN{}, true},
		{"wrong root", `<isComposing><state>idle</state></isComposing>`, IMDN{}, true},
		{"empty", ``, IMDN{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseIMDN([]byte(tt.body))
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got.MessageID != tt.want.MessageID || got.Status != tt.want.Status || got.Notification != tt.want.Notification || !got.DateTime.Equal(tt.want.DateTime) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDeliveryNotification(t *testing.T) {
	at := time.Date(2026, 11, 25, 13, 0, 1, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		name, id, want string
	}{
		{"protocol shape", "Xy12Ab34", `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
			`<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>Xy12Ab34</message-id><datetime>2026-11-25T12:00:01Z</datetime>` +
			`<delivery-notification><status><delivered/></status></delivery-notification></imdn>`},
		{"escaped id", `a<b>&"c`, `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
			`<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>a&lt;b&gt;&amp;&#34;c</message-id><datetime>2026-11-25T12:00:01Z</datetime>` +
			`<delivery-notification><status><delivered/></status></delivery-notification></imdn>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DeliveryNotification(tt.id, at)
			if string(got) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
			n, err := ParseIMDN(got)
			if err != nil {
				t.Fatal(err)
			}
			if n.MessageID != tt.id || n.Status != "delivered" || !n.DateTime.Equal(at) {
				t.Errorf("round trip = %+v", n)
			}
		})
	}
}
