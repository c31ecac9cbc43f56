package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

// TestReadyzDuringShutdown checks that /readyz stops saying ready as soon as a shutdown
// starts (a load balancer must send no more traffic), while the bot still finishes the work
// it accepted.
func TestReadyzDuringShutdown(t *testing.T) {
	fc, err := parseConfig("test.yaml", []byte(`
listen: ["udp://127.0.0.1:0"]
identity: sip:imbot@127.0.0.1
store: {driver: memory}
http: {listen: "127.0.0.1:0"}
log: {level: error}
`))
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	handled := make(chan string, 1)
	slow := bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		if ev.Kind == bot.EventMessage {
			close(entered)
			<-release
			handled <- ev.Text
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	a, err := assemble(ctx, fc, slog.New(slog.NewTextHandler(io.Discard, nil)), func(*app) (bot.Handler, []bot.Middleware, error) {
		return slow, nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.run(runCtx) }()
	<-a.bot.Ready()
	readyz := "http://" + a.httpLn.Addr().String() + "/readyz"
	if code, body := get(t, readyz); code != 200 {
		t.Fatalf("/readyz before the shutdown: %d %s", code, body)
	}
	p := bottest.NewPeer(t, bottest.Options{Bot: a.bot.Addr("udp"), BotURI: a.bot.URI()})
	if res, err := p.SendPage(ctx, "in flight"); err != nil || res.StatusCode != 200 {
		t.Fatalf("MESSAGE answered %v, %v", res, err)
	}
	<-entered
	stop()
	// Wait (on the probe itself) for it to say the bot is going away.
	for {
		code, body := get(t, readyz)
		if code == http.StatusServiceUnavailable && strings.Contains(body, "shutting down") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("/readyz still %d %q during the shutdown", code, body)
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	close(release)
	if got := <-handled; got != "in flight" {
		t.Errorf("handled %q", got)
	}
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}
