package imbotcmd

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/store/postgres/pgtest"
)

// TestFlowAcrossInstances runs two instances of imbot run on one PostgreSQL database: a user
// (sip:alice@example.com) starts a rule flow on one, which then stops; its next message, sent
// to the other (as a dispatcher does once the first is gone), continues the flow there. Each
// event of the flow was handled under the conversation's lease (handlers.Exclusive).
func TestFlowAcrossInstances(t *testing.T) {
	srv := pgtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn := srv.Database(t)
	t.Setenv("IMBOT_TEST_PG_DSN", dsn)
	dir := t.TempDir()
	rules, err := os.ReadFile(filepath.Join("testdata", "cluster_rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "imbot.yaml")
	if err := os.WriteFile(cfg, []byte(`listen: ["udp://127.0.0.1:0"]
identity: sip:bot@127.0.0.1
rules: [rules.yaml]
store: {driver: postgres, dsn_env: IMBOT_TEST_PG_DSN}
log: {level: error}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func() (addr string, stop func()) {
		t.Helper()
		runCtx, cancelRun := context.WithCancel(ctx)
		outR, outW := io.Pipe()
		exit := make(chan int, 1)
		go func() {
			code := run(runCtx, []string{"run", "-config", cfg}, outW, io.Discard)
			outW.Close()
			exit <- code
		}()
		line, err := bufio.NewReader(outR).ReadString('\n')
		if err != nil {
			t.Fatalf("no banner: %v", err)
		}
		go io.Copy(io.Discard, outR)
		m := regexp.MustCompile(`on udp (127\.0\.0\.1:\d+)`).FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("banner %q", line)
		}
		return m[1], func() {
			cancelRun()
			if code := <-exit; code != 0 {
				t.Errorf("imbot run exited %d", code)
			}
		}
	}
	a, stopA := start()
	b, stopB := start()
	defer stopB()

	say := func(addr, text, want string) {
		t.Helper()
		p := bottest.NewPeer(t, bottest.Options{User: "alice", From: "sip:alice@example.com", Bot: addr, BotURI: "sip:bot@127.0.0.1"})
		if _, err := p.SendPage(ctx, text); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Wait(ctx, func(r bottest.Record) bool { return r.Kind == bottest.KindText && r.Text == want }); err != nil {
			t.Fatalf("%q to %s: no %q: %v (got %q)", text, addr, want, err, p.Texts())
		}
	}
	say(a, "order tea", "One tea. What size?")
	stopA() // the first instance goes away
	say(b, "large", "One large tea, coming up.")
}
