package bot

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

const framingRequest = "MESSAGE sip:bot@127.0.0.1 SIP/2.0\r\n" +
	"Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK1\r\n" +
	"From: <sip:alice@127.0.0.1>;tag=1\r\nTo: <sip:bot@127.0.0.1>\r\n" +
	"Call-ID: c1\r\nCSeq: 1 MESSAGE\r\n"

// withBody is framingRequest with a body and the given Content-Length header line.
func withBody(clHeader, body string) string {
	return framingRequest + clHeader + "\r\n\r\n" + body
}

func TestSIPFramer(t *testing.T) {
	hello := withBody("Content-Length: 5", "hello")
	cases := []struct {
		name   string
		chunks []string
		want   []progress // one per chunk
	}{
		{"a message in one read", []string{hello},
			[]progress{{messages: 1}}},
		{"no body", []string{withBody("Content-Length: 0", "")},
			[]progress{{messages: 1}}},
		{"keep-alive", []string{"\r\n\r\n", "\r\n"},
			[]progress{{keepAlive: true}, {keepAlive: true}}},
		{"body in the next read", []string{hello[:len(hello)-3], hello[len(hello)-3:]},
			[]progress{{inMessage: true, began: true}, {messages: 1}}},
		{"head cut in a CRLF", []string{hello[:len(framingRequest)-1], hello[len(framingRequest)-1:]},
			[]progress{{inMessage: true, began: true}, {messages: 1}}},
		{"dribbled", []string{"M", "E", "S"},
			[]progress{{inMessage: true, began: true}, {inMessage: true}, {inMessage: true}}},
		{"two and the start of a third", []string{hello + "\r\n\r\n" + hello + "MESS"},
			[]progress{{messages: 2, keepAlive: true, inMessage: true, began: true}}},
		{"a keep-alive then a message", []string{"\r\n\r\n" + hello},
			[]progress{{messages: 1, keepAlive: true}}},
		{"compact form", []string{withBody("l: 5", "hello")},
			[]progress{{messages: 1}}},
		{"any case, spaces", []string{withBody("CONTENT-length :  5 ", "hello")},
			[]progress{{messages: 1}}},
		{"the last Content-Length counts", []string{framingRequest + "Content-Length: 9\r\nl: 2\r\n\r\nhi"},
			[]progress{{messages: 1}}},
		{"a folded Content-Length", []string{withBody("Content-Length:\r\n 5", "hello")},
			[]progress{{messages: 1}}},
		{"folding decided in the next read", []string{framingRequest + "Content-Length:\r\n", " 5\r\n\r\nhello"},
			[]progress{{inMessage: true, began: true}, {messages: 1}}},
		{"a bare LF does not end a line", []string{framingRequest + "X: a\nl: 3\r\nContent-Length: 2\r\n\r\nhi"},
			[]progress{{messages: 1}}},
		{"a start line is not a header", []string{"MESSAGE sip:x SIP/2.0\r\n l: 2\r\n\r\nhi"},
			[]progress{{messages: 1}}},
		{"a long header line", []string{framingRequest + "Subject: " + strings.Repeat("x", 300) + "\r\nl: 2\r\n\r\nhi"},
			[]progress{{messages: 1}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var f sipFramer
			for i, chunk := range c.chunks {
				if got := f.feed([]byte(chunk)); got != c.want[i] {
					t.Errorf("read %d (%q): %+v, want %+v", i+1, chunk, got, c.want[i])
				}
			}
		})
	}
}

// wsFrame is a client frame (masked) with the given first byte (FIN and opcode).
func wsFrame(b0 byte, payload string) []byte {
	f := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n < 1<<16:
		f = append(f, 0x80|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	mask := []byte{1, 2, 3, 4}
	f = append(f, mask...)
	for i := 0; i < len(payload); i++ {
		f = append(f, payload[i]^mask[i%4])
	}
	return f
}

const (
	wsText  = 0x81 // FIN, text
	wsFirst = 0x01 // text, more to come
	wsLast  = 0x80 // FIN, continuation
	wsPing  = 0x89 // FIN, ping
)

func TestWSFramer(t *testing.T) {
	upgrade := "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n\r\n"
	msg := string(wsFrame(wsText, withBody("Content-Length: 0", "")))
	big := string(wsFrame(wsText, strings.Repeat("x", 70000)))
	cases := []struct {
		name   string
		chunks []string
		want   []progress
	}{
		{"upgrade", []string{upgrade},
			[]progress{{upgraded: true}}},
		{"upgrade dribbled", []string{"GE", "T / HTTP/1.1\r\n", "\r\n"},
			[]progress{{inMessage: true, began: true}, {inMessage: true}, {upgraded: true}}},
		{"upgrade and a message", []string{upgrade + msg},
			[]progress{{messages: 1, upgraded: true}}},
		{"a message in pieces", []string{upgrade + msg[:1], msg[1:5], msg[5:]},
			[]progress{{inMessage: true, began: true, upgraded: true}, {inMessage: true}, {messages: 1}}},
		{"ping", []string{upgrade, string(wsFrame(wsPing, ""))},
			[]progress{{upgraded: true}, {keepAlive: true}}},
		{"CRLF keep-alive frame", []string{upgrade, string(wsFrame(wsText, "\r\n\r\n"))},
			[]progress{{upgraded: true}, {messages: 1}}},
		{"fragments with a ping between", []string{upgrade, string(wsFrame(wsFirst, "MESS")),
			string(wsFrame(wsPing, "")), string(wsFrame(wsLast, "AGE"))},
			[]progress{{upgraded: true}, {inMessage: true, began: true}, {inMessage: true}, {messages: 1}}},
		{"16-bit length", []string{upgrade, string(wsFrame(wsText, strings.Repeat("x", 300)))},
			[]progress{{upgraded: true}, {messages: 1}}},
		{"64-bit length", []string{upgrade, big[:100], big[100:]},
			[]progress{{upgraded: true}, {inMessage: true, began: true}, {messages: 1}}},
		{"two and the start of a third", []string{upgrade, msg + msg + msg[:3]},
			[]progress{{upgraded: true}, {messages: 2, inMessage: true, began: true}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var f wsFramer
			for i, chunk := range c.chunks {
				if got := f.feed([]byte(chunk)); got != c.want[i] {
					t.Errorf("read %d: %+v, want %+v", i+1, got, c.want[i])
				}
			}
		})
	}
}

// FuzzSIPFramer checks the framer against sipgo's stream parser: on a stream sipgo parses
// without error, the framer finds as many messages, however the stream is cut into reads.
func FuzzSIPFramer(f *testing.F) {
	hello := withBody("Content-Length: 5", "hello")
	for _, seed := range []string{
		hello, hello + hello, "\r\n\r\n" + hello + "\r\n", withBody("l: 2", "hi"),
		withBody("Content-Length:\r\n 5", "hello"), framingRequest + "X: a\nl: 3\r\nContent-Length: 2\r\n\r\nhi",
		"MESSAGE sip:x SIP/2.0\r\n l: 2\r\n\r\nhi" + hello,
	} {
		f.Add([]byte(seed), uint64(0x9e3779b97f4a7c15))
	}
	f.Fuzz(func(t *testing.T, data []byte, cuts uint64) {
		ps := sip.NewParser().NewSIPStream()
		defer ps.Close()
		want := 0
		err := ps.ParseSIPStream(data, func(sip.Message) { want++ })
		if err != nil && !errors.Is(err, sip.ErrParseSipPartial) {
			t.Skip("sipgo closes the connection:", err)
		}
		var fr sipFramer
		got := 0
		for p := data; len(p) > 0; {
			n := min(len(p), 1+int(cuts%7))
			cuts = cuts>>3 | cuts<<61
			got += fr.feed(p[:n]).messages
			p = p[n:]
		}
		if got != want {
			t.Errorf("framer found %d messages, sipgo %d, in %q", got, want, data)
		}
	})
}

// BenchmarkSIPFramer measures the framer on a stream of 1 KB messages read 32 KB at a
// time, as sipgo reads a busy connection.
func BenchmarkSIPFramer(b *testing.B) {
	msg := withBody("Content-Length: 700", strings.Repeat("x", 700))
	stream := []byte(strings.Repeat(msg, 32<<10/len(msg)))
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	var f sipFramer
	for b.Loop() {
		f.feed(stream)
	}
}
