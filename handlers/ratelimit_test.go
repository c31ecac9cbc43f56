package handlers

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestRateLimit(t *testing.T) {
	type step struct {
		after time.Duration // clock advance before the message
		from  string
		want  string // reply expected; "" for silence
	}
	const polite = "Slow down, please."
	tests := []struct {
		name  string
		steps []step
	}{
		{"burst then polite then silence", []step{
			{0, "a", "echo: m0"}, {0, "a", "echo: m1"}, {0, "a", "echo: m2"},
			{0, "a", polite}, {0, "a", ""}, {0, "a", ""},
		}},
		{"refill after the interval", []step{
			{0, "a", "echo: m0"}, {0, "a", "echo: m1"}, {0, "a", "echo: m2"}, {0, "a", polite},
			{time.Second, "a", "echo: m4"}, {0, "a", polite}, {0, "a", ""},
		}},
		{"partial refill is not enough", []step{
			{0, "a", "echo: m0"}, {0, "a", "echo: m1"}, {0, "a", "echo: m2"}, {0, "a", polite},
			{500 * time.Millisecond, "a", ""},
			{500 * time.Millisecond, "a", "echo: m5"},
		}},
		{"senders are independent", []step{
			{0, "a", "echo: m0"}, {0, "a", "echo: m1"}, {0, "a", "echo: m2"}, {0, "a", polite},
			{0, "b", "echo: m4"},
		}},
		{"full bucket caps at burst", []step{
			{time.Hour, "a", "echo: m0"}, {0, "a", "echo: m1"}, {0, "a", "echo: m2"}, {0, "a", polite},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(1000, 0)}
			h := newLimiter(time.Second, 3, 100, clk.now).middleware(RateLimitConfig{Reply: polite})(echo)
			for i, s := range tt.steps {
				clk.advance(s.after)
				w := bottest.NewRecorder()
				if err := h.Handle(context.Background(), w, fromPeer("sip:"+s.from+"@x", msg(fmt.Sprintf("m%d", i)))); err != nil {
					t.Fatal(err)
				}
				var want []string
				if s.want != "" {
					want = []string{s.want}
				}
				if got := w.Replies(); !reflect.DeepEqual(got, want) {
					t.Fatalf("step %d (%s): replies %q, want %q", i, s.from, got, want)
				}
			}
		})
	}
}

func TestRateLimitOtherEventsPass(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	var seen []bot.EventKind
	h := newLimiter(time.Minute, 1, 100, clk.now).middleware(RateLimitConfig{})(bot.HandlerFunc(
		func(_ context.Context, _ bot.Responder, ev *bot.Event) error {
			seen = append(seen, ev.Kind)
			return nil
		}))
	for _, ev := range []*bot.Event{msg("1"), msg("2"), {Kind: bot.EventTyping}, {Kind: bot.EventSessionEnd}} {
		_ = h.Handle(context.Background(), bottest.NewRecorder(), fromPeer("sip:a@x", ev))
	}
	want := []bot.EventKind{bot.EventMessage, bot.EventTyping, bot.EventSessionEnd}
	if !reflect.DeepEqual(seen, want) {
		t.Errorf("handled %v, want %v", seen, want)
	}
}

func TestRateLimitDisabled(t *testing.T) {
	h := RateLimit(0, 0, "no")(echo)
	for i := range 50 {
		w := bottest.NewRecorder()
		_ = h.Handle(context.Background(), w, fromPeer("sip:a@x", msg("x")))
		if w.Replied() != 1 {
			t.Fatalf("message %d limited with the limit disabled", i)
		}
	}
}

func TestRateLimitEviction(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := newLimiter(time.Second, 2, 3, clk.now)
	// a is drained; b and c are fresh-ish.
	for _, s := range []string{"a", "a", "b", "c"} {
		l.take(s)
	}
	if l.take("d"); l.size() > 3 {
		t.Fatalf("size %d past the bound", l.size())
	}
	// a, the least recently used, was evicted with nobody full: it starts fresh.
	clk.advance(10 * time.Second) // everyone is full again
	for _, s := range []string{"e", "f", "g"} {
		l.take(s)
	}
	if l.size() > 3 {
		t.Fatalf("size %d past the bound", l.size())
	}
	// A drained sender that is recent survives evictions of full buckets.
	l2 := newLimiter(time.Hour, 1, 3, clk.now)
	l2.take("x")
	l2.take("y")
	l2.take("z")
	clk.advance(2 * time.Hour) // x, y, z are full again
	l2.take("busy")            // evicts full ones
	if v := l2.take("busy"); v != warn {
		t.Errorf("busy sender forgotten: verdict %v", v)
	}
}

func TestRateLimitConcurrent(t *testing.T) {
	h := RateLimit(time.Hour, 5, "")(echo)
	var wg sync.WaitGroup
	var mu sync.Mutex
	replies := 0
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := bottest.NewRecorder()
			_ = h.Handle(context.Background(), w, fromPeer("sip:same@x", msg("x")))
			mu.Lock()
			replies += w.Replied()
			mu.Unlock()
		}()
	}
	wg.Wait()
	if replies != 5 {
		t.Errorf("%d messages passed, want the burst of 5", replies)
	}
}

func TestRateKey(t *testing.T) {
	const alice = "sip:alice@example.com"
	tests := []struct {
		name     string
		verified bool
		source   string // "" = no SIP request
		want     string
	}{
		{"verified: the address", true, "192.0.2.7:5060", "uri " + alice},
		{"unverified: the source IP", false, "192.0.2.7:5060", "ip 192.0.2.7"},
		{"unverified, another port: the same", false, "192.0.2.7:40000", "ip 192.0.2.7"},
		{"unverified IPv6: its /64", false, "[2001:db8:1:2:aaaa::5]:5060", "ip 2001:db8:1:2::/64"},
		{"unverified IPv6 with a zone", false, "[fe80::1%eth0]:5060", "ip fe80::/64"},
		{"unverified IPv4-mapped", false, "[::ffff:192.0.2.7]:5060", "ip 192.0.2.7"},
		{"unverified, no request: the address", false, "", "uri " + alice},
		{"unverified, unreadable source: the address", false, "somewhere", "uri " + alice},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req *sip.Request
			if tt.source != "" {
				req = sip.NewRequest(sip.MESSAGE, sip.Uri{Scheme: "sip", User: "bot", Host: "example.com"})
				req.SetSource(tt.source)
			}
			if got := rateKey(bot.Peer{URI: alice, Verified: tt.verified}, req); got != tt.want {
				t.Errorf("rateKey = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRateLimitBot: over SIP, unverified senders are limited by where they write from, so
// that a sender changing its From on every message (three peers on one address here) draws
// on one bucket; a verified sender has a bucket of its own.
func TestRateLimitBot(t *testing.T) {
	ctx := testCtx(t)
	const polite = "Slow down, please."
	b := startBot(t, bot.Config{Trust: loopbackProxy}, echo, RateLimit(time.Hour, 2, polite))
	alice := b.verifiedPeer("alice")
	rotating := []*bottest.Peer{b.peer("m1"), b.peer("m2"), b.peer("m3")}
	steps := []struct {
		peer *bottest.Peer
		text string
		want string
	}{
		{rotating[0], "one", "echo: one"},
		{rotating[1], "two", "echo: two"},
		{rotating[2], "three", polite},
		{alice, "mine", "echo: mine"},
		{alice, "mine too", "echo: mine too"},
	}
	for _, s := range steps {
		send(t, ctx, s.peer, s.text)
		waitText(t, ctx, s.peer, s.want)
	}
	if texts := rotating[2].Texts(); len(texts) != 1 {
		t.Errorf("the third From got %q, want only the polite reply", texts)
	}
}
