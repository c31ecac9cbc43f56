package handlers

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/store"
)

// countingLeases is a store.LeaseStore that counts the tries to take a lease, and tells.
type countingLeases struct {
	store.LeaseStore
	tries chan string // owner, for each try
	fail  atomic.Bool
}

func (c *countingLeases) AcquireLease(ctx context.Context, key, owner string, now time.Time, ttl time.Duration) (bool, error) {
	if c.fail.Load() {
		return false, errors.New("the database is gone")
	}
	ok, err := c.LeaseStore.AcquireLease(ctx, key, owner, now, ttl)
	select {
	case c.tries <- owner:
	default:
	}
	return ok, err
}

// TestExclusive plays two instances sharing a store: while instance a handles an event of a
// conversation, instance b's event of the same conversation waits for it; an event of
// another conversation does not; a lease whose holder died runs out and b goes on; and a
// store that fails lets the event through rather than drop it.
func TestExclusive(t *testing.T) {
	leases := &countingLeases{LeaseStore: &store.Memory{}, tries: make(chan string, 64)}
	var mu sync.Mutex
	var clock = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	var order []string
	record := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	entered, release := make(chan string, 4), make(chan struct{})
	handler := bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		record("start " + ev.Text)
		entered <- ev.Text
		if ev.Text == "a1" {
			<-release
		}
		record("end " + ev.Text)
		return nil
	})
	instance := func(owner string) bot.Handler {
		mw, err := Exclusive(ExclusiveConfig{Leases: leases, Owner: owner, TTL: 10 * time.Second, now: now})
		if err != nil {
			t.Fatal(err)
		}
		return mw(handler)
	}
	a, b := instance("a"), instance("b")
	alice := []bottest.ConversationOption{bottest.WithPeer("sip:alice@example.com"), bottest.WithKey("bot alice")}
	carol := []bottest.ConversationOption{bottest.WithPeer("sip:carol@example.com"), bottest.WithKey("bot carol")}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	handle := func(h bot.Handler, text string, conv []bottest.ConversationOption) <-chan error {
		done := make(chan error, 1)
		go func() {
			done <- h.Handle(ctx, bottest.NewRecorder(), bottest.NewEvent(bot.EventMessage, text, conv...))
		}()
		return done
	}

	aDone := handle(a, "a1", alice)
	if got := <-entered; got != "a1" {
		t.Fatalf("entered %q", got)
	}
	bDone := handle(b, "b1", alice)
	// b tries, fails, and tries again: it waits.
	for n := 0; n < 2; {
		if owner := <-leases.tries; owner == "b" {
			n++
		}
	}
	// Another conversation goes on meanwhile.
	if err := <-handle(b, "c1", carol); err != nil {
		t.Fatal(err)
	}
	if got := <-entered; got != "c1" {
		t.Fatalf("entered %q while alice's lease is held; want carol's c1", got)
	}
	close(release)
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	if err := <-bDone; err != nil {
		t.Fatal(err)
	}
	<-entered
	mu.Lock()
	got := append([]string(nil), order...)
	mu.Unlock()
	if idx := indexOf(got, "start b1"); idx < 0 || idx < indexOf(got, "end a1") {
		t.Errorf("b handled alice's event before a was done with its own: %q", got)
	}

	// A holder that dies: its lease runs out, then b goes on.
	if ok, err := leases.LeaseStore.AcquireLease(ctx, "bot alice", "dead", now(), 10*time.Second); err != nil || !ok {
		t.Fatalf("the dead instance's lease: %v, %v", ok, err)
	}
	bDone = handle(b, "b2", alice)
	for n := 0; n < 2; {
		if owner := <-leases.tries; owner == "b" {
			n++
		}
	}
	mu.Lock()
	clock = clock.Add(11 * time.Second)
	mu.Unlock()
	if err := <-bDone; err != nil {
		t.Fatal(err)
	}
	if got := <-entered; got != "b2" {
		t.Fatalf("entered %q, want b2 once the dead instance's lease ran out", got)
	}

	// The store fails: the event is handled all the same.
	leases.fail.Store(true)
	if err := <-handle(a, "a2", alice); err != nil {
		t.Fatal(err)
	}
	if got := <-entered; got != "a2" {
		t.Fatalf("entered %q, want a2 despite the failing store", got)
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
