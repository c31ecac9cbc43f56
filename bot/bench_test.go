package bot

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/emiago/sipgo/siptest"
)

// benchBot starts a bot whose outgoing requests go to out instead of the network.
func benchBot(b *testing.B, h Handler, out chan<- *sip.Request) *Bot {
	b.Helper()
	bt, err := New(Config{
		Listen: []string{"udp://127.0.0.1:0"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	bt.sendHook = func(_ context.Context, _ *Session, req *sip.Request) error {
		out <- req
		return nil
	}
	bt.Handle(h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = bt.Run(ctx)
	}()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	<-bt.Ready()
	return bt
}

func pageRequest(b *testing.B, peer int, contentType, body string) *sip.Request {
	b.Helper()
	raw := fmt.Sprintf("MESSAGE sip:bot@127.0.0.1 SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-%d\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:user%d@127.0.0.1>;tag=t%d\r\n"+
		"To: <sip:bot@127.0.0.1>\r\n"+
		"Call-ID: call-%d\r\n"+
		"CSeq: 1 MESSAGE\r\n"+
		"Content-Type: %s\r\n"+
		"Content-Length: %d\r\n\r\n%s", peer, peer, peer, peer, contentType, len(body), body)
	msg, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		b.Fatal(err)
	}
	req := msg.(*sip.Request)
	req.SetSource("127.0.0.1:5999")
	return req
}

// BenchmarkDispatch measures one page-mode message through the session layer: decode, answer
// 200, queue, run the chain, encode the reply. Only the network is left out.
func BenchmarkDispatch(b *testing.B) {
	echo := HandlerFunc(func(ctx context.Context, w Responder, ev *Event) error {
		if ev.Kind != EventMessage {
			return nil
		}
		return w.Reply(ctx, ev.Text)
	})
	cases := []struct {
		name, ct, body string
	}{
		{"plain", "text/plain;charset=UTF-8", "what time is it?"},
		{"html", "text/html", "<p>what <b>time</b> is it?</p>"},
		{"latin1", "text/plain;charset=ISO-8859-1", "caf\xe9 ou th\xe9?"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			out := make(chan *sip.Request, 16)
			bt := benchBot(b, echo, out)
			req := pageRequest(b, 1, c.ct, c.body)
			// The first message opens the conversation (a session start event, no reply).
			bt.onMessage(req.Clone(), siptest.NewServerTxRecorder(req))
			<-out
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				r := req.Clone()
				bt.onMessage(r, siptest.NewServerTxRecorder(r))
				<-out
			}
		})
	}
}

// BenchmarkSessionMemory reports the heap an idle page-mode conversation keeps (bytes per
// conversation), after its first message was handled: b.N conversations on one bot. No
// goroutine or timer stays behind per conversation ("goroutines" counts the bot's parked
// workers, at most MaxWorkers).
func BenchmarkSessionMemory(b *testing.B) {
	echo := HandlerFunc(func(ctx context.Context, w Responder, ev *Event) error {
		if ev.Kind != EventMessage {
			return nil
		}
		return w.Reply(ctx, ev.Text)
	})
	out := make(chan *sip.Request, 16)
	bt := benchBot(b, echo, out)
	reqs := make([]*sip.Request, b.N)
	for i := range reqs {
		reqs[i] = pageRequest(b, i, "text/plain", "hello")
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()
	b.ResetTimer()
	for i := range reqs {
		bt.onMessage(reqs[i], siptest.NewServerTxRecorder(reqs[i]))
		<-out
		reqs[i] = nil
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if got := bt.sessions.count(); got != b.N {
		b.Fatalf("%d conversations, want %d", got, b.N)
	}
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(b.N), "B/session")
	b.ReportMetric(float64(runtime.NumGoroutine()-goroutines), "goroutines")
}
