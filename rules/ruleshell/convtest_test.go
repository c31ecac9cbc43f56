package ruleshell_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/rules"
	"github.com/imbot-dev/imbot/rules/ruleshell"
)

// TestRunTestFilesMiddleware checks that conversation tests see what Middleware carries out:
// the rules' replies with their typing, what the Go handlers they name reply, the end, the
// stored state and variables, and blank messages passed on untouched.
func TestRunTestFilesMiddleware(t *testing.T) {
	handoff := bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		info, _ := rules.InfoFrom(ctx)
		return w.Reply(ctx, "handoff for "+info.Rule+" ("+ev.Session.Peer().DisplayName+")")
	})
	outcomes, err := os.ReadFile("../testdata/outcomes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	failing := bot.HandlerFunc(func(context.Context, bot.Responder, *bot.Event) error { return errors.New("down") })
	tests := []struct {
		name  string
		steps string
		want  []string // failures, each containing this text; none: the test passes
	}{
		{"handler reply after the rule's", `
      - user: agent
        bot: [Let me find someone., "handoff for agent (Ada)"]
        typing: 800ms
        rule: agent
        pass: false`, nil},
		{"blank message goes on", `
      - user: ""
        bot: none
        rule: none
        pass: true
        state: start
      - user: "  "
        pass: true
        bot: []`, nil},
		{"blank answer in a flow keeps the flow", `
      - user: name
        state: ask-name
      - user: " "
        bot: none
        state: ask-name
        vars: {name: null}
      - user: Ada
        bot: Hello Ada
        vars: {name: Ada}
        state: start`, nil},
		{"end and session end", `
      - user: bye
        bot: Bye.
        end: true
      - event: session.end
        bot: none
        rule: closed
        vars: {closed: true}`, nil},
		{"handler error", `
      - user: broken
        bot: Trying.`, []string{`t_test.yaml:7: step 1 (user: "broken"): rules: handler 'failing' (rule 'broken'): down`}},
		{"blank message is no fallback", `
      - user: ""
        bot: Sorry?`, []string{`step 1 (user: ""): the bot replied 0 message(s) []; want 1`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			test := "version: 1\nrules: [r.yaml]\ntests:\n  - name: t\n    sender: {user: ada, name: Ada}\n    steps:" + tt.steps + "\n"
			fsys := fstest.MapFS{"r.yaml": {Data: outcomes}, "t_test.yaml": {Data: []byte(test)}}
			opts := rules.Options{FS: fsys, Handlers: rules.Handlers{"handoff": handoff, "failing": failing}}
			res, err := ruleshell.RunTestFiles(opts, "t_test.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != 1 {
				t.Fatalf("results %+v", res)
			}
			got := res[0].Failures
			if len(got) != len(tt.want) {
				t.Fatalf("failures %q, want %d: %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("failure %q, want one with %q", got[i], w)
				}
			}
		})
	}
}
