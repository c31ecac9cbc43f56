package handlers

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/store"
	"github.com/imbot-dev/imbot/store/sqlite"
)

// fromPeer returns ev as an event of the page-mode conversation of the peer uri (a
// "sip:user@host" address) with the bot sip:bot@test; opts may add bottest.Verified().
func fromPeer(uri string, ev *bot.Event, opts ...bottest.ConversationOption) *bot.Event {
	ev.Session = bottest.NewConversation(append([]bottest.ConversationOption{
		bottest.WithPeer(uri), bottest.WithKey("sip:bot@test " + uri)}, opts...)...)
	return ev
}

func msg(text string) *bot.Event {
	return &bot.Event{Kind: bot.EventMessage, Text: text, Time: time.Now()}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// echo is the handler at the end of test chains: it answers "echo: <text>" to messages,
// records itself as the answerer, and reports "???" as unmatched (replying a fallback).
var echo = bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
	if ev.Kind != bot.EventMessage {
		return nil
	}
	if ev.Text == "???" {
		bot.SetNoMatch(w)
		return w.Reply(ctx, "Sorry?")
	}
	if ev.Text == "fail" {
		return errors.New("echo failed")
	}
	bot.SetAnswerer(w, "echo")
	return w.Reply(ctx, "echo: "+ev.Text)
})

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testBot is a real bot on loopback UDP and the peers talking to it.
type testBot struct {
	*bot.Bot
	t     *testing.T
	mu    sync.Mutex
	peers []*bottest.Peer
}

// startBot runs a real bot on loopback UDP with the chain mw... in front of h, until the
// test ends.
func startBot(t *testing.T, cfg bot.Config, h bot.Handler, mw ...bot.Middleware) *testBot {
	t.Helper()
	tb := newTestBot(t, cfg)
	tb.run(h, mw...)
	return tb
}

// newTestBot makes a bot listening on loopback UDP that does not run yet, so that peers can
// be started (and their addresses configured) before its chain is set with run.
func newTestBot(t *testing.T, cfg bot.Config) *testBot {
	t.Helper()
	cfg.Listen = []string{"udp://127.0.0.1:0"}
	cfg.Typing.Off = true
	if cfg.Identity == "" {
		cfg.Identity = "sip:bot@127.0.0.1"
	}
	if cfg.Logger == nil {
		cfg.Logger = discardLogger()
	}
	b, err := bot.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &testBot{Bot: b, t: t}
}

// run sets the chain and runs the bot until the test ends. The bot stops before its peers
// close: a peer closed first could leave the bot's last reply unanswered, and its shutdown
// waiting for it.
func (tb *testBot) run(h bot.Handler, mw ...bot.Middleware) {
	t := tb.t
	t.Helper()
	tb.Use(mw...)
	tb.Handle(h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tb.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("bot.Run: %v", err)
		}
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, p := range tb.peers {
			p.Close()
		}
	})
	select {
	case <-tb.Ready():
	case err := <-done:
		t.Fatalf("bot.Run: %v", err)
	}
}

// loopbackProxy is the trust model of tests in which some peers are verified: every peer
// writes from 127.0.0.1, the trusted proxy, and those with bottest.Options.AssertIdentity are
// verified, as a proxy asserts the users it authenticated. The others are served, unverified.
var loopbackProxy = bot.TrustConfig{Proxies: []string{"127.0.0.1"}}

// peer starts a test peer called user talking to the bot; it closes after the bot stopped.
func (tb *testBot) peer(user string) *bottest.Peer {
	tb.t.Helper()
	return tb.peerWith(bottest.Options{User: user})
}

// verifiedPeer starts a peer called user whose identity the bot verifies (the bot must trust
// loopbackProxy).
func (tb *testBot) verifiedPeer(user string) *bottest.Peer {
	tb.t.Helper()
	return tb.peerWith(bottest.Options{User: user, AssertIdentity: true})
}

// peerWith starts a test peer with opts talking to the bot; it closes after the bot stopped.
func (tb *testBot) peerWith(opts bottest.Options) *bottest.Peer {
	tb.t.Helper()
	opts.Bot, opts.BotURI = tb.Addr("udp"), tb.URI()
	p, err := bottest.Start(opts)
	if err != nil {
		tb.t.Fatal(err)
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.peers = append(tb.peers, p)
	return p
}

// send sends text from p in page mode and fails the test unless the bot answers 200.
func send(t *testing.T, ctx context.Context, p *bottest.Peer, text string) {
	t.Helper()
	res, err := p.SendPage(ctx, text)
	if err != nil {
		t.Fatalf("%s sending %q: %v", p.URI(), text, err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("%s sending %q: bot answered %d", p.URI(), text, res.StatusCode)
	}
}

// waitText waits until p received text.
func waitText(t *testing.T, ctx context.Context, p *bottest.Peer, text string) {
	t.Helper()
	if _, err := p.WaitText(ctx, text); err != nil {
		t.Fatalf("%s waiting for %q: %v", p.URI(), text, err)
	}
}

// waitContains waits until p received a text containing every part, and returns it.
func waitContains(t *testing.T, ctx context.Context, p *bottest.Peer, parts ...string) string {
	t.Helper()
	r, err := p.Wait(ctx, func(r bottest.Record) bool {
		if r.Kind != bottest.KindText {
			return false
		}
		for _, s := range parts {
			if !strings.Contains(r.Text, s) {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("%s waiting for a text with %q: %v", p.URI(), parts, err)
	}
	return r.Text
}

// serve runs b with the chain mw... in front of h until the returned stop is called (a
// graceful stop, as SIGTERM makes imbot do); stop then calls each of closers, in order.
func serve(t *testing.T, b *bot.Bot, h bot.Handler, mw []bot.Middleware, closers ...func()) (stop func()) {
	t.Helper()
	b.Use(mw...)
	b.Handle(h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	select {
	case <-b.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("bot.Run: %v", err)
	}
	stopped := false
	return func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("bot.Run: %v", err)
		}
		for _, c := range closers {
			c()
		}
	}
}

// restartFixture is what a restart test needs: an SQLite file, a first bot that does not run
// yet, and peers that outlive both bots.
type restartFixture struct {
	db   *sqlite.DB
	b1   *testBot
	addr string // the first bot's address, for the second
}

// newRestartFixture opens a fresh SQLite file and makes the first bot (trusting
// loopbackProxy); each of peers (made with b1) is closed after both bots stopped.
func newRestartFixture(t *testing.T, ctx context.Context) *restartFixture {
	t.Helper()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "imbot.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	b1 := newTestBot(t, bot.Config{Trust: loopbackProxy})
	return &restartFixture{db: db, b1: b1, addr: b1.Addr("udp")}
}

// closeAfter closes the peers when the test ends, after the bots (whose cleanups were
// registered before) stopped.
func (f *restartFixture) closeAfter(t *testing.T, peers ...*bottest.Peer) {
	t.Cleanup(func() {
		for _, p := range peers {
			p.Close()
		}
	})
}

// second makes the bot that replaces the first one: same address, identity and trust.
func (f *restartFixture) second(t *testing.T) *bot.Bot {
	t.Helper()
	b2, err := bot.New(bot.Config{
		Listen: []string{"udp://" + f.addr}, Identity: f.b1.URI(), Trust: loopbackProxy,
		Typing: bot.TypingConfig{Off: true}, Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b2
}

// textOnce is a text a peer must have received exactly once.
type textOnce struct {
	p    *bottest.Peer
	text string
}

// checkOnce fails the test for each text not received exactly once.
func checkOnce(t *testing.T, want []textOnce) {
	t.Helper()
	for _, c := range want {
		if n := countText(c.p.Texts(), c.text); n != 1 {
			t.Errorf("%s got %q %d times, want once", c.p.URI(), c.text, n)
		}
	}
}

// notifier lets a test wait for a change without polling on a timer.
type notifier struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
}

func (n *notifier) signal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.changed != nil {
		close(n.changed)
	}
	n.changed = make(chan struct{})
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.changed == nil {
		n.changed = make(chan struct{})
	}
	return n.changed
}

// watchedStore is a store.Memory that lets a test wait until its contents satisfy a
// condition, without polling on a timer.
type watchedStore struct {
	store.Memory
	notifier
}

func (s *watchedStore) AppendTranscript(ctx context.Context, e store.TranscriptEntry) error {
	defer s.signal()
	return s.Memory.AppendTranscript(ctx, e)
}

func (s *watchedStore) CreateTicket(ctx context.Context, t store.Ticket) (int64, error) {
	defer s.signal()
	return s.Memory.CreateTicket(ctx, t)
}

func (s *watchedStore) AppendUnmatched(ctx context.Context, u store.Unmatched) error {
	defer s.signal()
	return s.Memory.AppendUnmatched(ctx, u)
}

func (s *watchedStore) AddRating(ctx context.Context, r store.Rating) error {
	defer s.signal()
	return s.Memory.AddRating(ctx, r)
}

func (s *watchedStore) SaveHandoff(ctx context.Context, h store.Handoff) error {
	defer s.signal()
	return s.Memory.SaveHandoff(ctx, h)
}

func (s *watchedStore) DeleteHandoff(ctx context.Context, id int64) error {
	defer s.signal()
	return s.Memory.DeleteHandoff(ctx, id)
}

func (s *watchedStore) SaveRoom(ctx context.Context, r store.Room) error {
	defer s.signal()
	return s.Memory.SaveRoom(ctx, r)
}

func (s *watchedStore) DeleteRoom(ctx context.Context, id string) error {
	defer s.signal()
	return s.Memory.DeleteRoom(ctx, id)
}

// until waits until cond is true, re-checking after every write to the store.
func (s *watchedStore) until(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	waitFor(t, ctx, what, s.wait, cond)
}

// waitFor waits until cond is true, re-checking whenever the channel changed returns is
// closed.
func waitFor(t *testing.T, ctx context.Context, what string, changed func() <-chan struct{}, cond func() bool) {
	t.Helper()
	for {
		ch := changed()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
}
