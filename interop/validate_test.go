package interop

import (
	"context"
	"strings"
	"testing"

	"github.com/imbot-dev/imbot/bot"
)

// TestRawValidation sends requests that must be refused before they change anything: a
// protocol version the bot does not speak, a CSeq naming another method, From addresses
// the bot cannot write back (no host, not SIP, a bare LF inside), and checks the status, and
// that the bot still works afterwards.
func TestRawValidation(t *testing.T) {
	cases := []struct {
		name   string
		edit   func(msg string) string
		status string
		cseq   string // the method the answer's CSeq names; default MESSAGE
	}{
		{"SIP/9.9", func(m string) string { return strings.Replace(m, " SIP/2.0\r\n", " SIP/9.9\r\n", 1) }, "SIP/2.0 505", ""},
		{"CSeq of another method", func(m string) string { return strings.Replace(m, " MESSAGE\r\nContact", " INVITE\r\nContact", 1) }, "SIP/2.0 400", "INVITE"},
		{"From without host", func(m string) string { return replaceHeader(m, "From", "<sip:@>;tag=abc") }, "SIP/2.0 400", ""},
		{"From tel URI", func(m string) string { return replaceHeader(m, "From", "<tel:+15551234>;tag=abc") }, "SIP/2.0 400", ""},
		{"bare LF in the From URI", func(m string) string {
			return replaceHeader(m, "From", "<sip:eve@example.com;x=1\nX-Injected: yes>;tag=abc")
		}, "SIP/2.0 400", ""},
	}
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			b := startBot(t)
			addr := b.Addr(network)
			p := dialRaw(t, network, addr)
			for _, c := range cases {
				m := textMessage("bad: " + c.name)
				p.send(c.edit(p.build(m, addr)))
				method := c.cseq
				if method == "" {
					method = "MESSAGE"
				}
				res := p.expectFinal(m.CallID, method)
				if !strings.HasPrefix(res.startLine, c.status) {
					t.Errorf("%s: answered %q, want %s", c.name, res.startLine, c.status)
				}
			}
			requireStatus(t, p.do(textMessage("still fine"), addr), 200)
			p.expectEcho("still fine")
			for _, l := range b.events.Lines(0) {
				if strings.Contains(l, "bad: ") {
					t.Errorf("a refused request reached the handler: %s", l)
				}
			}
		})
	}
}

// replaceHeader replaces the value of the first header line called name.
func replaceHeader(msg, name, value string) string {
	start := strings.Index(msg, "\r\n"+name+": ")
	if start < 0 {
		return msg
	}
	start += 2
	end := start + strings.Index(msg[start:], "\r\n")
	return msg[:start] + name + ": " + value + msg[end:]
}

// TestRawMergedRequest sends the same page-mode MESSAGE twice with different branches, as a
// forking proxy would deliver it along two paths: the copy gets 482 (RFC 3261 §8.2.2.2) and
// the message is handled once.
func TestRawMergedRequest(t *testing.T) {
	b := startBot(t)
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)
	m := textMessage("only once")
	first := p.build(m, addr)
	second := p.build(m, addr) // same Call-ID, From-tag and CSeq; a new branch
	p.send(first)
	requireStatus(t, p.expectFinal(m.CallID, "MESSAGE"), 200)
	p.send(second)
	requireStatus(t, p.expectFinal(m.CallID, "MESSAGE"), 482)
	p.expectEcho("only once")
	requireStatus(t, p.do(textMessage("next"), addr), 200)
	p.expectEcho("next")
	if n := countEvents(b, func(l string) bool { return strings.HasSuffix(l, ": only once") }); n != 1 {
		t.Errorf("the message was handled %d times, want once:\n%s", n, b.events.String())
	}
}

// TestRawByeWithStaleCSeq sends a BYE with the right dialog ID but CSeq 0 from another
// address: it is refused (500) and the session goes on.
func TestRawByeWithStaleCSeq(t *testing.T) {
	b := startBot(t)
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)
	s := openRawSession(t, p, addr, true)
	intruder := dialRaw(t, "udp", addr)
	bye := s.req("BYE", 0, "")
	bye.CSeq = 0 // rawReq turns 0 into 1: write it by hand
	raw := strings.Replace(intruder.build(bye, addr), "CSeq: 1 BYE", "CSeq: 0 BYE", 1)
	intruder.send(raw)
	if res := intruder.expectFinal(s.inv.CallID, "BYE"); res.status() != 500 {
		t.Fatalf("BYE with CSeq 0 answered %q, want 500", res.startLine)
	}
	requireStatus(t, p.do(s.req("MESSAGE", 2, "still here"), addr), 200)
	p.expectEcho("still here")
	requireStatus(t, p.do(s.req("BYE", 3, ""), addr), 200)
}

// TestRawEscapedSenderIsTheSameSender writes as sip:mall%6Fry@EXAMPLE.com, which RFC 3261
// §19.1.4 says is sip:mallory@example.com: a refusal of that address catches it, and the
// handler sees the canonical address.
func TestRawEscapedSenderIsTheSameSender(t *testing.T) {
	b := startBotConfig(t, func(c *bot.Config) {
		c.Admit = func(ctx context.Context, peer bot.Peer, mode bot.Mode) error {
			if peer.URI == "sip:mallory@example.com" {
				return &bot.Refusal{Code: 403}
			}
			return nil
		}
	})
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)
	m := textMessage("let me in")
	p.send(replaceHeader(p.build(m, addr), "From", "<sip:mall%6Fry@EXAMPLE.com>;tag=x1"))
	requireStatus(t, p.expectFinal(m.CallID, "MESSAGE"), 403)
	// Another user of the same domain, spelt with escapes and capitals, is served under its
	// canonical address.
	m = textMessage("hello")
	p.send(replaceHeader(p.build(m, addr), "From", "<sip:tr%75dy@EXAMPLE.com>;tag=x2"))
	requireStatus(t, p.expectFinal(m.CallID, "MESSAGE"), 200)
	waitEvent(t, b, "message page sip:trudy@example.com: hello")
	p.expectEcho("hello")
}

// TestRawUnparsableUDP: a UDP request the SIP parser rejects is answered 400 with a Warning
// that says why (it used to be dropped without a word, and its sender retransmitted for 32
// seconds), as long as it carries the headers a response needs; the bot goes on working.
func TestRawUnparsableUDP(t *testing.T) {
	b := startBot(t)
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)
	cases := []struct {
		name string
		edit func(string) string
	}{
		{"CSeq not a number", func(m string) string { return strings.Replace(m, "CSeq: 1 MESSAGE", "CSeq: abc MESSAGE", 1) }},
		{"Content-Length beyond the body", func(m string) string {
			return strings.Replace(m, "Content-Length: 4", "Content-Length: 99", 1)
		}},
		{"header without a colon", func(m string) string { return strings.Replace(m, "Max-Forwards: 70", "Max-Forwards 70", 1) }},
	}
	for _, c := range cases {
		m := textMessage("oops")
		p.send(c.edit(p.build(m, addr)))
		res := p.expectFinal(m.CallID, "MESSAGE")
		if res.status() != 400 || res.header("Warning") == "" || !strings.Contains(res.header("To"), ";tag=") {
			t.Errorf("%s: answered\n%s\nwant 400 with a Warning and a To tag", c.name, res)
		}
	}
	requireStatus(t, p.do(textMessage("still fine"), addr), 200)
	p.expectEcho("still fine")
	if n := countEvents(b, func(l string) bool { return strings.HasSuffix(l, ": oops") }); n != 0 {
		t.Errorf("%d unparsable requests reached the handler", n)
	}
}

// TestRawPageRetransmission: a page-mode MESSAGE sent again with the same branch (its 200
// was lost, as far as the sender knows) is answered 200 each time with the same To tag and
// handled once: one event, one reply. The bot ends such transactions at the 200 and
// remembers only their keys (bot/answered.go).
func TestRawPageRetransmission(t *testing.T) {
	b := startBot(t)
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)
	m := textMessage("only once, please")
	msg := p.build(m, addr)
	var tags []string
	for range 3 {
		p.send(msg)
		res := p.expectFinal(m.CallID, "MESSAGE")
		requireStatus(t, res, 200)
		tags = append(tags, toTag(res))
	}
	if tags[1] != tags[0] || tags[2] != tags[0] {
		t.Errorf("To tags of the 200s: %q; want the same each time", tags)
	}
	p.expectEcho("only once, please")
	requireStatus(t, p.do(textMessage("next"), addr), 200)
	p.expectEcho("next")
	if n := countEvents(b, func(l string) bool {
		return strings.HasSuffix(l, ": only once, please") && strings.HasPrefix(l, "message ")
	}); n != 1 {
		t.Errorf("the message was handled %d times, want once", n)
	}
}
