package interop

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
)

// The bot serves page mode over UDP without sipgo's transaction layer (bot/leanudp.go):
// these tests hold it to RFC 3261 §17 from the wire, for both directions.

// TestRawPageRetransmittedWhileHandled resends a page-mode MESSAGE (same branch) while its
// first copy is still being handled (held in Config.Admit): the copies are absorbed, as a
// server transaction absorbs them, and the message is admitted, answered and handled once.
func TestRawPageRetransmittedWhileHandled(t *testing.T) {
	entered, release := make(chan struct{}, 4), make(chan struct{})
	var calls atomic.Int32
	b := startBotConfig(t, func(c *bot.Config) {
		c.Admit = func(ctx context.Context, peer bot.Peer, mode bot.Mode) error {
			calls.Add(1)
			entered <- struct{}{}
			<-release
			return nil
		}
	})
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)
	m := textMessage("patience")
	raw := p.build(m, addr)
	p.send(raw)
	select {
	case <-entered:
	case <-time.After(rawTimeout):
		t.Fatal("Admit was not asked about the message")
	}
	p.send(raw) // the sender's T1 and 2·T1 retransmissions
	p.send(raw)
	// The copies reach the bot's socket before the first copy is released: a request written
	// after them comes back after them.
	requireStatus(t, p.do(&rawReq{Method: "OPTIONS"}, addr), 200)
	close(release)
	requireStatus(t, p.expectFinal(m.CallID, "MESSAGE"), 200)
	p.expectEcho("patience")
	for _, r := range p.responses {
		if r.header("Call-ID") == m.CallID {
			t.Errorf("another response to the message:\n%s", r)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("Admit called %d times, want once", n)
	}
	if n := countEvents(b, func(l string) bool { return strings.HasPrefix(l, "message ") && strings.HasSuffix(l, ": patience") }); n != 1 {
		t.Errorf("the message was handled %d times, want once", n)
	}
}

// TestRawPageReplyRetransmitted leaves the bot's page-mode reply unanswered once: the bot
// sends it again, the same request (same branch, Call-ID and CSeq), at T1 and then twice
// that apart, and takes the 200 to a later copy as the answer (the handler's Reply returns
// no error). A second 200 to the same request is ignored.
func TestRawPageReplyRetransmitted(t *testing.T) {
	b := startBot(t)
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)
	m := textMessage("say it twice")
	p.send(p.build(m, addr))
	var copies []*rawMsg
	var at []time.Time
	deadline := time.Now().Add(rawTimeout)
	for len(copies) < 3 {
		msg, err := p.read(deadline)
		if err != nil {
			t.Fatalf("the reply came %d times, want 3 copies before answering: %v", len(copies), err)
		}
		if msg.isResponse() || msg.body != echoText("say it twice") {
			continue
		}
		copies = append(copies, msg)
		at = append(at, time.Now())
	}
	for _, c := range copies[1:] {
		for _, h := range []string{"Via", "Call-ID", "CSeq", "From"} {
			if c.header(h) != copies[0].header(h) {
				t.Errorf("retransmission %s %q, first copy %q: want the same request", h, c.header(h), copies[0].header(h))
			}
		}
	}
	if first, second := at[1].Sub(at[0]), at[2].Sub(at[1]); second < first*3/2 {
		t.Errorf("retransmissions %v and then %v apart; want the interval to double (T1, 2·T1)", first, second)
	}
	p.answer(copies[2])
	waitEvent(t, b, "replied page sip:dave@"+p.local+": "+echoText("say it twice")+" (err <nil>)")
	p.answer(copies[0]) // a late duplicate answer
	requireStatus(t, p.do(textMessage("and again"), addr), 200)
	p.expectEcho("and again")
	if n := countEvents(b, func(l string) bool { return strings.HasPrefix(l, "replied ") && strings.Contains(l, "say it twice") }); n != 1 {
		t.Errorf("%d outcomes of the reply, want 1", n)
	}
}

// TestRawSessionMessageRetransmitted resends an in-dialog MESSAGE (same branch) after its
// 200: the copy gets the same 200 again and is not handled twice, not refused for its CSeq
// (it is the same request, not a new one with an old number), and the dialog goes on. The
// next MESSAGE comes right behind a copy of it that arrives before the bot answered: one
// answer, in order. A copy of the BYE after the session ended gets its 200 again.
func TestRawSessionMessageRetransmitted(t *testing.T) {
	b := startBot(t)
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)
	s := openRawSession(t, p, addr, true)
	m := s.req("MESSAGE", 2, "just once")
	raw := p.build(m, addr)
	p.send(raw)
	first := p.expectFinal(m.CallID, "MESSAGE")
	requireStatus(t, first, 200)
	p.send(raw)
	again := p.expectFinal(m.CallID, "MESSAGE")
	requireStatus(t, again, 200)
	if again.header("CSeq") != first.header("CSeq") || toTag(again) != toTag(first) || again.header("Via") != first.header("Via") {
		t.Errorf("the copy got another answer:\n%s\nfirst:\n%s", again, first)
	}
	p.expectRequest("the echo in the dialog", func(r *rawMsg) bool { return r.body == echoText("just once") })

	next := s.req("MESSAGE", 3, "then this")
	raw = p.build(next, addr)
	p.send(raw)
	p.send(raw)
	requireStatus(t, p.expectFinal(next.CallID, "MESSAGE"), 200)
	p.expectRequest("the second echo", func(r *rawMsg) bool { return r.body == echoText("then this") })
	bye := s.req("BYE", 4, "")
	raw = p.build(bye, addr)
	p.send(raw)
	requireStatus(t, p.expectFinal(bye.CallID, "BYE"), 200)
	waitEvent(t, b, "session.end session sip:dave@"+p.local)
	p.send(raw) // its 200 was lost, as far as the peer knows: the same 200, not 481
	requireStatus(t, p.expectFinal(bye.CallID, "BYE"), 200)
	for _, text := range []string{"just once", "then this"} {
		if n := countEvents(b, func(l string) bool { return strings.HasPrefix(l, "message ") && strings.HasSuffix(l, ": "+text) }); n != 1 {
			t.Errorf("%q handled %d times, want once", text, n)
		}
	}
	for _, r := range p.responses {
		if r.header("Call-ID") == m.CallID && r.cseqMethod() == "MESSAGE" && r.status() != 200 {
			t.Errorf("a copy was refused:\n%s", r)
		}
	}
}
