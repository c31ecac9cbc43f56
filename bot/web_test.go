package bot_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

// TestWebSocketOrigin: a browser's WebSocket upgrade request from an origin that is not in
// Config.WebSocketOrigins is answered 403 and never reaches SIP; one from a listed origin,
// and one without Origin (a SIP client, not a browser), are upgraded.
func TestWebSocketOrigin(t *testing.T) {
	r := startBot(t, bot.Config{Listen: []string{"ws://127.0.0.1:0"},
		WebSocketOrigins: []string{"https://www.example.com"}}, newRecorder())
	for _, c := range []struct {
		name   string
		origin string
		want   int
	}{
		{"listed origin", "Origin: https://www.example.com\r\n", http.StatusSwitchingProtocols},
		{"listed origin, other case", "origin: HTTPS://WWW.EXAMPLE.COM\r\n", http.StatusSwitchingProtocols},
		{"another origin", "Origin: https://evil.example\r\n", http.StatusForbidden},
		{"another port", "Origin: https://www.example.com:8443\r\n", http.StatusForbidden},
		{"no origin: a SIP client", "", http.StatusSwitchingProtocols},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", r.Addr("ws"), deadline)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(deadline))
			fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n%s\r\n",
				r.Addr("ws"), c.origin)
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no answer to the upgrade request: %v", err)
			}
			res.Body.Close()
			if res.StatusCode != c.want {
				t.Fatalf("upgrade answered %d, want %d", res.StatusCode, c.want)
			}
		})
	}
}

// guests is a bot.GuestVerifier with fixed tokens.
type guests map[string]string // uri -> token

func (guests) GuestDomain() string { return "guest.invalid" }

func (g guests) VerifyGuest(uri, token string) error {
	if want, ok := g[uri]; ok && want == token {
		return nil
	}
	return errors.New("the token is not valid")
}

// wsAnswer answers the bot's MESSAGE s (read from the visitor's WebSocket c) 200.
func wsAnswer(t *testing.T, c net.Conn, s string) {
	t.Helper()
	via, _, _ := strings.Cut(s[strings.Index(s, "Via: "):], "\r\n")
	callID, _, _ := strings.Cut(s[strings.Index(s, "Call-ID: ")+len("Call-ID: "):], "\r\n")
	cseq, _, _ := strings.Cut(s[strings.Index(s, "CSeq: ")+len("CSeq: "):], "\r\n")
	from, _, _ := strings.Cut(s[strings.Index(s, "From: ")+len("From: "):], "\r\n")
	to, _, _ := strings.Cut(s[strings.Index(s, "To: ")+len("To: "):], "\r\n")
	ok := fmt.Sprintf("SIP/2.0 200 OK\r\n%s\r\nFrom: %s\r\nTo: %s;tag=v1\r\nCall-ID: %s\r\nCSeq: %s\r\nContent-Length: 0\r\n\r\n",
		via, from, to, callID, cseq)
	if err := wsutil.WriteClientText(c, []byte(ok)); err != nil {
		t.Fatal(err)
	}
}

// wsSend writes a page-mode MESSAGE from a web visitor (from, with its token when not "")
// over its WebSocket conn to the bot at addr, and returns the bot's response to it.
func wsSend(t *testing.T, conn net.Conn, addr, from, token, text string) string {
	t.Helper()
	hdr := ""
	if token != "" {
		hdr = bot.GuestHeader + ": " + token + "\r\n"
	}
	callID := fmt.Sprintf("%x", time.Now().UnixNano())
	msg := fmt.Sprintf("MESSAGE sip:bot@%s;transport=ws SIP/2.0\r\n"+
		"Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK%s\r\nMax-Forwards: 70\r\n"+
		"From: \"Visitor\" <%s>;tag=%s\r\nTo: <sip:bot@%s>\r\nCall-ID: %s\r\nCSeq: 1 MESSAGE\r\n%s"+
		"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: %d\r\n\r\n%s",
		addr, callID, from, callID, addr, callID, hdr, len(text), text)
	if err := wsutil.WriteClientText(conn, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	for {
		data, err := wsutil.ReadServerText(conn)
		if err != nil {
			t.Fatalf("no response to %q: %v", text, err)
		}
		if s := string(data); strings.HasPrefix(s, "SIP/2.0 ") && strings.Contains(s, callID) {
			return s
		}
	}
}

// TestGuests: a web visitor writes over WebSocket with its token in X-Imbot-Guest. With a
// valid token it is Verified and Guest, and the reply comes back over its connection even
// though the bot has an outbound proxy (which cannot reach a browser). After its connection
// drops, the OPTIONS it sends on its new one moves its conversation there. A visitor's address
// without its token, with another visitor's token, or a token with an address outside the
// guest domain, get 403.
func TestGuests(t *testing.T) {
	peers := make(chan bot.Peer, 4)
	convs := make(chan bot.Conversation, 4)
	rec := newRecorder()
	rec.before = func(ctx context.Context, w bot.Responder, ev *bot.Event) (bool, error) {
		if ev.Kind == bot.EventMessage {
			peers <- ev.Session.Peer()
			convs <- ev.Session
		}
		return false, nil
	}
	r := startBot(t, bot.Config{
		Listen:        []string{"ws://127.0.0.1:0"},
		OutboundProxy: "sip:127.0.0.1:9", // discard: nothing must go there
		Trust: bot.TrustConfig{Unverified: true, Guests: guests{
			"sip:guest-1@guest.invalid": "t1", "sip:guest-2@guest.invalid": "t2"}},
	}, rec)
	ctx := testCtx(t)
	conn, _, _, err := ws.Dialer{Protocols: []string{"sip"}}.Dial(ctx, "ws://"+r.Addr("ws"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(deadline))
	send := func(from, token, text string) string {
		t.Helper()
		return wsSend(t, conn, r.Addr("ws"), from, token, text)
	}
	answer := func(c net.Conn, s string) { t.Helper(); wsAnswer(t, c, s) }
	res := send("sip:guest-1@guest.invalid", "t1", "hello from the web")
	if !strings.HasPrefix(res, "SIP/2.0 200 ") {
		t.Fatalf("a visitor with its token: %s", res)
	}
	if p := <-peers; !p.Verified || !p.Guest || p.URI != "sip:guest-1@guest.invalid" {
		t.Errorf("peer %+v, want sip:guest-1@guest.invalid verified and guest", p)
	}
	// The reply, over the visitor's own connection.
	for {
		data, err := wsutil.ReadServerText(conn)
		if err != nil {
			t.Fatalf("no reply over the WebSocket: %v", err)
		}
		s := string(data)
		if strings.HasPrefix(s, "MESSAGE ") && strings.HasSuffix(s, "echo: hello from the web") {
			answer(conn, s)
			break
		}
	}
	rec.waitFor(t, "message:hello from the web")
	conv := <-convs

	// The visitor's connection drops and comes back: its OPTIONS on the new connection
	// (the widget sends one on every connection) makes the bot reach it there.
	conn.Close()
	conn2, _, _, err := ws.Dialer{Protocols: []string{"sip"}}.Dial(ctx, "ws://"+r.Addr("ws"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	_ = conn2.SetDeadline(time.Now().Add(deadline))
	conn = conn2
	opt := fmt.Sprintf("OPTIONS sip:bot@%s;transport=ws SIP/2.0\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKopt1\r\n"+
		"Max-Forwards: 70\r\nFrom: <sip:guest-1@guest.invalid>;tag=o1\r\nTo: <sip:bot@%s>\r\nCall-ID: opt1\r\nCSeq: 1 OPTIONS\r\n"+
		"%s: t1\r\nContent-Length: 0\r\n\r\n", r.Addr("ws"), r.Addr("ws"), bot.GuestHeader)
	if err := wsutil.WriteClientText(conn2, []byte(opt)); err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	for {
		data, err := wsutil.ReadServerText(conn2)
		if err != nil {
			t.Fatalf("nothing on the new connection: %v", err)
		}
		s := string(data)
		if strings.HasPrefix(s, "SIP/2.0 200 ") && strings.Contains(s, "opt1") {
			go func() { sent <- conv.Send(ctx, "welcome back") }()
			continue
		}
		if strings.HasPrefix(s, "MESSAGE ") && strings.HasSuffix(s, "welcome back") {
			answer(conn2, s)
			break
		}
	}
	if err := <-sent; err != nil {
		t.Fatalf("Send to the visitor after its reconnection: %v", err)
	}

	for _, c := range []struct{ name, from, token string }{
		{"no token", "sip:guest-1@guest.invalid", ""},
		{"another visitor's token", "sip:guest-1@guest.invalid", "t2"},
		{"a token outside the guest domain", "sip:ceo@example.com", "t1"},
	} {
		res := send(c.from, c.token, "let me in")
		if !strings.HasPrefix(res, "SIP/2.0 403 ") || !strings.Contains(res, "Warning: 399 imbot") {
			t.Errorf("%s: %s; want 403 with a Warning", c.name, res)
		}
	}
	if got := rec.snapshot(); strings.Contains(strings.Join(got, "\n"), "let me in") {
		t.Errorf("a refused message reached the handler: %q", got)
	}
}

// TestGuestForwarded: a web visitor connected to one instance writes; that instance forwards
// the message to another (Bot.Forward), which checks the visitor's token as the first did,
// sees a Verified Guest, and replies; its reply goes back to the first instance, which passes
// it on over the visitor's WebSocket, and the visitor's 200 reaches the replier. A message
// for a visitor not connected to the instance gets 480; one from an untrusted address is no
// relay at all (the trust model answers it).
func TestGuestForwarded(t *testing.T) {
	g := guests{"sip:guest-1@guest.invalid": "t1"}
	trust := bot.TrustConfig{Proxies: []string{"127.0.0.1"}, Guests: g}
	type heard struct {
		peer  bot.Peer
		reply error
	}
	heardCh := make(chan heard, 2)
	leader := startBot(t, bot.Config{Listen: []string{"udp://127.0.0.1:0"}, Trust: trust},
		bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
			if ev.Kind == bot.EventMessage {
				heardCh <- heard{ev.Session.Peer(), w.Reply(ctx, "leader heard: "+ev.Text)}
			}
			return nil
		}))
	forwarded := make(chan error, 2)
	var follower atomic.Pointer[running]
	follower.Store(startBot(t, bot.Config{Listen: []string{"ws://127.0.0.1:0", "udp://127.0.0.1:0"}, Trust: trust},
		bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
			if ev.Kind == bot.EventMessage {
				forwarded <- follower.Load().Forward(ctx, ev, "sip:"+leader.Addr("udp"), "handoff")
			}
			return nil
		})))
	f := follower.Load()
	ctx := testCtx(t)
	conn, _, _, err := ws.Dialer{Protocols: []string{"sip"}}.Dial(ctx, "ws://"+f.Addr("ws"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(deadline))
	if res := wsSend(t, conn, f.Addr("ws"), "sip:guest-1@guest.invalid", "t1", "a person please"); !strings.HasPrefix(res, "SIP/2.0 200 ") {
		t.Fatalf("the visitor's message: %s", res)
	}
	if err := <-forwarded; err != nil {
		t.Fatalf("Forward: %v", err)
	}
	for {
		data, err := wsutil.ReadServerText(conn)
		if err != nil {
			t.Fatalf("the leader's reply did not reach the visitor: %v", err)
		}
		if s := string(data); strings.HasPrefix(s, "MESSAGE ") && strings.HasSuffix(s, "leader heard: a person please") {
			wsAnswer(t, conn, s)
			break
		}
	}
	h := <-heardCh
	if !h.peer.Guest || !h.peer.Verified || h.peer.URI != "sip:guest-1@guest.invalid" {
		t.Errorf("the leader saw %+v, want the visitor, verified and guest", h.peer)
	}
	if h.reply != nil {
		t.Errorf("the leader's reply: %v, want it delivered", h.reply)
	}

	// A message for a visitor that is not connected here.
	p := bottest.NewPeer(t, bottest.Options{User: "bot", Bot: f.Addr("udp"), BotURI: "sip:guest-9@guest.invalid"})
	res, err := p.SendPage(ctx, "anyone there?")
	if err != nil || res.StatusCode != 480 {
		t.Errorf("a message for a visitor not connected here: %v, %v; want 480", res, err)
	}
}
