package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Guests issues and checks the identities of anonymous web visitors. Each visitor gets an
// address of its own in the guest domain, such as sip:guest-5k2m…@guest.invalid, and a
// short-lived token signed with the key (HMAC-SHA256) that vouches for it. The widget
// sends the token with every SIP request (bot.GuestHeader); the bot accepts a request from
// a guest address only with a valid token for it (bot.TrustConfig.Guests), so visitors
// cannot pose as each other. A *Guests is safe for concurrent use.
type Guests struct {
	key    []byte
	domain string
	ttl    time.Duration
	now    func() time.Time
}

// DefaultGuestDomain is the host of visitors' addresses when none is configured: a name
// that resolves nowhere (RFC 6761), so that no request is ever routed to it.
const DefaultGuestDomain = "guest.invalid"

// tokenVersion starts every token; a change of format gets a new one.
const tokenVersion = "v1"

// NewGuests makes a Guests that signs with key (at least 32 bytes: use NewKey, or read it
// from a secret store so that tokens outlive a restart and are good on every instance),
// gives addresses in domain (DefaultGuestDomain when empty) and tokens good for ttl.
func NewGuests(key []byte, domain string, ttl time.Duration) (*Guests, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("web: the guest token key has %d bytes; it needs at least 32 (random)", len(key))
	}
	if domain == "" {
		domain = DefaultGuestDomain
	}
	if strings.ContainsAny(domain, "@:;<>\" \t\r\n") || strings.ToLower(domain) != domain {
		return nil, fmt.Errorf("web: guest domain %q: want a lower-case host name such as %s", domain, DefaultGuestDomain)
	}
	if ttl < time.Minute {
		return nil, fmt.Errorf("web: guest token lifetime %v: want at least a minute", ttl)
	}
	return &Guests{key: append([]byte(nil), key...), domain: domain, ttl: ttl, now: time.Now}, nil
}

// NewKey returns a random key for NewGuests.
func NewKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // never fails (crypto/rand)
	return k
}

// GuestDomain implements bot.GuestVerifier.
func (g *Guests) GuestDomain() string { return g.domain }

// Guest is a visitor's identity.
type Guest struct {
	// URI is the visitor's address, such as "sip:guest-5k2mq7…@guest.invalid".
	URI string
	// Token vouches for URI until Expires.
	Token   string
	Expires time.Time
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Issue gives a new visitor an address and its token.
func (g *Guests) Issue() Guest {
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	return g.token("guest-"+idEncoding.EncodeToString(id), g.now())
}

// Renew gives the visitor of a token a new one for the same address, so that its
// conversation goes on after the old one expires. The old token must be genuine and have
// expired no longer than a lifetime ago (a visitor back after a long absence is a new one).
func (g *Guests) Renew(uri, token string) (Guest, error) {
	user, exp, err := g.check(uri, token)
	if err != nil {
		return Guest{}, err
	}
	now := g.now()
	if now.After(exp.Add(g.ttl)) {
		return Guest{}, errors.New("the visitor's token expired too long ago")
	}
	return g.token(user, now), nil
}

// VerifyGuest implements bot.GuestVerifier.
func (g *Guests) VerifyGuest(uri, token string) error {
	_, exp, err := g.check(uri, token)
	if err != nil {
		return err
	}
	if !g.now().Before(exp) {
		return errors.New("the visitor's token has expired")
	}
	return nil
}

func (g *Guests) token(user string, now time.Time) Guest {
	exp := now.Add(g.ttl).Truncate(time.Second)
	uri := "sip:" + user + "@" + g.domain
	ts := strconv.FormatInt(exp.Unix(), 10)
	return Guest{URI: uri, Token: tokenVersion + "." + user + "." + ts + "." + g.sign(uri, ts), Expires: exp}
}

// sign is the signature of a token for uri expiring at ts (Unix seconds).
func (g *Guests) sign(uri, ts string) string {
	m := hmac.New(sha256.New, g.key)
	m.Write([]byte("imbot guest " + tokenVersion + "\x00" + uri + "\x00" + ts))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

// check returns the user part and the expiry of a genuine token for uri, whatever its
// expiry.
func (g *Guests) check(uri, token string) (string, time.Time, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 4 || parts[0] != tokenVersion {
		return "", time.Time{}, errors.New("the visitor's token is malformed")
	}
	user, ts, sig := parts[1], parts[2], parts[3]
	if !strings.HasPrefix(user, "guest-") || uri != "sip:"+user+"@"+g.domain {
		return "", time.Time{}, errors.New("the visitor's token is for another address")
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", time.Time{}, errors.New("the visitor's token is malformed")
	}
	if !hmac.Equal([]byte(sig), []byte(g.sign(uri, ts))) {
		return "", time.Time{}, errors.New("the visitor's token is not genuine")
	}
	return user, time.Unix(secs, 0), nil
}
