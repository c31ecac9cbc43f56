package ruleshell_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/rules"
	"github.com/imbot-dev/imbot/rules/ruleshell"
)

// chat runs the shell on input against the engine and returns what it printed.
func chat(t *testing.T, e *rules.Engine, input string, setup func(*ruleshell.Chat)) string {
	t.Helper()
	var out strings.Builder
	c := ruleshell.NewChat(e, strings.NewReader(input), &out)
	if setup != nil {
		setup(c)
	}
	if err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestChat(t *testing.T) {
	e, err := rules.New(rules.Options{FS: rules.Demo, Logger: slog.New(slog.DiscardHandler)}, rules.DemoFile)
	if err != nil {
		t.Fatal(err)
	}
	s := chat(t, e, "reset my password\n/state\n/why\nbob\n/vars\n/reset\n/state\nbye\n/nope\n/quit\n",
		func(c *ruleshell.Chat) { c.Peer.DisplayName = "Tester" })
	for _, want := range []string{
		"bot> Hi Tester! I am the Contoso helpdesk bot",
		"state: ask-username",
		"rule 'reset-password' (demo.yaml:",
		`username = "bob"`,
		"conversation forgotten",
		"state: start",
		"bot> Goodbye Tester!",
		"(session ended",
		"unknown command /nope",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q in:\n%s", want, s)
		}
	}
}

func TestChatMiddleware(t *testing.T) {
	handoff := bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		info, _ := rules.InfoFrom(ctx)
		return w.Reply(ctx, "handoff for "+info.Rule+": "+ev.Text)
	})
	e, err := rules.New(rules.Options{
		FS:       os.DirFS("../testdata"),
		Handlers: rules.Handlers{"handoff": handoff, "failing": handoff},
		Logger:   slog.New(slog.DiscardHandler),
	}, "outcomes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, input string
		want        []string // in order
		not         []string
	}{
		{"handler and typing", "agent\n", []string{"you> bot is typing… (800ms)\nbot> Let me find someone.\nbot> handoff for agent: agent\n"}, nil},
		{"blank line is a blank message", "\n   \n/why\n", []string{
			"you> (no rule answered: the event would go on to the Go handlers)\nyou> (no rule answered",
			"a blank message is not for the rules",
		}, []string{"Sorry?"}},
		{"blank answer in a flow", "name\n\n/state\nAda\n/vars\n", []string{
			"bot> What is your name?", "(no rule answered", "state: ask-name", "bot> Hello Ada", `name = "Ada"`,
		}, nil},
		{"end starts a new session", "bye\nhi\n", []string{"bot> Bye.\n(session ended; type to start a new one)\nyou> bot> Sorry?"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := e.Store().Delete(context.Background(), ruleshell.Key); err != nil {
				t.Fatal(err)
			}
			s := chat(t, e, tc.input, nil)
			rest := s
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("missing %q (in order) in:\n%s", w, s)
				}
				rest = rest[i+len(w):]
			}
			for _, n := range tc.not {
				if strings.Contains(s, n) {
					t.Errorf("unexpected %q in:\n%s", n, s)
				}
			}
		})
	}
}
