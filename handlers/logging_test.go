package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a running bot.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err == nil {
			out = append(out, m)
		}
	}
	return out
}

func TestLogging(t *testing.T) {
	tests := []struct {
		name     string
		ev       *bot.Event
		verified bool
		level    string
		want     map[string]any
		wantErr  bool
	}{
		{"answered message", msg("hi"), false, "INFO",
			map[string]any{"kind": "message", "mode": "page", "peer": "sip:alice@x", "verified": false, "answered": "echo", "nomatch": false, "replies": 1.0}, false},
		{"verified peer", msg("hi"), true, "INFO",
			map[string]any{"peer": "sip:alice@x", "verified": true}, false},
		{"no match", msg("???"), false, "INFO",
			map[string]any{"answered": "", "nomatch": true, "replies": 1.0}, false},
		{"failure", msg("fail"), false, "WARN",
			map[string]any{"err": "echo failed", "replies": 0.0}, true},
		{"typing", &bot.Event{Kind: bot.EventTyping, Typing: true}, false, "DEBUG",
			map[string]any{"kind": "typing"}, false},
		{"session end", &bot.Event{Kind: bot.EventSessionEnd, Reason: bot.EndIdle}, false, "INFO",
			map[string]any{"kind": "session.end", "reason": "idle"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf syncBuffer
			log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			h := Logging(log)(echo)
			var opts []bottest.ConversationOption
			if tt.verified {
				opts = append(opts, bottest.Verified())
			}
			err := h.Handle(context.Background(), bottest.NewRecorder(), fromPeer("sip:alice@x", tt.ev, opts...))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			lines := buf.lines()
			if len(lines) != 1 {
				t.Fatalf("%d log lines, want 1: %v", len(lines), lines)
			}
			l := lines[0]
			if l["msg"] != "event" || l["level"] != tt.level || l["session"] != "sip:bot@test sip:alice@x" {
				t.Errorf("line = %v", l)
			}
			if _, ok := l["latency"]; !ok {
				t.Errorf("no latency: %v", l)
			}
			for k, v := range tt.want {
				if l[k] != v {
					t.Errorf("%s = %#v, want %#v (line %v)", k, l[k], v, l)
				}
			}
		})
	}
}

func TestLoggingLevelFiltered(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := Logging(log)(echo).Handle(context.Background(), bottest.NewRecorder(), &bot.Event{Kind: bot.EventTyping}); err != nil {
		t.Fatal(err)
	}
	if l := buf.lines(); len(l) != 0 {
		t.Errorf("typing logged at Info: %v", l)
	}
}

// TestLoggingBot: through a real bot, a session's events are logged with the session and
// peer the runtime gives.
func TestLoggingBot(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	b := startBot(t, bot.Config{}, echo, Logging(log))
	p := b.peer("alice")
	ctx := testCtx(t)
	send(t, ctx, p, "hello")
	waitText(t, ctx, p, "echo: hello")
	// The line is written after the handler returned: wait for it by sending one more
	// message, handled strictly after the first.
	send(t, ctx, p, "again")
	waitText(t, ctx, p, "echo: again")
	var found bool
	for _, l := range buf.lines() {
		if l["msg"] == "event" && l["kind"] == "message" && l["answered"] == "echo" {
			found = true
			if l["peer"] != p.URI() || !strings.Contains(l["session"].(string), p.URI()) || l["mode"] != "page" {
				t.Errorf("line = %v", l)
			}
		}
	}
	if !found {
		t.Errorf("no message line among %v", buf.lines())
	}
}
