package handlers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/store"
)

// fakeForwarder records what a Leader forwards, and fails toward the addresses in down.
type fakeForwarder struct {
	mu   sync.Mutex
	sent []string // "dest intent text"
	down map[string]bool
}

func (f *fakeForwarder) Forward(ctx context.Context, ev *bot.Event, dest, intent string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down[dest] {
		return errors.New("request timeout")
	}
	f.sent = append(f.sent, dest+" "+intent+" "+ev.Text)
	return nil
}

func (f *fakeForwarder) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sent
	f.sent = nil
	return s
}

func (f *fakeForwarder) setDown(dest string, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down == nil {
		f.down = map[string]bool{}
	}
	f.down[dest] = down
}

const (
	leaderA = "sip:127.0.0.1:5071"
	leaderB = "sip:127.0.0.1:5072"
	agentX  = "sip:xavier@example.com"
)

// newTestLeader is an instance of a cluster on db: a Leader with its Handoff.
func newTestLeader(t *testing.T, db *store.Memory, addr string, fwd Forwarder, now func() time.Time, onLost func(string)) *Leader {
	t.Helper()
	var ld *Leader
	ho, err := NewHandoff(HandoffConfig{
		Dialer: newFakeDialer(), Agents: []Agent{{URI: agentX}}, Store: db,
		Delegate: func(ctx context.Context, ev *bot.Event, intent string) (bool, error) {
			return ld.Delegate(ctx, ev, intent)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ho.Close)
	ld, err = NewLeader(LeaderConfig{Store: db, Address: addr, Forwarder: fwd, Handoff: ho, TTL: 3 * time.Second, now: now, OnLost: onLost})
	if err != nil {
		t.Fatal(err)
	}
	return ld
}

// TestLeaderElection: the first instance to try leads; the other follows it and forwards
// what belongs to the helpdesk (an agent's message, a message of a user whose handoff is in
// progress, a message that asks for a person) and handles everything else itself. The
// leader handles all of it itself.
func TestLeaderElection(t *testing.T) {
	ctx := context.Background()
	db := &store.Memory{}
	clock := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	fwd := &fakeForwarder{}
	a := newTestLeader(t, db, leaderA, fwd, now, nil)
	b := newTestLeader(t, db, leaderB, fwd, now, nil)
	if err := a.step(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.step(ctx); err != nil {
		t.Fatal(err)
	}
	if !a.Leading() || b.Leading() {
		t.Fatalf("leading: a %v, b %v; want a only", a.Leading(), b.Leading())
	}
	// A handoff in progress, as the leader wrote it.
	if err := db.SaveHandoff(ctx, store.Handoff{ID: 1, UserKey: "bot carol", UserURI: "sip:carol@example.com", State: store.HandoffWaiting}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, from, key, text string
		verified              bool
		forwarded             string // "" when handled here
	}{
		{"an agent", agentX, "bot xavier", "/accept", true, leaderA + " message /accept"},
		{"a user in a handoff", "sip:carol@example.com", "bot carol", "still there?", true, leaderA + " message still there?"},
		{"a user asking for a person", "sip:dan@example.com", "bot dan", "I want an agent", true, leaderA + " handoff I want an agent"},
		{"anyone else", "sip:erin@example.com", "bot erin", "hello", false, ""},
		{"a web visitor asking for a person", "sip:v1@guest.invalid", "bot v1", "I want an agent", true, leaderA + " handoff I want an agent"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, inst := range []*Leader{b, a} { // the follower first: the leader would start the handoff
				handled := false
				next := bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
					handled = true
					return inst.cfg.Handoff.Middleware()(bot.HandlerFunc(func(context.Context, bot.Responder, *bot.Event) error { return nil })).Handle(ctx, w, ev)
				})
				opts := []bottest.ConversationOption{bottest.WithPeer(c.from), bottest.WithKey(c.key)}
				if strings.HasSuffix(c.from, "guest.invalid") {
					opts = append(opts, bottest.Guest())
				}
				if c.verified {
					opts = append(opts, bottest.Verified())
				}
				ev := bottest.NewEvent(bot.EventMessage, c.text, opts...)
				rec := bottest.NewRecorder()
				if err := inst.Middleware()(next).Handle(ctx, rec, ev); err != nil {
					t.Fatal(err)
				}
				sent := fwd.take()
				if inst == a {
					if !handled || len(sent) > 0 {
						t.Errorf("the leader handled it: %v, forwarded %q; want it handled, nothing forwarded", handled, sent)
					}
					continue
				}
				want := []string{}
				if c.forwarded != "" {
					want = append(want, c.forwarded)
				}
				if fmt.Sprint(sent) != fmt.Sprint(want) {
					t.Errorf("the follower forwarded %q, want %q", sent, want)
				}
				if c.forwarded == "" && !handled {
					t.Errorf("the follower did not handle it")
				}
			}
		})
	}
	for _, inst := range []*Leader{a, b} {
		for _, ho := range inst.cfg.Handoff.List() {
			if inst == b {
				t.Errorf("the follower started handoff %+v itself", ho)
			}
		}
	}
}

// TestLeaderTakeover: the leader dies; the follower's messages wait, tried again, until the
// dead leader's lease ran out, then the follower takes the lead and handles them itself.
func TestLeaderTakeover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db := &store.Memory{}
	// A leader that took the lead 0.5 s ago and then died.
	if ok, err := db.AcquireLease(ctx, DefaultLeaderKey, leaderA, time.Now().Add(-500*time.Millisecond), 2*time.Second); err != nil || !ok {
		t.Fatal(ok, err)
	}
	fwd := &fakeForwarder{}
	fwd.setDown(leaderA, true)
	b := newTestLeader(t, db, leaderB, fwd, time.Now, nil)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Run(runCtx) }()
	handled := make(chan string, 1)
	next := bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		handled <- ev.Text
		return nil
	})
	ev := bottest.NewEvent(bot.EventMessage, "/accept", bottest.WithPeer(agentX), bottest.Verified())
	if err := b.Middleware()(next).Handle(ctx, bottest.NewRecorder(), ev); err != nil {
		t.Fatal(err)
	}
	select {
	case text := <-handled:
		if text != "/accept" {
			t.Fatalf("handled %q", text)
		}
	default:
		t.Fatal("the message was neither forwarded nor handled")
	}
	if !b.Leading() {
		t.Error("the follower handled the message without leading")
	}
	if s := fwd.take(); len(s) > 0 {
		t.Errorf("forwarded %q to a dead leader", s)
	}
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	// It gave the lead up as it stopped: another instance takes it at once.
	if ok, err := db.AcquireLease(ctx, DefaultLeaderKey, leaderA, time.Now(), time.Second); err != nil || !ok {
		t.Errorf("the lead was not given up at Run's end: %v %v", ok, err)
	}
}

// TestLeaderLost: a leader that could not renew in time and finds another instance leading
// is told (OnLost) and stops leading.
func TestLeaderLost(t *testing.T) {
	ctx := context.Background()
	db := &store.Memory{}
	clock := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	lost := make(chan string, 1)
	a := newTestLeader(t, db, leaderA, &fakeForwarder{}, now, func(h string) { lost <- h })
	if err := a.step(ctx); err != nil || !a.Leading() {
		t.Fatalf("a does not lead: %v", err)
	}
	// a's store stalled past the lease; b took it.
	if ok, err := db.AcquireLease(ctx, DefaultLeaderKey, leaderB, clock.Add(4*time.Second), 3*time.Second); err != nil || !ok {
		t.Fatal(ok, err)
	}
	clock = clock.Add(5 * time.Second)
	if err := a.step(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-lost:
		if h != leaderB {
			t.Errorf("OnLost(%q), want %q", h, leaderB)
		}
	default:
		t.Fatal("OnLost was not called")
	}
	if a.Leading() {
		t.Error("a still leads")
	}
	// b's lead ends; a, whose helpdesk is stale, does not take it again.
	if err := db.ReleaseLease(ctx, DefaultLeaderKey, leaderB); err != nil {
		t.Fatal(err)
	}
	if err := a.step(ctx); err != nil {
		t.Fatal(err)
	}
	if a.Leading() {
		t.Error("a took the lead again after losing it")
	}
	if h, _ := db.LeaseHolder(ctx, DefaultLeaderKey, clock); h != "" {
		t.Errorf("the lead is held by %q, want nobody", h)
	}
}

// TestLeaderConfig: what NewLeader refuses.
func TestLeaderConfig(t *testing.T) {
	ho, err := NewHandoff(HandoffConfig{Dialer: newFakeDialer(), Agents: []Agent{{URI: agentX}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ho.Close()
	db := &store.Memory{}
	for _, c := range []struct {
		cfg  LeaderConfig
		want string
	}{
		{LeaderConfig{Address: leaderA, Forwarder: &fakeForwarder{}, Handoff: ho}, "Store"},
		{LeaderConfig{Store: db, Address: leaderA, Handoff: ho}, "Forwarder"},
		{LeaderConfig{Store: db, Address: leaderA, Forwarder: &fakeForwarder{}}, "Handoff"},
		{LeaderConfig{Store: db, Address: "127.0.0.1:5060", Forwarder: &fakeForwarder{}, Handoff: ho}, "sip:10.0.0.11:5060"},
		{LeaderConfig{Store: db, Address: "sip:bot@10.0.0.1", Forwarder: &fakeForwarder{}, Handoff: ho}, "not this instance's SIP address"},
	} {
		if _, err := NewLeader(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewLeader(%+v): %v, want an error with %q", c.cfg, err, c.want)
		}
	}
}
