package bot

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// answerTx is a server transaction that counts the responses given to it; it accepts any
// request, as sipgo's does once it has a branch.
type answerTx struct {
	answers atomic.Int64
	done    chan struct{}
	ended   atomic.Bool
}

func (t *answerTx) Respond(res *sip.Response) error {
	_ = res.String() // the response must render
	t.answers.Add(1)
	return nil
}
func (t *answerTx) Acks() <-chan *sip.Request          { return nil }
func (t *answerTx) OnCancel(sip.FnTxCancel) bool       { return true }
func (t *answerTx) OnTerminate(sip.FnTxTerminate) bool { return true }
func (t *answerTx) Done() <-chan struct{}              { return t.done }
func (t *answerTx) Err() error                         { return nil }
func (t *answerTx) Terminate() {
	if t.ended.CompareAndSwap(false, true) {
		close(t.done)
	}
}

// panicWatch is a slog handler that counts the bot's "SIP handler panicked" records: the
// guard turns a panic into a 500, which would hide it from the fuzzer.
type panicWatch struct {
	slog.Handler
	panics *atomic.Int64
}

func (p panicWatch) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panicked") {
		p.panics.Add(1)
	}
	return p.Handler.Handle(ctx, r)
}

// FuzzInboundRequest feeds request bytes through the path a request takes from the
// transport: the parser, the arrival hook, and the bot's guarded SIP handler for its method
// (validation, dialog lookup, decoding, admission, the answer, the queued event and the
// handler chain). No input may panic or leave the request unanswered.
func FuzzInboundRequest(f *testing.F) {
	seeds := []string{
		"MESSAGE sip:bot@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK1\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:bot@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
		"INVITE sip:bot@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK2\r\nFrom: <sip:a@127.0.0.1>;tag=2\r\nTo: <sip:bot@127.0.0.1>\r\nCall-ID: c2\r\nCSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.1:5999>\r\nContent-Type: application/sdp\r\nContent-Length: 58\r\n\r\nv=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nm=message 5060 sip null\r\n",
		"MESSAGE sip:bot@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK3\r\nFrom: <sip:a@127.0.0.1>;tag=2\r\nTo: <sip:bot@127.0.0.1>;tag=x\r\nCall-ID: c2\r\nCSeq: 2 MESSAGE\r\nContent-Type: application/im-iscomposing+xml\r\nContent-Length: 0\r\n\r\n",
		"BYE sip:bot@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK4\r\nFrom: <sip:a@127.0.0.1>;tag=2\r\nTo: <sip:bot@127.0.0.1>;tag=x\r\nCall-ID: c2\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n",
		"INFO sip:bot@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK5\r\nFrom: <sip:a@127.0.0.1>;tag=2\r\nTo: <sip:bot@127.0.0.1>;tag=x\r\nCall-ID: c2\r\nCSeq: 4 INFO\r\nContent-Type: application/xml\r\nContent-Length: 0\r\n\r\n",
		"OPTIONS sip:bot@127.0.0.1 SIP/9.9\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK6\r\nFrom: <tel:+1>;tag=3\r\nTo: <sip:@>\r\nCall-ID: c3\r\nCSeq: 1 INVITE\r\nRequire: foo\r\nContent-Length: 0\r\n\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	var panics atomic.Int64
	b, err := New(Config{
		Listen:   []string{"udp://127.0.0.1:0"},
		Identity: "sip:bot@127.0.0.1",
		Logger:   slog.New(panicWatch{slog.NewTextHandler(io.Discard, nil), &panics}),
		// Bounded memory whatever the inputs: few conversations and events.
		MaxSessions: 64, MaxPageConversations: 64, MaxQueued: 256,
	})
	if err != nil {
		f.Fatal(err)
	}
	b.sendHook = func(context.Context, *Session, *sip.Request) error { return nil }
	b.Handle(HandlerFunc(func(ctx context.Context, w Responder, ev *Event) error {
		if ev.Kind == EventMessage {
			return w.Reply(ctx, ev.Text)
		}
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.Run(ctx)
	}()
	f.Cleanup(func() {
		cancel()
		<-done
	})
	<-b.Ready()
	routes := map[sip.RequestMethod]func(*sip.Request, sip.ServerTransaction){
		sip.INVITE: b.guard(b.onInvite), sip.ACK: b.guard(b.onAck), sip.BYE: b.guard(b.onBye),
		sip.MESSAGE: b.guard(b.onMessage), sip.INFO: b.guard(b.onInfo), sip.OPTIONS: b.guard(b.onOptions),
	}
	noRoute := b.guard(func(req *sip.Request, tx sip.ServerTransaction) { b.respond(req, tx, 405) })
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := sip.ParseMessage(data)
		if err != nil {
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok || req.Via() == nil || req.CSeq() == nil {
			return // sipgo's transaction layer refuses these before any handler
		}
		req.SetSource("127.0.0.1:5999")
		h, ok := routes[req.Method]
		if !ok {
			h = noRoute
		}
		b.onArrival(req)
		tx := &answerTx{done: make(chan struct{})}
		h(req, tx)
		if p := panics.Load(); p > 0 {
			t.Fatalf("a SIP handler panicked on %q", data)
		}
		if !req.IsAck() && tx.answers.Load() == 0 {
			t.Fatalf("no answer to %q", data)
		}
	})
}
