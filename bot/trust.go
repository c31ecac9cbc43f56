package bot

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// TrustConfig says how the bot learns who is writing to it. A SIP From header is whatever
// the sender typed, so the bot believes an identity only when something vouches for it:
//
//   - a trusted proxy (Proxies) that asserts it in P-Asserted-Identity (RFC 3325), or
//   - the bot itself, by a digest challenge (RFC 3261 §22) against Users.
//
// Such a peer is Verified. Requests from anywhere else are refused (403, or 401 with a
// challenge when Users is set) unless Unverified is set, for development: then the From
// header is taken as it is and the peer is not Verified. Handlers that grant anything (an
// agent's commands, a user's own tickets, an allow list) must look at Peer.Verified.
//
// With none of the three set, a bot that listens on loopback addresses only runs as if
// Unverified were set (it logs so at start), and bot.New refuses any other listen address
// until one is chosen.
type TrustConfig struct {
	// Proxies lists the SIP proxies (registrars, SBCs) the bot trusts, as IP addresses or
	// networks in CIDR notation: "10.0.0.5", "10.0.0.0/24", "::1". A request from one of them
	// is accepted; its sender is the first sip: or sips: URI of its P-Asserted-Identity
	// header, Verified, or when it has none the From header, not Verified. The proxy must
	// authenticate its users and remove P-Asserted-Identity headers they send (Kamailio:
	// auth_check, then remove_hf("P-Asserted-Identity") and append_hf). A
	// P-Asserted-Identity from any other address is ignored.
	Proxies []string
	// Users are the peers that may reach the bot directly, authenticated by the bot: their
	// new IM sessions (INVITE) and every page-mode MESSAGE must carry digest credentials (a
	// request without them gets 401 and a challenge, as a registrar would answer). The
	// peer is then the user's URI, Verified; its From must be that URI (403 otherwise).
	// Without Unverified, every sender that is not from a trusted proxy is challenged;
	// with it, only a From naming one of Users (and a request that carries credentials),
	// so that strangers are served unverified while nobody can pose as a user: the setup
	// for a helpdesk whose agents write to the bot directly.
	Users []DigestUser
	// LookupUser, when set, is asked for a username that is not in Users (for example from
	// a database table). It returns ok false for an unknown user. Users found this way are
	// challenged only where every sender is (Unverified false).
	LookupUser func(ctx context.Context, username string) (user DigestUser, ok bool, err error)
	// Realm is the digest realm in challenges. Default: the host of the bot's Identity.
	Realm string
	// Unverified accepts requests from any address, the sender being whatever its From
	// header says, not Verified. For development only: the bot logs a warning at start.
	Unverified bool
	// Guests, when set, admits the anonymous visitors of a web chat (package web): a
	// request whose From is in Guests' domain must carry a token Guests issued for that
	// address, in the X-Imbot-Guest header (GuestHeader); the peer is then that address,
	// Verified and Guest. Without a valid token such a request gets 403, and so does a
	// token with a From outside the domain: nobody can pose as a visitor, and no visitor
	// as anyone else. Guests adds to the rest of the model and counts as none of the
	// three above.
	Guests GuestVerifier
}

// DigestUser is a peer that authenticates to the bot with SIP digest.
type DigestUser struct {
	// Username is the name in the peer's credentials (often the user part of URI).
	Username string
	// Password is the user's password. Either it or HA1 is required.
	Password string
	// HA1 is MD5(username ":" realm ":" password) in lower-case hex, for configurations
	// that do not hold the password itself (as Kamailio's subscriber table can).
	HA1 string
	// URI is the user's address of record, such as "sip:alice@example.com": the
	// identity the bot gives the peer once authenticated.
	URI string
}

// nonceLifetime is how long a digest nonce is good for. A peer whose nonce expired gets a
// new challenge with stale=true and retries without asking its user.
const nonceLifetime = 5 * time.Minute

// trust is the bot's working form of TrustConfig.
type trust struct {
	proxies    []netip.Prefix
	users      map[string]DigestUser
	userURIs   map[string]bool // Peer.URI of every user in users
	lookup     func(context.Context, string) (DigestUser, bool, error)
	realm      string
	unverified bool
	implicit   bool   // unverified because nothing was configured and the bot is on loopback
	key        []byte // signs nonces
	counts     nonceCounts
}

// nonceCounts remembers, for each nonce that authenticated a request, the nonce counts
// (nc) used with it, so that a captured request cannot be replayed: a count is good once.
// Counts may arrive out of order (UDP), so a window of the 64 below the highest is kept,
// as IPsec's anti-replay window does. Only authenticated requests add entries, and an
// entry goes once its nonce has expired.
type nonceCounts struct {
	mu    sync.Mutex
	m     map[string]*ncWindow
	sweep time.Time
}

type ncWindow struct {
	top    int    // highest count seen
	seen   uint64 // bit i: top-i was seen
	issued time.Time
}

// use records a nonce count and reports whether it is new. nc 0 (credentials without qop)
// makes the nonce good for one request.
func (c *nonceCounts) use(nonce string, nc int, issued, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*ncWindow{}
	}
	if now.Sub(c.sweep) > nonceLifetime/4 {
		c.sweep = now
		for k, w := range c.m {
			if now.Sub(w.issued) > nonceLifetime+time.Minute {
				delete(c.m, k)
			}
		}
	}
	w := c.m[nonce]
	if w == nil {
		c.m[nonce] = &ncWindow{top: nc, seen: 1, issued: issued}
		return true
	}
	switch d := w.top - nc; {
	case nc == 0:
		return false
	case d < 0:
		if -d >= 64 {
			w.seen = 0
		} else {
			w.seen <<= uint(-d)
		}
		w.seen |= 1
		w.top = nc
		return true
	case d >= 64 || w.seen&(1<<uint(d)) != 0:
		return false
	default:
		w.seen |= 1 << uint(d)
		return true
	}
}

// newTrust checks a TrustConfig. hosts are the listen hosts. An empty realm is set by the
// caller once the bot's identity is known.
func newTrust(c TrustConfig, hosts []string) (*trust, error) {
	t := &trust{users: map[string]DigestUser{}, userURIs: map[string]bool{}, lookup: c.LookupUser, realm: c.Realm, unverified: c.Unverified}
	for _, p := range c.Proxies {
		pfx, err := parsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("trust: proxy %q: want an IP address or a network such as 10.0.0.0/24", p)
		}
		t.proxies = append(t.proxies, pfx)
	}
	for i, u := range c.Users {
		switch {
		case u.Username == "":
			return nil, fmt.Errorf("trust: user %d has no username", i+1)
		case u.Password == "" && u.HA1 == "":
			return nil, fmt.Errorf("trust: user %q has neither a password nor an HA1", u.Username)
		}
		uri, err := userURI(u)
		if err != nil {
			return nil, fmt.Errorf("trust: user %q: %w", u.Username, err)
		}
		t.userURIs[peerFromURI(uri, "").URI] = true
		if _, dup := t.users[u.Username]; dup {
			return nil, fmt.Errorf("trust: user %q is listed twice", u.Username)
		}
		t.users[u.Username] = u
	}
	if len(t.proxies) == 0 && !t.digest() && !t.unverified {
		for _, h := range hosts {
			if ip, err := netip.ParseAddr(strings.Trim(h, "[]")); (err != nil && h != "localhost") || (err == nil && !ip.IsLoopback()) {
				return nil, fmt.Errorf("trust: the bot listens on %s but nothing says who may write to it: "+
					"set Trust.Proxies (trust.proxies in imbot.yaml: requests come through your SIP proxy, which asserts identities), "+
					"Trust.Users (trust.users: the bot authenticates peers itself) or, for development only, Trust.Unverified (trust.unverified)", h)
			}
		}
		t.unverified, t.implicit = true, true
	}
	t.key = make([]byte, 32)
	if _, err := rand.Read(t.key); err != nil {
		return nil, fmt.Errorf("trust: %w", err)
	}
	return t, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	ip, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()), nil
}

// userURI parses a DigestUser's address of record.
func userURI(u DigestUser) (sip.Uri, error) {
	var uri sip.Uri
	if err := sip.ParseUri(u.URI, &uri); err != nil || uri.Host == "" || uri.User == "" ||
		(uri.Scheme != "sip" && uri.Scheme != "sips") {
		return uri, fmt.Errorf("uri %q: want a SIP address such as sip:alice@example.com", u.URI)
	}
	return uri, nil
}

func (t *trust) digest() bool { return len(t.users) > 0 || t.lookup != nil }

// verifies reports whether the bot can verify anyone: a peer's Verified then tells two
// senders of the same address apart.
func (t *trust) verifies() bool { return len(t.proxies) > 0 || t.digest() }

// conversationKey is the key of the conversation between the bot's address local and a
// peer that wrote to it: "<bot AOR> <peer AOR>", and " unverified" after it for a peer that
// is not Verified when the bot can verify identities. Whoever claims an address without
// proof thus never joins the conversation of the verified user of that address: not its
// page-mode conversation (whose peer is Verified), nor what handlers keep by key (its
// state, transcript, handoff).
func (b *Bot) conversationKey(local sip.Uri, p Peer) string {
	key := aor(local) + " " + p.URI
	if !p.Verified && b.trust.verifies() {
		key += " unverified"
	}
	return key
}

// mode describes the trust model for the log line at start.
func (t *trust) mode() string {
	var parts []string
	if len(t.proxies) > 0 {
		parts = append(parts, "trusted proxies")
	}
	if t.digest() {
		parts = append(parts, "digest")
	}
	if t.unverified {
		parts = append(parts, "unverified")
	}
	return strings.Join(parts, "+")
}

// trusted reports whether a source address (host:port) is a trusted proxy.
func (t *trust) trusted(source string) bool {
	if len(t.proxies) == 0 {
		return false
	}
	ip, ok := sourceIP(source)
	return ok && t.trustedIP(ip)
}

// trustedIP reports whether an address is a trusted proxy's.
func (t *trust) trustedIP(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range t.proxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// sourceIP is the IP address of a host:port source.
func sourceIP(source string) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(source)
	if err != nil {
		host = source
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

// fromProxy reports whether a request from source came through a proxy: a trusted one or
// the outbound proxy.
func (b *Bot) fromProxy(source string) bool {
	if len(b.trust.proxies) == 0 && len(b.proxyIPs) == 0 {
		return false // nothing to compare with: no need to parse the source
	}
	if b.trust.trusted(source) {
		return true
	}
	ip, ok := sourceIP(source)
	return ok && slices.Contains(b.proxyIPs, ip)
}

// resolveProxy finds the addresses of the outbound proxy (a name is looked up once, at
// start), to recognise requests it forwards.
func resolveProxy(ctx context.Context, addr string) []netip.Addr {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip.Unmap()}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ips, _ := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	for i := range ips {
		ips[i] = ips[i].Unmap()
	}
	return ips
}

// refusal is how a request that failed the trust model is answered.
type refusal struct {
	code   int
	reason string
	hdrs   []sip.Header
}

// identify finds out who sent a request that starts a conversation (an INVITE or an
// out-of-dialog MESSAGE). It returns the peer, or how to refuse the request.
func (b *Bot) identify(ctx context.Context, req *sip.Request) (Peer, *refusal) {
	t := b.trust
	from := req.From()
	if !t.trusted(req.Source()) {
		req.RemoveHeader(ForwardHeader) // only another instance forwards (Bot.Forward)
	}
	if peer, ref, ok := b.guestIdentity(req); ok {
		return peer, ref
	}
	if t.trusted(req.Source()) {
		if uri, display, ok := assertedIdentity(req); ok {
			return verifiedPeer(uri, display), nil
		}
		return peerFromURI(from.Address, from.DisplayName), nil
	}
	// Anyone may write P-Asserted-Identity: only a trusted proxy's counts. Drop it so that
	// no handler reading the request mistakes it for an assertion.
	req.RemoveHeader("P-Asserted-Identity")
	// A From that names a user must prove it; so must every sender when only users may
	// write. Credentials sent unasked are checked too.
	if t.digest() && (!t.unverified || t.userURIs[peerFromURI(from.Address, "").URI] || req.GetHeader("Authorization") != nil) {
		return b.authenticate(ctx, req)
	}
	if t.unverified {
		return peerFromURI(from.Address, from.DisplayName), nil
	}
	return Peer{}, &refusal{code: 403, reason: "Forbidden", hdrs: []sip.Header{
		sip.NewHeader("Warning", `399 imbot "requests are accepted through the trusted proxy only"`)}}
}

// assertedIdentity returns the first sip: or sips: URI of a request's P-Asserted-Identity
// headers (RFC 3325 §9.1: one or two values, a SIP URI and a tel URI).
func assertedIdentity(req *sip.Request) (sip.Uri, string, bool) {
	for _, h := range req.GetHeaders("P-Asserted-Identity") {
		for _, v := range splitNameAddrs(h.Value()) {
			var (
				u      sip.Uri
				params sip.HeaderParams
			)
			display, err := sip.ParseAddressValue(v, &u, &params)
			if err != nil {
				continue
			}
			if (u.Scheme == "sip" || u.Scheme == "sips") && u.Host != "" && u.User != "" && !strings.ContainsAny(v, "\r\n\x00") {
				return u, display, true
			}
		}
	}
	return sip.Uri{}, "", false
}

// splitNameAddrs splits a header value at the commas outside quotes and angle brackets.
func splitNameAddrs(v string) []string {
	var out []string
	quoted, angle, start := false, false, 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == '<' && !quoted:
			angle = true
		case c == '>' && !quoted:
			angle = false
		case c == ',' && !quoted && !angle:
			out = append(out, strings.TrimSpace(v[start:i]))
			start = i + 1
		}
	}
	return append(out, strings.TrimSpace(v[start:]))
}

// authenticate checks a request's digest credentials (RFC 3261 §22.4).
func (b *Bot) authenticate(ctx context.Context, req *sip.Request) (Peer, *refusal) {
	t := b.trust
	h := req.GetHeader("Authorization")
	if h == nil {
		return Peer{}, t.challenge(false)
	}
	creds, err := digest.ParseCredentials(h.Value())
	if err != nil || creds.Realm != t.realm || creds.Username == "" {
		return Peer{}, t.challenge(false)
	}
	issued, state := t.checkNonce(creds.Nonce)
	switch state {
	case nonceBad:
		return Peer{}, t.challenge(false)
	case nonceStale:
		return Peer{}, t.challenge(true)
	}
	u, ok := t.users[creds.Username]
	if !ok && t.lookup != nil {
		if u, ok, err = t.lookup(ctx, creds.Username); err != nil {
			b.log.Warn("digest user lookup failed", "user", creds.Username, "err", err)
			return Peer{}, &refusal{code: 500, reason: "Server Internal Error", hdrs: []sip.Header{retryAfter(5)}}
		}
	}
	if !ok || !validResponse(req, creds, u) {
		b.log.Info("digest authentication failed", "user", creds.Username, "source", req.Source())
		return Peer{}, &refusal{code: 403, reason: "Forbidden", hdrs: []sip.Header{
			sip.NewHeader("Warning", `399 imbot "wrong username or password"`)}}
	}
	uri, err := userURI(u)
	if err != nil {
		b.log.Warn("digest user without a usable URI", "user", u.Username, "err", err)
		return Peer{}, &refusal{code: 403, reason: "Forbidden"}
	}
	from := req.From()
	p := peerFromURI(uri, from.DisplayName)
	if peerFromURI(from.Address, "").URI != p.URI {
		b.log.Info("From differs from the authenticated user", "user", u.Username, "from", from.Address.String())
		return Peer{}, &refusal{code: 403, reason: "Forbidden", hdrs: []sip.Header{
			sip.NewHeader("Warning", `399 imbot "From does not match the authenticated user"`)}}
	}
	if !t.counts.use(u.Username+" "+creds.Nonce, creds.Nc, issued, time.Now()) {
		// A replay, or a client that reused a count: a fresh nonce sorts out the latter.
		b.log.Info("digest nonce count used twice", "user", u.Username, "source", req.Source(), "nc", creds.Nc)
		return Peer{}, t.challenge(true)
	}
	p.Verified = true
	return p, nil
}

// validResponse recomputes the digest response of credentials with the user's secret.
func validResponse(req *sip.Request, c *digest.Credentials, u DigestUser) bool {
	chal := &digest.Challenge{Realm: c.Realm, Nonce: c.Nonce, Opaque: c.Opaque, Algorithm: c.Algorithm}
	if c.QOP != "" {
		if c.QOP != "auth" {
			return false // auth-int would need the body hashed the same way; not offered
		}
		chal.QOP = []string{c.QOP}
		if c.Nc == 0 || c.Cnonce == "" {
			return false
		}
	}
	if alg := strings.ToUpper(c.Algorithm); alg != "" && alg != "MD5" {
		return false
	}
	want, err := digest.Digest(chal, digest.Options{
		Method: string(req.Method), URI: c.URI, Username: c.Username, Password: u.Password,
		A1: strings.ToLower(u.HA1), Cnonce: c.Cnonce, Count: c.Nc,
	})
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.ToLower(want.Response)), []byte(strings.ToLower(c.Response))) == 1
}

// challenge is the 401 that asks for credentials.
func (t *trust) challenge(stale bool) *refusal {
	chal := digest.Challenge{Realm: t.realm, Nonce: t.nonce(time.Now()), Algorithm: "MD5", QOP: []string{"auth"}, Stale: stale}
	return &refusal{code: 401, reason: "Unauthorized", hdrs: []sip.Header{sip.NewHeader("WWW-Authenticate", chal.String())}}
}

// A nonce is its issue time, 8 random bytes (each challenge gets its own nonce, so that
// each client counts its own nonce counts) and an HMAC of both under a key of this process:
// the bot checks it without remembering the nonces it gave out, and a restart invalidates
// them all (clients then get a fresh challenge).
func (t *trust) nonce(now time.Time) string {
	var buf [nonceBytes]byte
	binary.BigEndian.PutUint64(buf[:8], uint64(now.Unix()))
	_, _ = rand.Read(buf[8:16])
	copy(buf[16:], t.sign(buf[:16]))
	return base64.RawURLEncoding.EncodeToString(buf[:])
}

// nonceBytes is the length of a nonce before its base64 encoding.
const nonceBytes = 8 + 8 + 16

func (t *trust) sign(stamp []byte) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write(stamp)
	m.Write([]byte(t.realm))
	return m.Sum(nil)[:16]
}

type nonceState int

const (
	nonceOK nonceState = iota
	nonceStale
	nonceBad
)

// checkNonce checks a nonce's signature and age and returns when it was issued.
func (t *trust) checkNonce(n string) (time.Time, nonceState) {
	raw, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil || len(raw) != nonceBytes || !hmac.Equal(raw[16:], t.sign(raw[:16])) {
		return time.Time{}, nonceBad
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(raw[:8])), 0)
	if age := time.Since(issued); age > nonceLifetime || age < -time.Minute {
		return issued, nonceStale
	}
	return issued, nonceOK
}
