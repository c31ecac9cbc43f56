package interop

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
)

// garbageDatagram returns the i-th garbage datagram of the flood: 1000 bytes that are not
// SIP, binary (which a text log escapes to up to four bytes each) or broken SIP text.
func garbageDatagram(i int) []byte {
	d := make([]byte, 1000)
	if i%2 == 0 {
		x := uint32(i)*2654435761 + 1
		for j := range d {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			d[j] = byte(x) | 1 // no NUL: sipgo skips all-NUL datagrams
		}
		return d
	}
	s := fmt.Sprintf("MESSAGE sip:bot@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK%d\r\nFrom: ", i)
	copy(d, s+strings.Repeat("<sip:x@127.0.0.1;", 1000))
	return d
}

// Flood figures. Capped, a log line holds at most a few values of about 512 bytes (a datagram,
// a parse error, a Content-Type); maxLogLine leaves room for the time, level, caller and
// cut markers. A message passes 20 lines at once, then 10 a second. The flood brings out
// two messages quoting what the peer sent ("failed to parse" and the bot's own
// "unsupported message type"), 20 lines each of at most 1.3 KB (about 52 KB), and the short
// debug lines of the requests that probe between batches (about 5 KB): maxLogGrowth. Every
// second the flood lasts lets through 10 more lines of each of those two messages:
// maxLogGrowthPerSecond. The flood takes well under a second here (-race included), so the
// bound stays under 100 KB; without the cap the same flood logs about 2 MB, in lines of up
// to 90 KB.
const (
	floodDatagrams        = 500
	floodBatch            = 50 // datagrams sent before a probe checks that the bot read them all
	floodRefusedEvery     = 10 // one refused MESSAGE with a long Content-Type every so many datagrams
	bigDatagram           = 32 << 10
	maxLogLine            = 2 << 10
	maxLogGrowth          = 64 << 10
	maxLogGrowthPerSecond = 2 * 10 * 1300
)

// TestLogFlood: a flood over UDP of garbage (one datagram of 32 KB, then 500 of 1 KB) and of
// MESSAGEs that the bot refuses and logs with what the peer wrote (a 20 KB Content-Type)
// costs the bot a bounded amount of log, in lines of bounded length, and the bot still
// answers a valid MESSAGE. It logs at debug level, the most it can log. The log is measured
// from the first datagram to the reply to the valid MESSAGE: sipgo reads a UDP socket in
// order and logs a parse failure before it reads the next datagram, and the probe between
// batches is answered after the bot refused the MESSAGEs before it.
func TestLogFlood(t *testing.T) {
	logs := &syncBuffer{}
	b := startBotConfig(t, func(cfg *bot.Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)
	before := len(logs.String())
	start := time.Now()

	// First, so that its line is not one the rate limit drops: it must be cut.
	big := bytes.Repeat(garbageDatagram(0), bigDatagram/1000+1)
	p.send(string(big[:bigDatagram]))
	longType := "application/x-" + strings.Repeat("a", 20<<10)
	// Between batches an OPTIONS shows that the bot read the batch, so that no datagram is
	// dropped by a full socket buffer and the whole flood reaches the bot.
	for i := range floodDatagrams {
		p.send(string(garbageDatagram(i)))
		if i%floodRefusedEvery == 0 {
			refused := &rawReq{Method: "MESSAGE", Headers: []string{"Content-Type: " + longType}, Body: "x"}
			p.send(p.build(refused, addr))
		}
		if (i+1)%floodBatch == 0 {
			requireStatus(t, p.do(&rawReq{Method: "OPTIONS"}, addr), 200)
		}
	}

	text := "still there after the flood?"
	requireStatus(t, p.do(textMessage(text), addr), 200)
	p.expectEcho(text)

	elapsed := time.Since(start)
	flood := logs.String()[before:]
	lines := strings.SplitAfter(flood, "\n")
	longest := ""
	for _, l := range lines {
		if len(l) > len(longest) {
			longest = l
		}
	}
	bound := maxLogGrowth + int(elapsed.Seconds()*maxLogGrowthPerSecond)
	t.Logf("flood of %d datagrams of garbage, one of %d bytes and %d refused MESSAGEs, in %v: the log grew by %d bytes in %d lines (longest line %d bytes); bound %d",
		floodDatagrams, bigDatagram, floodDatagrams/floodRefusedEvery, elapsed.Round(time.Millisecond),
		len(flood), strings.Count(flood, "\n"), len(longest), bound)
	if len(flood) >= bound {
		t.Errorf("the log grew by %d bytes, want < %d; it starts:\n%s", len(flood), bound, flood[:min(len(flood), 8<<10)])
	}
	if len(longest) > maxLogLine {
		t.Errorf("longest log line: %d bytes, want <= %d; it starts %q", len(longest), maxLogLine, longest[:300])
	}
}
