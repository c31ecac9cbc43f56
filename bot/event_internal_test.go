package bot

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestPeerFromURICanonical(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"sip:mallory@example.com", "sip:mallory@example.com"},
		{"sip:mall%6Fry@Example.COM", "sip:mallory@example.com"},
		{"SIP:mall%6fry@EXAMPLE.com:5070", "sip:mallory@example.com:5070"},
		{"sip:Mallory@example.com", "sip:Mallory@example.com"}, // the user part is case-sensitive
		{"sip:a%40b@example.com", "sip:a%40b@example.com"},     // '@' stays escaped
		{"sip:a%2fb@example.com", "sip:a/b@example.com"},
		{"sip:a%zz@example.com", "sip:a%zz@example.com"}, // not an escape
	}
	for _, tt := range tests {
		var u sip.Uri
		if err := sip.ParseUri(tt.in, &u); err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if got := peerFromURI(u, "").URI; got != tt.want {
			t.Errorf("peerFromURI(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
