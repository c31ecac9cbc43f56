package bot

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// A UDP request that sipgo cannot parse (a header it rejects, a Content-Length that does
// not match the body) is dropped by its transport with an error log line: the sender never
// learns why, and retransmits for 32 seconds. RFC 3261 §8.2 wants a 400 for a request the
// server can answer. sipgo reads each UDP socket in one goroutine and logs the failure in
// it, right after its ReadFrom returned the datagram: unparsableHook sees that log record,
// finds the socket whose last datagram it was (udpReader) and answers from there. It costs
// nothing on the path of requests that parse.

// sipgoParseFailure is the message of sipgo's log record for a datagram it cannot parse.
const sipgoParseFailure = "failed to parse"

// udpReader is a bot UDP socket as sipgo reads it. It reports its first read (sipgo
// registers a UDP socket for outgoing requests before it starts reading it, so from then on
// requests can leave from it), and remembers the last datagram and its source for answerUnparsable (both only touched
// by the socket's one reading goroutine).
type udpReader struct {
	net.PacketConn
	once     sync.Once
	ready    func()
	last     []byte
	lastFrom net.Addr
	lean     *leanUDP // takes page-mode datagrams off sipgo (leanudp.go); nil: none
}

func (c *udpReader) ReadFrom(p []byte) (int, net.Addr, error) {
	c.once.Do(c.ready)
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		if c.lean != nil && c.lean.take(c, p[:n], addr) {
			continue
		}
		c.last, c.lastFrom = p[:n], addr
		return n, addr, nil
	}
}

// unparsableHook passes sipgo's transport log records on, and answers the datagrams they
// say could not be parsed.
type unparsableHook struct {
	next   slog.Handler
	answer func(data, reason string)
}

func (h unparsableHook) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError || h.next.Enabled(ctx, l)
}

func (h unparsableHook) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == sipgoParseFailure {
		var data, reason string
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "data":
				data = a.Value.String()
			case "error":
				reason = a.Value.String()
			}
			return true
		})
		if data != "" {
			h.answer(data, reason)
		}
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h unparsableHook) WithAttrs(as []slog.Attr) slog.Handler {
	return unparsableHook{next: h.next.WithAttrs(as), answer: h.answer}
}

func (h unparsableHook) WithGroup(name string) slog.Handler {
	return unparsableHook{next: h.next.WithGroup(name), answer: h.answer}
}

// answerUnparsable answers 400 to a request datagram sipgo could not parse, when it has the
// headers a response needs (Via, From, To, Call-ID, CSeq: copied as they came). Anything
// else (garbage, a response, an ACK) stays unanswered: there is nothing to answer, or
// nobody to answer it to.
func (b *Bot) answerUnparsable(data, reason string) {
	var r *udpReader
	for _, u := range b.udpReaders {
		if string(u.last) == data {
			r = u
			break
		}
	}
	if r == nil || r.lastFrom == nil {
		return
	}
	res := badRequestFor(data, reason)
	if res == nil {
		return
	}
	if _, err := r.WriteTo(res, r.lastFrom); err != nil {
		b.log.Debug("400 to an unparsable request not sent", "to", r.lastFrom.String(), "err", err)
		return
	}
	b.observeResponse(400)
}

// badRequestFor builds the 400 response to a raw request, or returns nil.
func badRequestFor(data, reason string) []byte {
	head, _, _ := strings.Cut(data, "\r\n\r\n")
	lines := strings.Split(head, "\r\n")
	start := strings.Fields(lines[0])
	if len(start) != 3 || start[2] != "SIP/2.0" || start[0] == "ACK" || strings.HasPrefix(start[0], "SIP/") {
		return nil
	}
	var vias, copied []string
	need := map[string]bool{"from": false, "to": false, "call-id": false, "cseq": false}
	compact := map[string]string{"v": "via", "f": "from", "t": "to", "i": "call-id"}
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok || strings.ContainsAny(l, "\x00\r\n") {
			continue
		}
		key := strings.ToLower(strings.TrimSpace(name))
		if full, ok := compact[key]; ok {
			key = full
		}
		value = strings.TrimSpace(value)
		switch {
		case key == "via":
			vias = append(vias, value)
		case key == "to" && !strings.Contains(value, ";tag="):
			copied = append(copied, "To: "+value+";tag="+sip.GenerateTagN(16))
			need[key] = true
		default:
			if seen, ok := need[key]; ok && !seen {
				copied = append(copied, canonicalHeader(key)+": "+value)
				need[key] = true
			}
		}
	}
	if len(vias) == 0 {
		return nil
	}
	for _, ok := range need {
		if !ok {
			return nil
		}
	}
	var sb strings.Builder
	sb.WriteString("SIP/2.0 400 Bad Request\r\n")
	for _, v := range vias {
		sb.WriteString("Via: " + v + "\r\n")
	}
	for _, c := range copied {
		sb.WriteString(c + "\r\n")
	}
	warn := strings.Map(func(r rune) rune {
		if r < 0x20 || r == '"' || r == '\\' || r > 0x7e {
			return ' '
		}
		return r
	}, reason)
	if len(warn) > 200 {
		warn = warn[:200]
	}
	if warn == "" {
		warn = "malformed request"
	}
	sb.WriteString(`Warning: 399 imbot "` + warn + `"` + "\r\n")
	sb.WriteString("Content-Length: 0\r\n\r\n")
	return []byte(sb.String())
}

func canonicalHeader(key string) string {
	switch key {
	case "call-id":
		return "Call-ID"
	case "cseq":
		return "CSeq"
	}
	return strings.ToUpper(key[:1]) + key[1:]
}
