package interop

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
)

// otherSourceIP is a second loopback address, for a second source. Linux answers on all of
// 127.0.0.0/8; where it cannot be bound, the tests skip what needs it.
const otherSourceIP = "127.0.0.2"

// TestRawSourceLimit floods the bot with page-mode MESSAGEs from one address, each a new
// transaction: about Burst of them are answered 200 and handled, the first one over the
// limit gets 503 with Retry-After, the rest get no answer at all. The bot's own requests to
// that address (its replies) still get through, and another address is not limited.
func TestRawSourceLimit(t *testing.T) {
	const (
		rate  = 5
		burst = 10
		sent  = 60
	)
	b := startBotConfig(t, func(c *bot.Config) { c.SourceLimit = bot.SourceLimit{Rate: rate, Burst: burst} })
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)
	texts := map[string]string{} // Call-ID -> text
	start := time.Now()
	for i := range sent {
		m := textMessage(fmt.Sprintf("flood %d", i))
		p.send(p.build(m, addr))
		texts[m.CallID] = m.Body
	}
	// Read until the bot decided every request (answered 200, or counted as limited) and its
	// 503 came, answering the bot's replies meanwhile.
	var ok, busy []*rawMsg
	deadline := time.Now().Add(rawTimeout)
	for len(ok)+int(b.LimitedRequests()) < sent || len(busy) == 0 {
		for _, m := range p.responses {
			switch m.status() {
			case 200:
				ok = append(ok, m)
			case 503:
				busy = append(busy, m)
			default:
				t.Fatalf("unexpected answer:\n%s", m)
			}
		}
		p.responses = nil
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %d answered 200, %d 503, %d limited in all, of %d sent",
				rawTimeout, len(ok), len(busy), b.LimitedRequests(), sent)
		}
		var ne net.Error
		if err := p.pump(time.Now().Add(50 * time.Millisecond)); err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	t.Logf("%d of %d answered 200, %d answered 503, in %v", len(ok), sent, len(busy), elapsed)

	if most := burst + int(rate*elapsed.Seconds()) + 1; len(ok) < burst || len(ok) > most {
		t.Errorf("%d of %d answered 200 in %v, want %d to %d", len(ok), sent, elapsed, burst, most)
	}
	for _, m := range busy {
		if n, err := strconv.Atoi(m.header("Retry-After")); err != nil || n < 1 {
			t.Errorf("503 without a valid Retry-After:\n%s", m)
		}
	}
	if answered := len(ok) + len(busy); answered > sent/2 {
		t.Errorf("%d of %d requests answered; the ones over the limit must be dropped", answered, sent)
	}
	if got, want := b.LimitedRequests(), uint64(sent-len(ok)); got != want {
		t.Errorf("LimitedRequests() = %d, want %d", got, want)
	}
	// Exactly the requests answered 200 are handled, and the bot's replies reach the
	// limited address.
	handled := map[string]bool{}
	for _, m := range ok {
		text := texts[m.header("Call-ID")]
		handled[text] = true
		p.expectEcho(text)
	}
	for _, l := range b.events.Lines(0) {
		if _, text, ok := strings.Cut(l, ": "); ok && strings.HasPrefix(l, "message ") && !handled[text] {
			t.Errorf("handled a request that was not answered 200: %s", l)
		}
	}
	if n := countEvents(b, func(l string) bool { return strings.HasPrefix(l, "message page ") }); n != len(ok) {
		t.Errorf("%d messages handled, want %d", n, len(ok))
	}

	q, err := dialRawFrom(t, "udp", otherSourceIP, addr)
	if err != nil {
		t.Skipf("no second source address: %v", err)
	}
	requireStatus(t, q.do(textMessage("another source"), addr), 200)
	q.expectEcho("another source")
}

// TestRawSourceLimitInDialog checks that an in-dialog request over the limit, answered 503
// or dropped, gives up its place in its dialog's arrival order: the next request of the
// dialog, from an address within its limit, is handled at once, not after waiting for the
// limited ones.
func TestRawSourceLimitInDialog(t *testing.T) {
	// A token every 1000 s: no refill during the test.
	b := startBotConfig(t, func(c *bot.Config) { c.SourceLimit = bot.SourceLimit{Rate: 0.001, Burst: 3} })
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)
	q, err := dialRawFrom(t, "udp", otherSourceIP, addr)
	if err != nil {
		t.Skipf("no second source address: %v", err)
	}
	s := openRawSession(t, p, addr, true) // the INVITE takes a token, the ACK none
	for i, text := range []string{"one", "two"} {
		requireStatus(t, p.do(s.req("MESSAGE", 2+i, text), addr), 200)
		p.expectEcho(text)
	}
	res := p.do(s.req("MESSAGE", 4, "refused"), addr)
	requireStatus(t, res, 503)
	if res.header("Retry-After") == "" {
		t.Errorf("503 without Retry-After:\n%s", res)
	}
	p.send(p.build(s.req("MESSAGE", 5, "dropped"), addr))

	// The same dialog from the other address.
	other := &rawSession{p: q, addr: addr, inv: s.inv, botTag: s.botTag}
	requireStatus(t, q.do(other.req("MESSAGE", 6, "three"), addr), 200)
	p.expectEcho("three") // the bot writes to the session's Contact
	requireStatus(t, q.do(other.req("BYE", 7, ""), addr), 200)
	waitEvent(t, b, "session.end session")

	if strings.Contains(b.logs.String(), "waited too long") {
		t.Errorf("a request waited for a limited one before it:\n%s", b.logs.String())
	}
	for _, l := range b.events.Lines(0) {
		if strings.HasSuffix(l, ": refused") || strings.HasSuffix(l, ": dropped") {
			t.Errorf("a limited request was handled: %s", l)
		}
	}
	if got := b.LimitedRequests(); got != 2 {
		t.Errorf("LimitedRequests() = %d, want 2", got)
	}
}
