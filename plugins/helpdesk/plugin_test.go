package helpdesk

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imbot-dev/imbot/imbotcmd"
	"github.com/imbot-dev/imbot/store"
)

// ticketRules call the plugin's functions.
const ticketRules = `version: 1
rules:
  - name: open
    regex: '^open (?P<summary>.+)$'
    call: tickets.create(match.summary, "high")
    reply: "ticket {{ result }}"
  - name: status
    regex: '^status (?P<n>\d+)$'
    reply: "{{ tickets.status(match.n) }}"
`

const ticketTests = `version: 1
rules: [t.yaml]
tests:
  - name: opens and looks up
    sender: {verified: true} # the plugin shows tickets to their verified owner only
    steps:
      - user: open Printer jams
        bot: ticket 1001
      - user: status 1001
        bot: {contains: "is open"}
      - user: status 1234
        bot: {contains: "no ticket #1234"}
`

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPluginInCommands: an imbot with the plugin knows its functions in check, test and
// chat, and a config file may enable it.
func TestPluginInCommands(t *testing.T) {
	dir := t.TempDir()
	rulesFile := writeFile(t, dir, "t.yaml", ticketRules)
	testFile := writeFile(t, dir, "t_test.yaml", ticketTests)
	enabled := writeFile(t, dir, "on.yaml", "rules: [t.yaml]\nplugins: [helpdesk]\nstore: {driver: memory}\n")
	unknown := writeFile(t, dir, "bad.yaml", "rules: [t.yaml]\nplugins: [helpdesk, crm]\n")
	p := imbotcmd.Program{Plugins: []imbotcmd.Plugin{Plugin()}}
	cases := []struct {
		name  string
		args  []string
		stdin string
		code  int
		want  []string
	}{
		{"check rules calling a plugin", []string{"check", rulesFile}, "", 0, []string{"rules ok"}},
		{"check a config enabling it", []string{"check", "--config", enabled}, "", 0, []string{"config ok", "rules ok"}},
		{"unknown plugin", []string{"check", unknown}, "", 1, []string{"bad.yaml:2:10: plugins: unknown plugin \"crm\"; compiled into this imbot: helpdesk"}},
		{"test with the real functions", []string{"test", testFile}, "", 0, []string{"ok\t"}},
		{"chat", []string{"chat", "-r", rulesFile}, "open Screen flickers\nstatus 1001\n", 0,
			[]string{"ticket 1001", "Ticket #1001 “Screen flickers” (urgency high) is open"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := p.Run(context.Background(), c.args, strings.NewReader(c.stdin), &out, &errOut); code != c.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, out.String(), errOut.String())
			}
			all := out.String() + errOut.String()
			for _, w := range c.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
		})
	}
}

// lookuplessStore has the methods of imbotcmd.Store only: it cannot look tickets up.
type lookuplessStore struct{ imbotcmd.Store }

func TestPluginStore(t *testing.T) {
	fs, err := Plugin().Funcs(&store.Memory{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tickets.create", "tickets.status", "tickets.mine", "tickets.urgency"} {
		if _, ok := fs[f]; !ok {
			t.Errorf("no function %s", f)
		}
	}
	if len(fs) != 4 {
		t.Errorf("%d functions, want 4", len(fs))
	}
	if _, err := Plugin().Funcs(lookuplessStore{}); err == nil || !strings.Contains(err.Error(), "cannot look tickets up") {
		t.Errorf("a store without lookups: error %v", err)
	}
}
