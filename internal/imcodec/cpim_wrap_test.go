package imcodec

import (
	"testing"
	"time"
)

func TestWrapCPIMRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name, ct, disposition string
		body                  []byte
	}{
		{"receipt", TypeIMDN, "", DeliveryNotification("abc", at)},
		{"text asking for receipts", PlainUTF8, "positive-delivery, display", []byte("Hello")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := WrapCPIM("<sip:bot@example.com>", "<sip:carol@example.com>\r\nX: injected", "m-1", c.disposition, c.ct, c.body, at)
			got, err := ParseCPIM(raw)
			if err != nil {
				t.Fatal(err)
			}
			if got.MessageID != "m-1" || got.ContentType != c.ct || string(got.Body) != string(c.body) {
				t.Errorf("round trip: %+v", got)
			}
			if got.Header("X") != "" {
				t.Error("a line break in a header value made a new header")
			}
			if c.disposition != "" && len(got.Disposition) != 2 {
				t.Errorf("disposition %q", got.Disposition)
			}
			if c.ct == TypeIMDN {
				n, err := ParseIMDN(got.Body)
				if err != nil || n.MessageID != "abc" || n.Status != "delivered" {
					t.Errorf("IMDN %+v, %v", n, err)
				}
			}
		})
	}
}
