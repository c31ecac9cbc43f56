package bot

import (
	"strings"
	"testing"
)

func TestBadRequestFor(t *testing.T) {
	const req = "MESSAGE sip:bot@example.com SIP/2.0\r\n" +
		"v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK0\r\n" +
		"f: <sip:a@example.com>;tag=1\r\n" +
		"t: <sip:bot@example.com>\r\n" +
		"i: abc\r\n" +
		"CSeq: x MESSAGE\r\n" +
		"Content-Length: 0\r\n\r\n"
	cases := []struct {
		name string
		data string
		want []string // lines the response must have; nil: no response
	}{
		{"compact headers", req, []string{"SIP/2.0 400 Bad Request", "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1",
			"Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK0", "From: <sip:a@example.com>;tag=1", "Call-ID: abc",
			"CSeq: x MESSAGE", `Warning: 399 imbot "bad cseq"`}},
		{"no Via", strings.Replace(strings.Replace(req, "v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n", "", 1),
			"Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK0\r\n", "", 1), nil},
		{"no Call-ID", strings.Replace(req, "i: abc\r\n", "", 1), nil},
		{"ACK", strings.Replace(req, "MESSAGE sip:", "ACK sip:", 1), nil},
		{"a response", "SIP/2.0 200 OK\r\n" + req[strings.Index(req, "\r\n")+2:], nil},
		{"garbage", "\x00\x01hello", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := badRequestFor(c.data, "bad cseq")
			if c.want == nil {
				if res != nil {
					t.Fatalf("answered %q, want nothing", res)
				}
				return
			}
			lines := strings.Split(string(res), "\r\n")
			for _, w := range c.want {
				found := false
				for _, l := range lines {
					found = found || l == w
				}
				if !found {
					t.Errorf("no line %q in\n%s", w, res)
				}
			}
			if !strings.Contains(string(res), "To: <sip:bot@example.com>;tag=") {
				t.Errorf("the To has no tag:\n%s", res)
			}
		})
	}
}
