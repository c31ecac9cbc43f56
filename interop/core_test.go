package interop

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
)

// This file checks the session layer's order, CSeq and INVITE rules on the wire, with
// requests written by hand over plain sockets.

// rawSession is an IM session a raw peer opened with the bot.
type rawSession struct {
	p      *rawPeer
	addr   string
	inv    *rawReq
	botTag string
	ok     *rawMsg // the bot's 200
}

// openRawSession sends an INVITE offering m=message and returns the session; ack says
// whether to acknowledge the 200.
func openRawSession(t *testing.T, p *rawPeer, addr string, ack bool, hdrs ...string) *rawSession {
	t.Helper()
	inv := &rawReq{Method: "INVITE", Headers: append([]string{"Content-Type: application/sdp"}, hdrs...), Body: imOffer}
	res := p.do(inv, addr)
	requireStatus(t, res, 200)
	botTag := toTag(res)
	if botTag == "" {
		t.Fatalf("200 to INVITE has no To-tag:\n%s", res)
	}
	if ack {
		p.ack(inv, res, addr)
	}
	return &rawSession{p: p, addr: addr, inv: inv, botTag: botTag, ok: res}
}

// req builds an in-dialog request of the session.
func (s *rawSession) req(method string, cseq int, body string, hdrs ...string) *rawReq {
	if body != "" {
		hdrs = append([]string{"Content-Type: text/plain;charset=UTF-8"}, hdrs...)
	}
	return &rawReq{Method: method, CallID: s.inv.CallID, FromTag: s.inv.FromTag, ToTag: s.botTag, CSeq: cseq, Headers: hdrs, Body: body}
}

// toTag returns the To-tag of a message.
func toTag(m *rawMsg) string {
	_, tag, _ := strings.Cut(m.header("To"), ";tag=")
	tag, _, _ = strings.Cut(tag, ";")
	return tag
}

// countEvents counts the event lines of the bot's handler that match.
func countEvents(b *testBot, match func(string) bool) int {
	n := 0
	for _, l := range b.events.Lines(0) {
		if match(l) {
			n++
		}
	}
	return n
}

// waitEvent waits until the bot's handler saw an event line containing want.
func waitEvent(t *testing.T, b *testBot, want string) {
	t.Helper()
	if _, _, err := b.events.wait(0, rawTimeout, nil, func(l string) bool { return strings.Contains(l, want) }); err != nil {
		t.Fatalf("the handler never saw %q: %v; events:\n%s", want, err, b.events.String())
	}
}

// TestRawMessageThenBye sends a MESSAGE and the BYE right after it in one burst: the BYE
// must not overtake the MESSAGE (which would get 481), and the message, answered 200, must
// reach the handler before the session ends.
func TestRawMessageThenBye(t *testing.T) {
	const rounds = 20
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			b := startBot(t)
			addr := b.Addr(network)
			p := dialRaw(t, network, addr)
			for i := range rounds {
				s := openRawSession(t, p, addr, true)
				text := fmt.Sprintf("last words %d", i)
				msg, bye := s.req("MESSAGE", 2, text), s.req("BYE", 3, "")
				m1, m2 := p.build(msg, addr), p.build(bye, addr)
				if network == "tcp" {
					p.send(m1 + m2) // one segment
				} else {
					p.send(m1)
					p.send(m2)
				}
				if res := p.expectFinal(s.inv.CallID, "MESSAGE"); res.status() != 200 {
					t.Fatalf("round %d: MESSAGE followed by BYE got %q, want 200:\n%s", i, res.startLine, res)
				}
				if res := p.expectFinal(s.inv.CallID, "BYE"); res.status() != 200 {
					t.Fatalf("round %d: BYE got %q, want 200:\n%s", i, res.startLine, res)
				}
				waitEvent(t, b, "message session sip:dave@"+p.local+": "+text)
			}
			// Each message was handled before its session's end.
			var lines []string
			deadline := time.Now().Add(rawTimeout)
			for {
				lines = b.events.Lines(0)
				ends := 0
				for _, l := range lines {
					if strings.HasPrefix(l, "session.end session") {
						ends++
					}
				}
				if ends == rounds {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d sessions ended, want %d", ends, rounds)
				}
				// Answer what the bot sends meanwhile (an echo written before the BYE).
				_ = p.pump(time.Now().Add(50 * time.Millisecond))
			}
			for i := range rounds {
				msgAt, endAt := -1, -1
				for j, l := range lines {
					if strings.HasSuffix(l, fmt.Sprintf(": last words %d", i)) {
						msgAt = j
					}
				}
				for j := msgAt + 1; j < len(lines) && msgAt >= 0; j++ {
					if strings.HasPrefix(lines[j], "session.end session") {
						endAt = j
						break
					}
				}
				if msgAt < 0 || endAt < 0 {
					t.Fatalf("round %d: message or session end missing in events:\n%s", i, strings.Join(lines, "\n"))
				}
			}
		})
	}
}

// TestRawCSeqGaps checks that a request after a gap in the peer's CSeq is handled at once:
// gaps are legal (RFC 3261 §12.2.2; a request answered 405 or a proxy-challenged one leaves
// one), so nothing may wait for the missing numbers. The deprecated reorder window is set to
// an hour: a bot that still waited for the gap would not answer within the test's deadline.
func TestRawCSeqGaps(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			b := startBotConfig(t, func(c *bot.Config) { c.ReorderWindow = time.Hour })
			addr := b.Addr(network)
			p := dialRaw(t, network, addr)
			s := openRawSession(t, p, addr, true)

			requireStatus(t, p.do(s.req("MESSAGE", 7, "after a gap"), addr), 200)
			p.expectEcho("after a gap")
			// A method the bot does not take is refused, and does not hold up the next one.
			if res := p.do(s.req("SUBSCRIBE", 8, "", "Event: presence"), addr); res.status() != 405 {
				t.Fatalf("in-dialog SUBSCRIBE got %q, want 405", res.startLine)
			}
			requireStatus(t, p.do(s.req("OPTIONS", 12, ""), addr), 200)
			for i := range 8 {
				// OPTIONS then MESSAGE, sent together, eight times.
				cseq := 20 + 3*i
				p.send(p.build(s.req("OPTIONS", cseq, ""), addr))
				p.send(p.build(s.req("MESSAGE", cseq+2, fmt.Sprintf("pair %d", i)), addr))
			}
			for i := range 8 {
				p.expectEcho(fmt.Sprintf("pair %d", i))
			}
			requireStatus(t, p.do(s.req("BYE", 100, ""), addr), 200)
		})
	}
}

// TestRawCSeqNotAbove checks RFC 3261 §12.2.2: a new request (a new branch) whose CSeq is
// equal to or lower than the last one is refused with 500, and is not handled.
func TestRawCSeqNotAbove(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			b := startBot(t)
			addr := b.Addr(network)
			p := dialRaw(t, network, addr)
			s := openRawSession(t, p, addr, true)
			requireStatus(t, p.do(s.req("MESSAGE", 5, "first"), addr), 200)
			p.expectEcho("first")
			requireStatus(t, p.do(s.req("MESSAGE", 5, "same cseq"), addr), 500)
			requireStatus(t, p.do(s.req("MESSAGE", 4, "lower cseq"), addr), 500)
			requireStatus(t, p.do(s.req("INFO", 3, ""), addr), 500)
			requireStatus(t, p.do(s.req("MESSAGE", 6, "next"), addr), 200)
			p.expectEcho("next")
			for _, l := range b.events.Lines(0) {
				if strings.Contains(l, "same cseq") || strings.Contains(l, "lower cseq") {
					t.Errorf("a refused request reached the handler: %s", l)
				}
			}
			requireStatus(t, p.do(s.req("BYE", 7, ""), addr), 200)
		})
	}
}

// TestRawBotCSeqOrder checks the bot's own in-dialog requests: a delivery receipt, typing
// and the reply leave with strictly increasing CSeq, in every session.
func TestRawBotCSeqOrder(t *testing.T) {
	const rounds = 100
	b := startBot(t)
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)
	offer := strings.Replace(imOffer, "a=accept-types:text/plain", "a=accept-types:text/plain message/cpim application/im-iscomposing+xml", 1)
	for i := range rounds {
		inv := &rawReq{Method: "INVITE", Headers: []string{"Content-Type: application/sdp"}, Body: offer}
		res := p.do(inv, addr)
		requireStatus(t, res, 200)
		p.ack(inv, res, addr)
		botTag := toTag(res)
		s := &rawSession{p: p, addr: addr, inv: inv, botTag: botTag}
		text := fmt.Sprintf("receipt please %d", i)
		cpim := "From: <sip:dave@" + p.local + ">\r\nTo: <sip:bot@" + addr + ">\r\nDateTime: 2026-11-25T12:00:00Z\r\n" +
			"NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: m" + strconv.Itoa(i) + "\r\n" +
			"imdn.Disposition-Notification: positive-delivery\r\n\r\nContent-Type: text/plain;charset=UTF-8\r\n\r\n" + text
		msg := &rawReq{Method: "MESSAGE", CallID: inv.CallID, FromTag: inv.FromTag, ToTag: botTag, CSeq: 2,
			Headers: []string{"Content-Type: message/cpim"}, Body: cpim}
		requireStatus(t, p.do(msg, addr), 200)
		p.expectEcho(text)
		requireStatus(t, p.do(s.req("BYE", 3, ""), addr), 200)
		var seqs []string
		last := -1
		for _, m := range p.received {
			if m.header("Call-ID") != inv.CallID {
				continue
			}
			f := strings.Fields(m.header("CSeq"))
			n, _ := strconv.Atoi(f[0])
			seqs = append(seqs, m.header("CSeq")+" "+wireKind(m))
			if n <= last {
				t.Fatalf("round %d: the bot's in-dialog requests left out of CSeq order: %v", i, seqs)
			}
			last = n
		}
		if len(seqs) < 2 {
			t.Fatalf("round %d: want a receipt and a reply in the dialog, got %v", i, seqs)
		}
	}
}

// TestRawMessageBeforeAck checks a session whose ACK never comes: a MESSAGE that arrives
// before it is answered 200 and handled (a 200 is a promise), and once the ACK is overdue the
// bot ends the session with a BYE (RFC 3261 §13.3.1.4).
func TestRawMessageBeforeAck(t *testing.T) {
	b := startBotConfig(t, func(c *bot.Config) { c.AckTimeout = 2 * time.Second })
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)
	s := openRawSession(t, p, addr, false)
	requireStatus(t, p.do(s.req("MESSAGE", 2, "before the ack"), addr), 200)
	p.expectEcho("before the ack")
	bye := p.expectRequest("BYE from the bot", func(m *rawMsg) bool {
		return m.method() == "BYE" && m.header("Call-ID") == s.inv.CallID
	})
	if !strings.Contains(bye.header("From"), "tag="+s.botTag) {
		t.Errorf("BYE not in the dialog:\n%s", bye)
	}
	waitEvent(t, b, "session.end session sip:dave@"+p.local)
}

// TestRaw200Retransmissions checks that the 200 to an INVITE over UDP is retransmitted at
// T1, 2·T1, 4·T1... (RFC 3261 §13.3.1.4: 0.5 s, 1 s, 2 s, 4 s apart) until the ACK, and
// stops with the ACK. The caller is verified (a trusted proxy asserts it): see
// TestRaw200RetransmissionsUnverified for a caller that is not.
func TestRaw200Retransmissions(t *testing.T) {
	b := startBotConfig(t, func(c *bot.Config) { c.Trust.Proxies = []string{"127.0.0.1"} })
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)
	inv := &rawReq{Method: "INVITE", Headers: []string{"Content-Type: application/sdp", "P-Asserted-Identity: <sip:dave@example.com>"}, Body: imOffer}
	p.send(p.build(inv, addr))
	var times []time.Time
	var first *rawMsg
	deadline := time.Now().Add(20 * time.Second)
	for len(times) < 5 {
		m, err := p.read(deadline)
		if err != nil {
			t.Fatalf("after %d copies of the 200: %v", len(times), err)
		}
		if m.isResponse() && m.status() == 200 && m.cseqMethod() == "INVITE" {
			times = append(times, time.Now())
			first = m
		}
	}
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}
	for i, w := range want {
		got := times[i+1].Sub(times[i])
		// Timers are exact to a few milliseconds; the bounds only absorb a loaded machine.
		if got < w*7/10 || got > w*16/10 {
			t.Errorf("retransmission %d came %v after the previous copy, want about %v (all: %v)", i+1, got.Round(time.Millisecond), w, gaps(times))
		}
	}
	p.ack(inv, first, addr)
	// After the ACK no more copies: the next thing the bot sends is the reply to a message.
	botTag := toTag(first)
	s := &rawSession{p: p, addr: addr, inv: inv, botTag: botTag}
	p.send(p.build(s.req("MESSAGE", 2, "acked"), addr))
	deadline = time.Now().Add(rawTimeout)
	for {
		m, err := p.read(deadline)
		if err != nil {
			t.Fatal(err)
		}
		if m.isResponse() && m.cseqMethod() == "INVITE" {
			t.Fatalf("200 retransmitted after the ACK")
		}
		if m.method() == "MESSAGE" {
			p.answer(m)
			if m.body == echoText("acked") {
				break
			}
		}
	}
	requireStatus(t, p.do(s.req("BYE", 3, ""), addr), 200)
}

// TestRaw200RetransmissionsUnverified: toward an unverified caller that never ACKs (a
// forged INVITE's victim), the 200 goes out four times (0, 0.5, 1.5, 3.5 s) and the session
// then ends without a BYE: one forged INVITE brings four packets, not eleven in 32 s.
func TestRaw200RetransmissionsUnverified(t *testing.T) {
	b := startBot(t)
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)
	inv := &rawReq{Method: "INVITE", Headers: []string{"Content-Type: application/sdp"}, Body: imOffer}
	p.send(p.build(inv, addr))
	waitEvent(t, b, "session.end session sip:dave@"+p.local)
	copies, byes := 0, 0
	for {
		m, err := p.read(time.Now().Add(50 * time.Millisecond)) // what arrived before the end
		if err != nil {
			break
		}
		switch {
		case m.isResponse() && m.status() == 200 && m.cseqMethod() == "INVITE":
			copies++
		case m.method() == "BYE":
			byes++
		}
	}
	if copies != 4 || byes != 0 {
		t.Errorf("the unverified caller got %d copies of the 200 and %d BYEs; want 4 and none", copies, byes)
	}
}

func gaps(times []time.Time) []string {
	var out []string
	for i := 1; i < len(times); i++ {
		out = append(out, times[i].Sub(times[i-1]).Round(time.Millisecond).String())
	}
	return out
}

// TestRawLarge200OverUDP sends an INVITE over UDP with a Record-Route set so long that the
// 200 (which must copy it) exceeds 1300 bytes: the caller still gets its 200. The bot's own
// requests in that dialog carry the route set too, so they are too large for UDP: they go
// over TCP to the same next hop (RFC 3261 §18.1.1), whole.
func TestRawLarge200OverUDP(t *testing.T) {
	b := startBot(t)
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)
	// The first route is this peer: it listens on TCP on its UDP port too.
	ln, err := net.Listen("tcp", p.local)
	if err != nil {
		t.Skipf("cannot listen on TCP %s beside the UDP socket: %v", p.local, err)
	}
	t.Cleanup(func() { ln.Close() })
	var rr []string
	for i := range 12 {
		rr = append(rr, fmt.Sprintf("Record-Route: <sip:%s;lr;ftag=%s;did=proxy-hop-%02d-with-a-long-parameter>", p.local, randHex(8), i))
	}
	s := openRawSession(t, p, addr, true, rr...)
	if got := len(s.ok.all("Record-Route")); got != len(rr) {
		t.Fatalf("200 has %d Record-Route headers, want %d", got, len(rr))
	}
	if n := len(s.ok.String()); n <= 1300 {
		t.Fatalf("the 200 is %d bytes: the test needs one above 1300", n)
	}
	requireStatus(t, p.do(s.req("MESSAGE", 2, "long route"), addr), 200)
	if err := ln.(*net.TCPListener).SetDeadline(time.Now().Add(rawTimeout)); err != nil {
		t.Fatal(err)
	}
	conn, err := ln.Accept()
	if err != nil {
		t.Fatalf("the bot's request never came over TCP: %v", err)
	}
	defer conn.Close()
	tp := &rawPeer{t: t, network: "tcp", conn: conn, local: p.local, reader: bufio.NewReader(conn)}
	echo := tp.expectRequest("the echo over TCP", func(m *rawMsg) bool { return m.method() == "MESSAGE" })
	if echo.body != echoText("long route") {
		t.Errorf("got %q over TCP, want the whole echo %q", echo.body, echoText("long route"))
	}
	if got := len(echo.all("Route")); got != len(rr) {
		t.Errorf("in-dialog request has %d Route headers, want %d", got, len(rr))
	}
	if !strings.Contains(echo.header("Via"), "SIP/2.0/TCP") {
		t.Errorf("Via %q does not say TCP", echo.header("Via"))
	}
	requireStatus(t, p.do(s.req("BYE", 3, ""), addr), 200)
}

// TestRawPageReplyFromIdentity checks that a page-mode reply comes from the bot's own
// identity, whatever the To of the request said: a peer cannot make the bot speak as
// someone else.
func TestRawPageReplyFromIdentity(t *testing.T) {
	b := startBot(t)
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)
	m := textMessage("who are you")
	raw := p.build(m, addr)
	raw = strings.Replace(raw, "To: <sip:bot@"+addr+">", "To: <sip:ceo@corp.example>", 1)
	p.send(raw)
	requireStatus(t, p.expectFinal(m.CallID, "MESSAGE"), 200)
	reply := p.expectRequest("the echo", func(r *rawMsg) bool { return r.body == echoText("who are you") })
	if from := reply.header("From"); !strings.Contains(from, "<sip:bot@127.0.0.1>") {
		t.Errorf("reply From %q, want the bot's identity sip:bot@127.0.0.1", from)
	}
}

// TestRawPageAdmitOnce checks that Config.Admit decides once per new page-mode conversation:
// a second message from the same peer, arriving while the first is being admitted, waits
// for that decision and shares it (here a refusal) instead of slipping past.
func TestRawPageAdmitOnce(t *testing.T) {
	entered, release := make(chan struct{}, 4), make(chan struct{})
	var calls atomic.Int32
	b := startBotConfig(t, func(c *bot.Config) {
		c.Admit = func(ctx context.Context, peer bot.Peer, mode bot.Mode) error {
			if calls.Add(1) > 1 {
				return nil
			}
			entered <- struct{}{}
			<-release
			return &bot.Refusal{Code: 403, Reason: "Not Today"}
		}
	})
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)
	first, second := textMessage("first"), textMessage("second")
	p.send(p.build(first, addr))
	select {
	case <-entered:
	case <-time.After(rawTimeout):
		t.Fatal("Admit was not asked about the first message")
	}
	p.send(p.build(second, addr))
	if _, _, err := b.logs.waitLine(rawTimeout, "message waits for the admission of its conversation"); err != nil {
		t.Fatalf("the second message did not wait for the first one's admission: %v", err)
	}
	close(release)
	// Both answers, in whichever order they come.
	finals := map[string]int{}
	deadline := time.Now().Add(rawTimeout)
	for len(finals) < 2 {
		if err := p.pump(deadline); err != nil {
			t.Fatalf("answers so far %v: %v", finals, err)
		}
		for _, r := range p.responses {
			if r.status() >= 200 {
				finals[r.header("Call-ID")] = r.status()
			}
		}
	}
	for _, m := range []*rawReq{first, second} {
		if got := finals[m.CallID]; got != 403 {
			t.Errorf("%s answered %d, want the refusal 403", m.Body, got)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("Admit called %d times, want once", n)
	}
}

// TestRawRetransmittedInvite resends an INVITE (same branch) before acknowledging the 200:
// the bot answers with the same 200 (same To-tag) and opens one session, not two. Only over
// UDP: a client never retransmits over a reliable transport (RFC 3261 §17.1.1.2), and a copy
// that reaches the INVITE transaction before it ends is absorbed by it, the 200's own
// retransmission answering it.
func TestRawRetransmittedInvite(t *testing.T) {
	for _, network := range []string{"udp"} {
		t.Run(network, func(t *testing.T) {
			b := startBot(t)
			addr := b.Addr(network)
			p := dialRaw(t, network, addr)
			inv := &rawReq{Method: "INVITE", Headers: []string{"Content-Type: application/sdp"}, Body: imOffer}
			raw := p.build(inv, addr)
			p.send(raw)
			first := p.expectFinal(inv.CallID, "INVITE")
			requireStatus(t, first, 200)
			p.send(raw)
			again := p.expectFinal(inv.CallID, "INVITE")
			requireStatus(t, again, 200)
			if first.header("To") != again.header("To") {
				t.Fatalf("the retransmitted INVITE got another 200: To %q, then %q", first.header("To"), again.header("To"))
			}
			p.ack(inv, again, addr)
			botTag := toTag(first)
			s := &rawSession{p: p, addr: addr, inv: inv, botTag: botTag}
			requireStatus(t, p.do(s.req("MESSAGE", 2, "one session"), addr), 200)
			p.expectEcho("one session")
			requireStatus(t, p.do(s.req("BYE", 3, ""), addr), 200)
			waitEvent(t, b, "session.end session")
			if starts := countEvents(b, func(l string) bool { return strings.HasPrefix(l, "session.start") }); starts != 1 {
				t.Errorf("%d sessions started, want 1:\n%s", starts, b.events.String())
			}
		})
	}
}

// TestRawLateInviteCopy sends a copy of an INVITE after its ACK (delayed in the network): it
// is absorbed, not taken for a new session.
func TestRawLateInviteCopy(t *testing.T) {
	b := startBot(t)
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)
	inv := &rawReq{Method: "INVITE", Headers: []string{"Content-Type: application/sdp"}, Body: imOffer}
	raw := p.build(inv, addr)
	p.send(raw)
	ok := p.expectFinal(inv.CallID, "INVITE")
	requireStatus(t, ok, 200)
	p.ack(inv, ok, addr)
	p.send(raw) // the late copy
	botTag := toTag(ok)
	s := &rawSession{p: p, addr: addr, inv: inv, botTag: botTag}
	// The session answers; the copy got nothing but possibly the same 200 (another answer
	// would be read before the MESSAGE's: the bot handles the two in the order they came).
	p.send(p.build(s.req("MESSAGE", 2, "after the copy"), addr))
	deadline := time.Now().Add(rawTimeout)
	for answered := false; !answered; {
		if err := p.pump(deadline); err != nil {
			t.Fatal(err)
		}
		for _, r := range p.responses {
			// The copy may be handled before the ACK (two goroutines): then it gets the same
			// 200 again, which is right; anything else is not.
			if r.cseqMethod() == "INVITE" && (r.status() != 200 || r.header("To") != ok.header("To")) {
				t.Fatalf("the late copy of the INVITE got another answer:\n%s", r)
			}
			if r.cseqMethod() == "MESSAGE" {
				requireStatus(t, r, 200)
				answered = true
			}
		}
		p.responses = nil
	}
	p.expectEcho("after the copy")
	requireStatus(t, p.do(s.req("BYE", 3, ""), addr), 200)
	if starts := countEvents(b, func(l string) bool { return strings.HasPrefix(l, "session.start") }); starts != 1 {
		t.Errorf("%d sessions started, want 1:\n%s", starts, b.events.String())
	}
}

// TestRawSilentPeer writes from an address that never answers the bot (a client gone, or a
// forged source): the bot's first request to it times out, and then it sends nothing more to
// it (no second reply, no apology), until the peer writes again.
func TestRawSilentPeer(t *testing.T) {
	b := startBotConfig(t, func(c *bot.Config) { c.RequestTimeout = 300 * time.Millisecond })
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)
	m := textMessage("are you there")
	p.send(p.build(m, addr))
	// Read what the bot sends without answering it, until the handler gave up.
	var got []*rawMsg
	deadline := time.Now().Add(rawTimeout)
	for {
		if _, _, err := b.logs.waitLine(10*time.Millisecond, "reply dropped: the peer does not answer"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the bot never gave up on the silent peer; log:\n%s", b.logs.String())
		}
		if msg, err := p.read(time.Now().Add(50 * time.Millisecond)); err == nil && !msg.isResponse() {
			got = append(got, msg)
		}
	}
	calls := map[string]bool{}
	for _, g := range got {
		calls[g.header("Call-ID")] = true
		if strings.Contains(g.body, "Sorry") {
			t.Errorf("an apology went to a peer that does not answer:\n%s", g)
		}
	}
	if len(calls) > 1 {
		t.Errorf("the bot started %d requests toward a silent peer, want 1 (the reply; retransmissions of it are fine)", len(calls))
	}
	// The peer writes again, and answers: the conversation works.
	requireStatus(t, p.do(textMessage("back"), addr), 200)
	p.expectEcho("back")
}

// TestRawUnverifiedPageReflection: a page-mode message from an unverified source that
// never answers (a forged source's victim) brings back its 200 and at most four packets of
// one request (the first try and three retransmissions within 4 s), with the default
// request timeout of 10 s: the bot gives up on an unproven peer sooner.
func TestRawUnverifiedPageReflection(t *testing.T) {
	b := startBot(t)
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)
	m := textMessage("help")
	sent := p.build(m, addr)
	p.send(sent)
	if _, _, err := b.logs.waitLine(rawTimeout, "reply dropped: the peer does not answer"); err != nil {
		t.Fatalf("the bot did not give up on the silent peer: %v", err)
	}
	packets, bytes := 0, 0
	for {
		msg, err := p.read(time.Now().Add(50 * time.Millisecond)) // what arrived before it gave up
		if err != nil {
			break
		}
		packets++
		bytes += len(msg.String())
	}
	if packets > 5 {
		t.Errorf("%d packets (%d bytes) went to the silent source for one %d-byte message; want at most 5 (the 200 and 4 of one request)",
			packets, bytes, len(sent))
	}
}

// TestRawNoAckNoBye opens a session from an address that never sends anything after its
// INVITE (as a forged source would): when the ACK is overdue the session ends without a BYE
// toward it, the 200's retransmissions being all it got.
func TestRawNoAckNoBye(t *testing.T) {
	b := startBotConfig(t, func(c *bot.Config) { c.AckTimeout = time.Second })
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)
	s := openRawSession(t, p, addr, false)
	waitEvent(t, b, "session.end session sip:dave@"+p.local)
	// Whatever the bot sent for this dialog is in the socket by now (a BYE would have
	// been written before the end event was queued).
	for {
		msg, err := p.read(time.Now().Add(100 * time.Millisecond))
		if err != nil {
			break
		}
		if msg.method() == "BYE" && msg.header("Call-ID") == s.inv.CallID {
			t.Fatalf("BYE sent toward a peer that never spoke in the dialog:\n%s", msg)
		}
	}
}
