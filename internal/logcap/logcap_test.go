package logcap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// lineBuffer collects what a text handler writes, safely for concurrent writers.
type lineBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lineBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// lines returns the lines written so far.
func (w *lineBuffer) lines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := strings.TrimSuffix(w.b.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// newTestLogger returns a capped logger over a text handler at debug level that leaves the
// time out, and the buffer it writes to.
func newTestLogger(opts Options) (*slog.Logger, *lineBuffer) {
	w := &lineBuffer{}
	text := slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	return slog.New(NewHandler(text, opts)), w
}

// marker is what capString appends after cutting n bytes.
func marker(n int) string { return "...[" + strconv.Itoa(n) + " bytes cut]" }

// longStringer is a fmt.Stringer whose text is long.
type longStringer struct{ n int }

func (s longStringer) String() string { return strings.Repeat("s", s.n) }

// lazyValue is a slog.LogValuer that resolves to a long string.
type lazyValue struct{ n int }

func (v lazyValue) LogValue() slog.Value { return slog.StringValue(strings.Repeat("v", v.n)) }

// nilStringer panics in String on a nil pointer, as many String methods do.
type nilStringer struct{ s string }

func (p *nilStringer) String() string { return p.s }

func TestTruncate(t *testing.T) {
	x2000 := strings.Repeat("x", 2000)
	cases := []struct {
		name string
		log  func(l *slog.Logger)
		want []string // substrings of the line
		not  []string // substrings the line must not have
	}{
		{
			name: "short values pass as they are",
			log: func(l *slog.Logger) {
				l.Info("hello", "peer", "sip:alice@example.com", "n", 3, "err", errors.New("boom"))
			},
			want: []string{`level=INFO msg=hello peer=sip:alice@example.com n=3 err=boom`},
			not:  []string{"bytes cut"},
		},
		{
			name: "message",
			log:  func(l *slog.Logger) { l.Info(x2000) },
			want: []string{`msg="` + strings.Repeat("x", 512) + marker(1488) + `"`},
		},
		{
			name: "string attribute",
			log:  func(l *slog.Logger) { l.Error("failed to parse", "data", x2000, "laddr", "127.0.0.1:5060") },
			want: []string{`data="` + strings.Repeat("x", 512) + marker(1488) + `" laddr=127.0.0.1:5060`},
		},
		{
			name: "error attribute carrying a datagram",
			log: func(l *slog.Logger) {
				l.Error("failed to parse", "error", fmt.Errorf("parse: start line %q: %w", x2000, errors.New("not SIP")))
			},
			// The quote counts two: 20 bytes of prefix, 492 of datagram.
			want: []string{`error="parse: start line \"` + strings.Repeat("x", 492) + marker(1518) + `"`},
			not:  []string{"not SIP"},
		},
		{
			name: "value in a nested group",
			log: func(l *slog.Logger) {
				l.Info("request", slog.Group("sip", slog.String("method", "MESSAGE"),
					slog.Group("req", slog.String("body", x2000), slog.Int("len", 2000))))
			},
			want: []string{`sip.method=MESSAGE sip.req.body="` + strings.Repeat("x", 512) + marker(1488) + `" sip.req.len=2000`},
		},
		{
			name: "attribute key",
			log:  func(l *slog.Logger) { l.Debug("non-websocket header:", x2000, "value") },
			want: []string{`msg="non-websocket header:" "` + strings.Repeat("x", 512) + marker(1488) + `"=value`},
		},
		{
			name: "binary counted by its escaped width",
			log:  func(l *slog.Logger) { l.Error("failed to parse", "data", strings.Repeat("\x01", 2000)) },
			// 512/6 = 85 bytes, each written \x01.
			want: []string{`data="` + strings.Repeat(`\x01`, 85) + marker(1915) + `"`},
		},
		{
			name: "Stringer",
			log:  func(l *slog.Logger) { l.Info("response", "res", longStringer{2000}) },
			want: []string{`res="` + strings.Repeat("s", 512) + marker(1488) + `"`},
		},
		{
			name: "LogValuer",
			log:  func(l *slog.Logger) { l.Info("lazy", "v", lazyValue{2000}) },
			want: []string{`v="` + strings.Repeat("v", 512) + marker(1488) + `"`},
		},
		{
			name: "byte slice",
			log:  func(l *slog.Logger) { l.Info("bytes", "b", []byte(x2000)) },
			want: []string{`b="` + strings.Repeat("x", 512) + marker(1488) + `"`},
		},
		{
			name: "struct formatted long",
			log:  func(l *slog.Logger) { l.Info("struct", "v", struct{ A []int }{make([]int, 1000)}) },
			want: []string{`v="{A:[0 0 0`, `bytes cut]"`},
		},
		{
			name: "nil pointer whose String panics",
			log:  func(l *slog.Logger) { l.Info("nil", "res", (*nilStringer)(nil)) },
			want: []string{`res=<nil>`},
		},
		{
			name: "uncut key",
			log: func(l *slog.Logger) {
				l.Error("handler failed", "stack", "goroutine 7 [running]:\n"+x2000, "err", errors.New(x2000))
			},
			want: []string{`stack="goroutine 7 [running]:\n` + x2000 + `" err="` + strings.Repeat("x", 512) + marker(1488) + `"`},
		},
		{
			name: "uncut key in a group",
			log:  func(l *slog.Logger) { l.Error("panicked", slog.Group("panic", "stack", x2000)) },
			want: []string{`panic.stack=` + x2000},
		},
		{
			name: "attribute added by With",
			log:  func(l *slog.Logger) { l.With("data", x2000).Info("with") },
			want: []string{`msg=with data="` + strings.Repeat("x", 512) + marker(1488) + `"`},
		},
		{
			name: "attribute in a group opened by WithGroup",
			log:  func(l *slog.Logger) { l.WithGroup("g").Info("grouped", "data", x2000) },
			want: []string{`g.data="` + strings.Repeat("x", 512) + marker(1488) + `"`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, w := newTestLogger(Options{Uncut: []string{"stack"}})
			tc.log(l)
			lines := w.lines()
			if len(lines) != 1 {
				t.Fatalf("got %d lines, want 1: %q", len(lines), lines)
			}
			line := lines[0]
			for _, s := range tc.want {
				if !strings.Contains(line, s) {
					t.Errorf("line lacks %q:\n%s", s, line)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(line, s) {
					t.Errorf("line has %q:\n%s", s, line)
				}
			}
			// Three values of 512 bytes and their markers, at the most, and an uncut one.
			if len(line) > 3*(512+30)+100+len(x2000) {
				t.Errorf("line of %d bytes", len(line))
			}
		})
	}
}

func TestCapString(t *testing.T) {
	cases := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"short", "abc", 512, "abc"},
		{"exactly max", strings.Repeat("a", 20), 20, strings.Repeat("a", 20)},
		{"one over", strings.Repeat("a", 21), 20, strings.Repeat("a", 20) + marker(1)},
		{"quotes count two", strings.Repeat(`"`, 30), 20, strings.Repeat(`"`, 10) + marker(20)},
		{"newlines count two", strings.Repeat("\r\n", 15), 20, strings.Repeat("\r\n", 5) + marker(20)},
		{"other controls count six", strings.Repeat("\x01", 30), 20, "\x01\x01\x01" + marker(27)},
		{"invalid UTF-8 counts six", strings.Repeat("\xff", 30), 20, "\xff\xff\xff" + marker(27)},
		// é is two bytes: the cut falls between runes, never inside one.
		{"cut between runes", "a" + strings.Repeat("é", 20), 20, "a" + strings.Repeat("é", 9) + marker(22)},
		{"non-printable rune counts six", strings.Repeat("\u200b", 10), 20, "\u200b\u200b\u200b" + marker(21)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, cut := capString(tc.in, tc.max)
			if got != tc.want {
				t.Errorf("capString(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
			}
			if cut != (got != tc.in) {
				t.Errorf("cut = %v for %q", cut, got)
			}
		})
	}
}

// suppressedOf returns the suppressed count a line carries, 0 if none.
func suppressedOf(t *testing.T, line string) int {
	t.Helper()
	_, after, ok := strings.Cut(line, " "+SuppressedKey+"=")
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(strings.Fields(after)[0])
	if err != nil {
		t.Fatalf("bad count in %q", line)
	}
	return n
}

func TestRateLimit(t *testing.T) {
	// Each step advances the clock, then logs n lines of one key and checks how many
	// passed and the suppressed count the passing ones carry in total.
	type step struct {
		advance        time.Duration
		level          slog.Level
		msg            string
		n              int
		wantPassed     int
		wantSuppressed int
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"burst passes, then the rate", []step{
			{0, slog.LevelError, "failed to parse", 20, 20, 0},
			{0, slog.LevelError, "failed to parse", 30, 0, 0},
			// 10 a second: 100ms earns one line, which carries the count.
			{100 * time.Millisecond, slog.LevelError, "failed to parse", 5, 1, 30},
			{0, slog.LevelError, "failed to parse", 1, 0, 0},
			{time.Second, slog.LevelError, "failed to parse", 15, 10, 5},
			{0, slog.LevelError, "failed to parse", 1, 0, 0},
			// A long silence refills the burst, not more.
			{time.Hour, slog.LevelError, "failed to parse", 25, 20, 6},
		}},
		{"keys are independent", []step{
			{0, slog.LevelError, "failed to parse", 40, 20, 0},
			{0, slog.LevelInfo, "imbot listening", 1, 1, 0},
			{0, slog.LevelInfo, "registered", 3, 3, 0},
			{0, slog.LevelWarn, "failed to parse", 20, 20, 0}, // another level, another key
			{0, slog.LevelError, "failed to parse", 1, 0, 0},
			{time.Second, slog.LevelError, "failed to parse", 1, 1, 21},
			{0, slog.LevelInfo, "registered", 1, 1, 0},
		}},
		{"long messages key on their start", []step{
			{0, slog.LevelInfo, strings.Repeat("m", 200) + "a", 20, 20, 0},
			{0, slog.LevelInfo, strings.Repeat("m", 200) + "b", 1, 0, 0},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			l, w := newTestLogger(Options{Now: clock.Now})
			for i, s := range tc.steps {
				clock.Advance(s.advance)
				before := len(w.lines())
				for range s.n {
					l.Log(context.Background(), s.level, s.msg)
				}
				lines := w.lines()[before:]
				suppressed := 0
				for _, line := range lines {
					suppressed += suppressedOf(t, line)
				}
				if len(lines) != s.wantPassed || suppressed != s.wantSuppressed {
					t.Errorf("step %d (%s x%d): %d passed with suppressed=%d, want %d with %d",
						i, s.level, s.n, len(lines), suppressed, s.wantPassed, s.wantSuppressed)
				}
			}
		})
	}
}

// TestRateLimitKeyTable: past MaxKeys, new keys share one bucket until a sweep (at most once
// a second) forgets the buckets that are full again.
func TestRateLimitKeyTable(t *testing.T) {
	clock := newFakeClock()
	l, w := newTestLogger(Options{Now: clock.Now, MaxKeys: 4, Burst: 2, Rate: 1})
	logN := func(msg string, n int) int {
		before := len(w.lines())
		for range n {
			l.Info(msg)
		}
		return len(w.lines()) - before
	}
	for i := range 4 {
		if got := logN("key "+strconv.Itoa(i), 1); got != 1 {
			t.Fatalf("key %d: %d lines passed, want 1", i, got)
		}
	}
	// The table is full: the new keys share the overflow bucket (burst 2).
	if got := logN("new a", 2) + logN("new b", 2); got != 2 {
		t.Errorf("new keys in a full table: %d lines passed, want 2 (one shared burst)", got)
	}
	// A second later the old buckets are full again and forgotten: room for new keys.
	clock.Advance(time.Second)
	if got := logN("new c", 3); got != 2 {
		t.Errorf("after the sweep: %d lines passed, want its own burst of 2", got)
	}
}

func TestRateLimitConcurrent(t *testing.T) {
	clock := newFakeClock()
	l, w := newTestLogger(Options{Now: clock.Now})
	const goroutines, perG = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Derived loggers share the limiter.
			gl := l.With("g", g)
			if g%2 == 1 {
				gl = l.WithGroup("odd")
			}
			for i := range perG {
				gl.Error("failed to parse", "i", i, "data", strings.Repeat("z", 600))
			}
		}()
	}
	wg.Wait()
	if got := len(w.lines()); got != DefaultBurst {
		t.Fatalf("%d lines passed with the clock stopped, want the burst of %d", got, DefaultBurst)
	}
	clock.Advance(time.Second)
	l.Error("failed to parse")
	lines := w.lines()
	if got, want := suppressedOf(t, lines[len(lines)-1]), goroutines*perG-DefaultBurst; got != want {
		t.Errorf("suppressed=%d, want %d", got, want)
	}
}

func TestHandlerKeepsWrapping(t *testing.T) {
	text := slog.NewTextHandler(&lineBuffer{}, &slog.HandlerOptions{Level: slog.LevelInfo})
	h := NewHandler(text, Options{})
	cases := []struct {
		name string
		h    slog.Handler
	}{
		{"NewHandler", h},
		{"WithAttrs", h.WithAttrs([]slog.Attr{slog.String("caller", "TransportLayer")})},
		{"WithGroup", h.WithGroup("sip")},
		{"both", h.WithGroup("sip").WithAttrs(nil).WithGroup("tx")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := tc.h.(*Handler)
			if !ok {
				t.Fatalf("got %T, want *Handler", tc.h)
			}
			if c.lim != h.lim {
				t.Error("the derived handler has a rate limiter of its own")
			}
			ctx := context.Background()
			if c.Enabled(ctx, slog.LevelDebug) || !c.Enabled(ctx, slog.LevelInfo) {
				t.Error("Enabled does not follow the wrapped handler's level")
			}
		})
	}
}

// TestWithAttrsDoesNotModifyCaller: WithAttrs cuts a copy of the caller's slice.
func TestWithAttrsDoesNotModifyCaller(t *testing.T) {
	h := NewHandler(slog.DiscardHandler, Options{})
	attrs := []slog.Attr{slog.String("short", "a"), slog.String("long", strings.Repeat("x", 2000))}
	h.WithAttrs(attrs)
	if len(attrs[1].Value.String()) != 2000 {
		t.Error("WithAttrs cut the caller's attribute")
	}
}

// TestPassThroughAllocs: a record that needs no cut costs no allocation beyond the
// wrapped handler's.
func TestPassThroughAllocs(t *testing.T) {
	errShort := errors.New("connection refused")
	logs := func(l *slog.Logger) func() {
		return func() {
			l.Info("message too large", "from", "sip:alice@example.com", "bytes", 20000, "err", errShort)
		}
	}
	bare := testing.AllocsPerRun(200, logs(slog.New(slog.DiscardHandler)))
	// DiscardHandler is disabled at every level: wrap one that is enabled.
	enabled := slog.New(NewHandler(countHandler{}, Options{Burst: 1 << 30}))
	capped := testing.AllocsPerRun(200, logs(enabled))
	uncapped := testing.AllocsPerRun(200, logs(slog.New(countHandler{})))
	if capped > uncapped {
		t.Errorf("%v allocations per line through the Handler, %v without it (disabled logger: %v)", capped, uncapped, bare)
	}
}

// countHandler is an enabled handler that drops every record.
type countHandler struct{}

func (countHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (countHandler) Handle(context.Context, slog.Record) error { return nil }
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler      { return h }
func (h countHandler) WithGroup(string) slog.Handler           { return h }

func BenchmarkHandlePassThrough(b *testing.B) {
	l := slog.New(NewHandler(countHandler{}, Options{Burst: 1 << 30}))
	b.ReportAllocs()
	for b.Loop() {
		l.Info("message too large", "from", "sip:alice@example.com", "bytes", 20000)
	}
}

func BenchmarkHandleSuppressed(b *testing.B) {
	l := slog.New(NewHandler(countHandler{}, Options{Now: newFakeClock().Now}))
	b.ReportAllocs()
	for b.Loop() {
		l.Error("failed to parse", "data", strings.Repeat("x", 100))
	}
}
