package interop

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
)

// This file checks, with requests written by hand, the SDP answer to offers with several
// m= lines (RFC 3264 §6) and the refusal of requests that Require an extension the bot
// does not support (RFC 3261 §8.2.2.3).

// sdpOffer is an SDP offer with the given m= lines (and their attributes), LF-separated.
func sdpOffer(media ...string) string {
	return "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		strings.ReplaceAll(strings.Join(media, "\n"), "\n", "\r\n") + "\r\n"
}

// mLines returns the m= lines of an SDP body.
func mLines(sdp string) []string {
	var out []string
	for line := range strings.Lines(sdp) {
		if line = strings.TrimRight(line, "\r\n"); strings.HasPrefix(line, "m=") {
			out = append(out, line)
		}
	}
	return out
}

// TestRawOfferAnswer sends INVITEs offering an IM stream beside other streams and checks
// that the 200's answer has one m= line per offered line, in order, with only the first
// sip message stream accepted and the others rejected by port 0.
func TestRawOfferAnswer(t *testing.T) {
	cases := []struct {
		name  string
		offer []string
		want  []string // "%d" stands for the bot's port
	}{
		{"audio then message",
			[]string{"m=audio 49170 RTP/AVP 0\na=rtpmap:0 PCMU/8000", "m=message 5060 sip sip:alice@127.0.0.1\na=accept-types:text/plain"},
			[]string{"m=audio 0 RTP/AVP 0", "m=message %d sip sip:bot@127.0.0.1"}},
		{"message then audio and video",
			[]string{"m=message 5060 sip null", "m=audio 49170 RTP/AVP 0 8", "m=video 51372 RTP/AVP 31"},
			[]string{"m=message %d sip sip:bot@127.0.0.1", "m=audio 0 RTP/AVP 0 8", "m=video 0 RTP/AVP 31"}},
		{"x-ms-message after audio",
			[]string{"m=audio 49170 RTP/AVP 0", "m=x-ms-message 5060 sip null"},
			[]string{"m=audio 0 RTP/AVP 0", "m=x-ms-message %d sip sip:bot@127.0.0.1"}},
		{"two message streams",
			[]string{"m=message 5060 sip null", "m=message 5062 sip sip:alice@127.0.0.1"},
			[]string{"m=message %d sip sip:bot@127.0.0.1", "m=message 0 sip sip:alice@127.0.0.1"}},
		{"msrp stream before the sip one",
			[]string{"m=message 2855 TCP/MSRP *\na=path:msrp://127.0.0.1:2855/x;tcp", "m=message 5060 sip null"},
			[]string{"m=message 0 TCP/MSRP *", "m=message %d sip sip:bot@127.0.0.1"}},
	}
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			b := startBot(t)
			addr := b.Addr(network)
			_, port, _ := net.SplitHostPort(addr)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					p := dialRaw(t, network, addr)
					inv := &rawReq{Method: "INVITE", Headers: []string{"Content-Type: application/sdp"}, Body: sdpOffer(tc.offer...)}
					res := p.do(inv, addr)
					requireStatus(t, res, 200)
					p.ack(inv, res, addr)
					var want []string
					for _, w := range tc.want {
						want = append(want, strings.ReplaceAll(w, "%d", port))
					}
					if got := mLines(res.body); !slices.Equal(got, want) {
						t.Errorf("answer m= lines\n  %q\nwant\n  %q\nresponse:\n%s", got, want, res)
					}
					// The session works.
					msg := textMessage("hi")
					msg.CallID, msg.FromTag, msg.ToTag, msg.CSeq = inv.CallID, inv.FromTag, toTag(res), 2
					requireStatus(t, p.do(msg, addr), 200)
					p.expectEcho("hi")
					requireStatus(t, p.do(&rawReq{Method: "BYE", CallID: inv.CallID, FromTag: inv.FromTag, ToTag: toTag(res), CSeq: 3}, addr), 200)
				})
			}
		})
	}
}

// unsupported returns the option tags listed in a response's Unsupported headers.
func unsupported(res *rawMsg) []string {
	var tags []string
	for _, v := range res.all("Unsupported") {
		for tag := range strings.SplitSeq(v, ",") {
			if tag = strings.TrimSpace(tag); tag != "" {
				tags = append(tags, tag)
			}
		}
	}
	slices.Sort(tags)
	return tags
}

// requireBadExtension checks that res is a 420 whose Unsupported headers list want.
func requireBadExtension(t *testing.T, res *rawMsg, want ...string) {
	t.Helper()
	requireStatus(t, res, 420)
	slices.Sort(want)
	if got := unsupported(res); !slices.Equal(got, want) {
		t.Fatalf("420 lists Unsupported %q, want %q; response:\n%s", got, want, res)
	}
}

// TestRawRequire checks that an out-of-dialog request that Requires an extension the bot
// does not support gets 420 with Unsupported, and that CANCEL, which must not carry
// Require, and unknown methods (405 comes first) are not refused for it.
func TestRawRequire(t *testing.T) {
	cases := []struct {
		name  string
		check func(t *testing.T, p *rawPeer, botAddr string)
	}{
		{"INVITE", func(t *testing.T, p *rawPeer, botAddr string) {
			inv := &rawReq{Method: "INVITE", Headers: []string{"Content-Type: application/sdp", "Require: foo"}, Body: imOffer}
			res := p.do(inv, botAddr)
			requireBadExtension(t, res, "foo")
			p.ack(inv, res, botAddr)
		}},
		{"INVITE with several tags and headers", func(t *testing.T, p *rawPeer, botAddr string) {
			inv := &rawReq{Method: "INVITE", Body: imOffer, Headers: []string{"Content-Type: application/sdp",
				"Require: foo, 100rel", "require: com.microsoft.rtc-multiparty"}}
			res := p.do(inv, botAddr)
			requireBadExtension(t, res, "foo", "100rel", "com.microsoft.rtc-multiparty")
			p.ack(inv, res, botAddr)
		}},
		{"page MESSAGE", func(t *testing.T, p *rawPeer, botAddr string) {
			msg := textMessage("hello?")
			msg.Headers = append(msg.Headers, "Require: foo")
			requireBadExtension(t, p.do(msg, botAddr), "foo")
		}},
		{"OPTIONS", func(t *testing.T, p *rawPeer, botAddr string) {
			requireBadExtension(t, p.do(&rawReq{Method: "OPTIONS", Headers: []string{"Require: foo"}}, botAddr), "foo")
		}},
		{"empty Require", func(t *testing.T, p *rawPeer, botAddr string) {
			msg := textMessage("empty require")
			msg.Headers = append(msg.Headers, "Require: ")
			requireStatus(t, p.do(msg, botAddr), 200)
			p.expectEcho("empty require")
		}},
		{"CANCEL is exempt", func(t *testing.T, p *rawPeer, botAddr string) {
			requireStatus(t, p.do(&rawReq{Method: "CANCEL", Headers: []string{"Require: foo"}}, botAddr), 481)
		}},
		{"unknown method gets 405 first", func(t *testing.T, p *rawPeer, botAddr string) {
			requireStatus(t, p.do(&rawReq{Method: "SUBSCRIBE", Headers: []string{"Require: foo", "Event: presence"}}, botAddr), 405)
		}},
	}
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			b := startBot(t)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					addr := b.Addr(network)
					p := dialRaw(t, network, addr)
					tc.check(t, p, addr)
					// The bot still works for this peer afterwards.
					requireStatus(t, p.do(textMessage("still alive?"), addr), 200)
					p.expectEcho("still alive?")
				})
			}
		})
	}
}

// TestRawRequireInDialog refuses in-dialog requests that Require an unsupported extension
// and checks that the dialog survives: each refusal consumes its CSeq, so the next
// MESSAGE is handled at once. The reorder window is far longer than the test's deadline,
// so a CSeq left unconsumed would hold that MESSAGE until the test fails.
func TestRawRequireInDialog(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			b := startBotConfig(t, func(c *bot.Config) { c.ReorderWindow = time.Hour })
			addr := b.Addr(network)
			p := dialRaw(t, network, addr)

			inv := &rawReq{Method: "INVITE", Headers: []string{"Content-Type: application/sdp"}, Body: imOffer}
			res := p.do(inv, addr)
			requireStatus(t, res, 200)
			p.ack(inv, res, addr)
			tag := toTag(res)
			inDialog := func(method string, cseq int, body string, hdrs ...string) *rawReq {
				return &rawReq{Method: method, CallID: inv.CallID, FromTag: inv.FromTag, ToTag: tag, CSeq: cseq, Headers: hdrs, Body: body}
			}
			const keyboard = `<?xml version="1.0"?><KeyboardActivity><status status="type" /></KeyboardActivity>`
			for i, r := range []*rawReq{
				inDialog("MESSAGE", 2, "refused", "Content-Type: text/plain", "Require: foo"),
				inDialog("INFO", 3, keyboard, "Content-Type: application/xml", "Require: foo"),
				inDialog("BYE", 4, "", "Require: foo"),
				inDialog("INVITE", 5, imOffer, "Content-Type: application/sdp", "Require: foo"),
			} {
				res := p.do(r, addr)
				if res.status() != 420 {
					t.Fatalf("request %d: in-dialog %s with Require: foo got %q, want 420:\n%s", i+1, r.Method, res.startLine, res)
				}
				requireBadExtension(t, res, "foo")
				if r.Method == "INVITE" {
					p.ack(r, res, addr)
				}
			}
			requireStatus(t, p.do(inDialog("MESSAGE", 6, "accepted", "Content-Type: text/plain"), addr), 200)
			p.expectEcho("accepted")
			for _, m := range p.received {
				if m.method() == "MESSAGE" && m.body == echoText("refused") {
					t.Errorf("the bot handled a refused MESSAGE:\n%s", m)
				}
			}
			requireStatus(t, p.do(inDialog("BYE", 7, ""), addr), 200)
			if got := b.events.String(); strings.Contains(got, "refused") {
				t.Errorf("the handler saw a refused request: %s", got)
			}
		})
	}
}
