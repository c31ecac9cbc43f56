package imbotcmd

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imbot-dev/imbot/rules"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", "version: 1\nrules:\n  - name: hi\n    match: hello\n    reply: Hi!\n")
	bad := writeFile(t, dir, "bad.yaml", "version: 1\nrules:\n  - name: hi\n    match: hello\n    reply: Hi!\n    whem: true\n  - name: hi\n    reply: again\n")
	cfg := writeFile(t, dir, "imbot.yaml", "rules: [good.yaml]\nstore: {driver: memory}\n")
	badCfg := writeFile(t, dir, "broken.yaml", "listen: [udp://127.0.0.1:0]\nidentty: sip:x@y\n")
	costly := writeFile(t, dir, "costly.yaml", `version: 1
rules:
  - {name: doubling, match: "double *", when: "len(reduce(1..30, #acc + #acc, text)) > 0", reply: never}
  - {name: copies, match: "copies *", reply: "{{ repeat(text, 999999) }}"}
  - {name: flood, match: "flood *", reply: "{{ repeat('ab ', 333333) }}"}
`)
	risky := writeFile(t, dir, "risky.yaml", `version: 1
rules:
  - {name: words, match: "words *", when: "len(reduce(split(text, ' '), #acc + #acc, text)) > 0", reply: ok}
`)
	// What `imbot run` refuses at start, `imbot check` refuses too.
	runOnly := writeFile(t, dir, "runonly.yaml", "listen: [\"udp://127.0.0.1:abc\", \"tcp://0.0.0.0:5099\"]\n"+
		"registration:\n  registrar: sip:reg.example.com;transport=tls\n  password_env: IMBOT_TEST_UNSET_PASSWORD\n")
	indexed := writeFile(t, dir, "indexed.yaml", "version: 1\nrules:\n  - {name: hi, match: hello, reply: Hi!}\n"+
		"  - {name: order, regex: '\\d{5}', reply: Order}\n  - {name: vip, regex: '(?i)vip (\\w+)', reply: VIP}\n")
	withVars := writeFile(t, dir, "vars.yaml", "rules: [good.yaml]\nstore: {driver: memory}\nvars: {hours: always}\n")
	tvars := writeFile(t, dir, "tvars.yaml", "version: 1\nrules:\n  - {name: size, match: size, reply: \"{{ vars.size }}\"}\n")
	goodTest := writeFile(t, dir, "good_test.yaml", "version: 1\nrules: [tvars.yaml]\ntests:\n"+
		"  - name: size\n    vars: {size: large}\n    steps:\n      - {user: size, bot: large}\n")
	badTest := writeFile(t, dir, "bad_test.yaml", "version: 1\nrules: [good.yaml]\ntests:\n"+
		"  - name: hi\n    steps:\n      - {user: hello, bto: Hi!}\n")
	calls := writeFile(t, dir, "calls.yaml", "version: 1\nrules:\n  - {name: tier, match: tier, call: crm.tier(sender.user), reply: \"{{ result }}\"}\n")
	cases := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"good rules", []string{good}, 0, []string{"rules ok"}},
		{"what a message costs (-v)", []string{"-v", indexed}, 0, []string{"indexed.yaml: rules ok",
			"indexed.yaml: 4 rules: 3 indexed (tried only when a word or literal of theirs is in the message), " +
				"1 tried on every message of their states (0 in every state); 2 regexes: 0 anchored by a literal of 1-2 bytes, 1 by none"}},
		{"a function Go registers elsewhere", []string{calls}, 1, []string{
			"calls.yaml:3:37: rule 'tier' calls 'crm.tier', which is not a registered function",
			"hint: a function that your Go code registers can be stood in for: imbot check --stub name=value"}},
		{"a stub for it", []string{"--stub", "crm.tier", calls}, 0, []string{"calls.yaml: rules ok\n"}},
		{"vars the rules do not declare", []string{"--config", withVars}, 1, []string{"'hours' is not a constant of the rule files"}},
		{"what run refuses", []string{runOnly}, 1, []string{
			"runonly.yaml: registration.password_env: the environment variable IMBOT_TEST_UNSET_PASSWORD is not set",
			`runonly.yaml: bot config: listen address "udp://127.0.0.1:abc"`,
			"runonly.yaml: bot config: trust: the bot listens on 0.0.0.0 but nothing says who may write to it",
			`runonly.yaml: bot config: registrar "sip:reg.example.com;transport=tls" uses tls but the bot does not listen on tls`}},
		{"config and its rules", []string{"--config", cfg}, 0, []string{"config ok", "rules ok"}},
		{"every error with its position", []string{bad}, 1, []string{"bad.yaml:6:5:", "bad.yaml:7:"}},
		{"bad config", []string{badCfg}, 1, []string{"broken.yaml:2:1: unknown key \"identty\""}},
		{"over the limits", []string{costly}, 1, []string{"costly.yaml:3:52: in 'when' of rule 'doubling': the accumulator of reduce grows 2-fold",
			"costly.yaml:4:50: in the reply of rule 'copies': repeat() makes 999999 copies", "costly.yaml:5:48: in the reply of rule 'flood': repeat() builds 999999 bytes"}},
		{"a warning", []string{risky}, 0, []string{"risky.yaml:3:48: warning: in 'when' of rule 'words'", "rules ok, with 1 warning(s)"}},
		{"a test file", []string{goodTest}, 0, []string{"good_test.yaml: tests ok\n"}},
		{"a variable only a test gives", []string{tvars}, 0, []string{
			"tvars.yaml:3:47: warning: in the reply of rule 'size': vars.size is never set: no 'vars:' declares it and no rule sets it, so it is always empty",
			"tvars.yaml: rules ok, with 1 warning(s)"}},
		{"a bad test file", []string{good, badTest}, 1, []string{"good.yaml: rules ok",
			"bad_test.yaml:6:23: unknown key 'bto' in a step; did you mean 'bot'?"}},
		{"nothing to check", nil, 2, []string{"Usage"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(context.Background(), append([]string{"check"}, c.args...), &out, &errOut); code != c.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, out.String(), errOut.String())
			}
			all := out.String() + errOut.String()
			for _, w := range c.want {
				if !strings.Contains(all, w) {
					t.Errorf("output does not contain %q:\n%s", w, all)
				}
			}
		})
	}
}

func TestTestCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"test"}, &out, &errOut); code != 0 {
		t.Fatalf("the demo's own tests fail (exit %d):\n%s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "ok\t") {
		t.Errorf("no go test-style summary:\n%s", out.String())
	}
	dir := t.TempDir()
	writeFile(t, dir, "r.yaml", "version: 1\nrules:\n  - name: hi\n    match: hello\n    reply: Hi!\n")
	failing := writeFile(t, dir, "r_test.yaml", "version: 1\nrules: [r.yaml]\ntests:\n  - name: wrong reply\n    steps:\n      - user: hello\n        bot: Goodbye\n")
	out.Reset()
	errOut.Reset()
	if code := run(context.Background(), []string{"test", failing}, &out, &errOut); code != 1 {
		t.Errorf("a failing test exited %d, want 1", code)
	}
	if !strings.Contains(out.String(), "FAIL") || !strings.Contains(out.String(), "wrong_reply") {
		t.Errorf("failure not reported:\n%s", out.String())
	}
}

func TestChatStubs(t *testing.T) {
	dir := t.TempDir()
	calls := writeFile(t, dir, "calls.yaml", "version: 1\nrules:\n  - {name: tier, match: tier, call: crm.tier(sender.user), reply: \"Tier: {{ result }}\"}\n")
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no stub", []string{"-r", calls}, 1, "hint: a function that your Go code registers can be stood in for: imbot chat --stub name=value"},
		{"text", []string{"-r", calls, "--stub", "crm.tier=Gold"}, 0, "bot> Tier: Gold\n"},
		{"a number", []string{"-r", calls, "--stub", "crm.tier=3"}, 0, "bot> Tier: 3\n"},
		{"no value", []string{"-r", calls, "--stub", "crm.tier"}, 0, "bot> Tier: \n"},
		{"no name", []string{"-r", calls, "--stub", "=x"}, 2, "invalid value \"=x\" for flag -stub: name the function: --stub name or --stub name=value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := cmdChat(context.Background(), c.args, strings.NewReader("tier\n"), &out, &errOut); code != c.code {
				t.Fatalf("exit %d, want %d: %s%s", code, c.code, out.String(), errOut.String())
			}
			if all := out.String() + errOut.String(); !strings.Contains(all, c.want) {
				t.Errorf("output lacks %q:\n%s", c.want, all)
			}
		})
	}
}

// TestNowFlag tries office-hours rules at another hour with --now, in chat and in test.
func TestNowFlag(t *testing.T) {
	dir := t.TempDir()
	hours := "version: 1\nrules:\n" +
		"  - {name: open, match: open, when: \"business_hours('Mon-Fri 09:00-17:00')\", reply: \"Open at {{ now.Hour() }}.\"}\n" +
		"  - {name: closed, match: open, reply: \"Closed at {{ now.Hour() }}.\"}\n"
	writeFile(t, dir, "hours.yaml", hours)
	rulesFile := filepath.Join(dir, "hours.yaml")
	test := writeFile(t, dir, "hours_test.yaml", "version: 1\nrules: [hours.yaml]\ntests:\n"+
		"  - name: saturday\n    steps:\n      - {user: open, bot: Closed at 10.}\n")
	cases := []struct {
		name string
		cmd  string
		args []string
		code int
		want string
	}{
		{"chat on a Saturday", "chat", []string{"-r", rulesFile, "--now", "2026-12-05T10:00+01:00"}, 0, "bot> Closed at 10.\n"},
		{"chat on a Tuesday", "chat", []string{"-r", rulesFile, "--now", "2026-12-01T10:00:00+01:00"}, 0, "bot> Open at 10.\n"},
		{"chat with a bad time", "chat", []string{"-r", rulesFile, "--now", "tomorrow"}, 2,
			`invalid value "tomorrow" for flag -now: want a time such as 2026-12-01T10:00+01:00 (RFC 3339; the seconds and the offset may be left out)`},
		{"test on a Saturday", "test", []string{"--now", "2026-12-05T10:00+01:00", test}, 0, "ok\t"},
		{"test on the default Monday", "test", []string{test}, 1, `the bot replied "Open at 10."; want "Closed at 10."`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			var code int
			if c.cmd == "chat" {
				code = cmdChat(context.Background(), c.args, strings.NewReader("open\n"), &out, &errOut)
			} else {
				code = run(context.Background(), append([]string{c.cmd}, c.args...), &out, &errOut)
			}
			if code != c.code {
				t.Fatalf("exit %d, want %d: %s%s", code, c.code, out.String(), errOut.String())
			}
			if all := out.String() + errOut.String(); !strings.Contains(all, c.want) {
				t.Errorf("output lacks %q:\n%s", c.want, all)
			}
		})
	}
}

func TestChatCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	in := strings.NewReader("I forgot my password\n/state\n/why\n")
	if code := cmdChat(context.Background(), nil, in, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, w := range []string{"What is your username?", "ask-username", "reset-password"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("chat output lacks %q:\n%s", w, out.String())
		}
	}
}

// TestBlankMessageCommands checks that imbot chat and imbot test treat a blank message as
// the rules middleware does over SIP: no rule takes it, not even a fallback or the rule that
// takes any answer in a state, and it goes on to the Go handlers.
func TestBlankMessageCommands(t *testing.T) {
	var out, errOut bytes.Buffer
	in := strings.NewReader("I forgot my password\n\n   \n/why\n/state\n")
	if code := cmdChat(context.Background(), nil, in, &out, &errOut); code != 0 {
		t.Fatalf("chat exit %d: %s", code, errOut.String())
	}
	chat := out.String()
	for _, w := range []string{
		"you> (no rule answered: the event would go on to the Go handlers)\nyou> (no rule answered: the event would go on to the Go handlers)\n",
		"a blank message is not for the rules",
		"state: ask-username",
	} {
		if !strings.Contains(chat, w) {
			t.Errorf("chat output lacks %q:\n%s", w, chat)
		}
	}
	if strings.Contains(chat, "That does not look like a username") {
		t.Errorf("the state's fallback answered a blank message:\n%s", chat)
	}

	dir := t.TempDir()
	test := writeFile(t, dir, "blank_test.yaml", `version: 1
rules: [`+rulesDemoPath(t, dir)+`]
tests:
  - name: blank
    steps:
      - user: I forgot my password
        state: ask-username
      - user: ""
        bot: none
        rule: none
        pass: true
        state: ask-username
      - user: "  "
        bot: none
        pass: true
`)
	out.Reset()
	errOut.Reset()
	if code := run(context.Background(), []string{"test", "-v", test}, &out, &errOut); code != 0 {
		t.Errorf("test exit %d:\n%s%s", code, out.String(), errOut.String())
	}
}

// rulesDemoPath writes the demo rules into dir and returns their file name.
func rulesDemoPath(t *testing.T, dir string) string {
	t.Helper()
	data, err := fs.ReadFile(rules.Demo, rules.DemoFile)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "demo.yaml", string(data))
	return "demo.yaml"
}
