package handlers

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

func newMetrics(t *testing.T) *Metrics {
	t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMetricsCounts(t *testing.T) {
	m := newMetrics(t)
	typer := bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		if ev.Text == "slow" {
			bot.SetAnswerer(w, "slow")
			_ = w.Typing(ctx)
			return w.Reply(ctx, "done")
		}
		return echo(ctx, w, ev)
	})
	h := m.Middleware()(typer)
	ctx := context.Background()
	events := []*bot.Event{
		{Kind: bot.EventSessionStart},
		msg("hi"), msg("hello"), msg("???"), msg("slow"), msg("fail"),
		{Kind: bot.EventTyping, Typing: true},
	}
	for _, ev := range events {
		_ = h.Handle(ctx, bottest.NewRecorder(), fromPeer("sip:alice@x", ev))
	}
	tests := []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		{"messages in (page)", m.in.WithLabelValues("page"), 5},
		{"messages in (session)", m.in.WithLabelValues("session"), 0},
		// Messages out and typing are counted by the bot on the wire (TestMetricsWire), not
		// by the middleware: a recorder sends nothing.
		{"messages out (page)", m.out.WithLabelValues("page"), 0},
		{"rule hits echo", m.ruleHits.WithLabelValues("echo"), 2},
		{"rule hits slow", m.ruleHits.WithLabelValues("slow"), 1},
		{"no match", m.noMatch, 1},
		{"typing sent", m.typingSent, 0},
		{"active sessions", m.active, 1},
		{"errors", m.errors.WithLabelValues("message"), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := testutil.ToFloat64(tt.c); got != tt.want {
				t.Errorf("= %v, want %v", got, tt.want)
			}
		})
	}
	if n := testutil.CollectAndCount(m.latency); n != 3 { // message, session.start, typing
		t.Errorf("latency series = %d, want 3", n)
	}
	_ = h.Handle(ctx, bottest.NewRecorder(), fromPeer("sip:alice@x", &bot.Event{Kind: bot.EventSessionEnd}))
	if got := testutil.ToFloat64(m.active); got != 0 {
		t.Errorf("active sessions after end = %v", got)
	}
	m.ObserveSIPResponse(200)
	m.ObserveSIPResponse(200)
	m.ObserveSIPResponse(481)
	m.ObserveHandoff("accepted")
	m.ObserveTypingSent()
	m.ObserveMessageOut(bot.ModeSession)
	for name, c := range map[string]struct {
		c    prometheus.Collector
		want float64
	}{
		"sip 200":       {m.sip.WithLabelValues("200"), 2},
		"sip 481":       {m.sip.WithLabelValues("481"), 1},
		"handoffs":      {m.handoffs.WithLabelValues("accepted"), 1},
		"typing":        {m.typingSent, 1},
		"out (session)": {m.out.WithLabelValues("session"), 1},
	} {
		if got := testutil.ToFloat64(c.c); got != c.want {
			t.Errorf("%s = %v, want %v", name, got, c.want)
		}
	}
}

func TestNewMetricsErrors(t *testing.T) {
	if _, err := NewMetrics(nil); err == nil {
		t.Error("NewMetrics(nil) succeeded")
	}
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("registering twice on one registry succeeded")
	}
}

func TestMetricsHandler(t *testing.T) {
	m := newMetrics(t)
	m.ObserveSIPResponse(202)
	var notReady error = errors.New("not registered")
	srv := httptest.NewServer(m.Handler(func() error { return notReady }))
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	tests := []struct {
		path string
		code int
		body string
	}{
		{"/healthz", 200, "ok"},
		{"/readyz", 503, "not registered"},
		{"/metrics", 200, `imbot_sip_responses_total{code="202"} 1`},
		{"/nothing", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			code, body := get(tt.path)
			if code != tt.code || !strings.Contains(body, tt.body) {
				t.Errorf("GET %s = %d %q, want %d with %q", tt.path, code, body, tt.code, tt.body)
			}
		})
	}
	notReady = nil
	if code, body := get("/readyz"); code != 200 || !strings.Contains(body, "ready") {
		t.Errorf("ready: %d %q", code, body)
	}
}

// TestMetricsBot: counts taken through a real bot, read back from /metrics.
func TestMetricsBot(t *testing.T) {
	m := newMetrics(t)
	b := startBot(t, bot.Config{}, echo, m.Middleware())
	p := b.peer("alice")
	ctx := testCtx(t)
	send(t, ctx, p, "one")
	waitText(t, ctx, p, "echo: one")
	send(t, ctx, p, "???")
	waitText(t, ctx, p, "Sorry?")
	send(t, ctx, p, "two")
	waitText(t, ctx, p, "echo: two")

	rec := httptest.NewRecorder()
	m.Handler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`imbot_messages_in_total{mode="page"} 3`,
		`imbot_no_match_total 1`,
		`imbot_active_sessions 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	// The reply to "two" can reach the peer before the middleware counts its hit.
	if !strings.Contains(body, `imbot_rule_hits_total{rule="echo"} 1`) && !strings.Contains(body, `imbot_rule_hits_total{rule="echo"} 2`) {
		t.Errorf("/metrics lacks the echo hits:\n%s", body)
	}
}

// TestMetricsWire: the counters of messages out and typing match what the peer received,
// one per request on the wire, whoever sent it: Responder.Typing, WithTyping, a text split
// to fit UDP, and a proactive Bot.Send.
func TestMetricsWire(t *testing.T) {
	m := newMetrics(t)
	long := strings.TrimSpace(strings.Repeat("word ", 700)) // split into several messages over UDP
	handled := make(chan string, 8)
	h := bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		if ev.Kind != bot.EventMessage {
			return nil
		}
		var err error
		switch ev.Text {
		case "typed":
			if err = w.Typing(ctx); err == nil {
				err = w.Reply(ctx, "typed")
			}
		case "paced":
			err = w.Reply(ctx, "paced", bot.WithTyping(10*time.Millisecond))
		case "long":
			err = w.Reply(ctx, long)
		}
		handled <- ev.Text
		return err
	})
	b := startBot(t, bot.Config{Observer: m}, h, m.Middleware())
	p := b.peerWith(bottest.Options{User: "alice", AcceptComposing: true})
	ctx := testCtx(t)
	// counted compares the counters with the peer's records once the handler of text has
	// returned: by then every request it sent was answered, and so observed.
	counted := func(step string) {
		t.Helper()
		var typing, texts float64
		for _, r := range p.Records() {
			switch {
			case r.Kind == bottest.KindTyping && r.Status/100 == 2:
				typing++
			case r.Kind == bottest.KindText && r.Status/100 == 2:
				texts++
			}
		}
		if got := testutil.ToFloat64(m.typingSent); got != typing {
			t.Errorf("after %s: typing_sent_total = %v; the peer accepted %v indications", step, got, typing)
		}
		if got := testutil.ToFloat64(m.out.WithLabelValues("page")); got != texts {
			t.Errorf("after %s: messages_out_total{mode=page} = %v; the peer accepted %v messages", step, got, texts)
		}
	}
	for _, tt := range []struct {
		text        string
		typing, out int // requests on the wire so far
	}{
		{"typed", 1, 1},
		{"paced", 2, 2},
		{"long", 2, 0}, // out: checked against the records (the number of parts)
	} {
		send(t, ctx, p, tt.text)
		select {
		case got := <-handled:
			if got != tt.text {
				t.Fatalf("handled %q, want %q", got, tt.text)
			}
		case <-ctx.Done():
			t.Fatalf("%q was not handled", tt.text)
		}
		counted(tt.text)
		if got := testutil.ToFloat64(m.typingSent); got != float64(tt.typing) {
			t.Errorf("after %s: typing_sent_total = %v, want %d", tt.text, got, tt.typing)
		}
		if got := testutil.ToFloat64(m.out.WithLabelValues("page")); tt.out > 0 && got != float64(tt.out) {
			t.Errorf("after %s: messages_out_total = %v, want %d", tt.text, got, tt.out)
		}
	}
	if parts := testutil.ToFloat64(m.out.WithLabelValues("page")) - 2; parts < 2 {
		t.Errorf("the long text counted as %v messages; over UDP it goes as several", parts)
	}
	if _, err := b.Send(ctx, p.URI(), "notice"); err != nil {
		t.Fatal(err)
	}
	counted("a proactive send")
}

// regSource is a RegistrationSource with a fixed state.
type regSource struct{ st bot.Registration }

func (r *regSource) Registration() (bot.Registration, <-chan struct{}) { return r.st, nil }

func TestMetricsRegistration(t *testing.T) {
	expires := time.Unix(1900000000, 0)
	tests := []struct {
		name string
		st   bot.Registration
		want []string // lines of /metrics
		not  []string
	}{
		{"off", bot.Registration{State: bot.RegOff}, nil, []string{"imbot_registered", "imbot_registration_info"}},
		{"pending", bot.Registration{State: bot.RegPending},
			[]string{"imbot_registered 0", `imbot_registration_info{error="",state="pending"} 1`}, nil},
		{"registered", bot.Registration{State: bot.RegRegistered, Expires: expires},
			[]string{"imbot_registered 1", `imbot_registration_info{error="",state="registered"} 1`,
				"imbot_registration_expiry_timestamp_seconds 1.9e+09"}, nil},
		{"failed", bot.Registration{State: bot.RegFailed, Reason: "403 Forbidden: the registrar does not accept this identity"},
			[]string{"imbot_registered 0", `imbot_registration_info{error="403 Forbidden: the registrar does not accept this identity",state="failed"} 1`},
			[]string{"imbot_registration_expiry_timestamp_seconds"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMetrics(t)
			if err := m.TrackRegistration(&regSource{tt.st}); err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			m.Handler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			body := rec.Body.String()
			for _, w := range tt.want {
				if !strings.Contains(body, w+"\n") {
					t.Errorf("/metrics lacks %q:\n%s", w, body)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(body, n) {
					t.Errorf("/metrics has %q:\n%s", n, body)
				}
			}
		})
	}
}
