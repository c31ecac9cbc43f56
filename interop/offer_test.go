package interop

import (
	"net"
	"slices"
	"strings"
	"testing"
)

// This file checks, with requests written by hand, the SDP answer to offers with several
// m= lines (RFC 3264 §6).

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

// botTag returns the To-tag of the bot's response.
func botTag(res *rawMsg) string {
	_, tag, _ := strings.Cut(res.header("To"), ";tag=")
	tag, _, _ = strings.Cut(tag, ";")
	return tag
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
					msg.CallID, msg.FromTag, msg.ToTag, msg.CSeq = inv.CallID, inv.FromTag, botTag(res), 2
					requireStatus(t, p.do(msg, addr), 200)
					p.expectEcho("hi")
					requireStatus(t, p.do(&rawReq{Method: "BYE", CallID: inv.CallID, FromTag: inv.FromTag, ToTag: botTag(res), CSeq: 3}, addr), 200)
				})
			}
		})
	}
}
