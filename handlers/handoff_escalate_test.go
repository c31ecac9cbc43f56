package handlers

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imbot-dev/imbot/store"
)

// offersTo counts the offers of handoff #id that agent got.
func offersTo(d *fakeDialer, agent, id string) int {
	n := 0
	for _, s := range d.texts(agent) {
		if strings.Contains(s, "/accept "+id) && strings.Contains(s, "is waiting for help") {
			n++
		}
	}
	return n
}

// manualClock runs a Handoff's offer timers when the test says so.
type manualClock struct {
	mu      sync.Mutex
	pending []*manualTimer
}

type manualTimer struct {
	c       *manualClock
	f       func()
	stopped bool
}

func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// use makes c start h's offer timers; call it before the first handoff.
func (c *manualClock) use(h *Handoff) {
	h.afterFunc = func(_ time.Duration, f func()) stopper {
		c.mu.Lock()
		defer c.mu.Unlock()
		t := &manualTimer{c: c, f: f}
		c.pending = append(c.pending, t)
		return t
	}
}

// fire runs the timers started and not stopped so far, as if their time had come.
func (c *manualClock) fire() {
	c.mu.Lock()
	var due []*manualTimer
	for _, t := range c.pending {
		if !t.stopped {
			t.stopped = true
			due = append(due, t)
		}
	}
	c.pending = nil
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

// until waits until cond is true, re-checking after every text sent.
func (d *fakeDialer) until(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	waitFor(t, ctx, what, func() <-chan struct{} {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.changed
	}, cond)
}

// stored returns the stored handoff id, or a zero one.
func stored(r *hoRig, id int64) store.Handoff {
	hs, _ := r.mem.Handoffs(context.Background())
	for _, h := range hs {
		if h.ID == id {
			return h
		}
	}
	return store.Handoff{}
}

// TestHandoffOfferTimeout: an offer not accepted within OfferTimeout moves on to the next
// free agent, the first one being told; the second accepts, and the first one's late
// /accept says who took it. Each move is counted as "escalated".
func TestHandoffOfferTimeout(t *testing.T) {
	const alice = "sip:alice@x"
	m := newMetrics(t)
	r := newRig(t, HandoffConfig{Observer: m})
	var clock manualClock
	clock.use(r.h)
	r.say(alice, "I want a human")
	r.d.wait(t, testCtx(t), agent1, "#1 alice", "/accept 1")
	clock.fire()
	r.d.wait(t, testCtx(t), agent1, "#1 alice waited too long for an answer and was offered to someone else")
	r.d.wait(t, testCtx(t), agent2, "#1 alice", "/accept 1")
	if l := r.h.List(); len(l) != 1 || l[0].Agent != agent2 || l[0].Accepted {
		t.Errorf("List after the offer moved = %+v", l)
	}
	expect(t, "first after it moved", r.say(agent1, "/accept 1"), "#1 alice waited too long")
	expect(t, "second accepts", r.say(agent2, "/accept 1"), "You are now talking with alice (#1)")
	r.d.wait(t, testCtx(t), alice, "Bob is now with you")
	expect(t, "first too late", r.say(agent1, "/accept 1"), "#1 alice was taken by Bob.")
	expect(t, "first too late, no number", r.say(agent1, "/accept"), "#1 alice was taken by Bob.")
	if n := testutil.ToFloat64(m.handoffs.WithLabelValues("escalated")); n != 1 {
		t.Errorf("escalated = %v, want 1", n)
	}
	clock.fire() // the accepted offer's timer, stopped: nothing happens
	if n := offersTo(r.d, agent1, "1"); n != 1 {
		t.Errorf("the first agent got %d offers, want 1", n)
	}
}

// TestHandoffOfferGoesRound: once every free agent has had the offer, it goes back to the
// one it left longest ago: with three agents, Ann, Bob, Cy, then Ann again.
func TestHandoffOfferGoesRound(t *testing.T) {
	const agent3 = "sip:agent3@x"
	r := newRig(t, HandoffConfig{Agents: []Agent{{URI: agent1, Name: "Ann"}, {URI: agent2, Name: "Bob"}, {URI: agent3, Name: "Cy"}}})
	var clock manualClock
	clock.use(r.h)
	r.say("sip:alice@x", "agent")
	for i, to := range []string{agent2, agent3, agent1, agent2} {
		clock.fire()
		want := 1
		if i >= 2 {
			want = 2
		}
		r.d.until(t, testCtx(t), "offer "+to, func() bool { return offersTo(r.d, to, "1") == want })
	}
	expect(t, "accept", r.say(agent2, "/accept"), "You are now talking with alice (#1)")
}

// TestHandoffOfferStaysWhenNobodyElseIsFree: an offer whose agent does not answer stays with
// it while every other agent is busy, and moves on at the next deadline once another agent
// is free.
func TestHandoffOfferStaysWhenNobodyElseIsFree(t *testing.T) {
	r := newRig(t, HandoffConfig{})
	var clock manualClock
	clock.use(r.h)
	r.say("sip:carol@x", "agent")
	expect(t, "Ann takes carol", r.say(agent1, "/accept"), "You are now talking with carol (#1)")
	r.say("sip:alice@x", "agent")
	r.d.wait(t, testCtx(t), agent2, "#2 alice")
	clock.fire()
	clock.fire()
	if n := offersTo(r.d, agent1, "2"); n != 0 {
		t.Fatalf("the busy agent got %d offers", n)
	}
	if l := r.h.List(); len(l) != 2 || l[1].Agent != agent2 || l[1].Accepted {
		t.Fatalf("List = %+v", l)
	}
	expect(t, "Ann done", r.say(agent1, "/done"), "Conversation #1 with carol ended")
	if n := offersTo(r.d, agent1, "2"); n != 0 {
		t.Fatalf("the offer moved before its deadline: %d offers", n)
	}
	clock.fire()
	r.d.wait(t, testCtx(t), agent1, "#2 alice", "/accept 2")
	r.d.wait(t, testCtx(t), agent2, "#2 alice waited too long")
	expect(t, "Ann takes alice", r.say(agent1, "/accept 2"), "You are now talking with alice (#2)")
}

// TestHandoffOfferTimeoutOff: a negative OfferTimeout keeps the offer with its agent: no
// offer deadline is set.
func TestHandoffOfferTimeoutOff(t *testing.T) {
	r := newRig(t, HandoffConfig{})
	r.restart(HandoffConfig{OfferTimeout: -1})
	r.say("sip:alice@x", "agent")
	r.d.wait(t, testCtx(t), agent1, "#1 alice")
	h := stored(r, 1)
	if !slices.Equal(h.Offered, []string{agent1}) || !h.OfferDeadline.IsZero() {
		t.Errorf("stored = %+v, want offered to agent1 without an offer deadline", h)
	}
}

// TestHandoffBroadcast: with Broadcast the offer goes to every free agent at once; the first
// to accept takes it, the others are told, and their late /accept says who took it. Agents
// that become free get the offers still open.
func TestHandoffBroadcast(t *testing.T) {
	r := newRig(t, HandoffConfig{Broadcast: true, OfferTimeout: 10 * time.Millisecond})
	r.say("sip:alice@x", "agent")
	r.d.wait(t, testCtx(t), agent1, "#1 alice", "/accept 1")
	r.d.wait(t, testCtx(t), agent2, "#1 alice", "/accept 1")
	expect(t, "Bob accepts first", r.say(agent2, "/accept 1"), "You are now talking with alice (#1)")
	r.d.wait(t, testCtx(t), agent1, "#1 alice was taken by Bob.")
	expect(t, "Ann too late", r.say(agent1, "/accept 1"), "#1 alice was taken by Bob.")
	expect(t, "Ann too late, no number", r.say(agent1, "/accept"), "#1 alice was taken by Bob.")

	// Bob is busy: Carol's offer goes to Ann alone, and to Bob once he is free.
	r.say("sip:carol@x", "agent")
	r.d.wait(t, testCtx(t), agent1, "#2 carol", "/accept 2")
	if n := offersTo(r.d, agent2, "2"); n != 0 {
		t.Fatalf("the busy agent got %d offers", n)
	}
	expect(t, "Bob done", r.say(agent2, "/done"), "Conversation #1 with alice ended")
	r.d.wait(t, testCtx(t), agent2, "#2 carol", "/accept 2")
	expect(t, "Ann accepts", r.say(agent1, "/accept 2"), "You are now talking with carol (#2)")
	r.d.wait(t, testCtx(t), agent2, "#2 carol was taken by Ann.")
	for _, s := range r.d.texts(agent1) {
		if strings.Contains(s, "offered to someone else") {
			t.Errorf("an offer moved on with Broadcast: %q", s)
		}
	}
}

// TestHandoffRestoreOfferTimeout: after a restart an offer moves on when the time its
// OfferTimeout had left runs out, or right after the notices when none is left; the store
// then has it with the second agent, the first one lapsed.
func TestHandoffRestoreOfferTimeout(t *testing.T) {
	const alice = "sip:alice@x"
	tests := []struct {
		name string
		left time.Duration // of the offer deadline at the restart
	}{
		{"already past", -time.Minute},
		{"time left", 50 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, HandoffConfig{})
			r.restart(HandoffConfig{OfferTimeout: time.Hour})
			r.verify(alice)
			r.say(alice, "agent please")
			r.d.wait(t, testCtx(t), agent1, "#1 alice")
			r.h.Close()
			h := stored(r, 1)
			if h.OfferDeadline.IsZero() || !slices.Equal(h.Offered, []string{agent1}) {
				t.Fatalf("stored before the restart: %+v", h)
			}
			h.OfferDeadline = time.Now().Add(tt.left)
			if err := r.mem.SaveHandoff(context.Background(), h); err != nil {
				t.Fatal(err)
			}

			r.restart(HandoffConfig{OfferTimeout: time.Hour})
			r.d.wait(t, testCtx(t), agent1, "helpdesk restarted", "#1 alice")
			r.d.wait(t, testCtx(t), agent2, "#1 alice", "/accept 1")
			moved := r.d.wait(t, testCtx(t), agent1, "#1 alice waited too long")
			if texts := r.d.texts(agent1); slices.Index(texts, moved) < slices.IndexFunc(texts, func(s string) bool {
				return strings.Contains(s, "helpdesk restarted")
			}) {
				t.Errorf("told the offer moved on before it resumed: %q", texts)
			}
			r.mem.until(t, testCtx(t), "the moved offer stored", func() bool {
				h := stored(r, 1)
				return slices.Equal(h.Offered, []string{agent2}) && slices.Equal(h.Lapsed, []string{agent1}) &&
					h.Agent == agent2 && h.OfferDeadline.After(time.Now().Add(30*time.Minute))
			})
			expect(t, "accept", r.say(agent2, "/accept 1"), "You are now talking with alice (#1)")
		})
	}
}
