package bot_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

// deadline is how long a test waits for any one thing. It is generous: waiting ends as soon
// as the thing happens.
const deadline = 15 * time.Second

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	t.Cleanup(cancel)
	return ctx
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("IMBOT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// running is a bot under test with its Run loop.
type running struct {
	*bot.Bot
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// stop cancels Run and waits for it to return; it returns Run's error.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(deadline):
			r.err = fmt.Errorf("Run did not return after its context ended")
		}
	})
	return r.err
}

// startBot runs a bot on free loopback ports (UDP and TCP) with h and stops it at cleanup.
func startBot(t *testing.T, cfg bot.Config, h bot.Handler, mw ...bot.Middleware) *running {
	t.Helper()
	if cfg.Listen == nil {
		cfg.Listen = []string{"udp://127.0.0.1:0", "tcp://127.0.0.1:0"}
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.Identity == "" {
		cfg.Identity = "sip:bot@127.0.0.1" // the name newPeer writes to
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 3 * time.Second // a failed test may leave peers that never answer BYE
	}
	b, err := bot.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.Use(mw...)
	b.Handle(h)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Bot: b, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- b.Run(ctx) }()
	select {
	case <-b.Ready():
	case <-time.After(deadline):
		t.Fatal("bot not ready")
	}
	t.Cleanup(func() {
		if err := r.stop(t); err != nil {
			t.Errorf("bot Run: %v", err)
		}
	})
	return r
}

// newPeer starts a kit peer talking to r over network.
func newPeer(t *testing.T, r *running, network string, opts bottest.Options) *bottest.Peer {
	t.Helper()
	opts.Bot = r.Addr(network)
	opts.Transport = bottest.Transport(network)
	if opts.BotURI == "" {
		opts.BotURI = "sip:bot@" + opts.Bot
	}
	p := bottest.NewPeer(t, opts)
	// Cleanups run last-in first-out: stop the bot (and its BYEs) while the peer still listens.
	t.Cleanup(func() { _ = r.stop(t) })
	return p
}

// recorder is a handler that records the events it sees and echoes messages.
type recorder struct {
	mu     sync.Mutex
	events []string
	notify chan struct{}
	// before runs first for every event; it may reply, block or panic.
	before func(ctx context.Context, w bot.Responder, ev *bot.Event) (handled bool, err error)
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func describe(ev *bot.Event) string {
	switch ev.Kind {
	case bot.EventMessage:
		return "message:" + ev.Text
	case bot.EventTyping:
		return fmt.Sprintf("typing:%v", ev.Typing)
	case bot.EventSessionEnd:
		return "session.end:" + string(ev.Reason)
	}
	return ev.Kind.String()
}

func (r *recorder) Handle(ctx context.Context, w bot.Responder, ev *bot.Event) error {
	r.mu.Lock()
	r.events = append(r.events, describe(ev))
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	if r.before != nil {
		if handled, err := r.before(ctx, w, ev); handled || err != nil {
			return err
		}
	}
	if ev.Kind == bot.EventMessage {
		return w.Reply(ctx, "echo: "+ev.Text)
	}
	return nil
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// waitFor waits until an event described as want was handled.
func (r *recorder) waitFor(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(deadline)
	for {
		for _, e := range r.snapshot() {
			if e == want {
				return
			}
		}
		select {
		case <-r.notify:
		case <-timeout:
			t.Fatalf("event %q not handled; handled: %s", want, strings.Join(r.snapshot(), ", "))
		}
	}
}

func TestMain(m *testing.M) {
	// IMBOT_SIP_DEBUG=1 prints every SIP message the tests send and receive.
	if os.Getenv("IMBOT_SIP_DEBUG") != "" {
		sip.SIPDebug = true
	}
	os.Exit(m.Run())
}
