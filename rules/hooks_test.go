package rules_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/rules"
)

func TestHooksReportRulesAndNoMatch(t *testing.T) {
	var mu sync.Mutex
	var got []string
	opts := rules.Options{
		FS:        rules.Demo,
		OnRule:    func(_ context.Context, name string) { mu.Lock(); got = append(got, "rule:"+name); mu.Unlock() },
		OnNoMatch: func(context.Context) { mu.Lock(); got = append(got, "nomatch"); mu.Unlock() },
	}
	e, err := rules.New(opts, rules.DemoFile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bot.New(bot.Config{Listen: []string{"udp://127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	b.Use(e.Middleware())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Run(runCtx) }()
	defer func() { stop(); <-done }()
	<-b.Ready()
	p := bottest.NewPeer(t, bottest.Options{Bot: b.Addr("udp"), BotURI: "sip:bot@" + b.Addr("udp")})
	// The first message opens the conversation: a greeting, then the help.
	if _, err := p.SendPage(ctx, "help"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(ctx, func(r bottest.Record) bool { return strings.Contains(r.Text, "Here is what I can help with") }); err != nil {
		t.Fatal(err)
	}
	n := len(p.Texts())
	if _, err := p.SendPage(ctx, "xyzzy plugh"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(ctx, func(bottest.Record) bool { return len(p.Texts()) > n }); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	all := strings.Join(got, " ")
	if !strings.Contains(all, "rule:help") {
		t.Errorf("help rule not reported: %s", all)
	}
	if !strings.Contains(all, "nomatch") {
		t.Errorf("a message only the fallback answered was not reported as no-match: %s", all)
	}
	if strings.Count(all, "nomatch") != 1 {
		t.Errorf("no-match reported for a matched message too: %s", all)
	}
}
