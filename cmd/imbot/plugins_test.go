package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/imbot-dev/imbot/store"
)

// ticketRules call the helpdesk plugin's functions.
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

func TestPluginsInCommands(t *testing.T) {
	dir := t.TempDir()
	rulesFile := writeFile(t, dir, "t.yaml", ticketRules)
	testFile := writeFile(t, dir, "t_test.yaml", ticketTests)
	enabled := writeFile(t, dir, "on.yaml", "rules: [t.yaml]\nplugins: [helpdesk]\nstore: {driver: memory}\n")
	unknown := writeFile(t, dir, "bad.yaml", "rules: [t.yaml]\nplugins: [helpdesk, crm]\n")
	cases := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"check rules calling a plugin", []string{"check", rulesFile}, 0, []string{"rules ok"}},
		{"check a config enabling it", []string{"check", "--config", enabled}, 0, []string{"config ok", "rules ok"}},
		{"unknown plugin", []string{"check", unknown}, 1, []string{"bad.yaml:2:10: plugins: unknown plugin \"crm\"; compiled into this imbot: helpdesk"}},
		{"test with the real functions", []string{"test", testFile}, 0, []string{"ok\t"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(context.Background(), c.args, &out, &errOut); code != c.code {
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

	t.Run("chat", func(t *testing.T) {
		var out, errOut bytes.Buffer
		in := strings.NewReader("open Screen flickers\nstatus 1001\n")
		if code := cmdChat(context.Background(), []string{"-r", rulesFile}, in, &out, &errOut); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		for _, w := range []string{"ticket 1001", "Ticket #1001 “Screen flickers” (urgency high) is open"} {
			if !strings.Contains(out.String(), w) {
				t.Errorf("chat output lacks %q:\n%s", w, out.String())
			}
		}
	})
}

// lookuplessStore has the methods of recordStore only: it cannot look tickets up.
type lookuplessStore struct{ recordStore }

func TestPluginFuncs(t *testing.T) {
	cases := []struct {
		name    string
		plugins []string
		st      recordStore
		funcs   []string
		err     string
	}{
		{"none", nil, &store.Memory{}, nil, ""},
		{"helpdesk", []string{"helpdesk"}, &store.Memory{}, []string{"tickets.create", "tickets.status", "tickets.mine", "tickets.urgency"}, ""},
		{"unknown", []string{"crm"}, &store.Memory{}, nil, `unknown plugin "crm"`},
		{"store without lookups", []string{"helpdesk"}, lookuplessStore{}, nil, "cannot look tickets up"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs, err := pluginFuncs(c.plugins, c.st)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(fs) != len(c.funcs) {
				t.Errorf("%d functions, want %d", len(fs), len(c.funcs))
			}
			for _, f := range c.funcs {
				if _, ok := fs[f]; !ok {
					t.Errorf("no function %s", f)
				}
			}
		})
	}
	if all, err := allPluginFuncs(nil); err != nil || len(all) == 0 {
		t.Errorf("allPluginFuncs: %d functions, %v", len(all), err)
	}
}
