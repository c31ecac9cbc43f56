package imcodec

import (
	"encoding/base64"
	"testing"
	"time"
)

var testTime = time.Date(2026, 11, 25, 12, 0, 1, 0, time.UTC)

func TestMSBody(t *testing.T) {
	latin1 := base64.StdEncoding.EncodeToString([]byte("caf\xe9"))
	tests := []struct {
		name   string
		header string
		want   string
		ok     bool
	}{
		{"protocol §1.3", "text/plain; charset=UTF-8;msgr=WAAtAE0ATQBT…;ms-body=SGksIGFyZSB5b3UgdGhlcmU/", "Hi, are you there?", true},
		{"no charset", "text/plain;ms-body=SGk=", "Hi", true},
		{"unpadded", "text/plain; ms-body=SGk", "Hi", true},
		{"quoted", `text/plain; MS-Body="SGk="`, "Hi", true},
		{"latin1 charset", "text/plain; charset=ISO-8859-1; ms-body=" + latin1, "café", true},
		{"html stripped", "text/html; charset=UTF-8; ms-body=" + base64.StdEncoding.EncodeToString([]byte("<b>bold</b> move")), "bold move", true},
		{"absent", "text/plain; charset=UTF-8;msgr=WAAtAE0ATQBT", "", false},
		{"empty value", "text/plain; ms-body=", "", false},
		{"not base64", "text/plain; ms-body=!!!", "", false},
		{"unknown charset", "text/plain; charset=x-nope; ms-body=SGk=", "", false},
		{"empty header", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := MSBody(tt.header)
			if got != tt.want || ok != tt.ok {
				t.Errorf("MSBody(%q) = %q, %v; want %q, %v", tt.header, got, ok, tt.want, tt.ok)
			}
		})
	}
}
