package interop

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// This file drives the bot with SIP requests written by hand over plain sockets, so that
// they go through the bot's parser exactly as written, including malformed and oversized
// ones.

// rawTimeout bounds every wait for the bot in the raw tests (generous for -race).
const rawTimeout = 10 * time.Second

// rawMsg is a parsed SIP message.
type rawMsg struct {
	startLine string
	headers   [][2]string // name, value in wire order
	body      string
}

// compact maps RFC 3261 compact header names to their long forms.
var compact = map[string]string{
	"i": "call-id", "f": "from", "t": "to", "v": "via", "l": "content-length",
	"c": "content-type", "m": "contact", "k": "supported", "e": "content-encoding",
}

func canonical(name string) string {
	n := strings.ToLower(strings.TrimSpace(name))
	if long, ok := compact[n]; ok {
		return long
	}
	return n
}

// header returns the first value of a header, "" if absent.
func (m *rawMsg) header(name string) string {
	for _, h := range m.headers {
		if canonical(h[0]) == canonical(name) {
			return h[1]
		}
	}
	return ""
}

// all returns every value of a header.
func (m *rawMsg) all(name string) []string {
	var out []string
	for _, h := range m.headers {
		if canonical(h[0]) == canonical(name) {
			out = append(out, h[1])
		}
	}
	return out
}

func (m *rawMsg) isResponse() bool { return strings.HasPrefix(m.startLine, "SIP/2.0 ") }

// status returns the status code of a response, 0 for a request.
func (m *rawMsg) status() int {
	if !m.isResponse() {
		return 0
	}
	f := strings.Fields(m.startLine)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// method returns the method of a request.
func (m *rawMsg) method() string {
	if m.isResponse() {
		return ""
	}
	method, _, _ := strings.Cut(m.startLine, " ")
	return method
}

// cseqMethod returns the method in CSeq.
func (m *rawMsg) cseqMethod() string {
	f := strings.Fields(m.header("CSeq"))
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

func (m *rawMsg) String() string {
	var b strings.Builder
	b.WriteString(m.startLine + "\r\n")
	for _, h := range m.headers {
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	b.WriteString("\r\n" + m.body)
	return b.String()
}

// readMsg reads one SIP message: header lines up to a blank line, then Content-Length
// bytes of body. Blank lines before the start line (keep-alives) are skipped.
func readMsg(r *bufio.Reader) (*rawMsg, error) {
	m := &rawMsg{}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if m.startLine == "" {
			if line == "" {
				continue
			}
			m.startLine = line
			continue
		}
		if line == "" {
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && len(m.headers) > 0 {
			m.headers[len(m.headers)-1][1] += " " + strings.TrimSpace(line)
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("malformed header line %q", line)
		}
		m.headers = append(m.headers, [2]string{strings.TrimSpace(name), strings.TrimSpace(value)})
	}
	if cl := m.header("Content-Length"); cl != "" {
		n, err := strconv.Atoi(cl)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("bad Content-Length %q", cl)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, err
		}
		m.body = string(body)
	}
	return m, nil
}

// rawPeer is a SIP peer that writes requests by hand, over UDP or TCP. It answers every
// request the bot sends it with 200 and keeps them.
type rawPeer struct {
	t         *testing.T
	network   string
	conn      net.Conn
	reader    *bufio.Reader // TCP
	local     string
	received  []*rawMsg // requests from the bot, in arrival order
	responses []*rawMsg // responses not yet consumed
}

// dialRaw connects a raw peer to the bot over network ("udp" or "tcp").
func dialRaw(t *testing.T, network, botAddr string) *rawPeer {
	t.Helper()
	p, err := dialRawFrom(t, network, "", botAddr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// dialRawFrom is dialRaw from the local IP address localIP ("": the system's choice).
func dialRawFrom(t *testing.T, network, localIP, botAddr string) (*rawPeer, error) {
	var d net.Dialer
	if localIP != "" {
		local, err := netip.ParseAddrPort(net.JoinHostPort(localIP, "0"))
		if err != nil {
			return nil, err
		}
		d.LocalAddr = net.UDPAddrFromAddrPort(local)
		if network == "tcp" {
			d.LocalAddr = net.TCPAddrFromAddrPort(local)
		}
	}
	conn, err := d.Dial(network, botAddr)
	if err != nil {
		return nil, fmt.Errorf("dial %s %s from %q: %w", network, botAddr, localIP, err)
	}
	t.Cleanup(func() { conn.Close() })
	p := &rawPeer{t: t, network: network, conn: conn, local: conn.LocalAddr().String()}
	if network == "tcp" {
		p.reader = bufio.NewReaderSize(conn, 1<<16)
	}
	return p, nil
}

// send writes one raw message (or any bytes) to the bot.
func (p *rawPeer) send(data string) {
	p.t.Helper()
	if err := p.conn.SetWriteDeadline(time.Now().Add(rawTimeout)); err != nil {
		p.t.Fatal(err)
	}
	if _, err := io.WriteString(p.conn, data); err != nil {
		p.t.Fatalf("write to bot: %v", err)
	}
}

// read returns the next SIP message from the bot, or an error at the deadline.
func (p *rawPeer) read(deadline time.Time) (*rawMsg, error) {
	if err := p.conn.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	if p.network == "tcp" {
		return readMsg(p.reader)
	}
	buf := make([]byte, 65535)
	n, err := p.conn.Read(buf)
	if err != nil {
		return nil, err
	}
	return readMsg(bufio.NewReader(strings.NewReader(string(buf[:n]))))
}

// answer replies 200 to a request from the bot.
func (p *rawPeer) answer(req *rawMsg) {
	p.t.Helper()
	var b strings.Builder
	b.WriteString("SIP/2.0 200 OK\r\n")
	for _, v := range req.all("Via") {
		b.WriteString("Via: " + v + "\r\n")
	}
	to := req.header("To")
	if !strings.Contains(to, ";tag=") {
		to += ";tag=" + randHex(4)
	}
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s\r\nContent-Length: 0\r\n\r\n",
		req.header("From"), to, req.header("Call-ID"), req.header("CSeq"))
	p.send(b.String())
}

// pump reads one message from the bot. A request is answered (unless it is an ACK) and
// appended to p.received; a response is appended to p.responses.
func (p *rawPeer) pump(deadline time.Time) error {
	m, err := p.read(deadline)
	if err != nil {
		return err
	}
	if m.isResponse() {
		p.responses = append(p.responses, m)
		return nil
	}
	if m.method() != "ACK" {
		p.answer(m)
	}
	p.received = append(p.received, m)
	return nil
}

// expectFinal waits for the final response to the request with callID and CSeq method,
// dropping provisional responses and unrelated ones.
func (p *rawPeer) expectFinal(callID, method string) *rawMsg {
	p.t.Helper()
	deadline := time.Now().Add(rawTimeout)
	for {
		for len(p.responses) > 0 {
			m := p.responses[0]
			p.responses = p.responses[1:]
			if m.header("Call-ID") == callID && m.cseqMethod() == method && m.status() >= 200 {
				return m
			}
		}
		if err := p.pump(deadline); err != nil {
			p.t.Fatalf("waiting for the final response to %s (Call-ID %s): %v", method, callID, err)
		}
	}
}

// expectRequest waits until the bot has sent a request that satisfies match.
func (p *rawPeer) expectRequest(what string, match func(*rawMsg) bool) *rawMsg {
	p.t.Helper()
	deadline := time.Now().Add(rawTimeout)
	for i := 0; ; {
		for ; i < len(p.received); i++ {
			if match(p.received[i]) {
				return p.received[i]
			}
		}
		if err := p.pump(deadline); err != nil {
			var got []string
			for _, r := range p.received {
				got = append(got, r.String())
			}
			p.t.Fatalf("waiting for %s from the bot: %v; the bot sent %q", what, err, got)
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// rawReq is a request to write by hand.
type rawReq struct {
	Method  string
	URI     string   // default sip:bot@<bot addr>
	CallID  string   // default random
	FromTag string   // default random
	ToTag   string   // "" for out-of-dialog
	CSeq    int      // default 1
	Headers []string // extra header lines
	Body    string
}

// build renders the request from this peer to the bot, with a fresh branch.
func (p *rawPeer) build(r *rawReq, botAddr string) string {
	if r.URI == "" {
		r.URI = "sip:bot@" + botAddr
	}
	if r.CallID == "" {
		r.CallID = randHex(8) + "@interop.test"
	}
	if r.FromTag == "" {
		r.FromTag = randHex(4)
	}
	if r.CSeq == 0 {
		r.CSeq = 1
	}
	to := "<sip:bot@" + botAddr + ">"
	if r.ToTag != "" {
		to += ";tag=" + r.ToTag
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", r.Method, r.URI)
	fmt.Fprintf(&b, "Via: SIP/2.0/%s %s;branch=z9hG4bK%s;rport\r\n", strings.ToUpper(p.network), p.local, randHex(6))
	fmt.Fprintf(&b, "Max-Forwards: 70\r\n")
	// Over TCP the From URI names the transport, so that a proxy relaying the bot's
	// page-mode reply to it uses TCP (and this peer's connection) rather than UDP.
	fromParams := ""
	if p.network == "tcp" {
		fromParams = ";transport=tcp"
	}
	fmt.Fprintf(&b, "From: <sip:dave@%s%s>;tag=%s\r\n", p.local, fromParams, r.FromTag)
	fmt.Fprintf(&b, "To: %s\r\n", to)
	fmt.Fprintf(&b, "Call-ID: %s\r\n", r.CallID)
	fmt.Fprintf(&b, "CSeq: %d %s\r\n", r.CSeq, r.Method)
	fmt.Fprintf(&b, "Contact: <sip:dave@%s;transport=%s>\r\n", p.local, p.network)
	for _, h := range r.Headers {
		b.WriteString(h + "\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(r.Body), r.Body)
	return b.String()
}

// do sends a request and returns its final response.
func (p *rawPeer) do(r *rawReq, botAddr string) *rawMsg {
	p.t.Helper()
	p.send(p.build(r, botAddr))
	return p.expectFinal(r.CallID, r.Method)
}

// ack acknowledges a final response to an INVITE (for a non-2xx, in the same transaction).
func (p *rawPeer) ack(invite *rawReq, res *rawMsg, botAddr string) {
	p.t.Helper()
	toTag := ""
	if _, tag, ok := strings.Cut(res.header("To"), ";tag="); ok {
		toTag, _, _ = strings.Cut(tag, ";")
	}
	ack := &rawReq{Method: "ACK", URI: invite.URI, CallID: invite.CallID, FromTag: invite.FromTag, ToTag: toTag, CSeq: invite.CSeq}
	msg := p.build(ack, botAddr)
	if res.status() >= 300 {
		// Same branch as the INVITE: replace the fresh one with the INVITE's top Via.
		msg = replaceVia(msg, res.header("Via"))
	}
	p.send(msg)
}

func replaceVia(msg, via string) string {
	start := strings.Index(msg, "\r\nVia: ") + 2
	end := start + strings.Index(msg[start:], "\r\n")
	return msg[:start] + "Via: " + via + msg[end:]
}

// imOffer is an SDP offer for an IM session.
const imOffer = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=session\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=message 5061 sip null\r\na=accept-types:text/plain\r\n"

// audioOffer is an audio-only SDP offer.
const audioOffer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=call\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=audio 49170 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"

// textMessage is a page-mode text MESSAGE.
func textMessage(text string) *rawReq {
	return &rawReq{Method: "MESSAGE", Headers: []string{"Content-Type: text/plain;charset=UTF-8"}, Body: text}
}

// expectEcho checks that the bot's page-mode reply to text arrives.
func (p *rawPeer) expectEcho(text string) {
	p.t.Helper()
	want := echoText(text)
	p.expectRequest(fmt.Sprintf("MESSAGE %q", want), func(m *rawMsg) bool {
		return m.method() == "MESSAGE" && m.body == want
	})
}

func requireStatus(t *testing.T, res *rawMsg, want int) {
	t.Helper()
	if res.status() != want {
		t.Fatalf("got %q, want %d; response:\n%s", res.startLine, want, res)
	}
}

// TestRawRefusals checks the bot's answers to requests it must refuse, over UDP and TCP.
func TestRawRefusals(t *testing.T) {
	cases := []struct {
		name  string
		check func(t *testing.T, p *rawPeer, botAddr string)
	}{
		{"audio-only INVITE gets 488", func(t *testing.T, p *rawPeer, botAddr string) {
			inv := &rawReq{Method: "INVITE", Headers: []string{"Content-Type: application/sdp"}, Body: audioOffer}
			res := p.do(inv, botAddr)
			requireStatus(t, res, 488)
			p.ack(inv, res, botAddr)
		}},
		{"INVITE without SDP gets 488", func(t *testing.T, p *rawPeer, botAddr string) {
			inv := &rawReq{Method: "INVITE"}
			res := p.do(inv, botAddr)
			requireStatus(t, res, 488)
			p.ack(inv, res, botAddr)
		}},
		{"in-dialog MESSAGE with unknown To-tag gets 481", func(t *testing.T, p *rawPeer, botAddr string) {
			msg := textMessage("are you still there?")
			msg.ToTag = "no-such-dialog"
			msg.CSeq = 7
			requireStatus(t, p.do(msg, botAddr), 481)
		}},
		{"in-dialog INFO with unknown To-tag gets 481", func(t *testing.T, p *rawPeer, botAddr string) {
			info := &rawReq{Method: "INFO", ToTag: "no-such-dialog", CSeq: 3,
				Headers: []string{"Content-Type: application/xml"},
				Body:    `<?xml version="1.0"?><KeyboardActivity><status status="type" /></KeyboardActivity>`}
			requireStatus(t, p.do(info, botAddr), 481)
		}},
		{"octet-stream MESSAGE gets 415 with Accept", func(t *testing.T, p *rawPeer, botAddr string) {
			msg := &rawReq{Method: "MESSAGE", Headers: []string{"Content-Type: application/octet-stream"}, Body: "\x00\x01\x02binary"}
			res := p.do(msg, botAddr)
			requireStatus(t, res, 415)
			accept := strings.ToLower(res.header("Accept"))
			if !strings.Contains(accept, "text/plain") {
				t.Fatalf("415 has Accept %q, want a list with text/plain; response:\n%s", accept, res)
			}
		}},
		{"BYE for unknown Call-ID gets 481", func(t *testing.T, p *rawPeer, botAddr string) {
			requireStatus(t, p.do(&rawReq{Method: "BYE", ToTag: "gone", CSeq: 2}, botAddr), 481)
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

// TestRawStaleDialog opens a session by hand, then checks that the dialog is keyed by its
// tags: a MESSAGE with the right Call-ID but another To-tag gets 481, the real dialog still
// works and ends with BYE. (What comes after the BYE is TestRawAfterBye's.)
func TestRawStaleDialog(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			b := startBot(t)
			addr := b.Addr(network)
			p := dialRaw(t, network, addr)

			inv := &rawReq{Method: "INVITE", Headers: []string{"Content-Type: application/sdp"}, Body: imOffer}
			res := p.do(inv, addr)
			requireStatus(t, res, 200)
			if !strings.Contains(res.body, "m=message ") {
				t.Fatalf("200 to INVITE has no m=message answer:\n%s", res)
			}
			p.ack(inv, res, addr)
			botTag := toTag(res)
			if botTag == "" {
				t.Fatalf("200 to INVITE has no To-tag:\n%s", res)
			}
			inDialog := func(method string, cseq int, toTag, body string, hdrs ...string) *rawReq {
				return &rawReq{Method: method, CallID: inv.CallID, FromTag: inv.FromTag, ToTag: toTag, CSeq: cseq, Headers: hdrs, Body: body}
			}

			requireStatus(t, p.do(inDialog("MESSAGE", 2, botTag+"x", "wrong tag", "Content-Type: text/plain"), addr), 481)
			requireStatus(t, p.do(inDialog("MESSAGE", 3, botTag, "right tag", "Content-Type: text/plain"), addr), 200)
			reply := p.expectRequest(`MESSAGE "echo: right tag"`, func(m *rawMsg) bool {
				return m.method() == "MESSAGE" && m.body == echoText("right tag")
			})
			if reply.header("Call-ID") != inv.CallID || !strings.Contains(reply.header("From"), "tag="+botTag) {
				t.Fatalf("the reply is not in the dialog (Call-ID %s, bot tag %s):\n%s", inv.CallID, botTag, reply)
			}
			requireStatus(t, p.do(inDialog("BYE", 4, botTag, ""), addr), 200)
		})
	}
}

// TestRawAfterBye checks that a dialog is gone once the bot has answered its BYE: an
// in-dialog MESSAGE (or a second BYE) sent right after the 200 to BYE must get 481
// (PROTOCOL.md 1.6, 4.3), not 200 followed by silence. The window is short, so the test
// repeats the exchange.
func TestRawAfterBye(t *testing.T) {
	const rounds = 30
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			b := startBot(t)
			addr := b.Addr(network)
			p := dialRaw(t, network, addr)
			for i := range rounds {
				inv := &rawReq{Method: "INVITE", Headers: []string{"Content-Type: application/sdp"}, Body: imOffer}
				res := p.do(inv, addr)
				requireStatus(t, res, 200)
				p.ack(inv, res, addr)
				botTag := toTag(res)
				bye := &rawReq{Method: "BYE", CallID: inv.CallID, FromTag: inv.FromTag, ToTag: botTag, CSeq: 2}
				requireStatus(t, p.do(bye, addr), 200)
				// Alternate a MESSAGE and a second BYE as the late request.
				late := &rawReq{Method: "MESSAGE", CallID: inv.CallID, FromTag: inv.FromTag, ToTag: botTag, CSeq: 3,
					Headers: []string{"Content-Type: text/plain"}, Body: "after bye"}
				if i%2 == 1 {
					late = &rawReq{Method: "BYE", CallID: inv.CallID, FromTag: inv.FromTag, ToTag: botTag, CSeq: 3}
				}
				if res := p.do(late, addr); res.status() != 481 {
					t.Fatalf("round %d: an in-dialog %s sent after the bot answered BYE got %q, want 481:\n%s",
						i+1, late.Method, res.startLine, res)
				}
			}
		})
	}
}

// TestRawGarbage sends datagrams that are not SIP, or broken SIP, and checks that the bot
// still answers the next valid MESSAGE and replies to it.
func TestRawGarbage(t *testing.T) {
	garbage := []struct {
		name string
		data string
	}{
		{"binary", "\x00\x01\x02\x03\xff\xfe\xfd"},
		{"text", "hello there, this is not SIP\r\n\r\n"},
		{"http", "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"},
		{"no headers", "MESSAGE sip:bot@127.0.0.1 SIP/2.0\r\n\r\n"},
		{"bad start line", "MESSAGE\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKx\r\n\r\n"},
		{"truncated", "MESSAGE sip:bot@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;bra"},
		{"bad content-length", "MESSAGE sip:bot@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKy\r\n" +
			"From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:bot@127.0.0.1>\r\nCall-ID: g1\r\nCSeq: 1 MESSAGE\r\nContent-Length: 99999\r\n\r\nhi"},
		{"bad cseq", "MESSAGE sip:bot@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKz\r\n" +
			"From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:bot@127.0.0.1>\r\nCall-ID: g2\r\nCSeq: MESSAGE one\r\nContent-Length: 0\r\n\r\n"},
		{"crlf keep-alive", "\r\n\r\n"},
	}
	b := startBot(t)
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)
	for _, g := range garbage {
		t.Run(g.name, func(t *testing.T) {
			parent := p.t
			p.t = t // the peer reports to the running subtest
			defer func() { p.t = parent }()
			p.send(g.data)
			text := "after " + g.name
			requireStatus(t, p.do(textMessage(text), addr), 200)
			p.expectEcho(text)
		})
	}
}

// TestRawGarbageTCP writes a stream that is not SIP on one TCP connection and checks that
// the bot still serves a new connection.
func TestRawGarbageTCP(t *testing.T) {
	for _, g := range []struct{ name, data string }{
		{"binary", "\x00\x01\x02\x03\xff\xfe\xfd\r\n\r\n"},
		{"http", "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"},
		{"huge content-length", "MESSAGE sip:bot@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKq\r\n" +
			"From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:bot@127.0.0.1>\r\nCall-ID: g3\r\nCSeq: 1 MESSAGE\r\nContent-Length: 99999999\r\n\r\nhi"},
	} {
		t.Run(g.name, func(t *testing.T) {
			b := startBot(t)
			addr := b.Addr("tcp")
			bad := dialRaw(t, "tcp", addr)
			bad.send(g.data)
			p := dialRaw(t, "tcp", addr)
			requireStatus(t, p.do(textMessage("after "+g.name), addr), 200)
			p.expectEcho("after " + g.name)
		})
	}
}

// TestRawOversized sends a 60 KB MESSAGE over TCP: the bot answers 413 (its default
// MaxMessageBytes is 16384) and keeps serving the same connection.
func TestRawOversized(t *testing.T) {
	b := startBot(t)
	addr := b.Addr("tcp")
	p := dialRaw(t, "tcp", addr)

	big := textMessage(strings.Repeat("0123456789abcdef", 60*1024/16))
	requireStatus(t, p.do(big, addr), 413)

	requireStatus(t, p.do(textMessage("small again"), addr), 200)
	p.expectEcho("small again")

	// Just over the limit, and at it.
	requireStatus(t, p.do(textMessage(strings.Repeat("x", 16385)), addr), 413)
	requireStatus(t, p.do(textMessage(strings.Repeat("y", 16384)), addr), 200)
	p.expectEcho(strings.Repeat("y", 16384))
}

// wireKind names what a request from the bot is, for comparing sequences:
// "composing:active", "composing:idle", "keyboard:type", "keyboard:idle", "text:<body>",
// or "<METHOD> <Content-Type>" for anything else.
func wireKind(m *rawMsg) string {
	ct := strings.ToLower(m.header("Content-Type"))
	body := m.body
	switch {
	case m.method() == "MESSAGE" && strings.HasPrefix(ct, "application/im-iscomposing+xml"):
		for _, state := range []string{"active", "idle"} {
			if strings.Contains(body, "<state>"+state+"</state>") {
				return "composing:" + state
			}
		}
	case m.method() == "INFO" && strings.HasPrefix(ct, "application/xml"):
		for _, state := range []string{"type", "idle"} {
			if strings.Contains(body, `status="`+state+`"`) {
				return "keyboard:" + state
			}
		}
	case m.method() == "MESSAGE" && strings.HasPrefix(ct, "text/plain"):
		return "text:" + body
	}
	return m.method() + " " + ct
}

// TestRawTypingDialect checks which typing indication the bot picks for a peer, and that it
// sends nothing after its reply (no "idle", no late "active"): two messages in a row must
// yield exactly [typing, reply, typing, reply] on the wire.
func TestRawTypingDialect(t *testing.T) {
	const isComposing = "application/im-iscomposing+xml"
	cases := []struct {
		name    string
		session bool   // IM session (INVITE) rather than page mode
		accept  string // page mode: Accept header; session: a=accept-types
		typing  string // expected typing kind before each reply, "" for none
	}{
		{name: "page, Accept lists isComposing", accept: "text/plain, " + isComposing, typing: "composing:active"},
		{name: "page, Accept text/plain only", accept: "text/plain"},
		{name: "page, no Accept"},
		{name: "session, accept-types list isComposing", session: true, accept: "text/plain " + isComposing, typing: "composing:active"},
		{name: "session, accept-types text/plain only", session: true, accept: "text/plain"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := startBot(t)
			addr := b.Addr("udp")
			p := dialRaw(t, "udp", addr)
			var inv *rawReq
			botTag := ""
			if tc.session {
				offer := strings.Replace(imOffer, "a=accept-types:text/plain", "a=accept-types:"+tc.accept, 1)
				inv = &rawReq{Method: "INVITE", Headers: []string{"Content-Type: application/sdp"}, Body: offer}
				res := p.do(inv, addr)
				requireStatus(t, res, 200)
				p.ack(inv, res, addr)
				botTag = toTag(res)
			}
			var want []string
			for i, text := range []string{"first", "second"} {
				msg := textMessage(text)
				if tc.session {
					msg.CallID, msg.FromTag, msg.ToTag, msg.CSeq = inv.CallID, inv.FromTag, botTag, 2+i
				} else if tc.accept != "" {
					msg.Headers = append(msg.Headers, "Accept: "+tc.accept)
				}
				requireStatus(t, p.do(msg, addr), 200)
				p.expectEcho(text)
				if tc.typing != "" {
					want = append(want, tc.typing)
				}
				want = append(want, "text:"+echoText(text))
			}
			var got []string
			for _, m := range p.received {
				got = append(got, wireKind(m))
				if tc.session && (m.header("Call-ID") != inv.CallID || !strings.Contains(m.header("From"), "tag="+botTag)) {
					t.Errorf("request outside the dialog:\n%s", m)
				}
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("the bot sent\n  %q\nwant\n  %q", got, want)
			}
			if tc.session {
				requireStatus(t, p.do(&rawReq{Method: "BYE", CallID: inv.CallID, FromTag: inv.FromTag, ToTag: botTag, CSeq: 9}, addr), 200)
			}
		})
	}
}
