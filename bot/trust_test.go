package bot

import (
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func TestNewTrust(t *testing.T) {
	cases := []struct {
		name     string
		cfg      TrustConfig
		hosts    []string
		err      string // substring; "" = accepted
		implicit bool
	}{
		{name: "loopback, nothing set", hosts: []string{"127.0.0.1", "::1"}, implicit: true},
		{name: "exposed, nothing set", hosts: []string{"127.0.0.1", "0.0.0.0"}, err: "set Trust.Proxies"},
		{name: "exposed, unverified asked", cfg: TrustConfig{Unverified: true}, hosts: []string{"192.0.2.1"}},
		{name: "exposed, proxies", cfg: TrustConfig{Proxies: []string{"192.0.2.7", "10.0.0.0/8", "::1"}}, hosts: []string{"0.0.0.0"}},
		{name: "bad proxy", cfg: TrustConfig{Proxies: []string{"proxy.example.com"}}, err: `proxy "proxy.example.com"`},
		{name: "user without secret", cfg: TrustConfig{Users: []DigestUser{{Username: "a", URI: "sip:a@x"}}}, err: "neither a password nor an HA1"},
		{name: "user without URI", cfg: TrustConfig{Users: []DigestUser{{Username: "a", Password: "p"}}}, err: "want a SIP address"},
		{name: "user twice", cfg: TrustConfig{Users: []DigestUser{{Username: "a", Password: "p", URI: "sip:a@x"}, {Username: "a", Password: "q", URI: "sip:a@x"}}}, err: "listed twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr, err := newTrust(c.cfg, c.hosts)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want one that says %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tr.implicit != c.implicit {
				t.Errorf("implicit = %v, want %v", tr.implicit, c.implicit)
			}
		})
	}
}

func TestTrustedSources(t *testing.T) {
	tr, err := newTrust(TrustConfig{Proxies: []string{"192.0.2.7", "10.1.0.0/16", "2001:db8::/32"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for src, want := range map[string]bool{
		"192.0.2.7:5060":      true,
		"192.0.2.8:5060":      false,
		"10.1.200.3:40000":    true,
		"10.2.0.1:5060":       false,
		"[2001:db8::5]:5060":  true,
		"[::ffff:10.1.0.9]:1": true, // IPv4-mapped
		"garbage":             false,
	} {
		if got := tr.trusted(src); got != want {
			t.Errorf("trusted(%q) = %v, want %v", src, got, want)
		}
	}
}

func TestAssertedIdentity(t *testing.T) {
	cases := []struct {
		values  []string
		uri     string // "" = none
		display string
	}{
		{[]string{`"Alice" <sip:alice@example.com>`}, "sip:alice@example.com", "Alice"},
		{[]string{`<tel:+15551234>, "Bob, Jr." <sips:bob@example.com;user=phone>`}, "sips:bob@example.com", "Bob, Jr."},
		{[]string{`<tel:+15551234>`, `<sip:carol@example.com>`}, "sip:carol@example.com", ""},
		{[]string{`<sip:example.com>`}, "", ""}, // no user
		{[]string{`not an address`}, "", ""},
	}
	for _, c := range cases {
		req := sip.NewRequest(sip.MESSAGE, sip.Uri{Scheme: "sip", User: "bot", Host: "example.com"})
		for _, v := range c.values {
			req.AppendHeader(sip.NewHeader("P-Asserted-Identity", v))
		}
		u, display, ok := assertedIdentity(req)
		if c.uri == "" {
			if ok {
				t.Errorf("%q: got %s, want none", c.values, u.String())
			}
			continue
		}
		if !ok || peerFromURI(u, "").URI != c.uri || display != c.display {
			t.Errorf("%q: got %v %q %q, want %q %q", c.values, ok, u.String(), display, c.uri, c.display)
		}
	}
}

func TestNonces(t *testing.T) {
	tr, err := newTrust(TrustConfig{Unverified: true, Realm: "example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newTrust(TrustConfig{Unverified: true, Realm: "example.com"}, nil)
	now := time.Now()
	fresh := tr.nonce(now)
	for _, c := range []struct {
		name  string
		nonce string
		want  nonceState
	}{
		{"fresh", fresh, nonceOK},
		{"expired", tr.nonce(now.Add(-nonceLifetime - time.Minute)), nonceStale},
		{"another process's", other.nonce(now), nonceBad},
		{"tampered", tamper(fresh), nonceBad},
		{"garbage", "!!", nonceBad},
	} {
		if _, got := tr.checkNonce(c.nonce); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// tamper changes the first character of a nonce. (Not the last: in base64 without padding
// the last character may carry bits that decoding drops, so a change there can leave the
// nonce's bytes as they were, once in a few runs.)
func tamper(s string) string {
	first := byte('A')
	if s[0] == 'A' {
		first = 'B'
	}
	return string(first) + s[1:]
}

func TestNonceCounts(t *testing.T) {
	now := time.Now()
	var c nonceCounts
	steps := []struct {
		nonce string
		nc    int
		want  bool
	}{
		{"a", 1, true},
		{"a", 1, false}, // replay
		{"a", 3, true},
		{"a", 2, true}, // late, inside the window
		{"a", 2, false},
		{"a", 100, true},
		{"a", 30, false}, // below the window
		{"a", 99, true},
		{"b", 1, true}, // another nonce
		{"c", 0, true}, // no qop: good once
		{"c", 0, false},
	}
	for i, s := range steps {
		if got := c.use(s.nonce, s.nc, now, now); got != s.want {
			t.Errorf("step %d: use(%s, %d) = %v, want %v", i, s.nonce, s.nc, got, s.want)
		}
	}
	// Entries go once their nonce expired.
	c.use("d", 1, now, now.Add(nonceLifetime+2*time.Minute))
	if _, ok := c.m["a"]; ok {
		t.Error("an expired nonce's counts were kept")
	}
}

// TestNoncesDiffer: two challenges in the same second get different nonces, so that two
// clients signing in at once do not share nonce counts.
func TestNoncesDiffer(t *testing.T) {
	tr, err := newTrust(TrustConfig{Unverified: true, Realm: "example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a, b := tr.nonce(now), tr.nonce(now)
	if a == b {
		t.Fatalf("two nonces of the same second are equal: %s", a)
	}
	for _, n := range []string{a, b} {
		if _, st := tr.checkNonce(n); st != nonceOK {
			t.Errorf("nonce %s: %v, want ok", n, st)
		}
	}
}

// TestConfigValidate: Validate finds what New would refuse, without opening a socket.
func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string // "" = valid
	}{
		{"default", Config{}, ""},
		{"bad port", Config{Listen: []string{"udp://127.0.0.1:x"}}, "want a URL"},
		{"unknown transport", Config{Listen: []string{"sctp://127.0.0.1:5060"}}, `transport "sctp" is not supported`},
		{"tls without certificate", Config{Listen: []string{"tls://127.0.0.1:5061"}}, "set Config.TLS"},
		{"exposed without trust", Config{Listen: []string{"udp://192.0.2.1:5060"}}, "nothing says who may write"},
		{"registrar on a transport not listened on", Config{Registration: RegistrationConfig{Registrar: "sip:r.example.com;transport=tls"}}, "does not listen on tls"},
		{"advertise with a bad port", Config{Advertise: "example.com:x"}, "advertise"},
		{"line break", Config{Identity: "sip:a@b\r\nX: y"}, "line break"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate = %v, want an error saying %q", err, c.want)
			}
		})
	}
}
