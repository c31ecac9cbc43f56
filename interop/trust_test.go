package interop

import (
	"strings"
	"testing"

	"github.com/icholy/digest"

	"github.com/imbot-dev/imbot/bot"
)

// proxyIP is a second loopback address: the bot trusts it as a proxy, or sees it as a
// stranger, while the other peers write from 127.0.0.1.
const proxyIP = "127.0.0.2"

// dialFrom is dialRaw from a given loopback address; the test is skipped where the host
// cannot bind it.
func dialFrom(t *testing.T, network, ip, botAddr string) *rawPeer {
	t.Helper()
	p, err := dialRawFrom(t, network, ip, botAddr)
	if err != nil {
		t.Skipf("cannot send from %s on this host: %v", ip, err)
	}
	return p
}

// TestTrustedProxyAssertsIdentity: with Trust.Proxies set, a request through the proxy is
// from the user its P-Asserted-Identity names (verified), whatever its From says, and the
// page-mode reply goes back through the proxy to that user; the same header from anywhere
// else proves nothing and the request is refused with 403.
func TestTrustedProxyAssertsIdentity(t *testing.T) {
	b := startBotConfig(t, func(c *bot.Config) { c.Trust.Proxies = []string{proxyIP} })
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			addr := b.Addr(network)
			proxy := dialFrom(t, network, proxyIP, addr)
			stranger := dialRaw(t, network, addr)
			pai := "P-Asserted-Identity: \"Alice\" <sip:alice@Example.COM>, <tel:+15551234>"

			// Forged: straight to the bot, claiming to be asserted.
			m := textMessage("forged " + network)
			m.Headers = append(m.Headers, pai)
			res := stranger.do(m, addr)
			requireStatus(t, res, 403)
			if w := res.header("Warning"); !strings.Contains(w, "trusted proxy") {
				t.Errorf("403 Warning = %q, want it to say that only the trusted proxy is accepted", w)
			}

			// Through the proxy: From says mallory, the proxy asserts alice.
			m = textMessage("asserted " + network)
			m.Headers = append(m.Headers, pai)
			msg := replaceHeader(proxy.build(m, addr), "From", "<sip:mallory@example.com>;tag=f"+network)
			proxy.send(msg)
			requireStatus(t, proxy.expectFinal(m.CallID, "MESSAGE"), 200)
			waitEvent(t, b, "message page sip:alice@example.com (verified): asserted "+network)
			reply := proxy.expectRequest("the reply through the proxy", func(r *rawMsg) bool {
				return r.method() == "MESSAGE" && r.body == echoText("asserted "+network)
			})
			if !strings.HasPrefix(reply.startLine, "MESSAGE sip:alice@example.com") {
				t.Errorf("reply Request-URI: %q, want the asserted identity sip:alice@example.com", reply.startLine)
			}
			if to := reply.header("To"); !strings.Contains(to, "sip:alice@example.com") {
				t.Errorf("reply To: %q, want the asserted identity", to)
			}
			if from := reply.header("From"); !strings.Contains(from, "sip:bot@127.0.0.1") {
				t.Errorf("reply From: %q, want the bot's own identity", from)
			}

			// Through the proxy without an assertion: served, but not verified.
			m = textMessage("unasserted " + network)
			requireStatus(t, proxy.do(m, addr), 200)
			waitEvent(t, b, "message page sip:dave@"+proxy.local+": unasserted "+network)
			proxy.expectEcho("unasserted " + network)
		})
	}
	if n := countEvents(b, func(l string) bool { return strings.Contains(l, "forged") }); n != 0 {
		t.Errorf("%d events from forged assertions reached the handler", n)
	}
}

// TestDigestAuthentication: with Trust.Users set, a page-mode MESSAGE and an INVITE need
// digest credentials: without them 401 and a challenge; with the right ones the peer is the
// user, verified; a wrong password, a forged nonce or credentials for another From are
// refused, and nothing refused reaches the handler.
func TestDigestAuthentication(t *testing.T) {
	b := startBotConfig(t, func(c *bot.Config) {
		c.Trust.Users = []bot.DigestUser{{Username: "dave", Password: "s3cret", URI: "sip:dave@" + proxyIP}}
	})
	addr := b.Addr("udp")
	p := dialFrom(t, "udp", proxyIP, addr) // its From is sip:dave@127.0.0.2:port

	// The raw peer's From carries its port; the user's URI has none. Write as the user.
	asDave := func(msg string, tag string) string {
		return replaceHeader(msg, "From", "<sip:dave@"+proxyIP+">;tag="+tag)
	}
	m := textMessage("no credentials")
	p.send(asDave(p.build(m, addr), "t1"))
	res := p.expectFinal(m.CallID, "MESSAGE")
	requireStatus(t, res, 401)
	chal, err := digest.ParseChallenge(res.header("WWW-Authenticate"))
	if err != nil {
		t.Fatalf("401 without a usable challenge %q: %v", res.header("WWW-Authenticate"), err)
	}
	if chal.Realm != "127.0.0.1" || !chal.SupportsQOP("auth") || chal.Nonce == "" {
		t.Errorf("challenge %+v: want realm 127.0.0.1 (the identity's host), qop auth and a nonce", chal)
	}

	authorized := func(r *rawReq, user, password string, nc int, c *digest.Challenge) *rawReq {
		uri := "sip:bot@" + addr
		cred, err := digest.Digest(c, digest.Options{Method: r.Method, URI: uri, Username: user, Password: password, Count: nc})
		if err != nil {
			t.Fatal(err)
		}
		r.Headers = append(r.Headers, "Authorization: "+cred.String())
		return r
	}

	cases := []struct {
		name     string
		user, pw string
		from     string // From user; default dave
		nonce    string // default the challenge's
		nc       int    // default the case's number
		status   int
	}{
		{name: "right password", user: "dave", pw: "s3cret", status: 200},
		{name: "wrong password", user: "dave", pw: "guess", status: 403},
		{name: "unknown user", user: "eve", pw: "s3cret", status: 403},
		{name: "forged nonce", user: "dave", pw: "s3cret", nonce: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", status: 401},
		{name: "another From", user: "dave", pw: "s3cret", from: "mallory", status: 403},
		{name: "replayed count", user: "dave", pw: "s3cret", nc: 1, status: 401}, // the first case's
	}
	for i, c := range cases {
		ch := *chal
		if c.nonce != "" {
			ch.Nonce = c.nonce
		}
		nc := i + 1
		if c.nc != 0 {
			nc = c.nc
		}
		m := authorized(textMessage("try: "+c.name), c.user, c.pw, nc, &ch)
		msg := asDave(p.build(m, addr), "c"+randHex(2))
		if c.from != "" {
			msg = replaceHeader(msg, "From", "<sip:"+c.from+"@"+proxyIP+">;tag=x")
		}
		p.send(msg)
		if res := p.expectFinal(m.CallID, "MESSAGE"); res.status() != c.status {
			t.Errorf("%s: answered %q, want %d", c.name, res.startLine, c.status)
		}
	}
	waitEvent(t, b, "message page sip:dave@"+proxyIP+" (verified): try: right password")
	p.expectEcho("try: right password")

	// An IM session is challenged the same way.
	inv := &rawReq{Method: "INVITE", Headers: []string{"Content-Type: application/sdp"}, Body: imOffer}
	p.send(asDave(p.build(inv, addr), "i1"))
	res = p.expectFinal(inv.CallID, "INVITE")
	requireStatus(t, res, 401)
	p.ack(inv, res, addr)

	for _, l := range b.events.Lines(0) {
		if strings.Contains(l, "try: ") && !strings.Contains(l, "right password") || strings.Contains(l, "no credentials") {
			t.Errorf("a refused request reached the handler: %s", l)
		}
	}
}

// TestUnverifiedNotRelayed: an unverified peer writing straight to a bot that has an
// outbound proxy is answered at its own address: a forged From must not make the bot send,
// through its proxy and with its credentials, a message to whoever the From names.
func TestUnverifiedNotRelayed(t *testing.T) {
	proxy := dialRaw(t, "udp", "127.0.0.1:9") // only for its address: a socket the bot may write to
	b := startBotConfig(t, func(c *bot.Config) {
		c.OutboundProxy = proxy.local
		c.Trust.Unverified = true
	})
	addr := b.Addr("udp")
	p := dialFrom(t, "udp", proxyIP, addr)
	m := textMessage("your account is locked")
	msg := replaceHeader(p.build(m, addr), "From", "<sip:victim@bank.example>;tag=v1")
	p.send(msg)
	requireStatus(t, p.expectFinal(m.CallID, "MESSAGE"), 200)
	reply := p.expectRequest("the reply at the sender's address", func(r *rawMsg) bool {
		return r.method() == "MESSAGE" && r.body == echoText("your account is locked")
	})
	if !strings.Contains(reply.header("From"), "sip:bot@127.0.0.1") {
		t.Errorf("reply From %q: want the bot's own identity", reply.header("From"))
	}
}

// TestDigestUsersAmongStrangers: with Trust.Users and Trust.Unverified both set, strangers
// are served unverified, but a From that names a user must prove it: 401 without
// credentials, verified with them. Nobody can pose as an agent by writing its From.
func TestDigestUsersAmongStrangers(t *testing.T) {
	b := startBotConfig(t, func(c *bot.Config) {
		c.Trust.Users = []bot.DigestUser{{Username: "bob", Password: "agent-pw", URI: "sip:bob@example.com"}}
		c.Trust.Unverified = true
	})
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)

	requireStatus(t, p.do(textMessage("a stranger asks"), addr), 200)
	waitEvent(t, b, "message page sip:dave@"+p.local+": a stranger asks")
	p.expectEcho("a stranger asks")

	asBob := func(m *rawReq) string {
		return replaceHeader(p.build(m, addr), "From", "<sip:bob@example.com>;tag="+randHex(3))
	}
	m := textMessage("posing as bob")
	p.send(asBob(m))
	res := p.expectFinal(m.CallID, "MESSAGE")
	requireStatus(t, res, 401)
	chal, err := digest.ParseChallenge(res.header("WWW-Authenticate"))
	if err != nil {
		t.Fatal(err)
	}
	m = textMessage("really bob")
	cred, err := digest.Digest(chal, digest.Options{Method: "MESSAGE", URI: "sip:bot@" + addr, Username: "bob", Password: "agent-pw", Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	m.Headers = append(m.Headers, "Authorization: "+cred.String())
	p.send(asBob(m))
	requireStatus(t, p.expectFinal(m.CallID, "MESSAGE"), 200)
	waitEvent(t, b, "message page sip:bob@example.com (verified): really bob")
	p.expectEcho("really bob")
	if n := countEvents(b, func(l string) bool { return strings.Contains(l, "posing as bob") }); n != 0 {
		t.Errorf("the unauthenticated message in bob's name reached the handler %d times", n)
	}
}
