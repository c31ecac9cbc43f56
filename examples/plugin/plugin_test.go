package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/imbot-dev/imbot/imbotcmd"
	"github.com/imbot-dev/imbot/plugins/helpdesk"
)

// TestCustomImbot: the imbot of main.go knows pizza.price and pizza.menu in check, test and
// chat; an imbot with only the plugins imbot ships does not.
func TestCustomImbot(t *testing.T) {
	stock := imbotcmd.Program{Plugins: []imbotcmd.Plugin{helpdesk.Plugin()}}
	cases := []struct {
		name   string
		p      imbotcmd.Program
		args   []string
		stdin  string
		code   int
		stdout string // a regular expression for the whole of stdout
		stderr string
	}{
		{"check", program(), []string{"check", "rules.yaml"}, "", 0, `rules\.yaml: rules ok\n`, ""},
		{"test", program(), []string{"test", "-v", "rules_test.yaml"}, "", 0,
			`=== RUN   rules_test\.yaml/prices_each_size\n` +
				`--- PASS: rules_test\.yaml/prices_each_size \(\d+\.\d+s\)\n` +
				`=== RUN   rules_test\.yaml/shows_the_menu_from_Go\n` +
				`--- PASS: rules_test\.yaml/shows_the_menu_from_Go \(\d+\.\d+s\)\n` +
				`ok  \trules_test\.yaml\t\d+\.\d+s\n` +
				`ok\trules_test\.yaml\t\d+\.\d+s\n`, ""},
		{"chat", program(), []string{"chat", "-r", "rules.yaml"}, "How much is a medium pizza?\nmenu\n", 0,
			regexp.QuoteMeta("Chatting with 3 rules (rules.yaml). Type /help for commands.\n" +
				"you> bot> A medium pizza is 11.00 euros.\n" +
				"you> bot> Pizzas: small 8.50, medium 11.00, large 13.50.\n" +
				"you> \n"), ""},
		{"stock check", stock, []string{"check", "rules.yaml"}, "", 1, ``,
			"rules.yaml:10:44: in the reply of rule 'price': unknown name 'pizza'; expressions know 'text', 'sender', 'session', 'state', 'vars', 'match', 'now', 'event', 'typing' or 'result', and functions\n" +
				"rules.yaml:16:14: rule 'menu' hands the event to handler 'pizza.menu', which is not registered; handlers are registered in Go with rules.Options.Handlers (registered: handoff, rating)\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := c.p.Run(context.Background(), c.args, strings.NewReader(c.stdin), &out, &errOut)
			if code != c.code {
				t.Errorf("exit %d, want %d", code, c.code)
			}
			if !regexp.MustCompile(`\A` + c.stdout + `\z`).MatchString(out.String()) {
				t.Errorf("stdout:\n%s\nwant (regexp):\n%s", out.String(), c.stdout)
			}
			if errOut.String() != c.stderr {
				t.Errorf("stderr:\n%s\nwant:\n%s", errOut.String(), c.stderr)
			}
		})
	}
}
