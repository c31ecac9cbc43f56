package web

import (
	"strings"
	"testing"
	"time"
)

func TestGuests(t *testing.T) {
	g, err := NewGuests(NewKey(), "", 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	g.now = func() time.Time { return now }
	a, b := g.Issue(), g.Issue()
	if a.URI == b.URI || !strings.HasPrefix(a.URI, "sip:guest-") || !strings.HasSuffix(a.URI, "@"+DefaultGuestDomain) {
		t.Fatalf("addresses %q and %q: want two new addresses in %s", a.URI, b.URI, DefaultGuestDomain)
	}
	if !a.Expires.Equal(now.Add(30 * time.Minute)) {
		t.Errorf("expires %v, want %v", a.Expires, now.Add(30*time.Minute))
	}
	other, _ := NewGuests(NewKey(), "", 30*time.Minute)
	other.now = g.now
	for _, c := range []struct {
		name       string
		g          *Guests
		uri, token string
		want       string // "" for valid
	}{
		{"its own token", g, a.URI, a.Token, ""},
		{"another visitor's token", g, a.URI, b.Token, "another address"},
		{"another key", other, a.URI, a.Token, "not genuine"},
		{"a later expiry", g, a.URI, later(a.Token), "not genuine"},
		{"an expiry that is no number", g, a.URI, strings.Replace(later(a.Token), ".9", ".x", 1), "malformed"},
		{"tampered signature", g, a.URI, a.Token[:len(a.Token)-2] + "AA", "not genuine"},
		{"garbage", g, a.URI, "hello", "malformed"},
		{"empty", g, a.URI, "", "malformed"},
		{"an address outside the domain", g, "sip:ceo@example.com", a.Token, "another address"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.g.VerifyGuest(c.uri, c.token)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("VerifyGuest: %v, want nil", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("VerifyGuest: %v, want an error saying %q", err, c.want)
			}
		})
	}

	// Expiry, and renewal of the same address.
	now = now.Add(31 * time.Minute)
	if err := g.VerifyGuest(a.URI, a.Token); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("an expired token: %v", err)
	}
	r, err := g.Renew(a.URI, a.Token)
	if err != nil || r.URI != a.URI || g.VerifyGuest(r.URI, r.Token) != nil {
		t.Fatalf("Renew: %+v, %v; want a valid token for %s", r, err, a.URI)
	}
	if _, err := g.Renew(b.URI, a.Token); err == nil {
		t.Error("Renew took another visitor's token")
	}
	now = now.Add(time.Hour)
	if _, err := g.Renew(a.URI, a.Token); err == nil {
		t.Error("Renew took a token that expired more than a lifetime ago")
	}
}

func TestNewGuestsRefuses(t *testing.T) {
	for _, c := range []struct {
		name   string
		key    []byte
		domain string
		ttl    time.Duration
	}{
		{"short key", make([]byte, 16), "", time.Hour},
		{"domain with an at", NewKey(), "a@b", time.Hour},
		{"upper-case domain", NewKey(), "Guest.invalid", time.Hour},
		{"short lifetime", NewKey(), "", time.Second},
	} {
		if _, err := NewGuests(c.key, c.domain, c.ttl); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

// later returns token with its expiry pushed a day on (and its signature left as it was).
func later(token string) string {
	p := strings.Split(token, ".")
	p[2] = "9" + p[2]
	return strings.Join(p, ".")
}
