package bot

import (
	"fmt"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// fakeClock is a limiter clock the test moves by hand.
type fakeClock struct{ now time.Duration }

func (c *fakeClock) read() time.Duration { return c.now }

func testLimiter(cfg SourceLimit) (*sourceLimiter, *fakeClock) {
	c := &fakeClock{}
	return newSourceLimiter(cfg.withDefaults(), c.read), c
}

// tracked returns how many sources the limiter holds.
func (l *sourceLimiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sources)
}

func (v limitVerdict) String() string {
	return [...]string{"pass", "answer", "drop"}[v]
}

func TestSourceLimitDefaults(t *testing.T) {
	tests := []struct {
		in   SourceLimit
		want SourceLimit
	}{
		{SourceLimit{}, SourceLimit{Burst: 1, MaxSources: 65536}},
		{SourceLimit{Rate: 5}, SourceLimit{Rate: 5, Burst: 10, MaxSources: 65536}},
		{SourceLimit{Rate: 0.2}, SourceLimit{Rate: 0.2, Burst: 1, MaxSources: 65536}},
		{SourceLimit{Rate: 2.6, Burst: -1, MaxSources: 10}, SourceLimit{Rate: 2.6, Burst: 6, MaxSources: 10}},
		{SourceLimit{Rate: 50, Burst: 100}, SourceLimit{Rate: 50, Burst: 100, MaxSources: 65536}},
		{SourceLimit{Rate: -3}, SourceLimit{Burst: 1, MaxSources: 65536}},
		{SourceLimit{Rate: math.Inf(1)}, SourceLimit{Burst: 1, MaxSources: 65536}},
		{SourceLimit{Rate: math.NaN()}, SourceLimit{Burst: 1, MaxSources: 65536}},
		{SourceLimit{Rate: 1e300}, SourceLimit{Rate: 1e300, Burst: math.MaxInt32, MaxSources: 65536}},
	}
	for _, tt := range tests {
		if got := tt.in.withDefaults(); got != tt.want {
			t.Errorf("%+v.withDefaults() = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	cfg, err := (&Config{SourceLimit: SourceLimit{Rate: 5}}).withDefaults()
	if err != nil || cfg.SourceLimit.Burst != 10 {
		t.Errorf("Config.withDefaults: SourceLimit %+v, err %v; want Burst 10", cfg.SourceLimit, err)
	}
}

// limitStep is one request of a source after the clock moved by advance.
type limitStep struct {
	advance time.Duration
	src     string
	want    limitVerdict
	retry   int // for limitAnswer
}

// repeat is n steps of src at the same instant, all expecting want.
func repeat(n int, src string, want limitVerdict) []limitStep {
	steps := make([]limitStep, n)
	for i := range steps {
		steps[i] = limitStep{src: src, want: want}
	}
	return steps
}

func TestSourceLimiter(t *testing.T) {
	const a, b = "192.0.2.1", "192.0.2.2"
	tests := []struct {
		name  string
		cfg   SourceLimit
		steps [][]limitStep
	}{
		{"burst then one answer, then silence", SourceLimit{Rate: 5, Burst: 10}, [][]limitStep{
			repeat(10, a, limitPass),
			{{src: a, want: limitAnswer, retry: 1}},
			repeat(20, a, limitDrop),
		}},
		{"refill at Rate", SourceLimit{Rate: 5, Burst: 10}, [][]limitStep{
			repeat(10, a, limitPass),
			{{src: a, want: limitAnswer, retry: 1}},
			{{advance: 100 * time.Millisecond, src: a, want: limitDrop}}, // half a token
			{{advance: 150 * time.Millisecond, src: a, want: limitPass}}, // one and a quarter
			{{src: a, want: limitDrop}},                                  // a quarter
			{{advance: 2 * time.Second, src: a, want: limitPass}},        // ten tokens, the burst
			repeat(9, a, limitPass),
			{{src: a, want: limitAnswer, retry: 1}},
		}},
		{"one answer per second", SourceLimit{Rate: 0.25, Burst: 1}, [][]limitStep{
			{{src: a, want: limitPass}},
			{{src: a, want: limitAnswer, retry: 4}},
			{{advance: 500 * time.Millisecond, src: a, want: limitDrop}},
			{{advance: 499 * time.Millisecond, src: a, want: limitDrop}},
			{{advance: time.Millisecond, src: a, want: limitAnswer, retry: 3}},
			{{src: a, want: limitDrop}},
			{{advance: 2 * time.Second, src: a, want: limitAnswer, retry: 1}},
			{{advance: time.Second, src: a, want: limitPass}},
		}},
		{"sources apart", SourceLimit{Rate: 1, Burst: 2}, [][]limitStep{
			repeat(2, a, limitPass),
			{{src: a, want: limitAnswer, retry: 1}},
			repeat(2, b, limitPass),
			{{src: a, want: limitDrop}},
			{{src: b, want: limitAnswer, retry: 1}},
		}},
		{"IPv6 by /64, IPv4-mapped as IPv4", SourceLimit{Rate: 1, Burst: 3}, [][]limitStep{
			{{src: "2001:db8::1", want: limitPass}},
			{{src: "2001:db8::ffff:2", want: limitPass}},
			{{src: "2001:db8::3%eth0", want: limitPass}},
			{{src: "2001:db8::4", want: limitAnswer, retry: 1}},
			repeat(3, "2001:db8:0:1::1", limitPass), // the next /64
			repeat(2, "::ffff:192.0.2.9", limitPass),
			{{src: "192.0.2.9", want: limitPass}},
			{{src: "::ffff:192.0.2.9", want: limitAnswer, retry: 1}},
		}},
		{"no limit", SourceLimit{}, [][]limitStep{repeat(1000, a, limitPass)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, clock := testLimiter(tt.cfg)
			var limited uint64
			n := 0
			for _, group := range tt.steps {
				for _, st := range group {
					n++
					clock.now += st.advance
					v, retry := l.check(netip.MustParseAddr(st.src))
					if v != st.want || (v == limitAnswer && retry != st.retry) {
						t.Fatalf("request %d from %s at %v: %v (retry %d), want %v (retry %d)",
							n, st.src, clock.now, v, retry, st.want, st.retry)
					}
					if v != limitPass {
						limited++
					}
				}
			}
			if got := l.limited.Load(); got != limited {
				t.Errorf("limited count %d, want %d", got, limited)
			}
		})
	}
}

func TestSourceLimiterExempt(t *testing.T) {
	l, _ := testLimiter(SourceLimit{Rate: 1, Burst: 1})
	proxy := netip.MustParseAddr("198.51.100.7")
	l.setExempt(func(a netip.Addr) bool { return a == proxy })
	for i := range 100 {
		if v, _ := l.check(proxy); v != limitPass {
			t.Fatalf("request %d of the exempt source: %v", i+1, v)
		}
	}
	other := netip.MustParseAddr("198.51.100.8")
	if v, _ := l.check(other); v != limitPass {
		t.Fatalf("first request of another source: %v", v)
	}
	if v, _ := l.check(other); v != limitAnswer {
		t.Fatalf("second request of another source: %v, want answer", v)
	}
	if n := l.tracked(); n != 1 {
		t.Errorf("%d sources tracked, want 1 (the exempt one costs none)", n)
	}
}

func TestSourceLimiterEviction(t *testing.T) {
	const maxSources = 16
	l, clock := testLimiter(SourceLimit{Rate: 1, Burst: 2, MaxSources: maxSources})
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}) }
	// Many busy sources: the table never holds more than MaxSources.
	for i := range 1000 {
		l.check(addr(i))
		l.check(addr(i))
		if n := l.tracked(); n > maxSources {
			t.Fatalf("after %d sources the table holds %d, more than %d", i+1, n, maxSources)
		}
	}
	// An evicted source starts again with a full bucket.
	evicted := -1
	for i := range 1000 {
		if l.sources[addr(i)] == nil {
			evicted = i
			break
		}
	}
	for i := range 2 {
		if v, _ := l.check(addr(evicted)); v != limitPass {
			t.Fatalf("request %d of an evicted source: %v", i+1, v)
		}
	}

	// Idle sources (full buckets) go first: a drained source keeps its state.
	l, clock = testLimiter(SourceLimit{Rate: 1, Burst: 2, MaxSources: 4})
	drained := []netip.Addr{addr(1), addr(2)}
	for _, a := range drained {
		l.check(a)
		l.check(a)
	}
	l.check(addr(3))
	l.check(addr(4))
	clock.now += time.Second // 3 and 4 are full again, 1 and 2 have one token
	if v, _ := l.check(addr(5)); v != limitPass {
		t.Fatalf("new source in a full table: %v", v)
	}
	for _, a := range drained {
		if v, _ := l.check(a); v != limitPass {
			t.Fatalf("%v: %v, want pass (one token)", a, v)
		}
		if v, _ := l.check(a); v != limitAnswer {
			t.Fatalf("%v: %v, want answer (its bucket was kept, not renewed)", a, v)
		}
	}
	if n := l.tracked(); n != 3 {
		t.Errorf("%d sources tracked, want 3 (1, 2 and 5)", n)
	}
}

func TestSourceLimiterRequests(t *testing.T) {
	l, _ := testLimiter(SourceLimit{Rate: 1, Burst: 1})
	req := func(method sip.RequestMethod, src string) *sip.Request {
		r := sip.NewRequest(method, sip.Uri{Scheme: "sip", User: "bot", Host: "192.0.2.100"})
		r.SetSource(src)
		return r
	}
	if v, _, _ := l.checkRequest(req(sip.MESSAGE, "192.0.2.1:5060")); v != limitPass {
		t.Fatalf("first MESSAGE: %v", v)
	}
	// Another port of the same address is the same source.
	v, src, retry := l.checkRequest(req(sip.OPTIONS, "192.0.2.1:40000"))
	if v != limitAnswer || src != netip.MustParseAddr("192.0.2.1") || retry != 1 {
		t.Fatalf("OPTIONS from another port: %v from %v (retry %d), want answer from 192.0.2.1 (retry 1)", v, src, retry)
	}
	for _, m := range []sip.RequestMethod{sip.ACK, sip.CANCEL} {
		if v, _, _ := l.checkRequest(req(m, "192.0.2.1:5060")); v != limitPass {
			t.Errorf("%s over the limit: %v, want pass", m, v)
		}
	}
	if v, _, _ := l.checkRequest(req(sip.INVITE, "[::ffff:192.0.2.1]:5060")); v != limitDrop {
		t.Errorf("INVITE from the IPv4-mapped address: %v, want drop", v)
	}
	if v, _, _ := l.checkRequest(req(sip.INVITE, "[2001:db8::1]:5060")); v != limitPass {
		t.Errorf("INVITE from IPv6: %v, want pass", v)
	}
}

func TestSourceLimiterNoAllocation(t *testing.T) {
	l, clock := testLimiter(SourceLimit{Rate: 1000, Burst: 2000})
	srcs := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}
	for _, src := range srcs {
		l.check(src)
		r := sip.NewRequest(sip.MESSAGE, sip.Uri{Scheme: "sip", Host: "192.0.2.100"})
		r.SetSource(netip.AddrPortFrom(src, 5060).String())
		t.Run(fmt.Sprint(src), func(t *testing.T) {
			allocs := testing.AllocsPerRun(100, func() {
				clock.now += time.Millisecond
				l.checkRequest(r)
			})
			if allocs != 0 {
				t.Errorf("%v allocations per request of a known source, want 0", allocs)
			}
		})
	}
}
