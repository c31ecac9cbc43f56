// Package helpdesk_test runs the helpdesk example's tests: its conversation tests
// (helpdesk_test.yaml) with the real Go plugin, the imbot command's check and test of the
// example, and the end-to-end test over real SIP (e2e_test.go).
package helpdesk_test

import (
	"context"
	"maps"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/handlers"
	"github.com/imbot-dev/imbot/plugins/helpdesk"
	"github.com/imbot-dev/imbot/rules"
	"github.com/imbot-dev/imbot/rules/rulestest"
	"github.com/imbot-dev/imbot/store"
)

// silent stands for the Go handlers the rules name (handoff, rating): they need a running
// bot, and say nothing in conversation tests, as in `imbot test`.
var silent = bot.HandlerFunc(func(context.Context, bot.Responder, *bot.Event) error { return nil })

// TestConversations runs helpdesk_test.yaml, each conversation test a subtest.
func TestConversations(t *testing.T) {
	funcs := helpdesk.Funcs(&store.Memory{})
	maps.Copy(funcs, handlers.RuleFuncs())
	rulestest.Run(t, rules.Options{
		Funcs:    funcs,
		Handlers: rules.Handlers{"handoff": silent, "rating": silent},
	}, "helpdesk_test.yaml")
}

// TestCommand runs `imbot check` and `imbot test` on the example, as its README tells
// users to.
func TestCommand(t *testing.T) {
	bin := imbotBinary(t)
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"check", []string{"check", "--config", "imbot.yaml"}, []string{"imbot.yaml: config ok", "helpdesk.yaml: rules ok"}},
		{"test", []string{"test", "helpdesk_test.yaml"}, []string{"ok\thelpdesk_test.yaml"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := exec.Command(bin, c.args...).CombinedOutput()
			if err != nil {
				t.Fatalf("imbot %s: %v\n%s", strings.Join(c.args, " "), err, out)
			}
			for _, w := range c.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("imbot %s: output lacks %q:\n%s", strings.Join(c.args, " "), w, out)
				}
			}
		})
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}
