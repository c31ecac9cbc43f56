package imbotcmd

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/rules"
	"github.com/imbot-dev/imbot/store"
)

// echoPlugin is a plugin of name with a function name+".echo" and a handler name+".hello".
func echoPlugin(name string) Plugin {
	return Plugin{
		Name: name,
		Funcs: func(Store) (rules.Funcs, error) {
			return rules.Funcs{name + ".echo": rules.Func1(func(_ context.Context, s string) (string, error) { return "echo " + s, nil })}, nil
		},
		Handlers: func(Store) (rules.Handlers, error) {
			return rules.Handlers{name + ".hello": bot.HandlerFunc(func(ctx context.Context, w bot.Responder, _ *bot.Event) error {
				return w.Reply(ctx, "hello from "+name)
			})}, nil
		},
	}
}

func TestPluginSet(t *testing.T) {
	failing := Plugin{Name: "failing", Funcs: func(Store) (rules.Funcs, error) { return nil, errors.New("no database") }}
	twin := echoPlugin("a")
	twin.Name = "twin" // defines a.echo and a.hello too
	rating := Plugin{Name: "stars", Handlers: func(Store) (rules.Handlers, error) { return rules.Handlers{"rating": nil}, nil }}
	cases := []struct {
		name     string
		plugins  []Plugin
		enable   []string
		funcs    []string
		handlers []string
		err      string
	}{
		{"none", nil, nil, nil, nil, ""},
		{"one", []Plugin{echoPlugin("a"), echoPlugin("b")}, []string{"a"}, []string{"a.echo"}, []string{"a.hello"}, ""},
		{"two", []Plugin{echoPlugin("a"), echoPlugin("b")}, []string{"a", "b"}, []string{"a.echo", "b.echo"}, []string{"a.hello", "b.hello"}, ""},
		{"unknown", []Plugin{echoPlugin("a")}, []string{"crm"}, nil, nil, `plugins: unknown plugin "crm"; compiled in: a`},
		{"unknown among none", nil, []string{"crm"}, nil, nil, `plugins: unknown plugin "crm"; compiled in: (none)`},
		{"factory error", []Plugin{failing}, []string{"failing"}, nil, nil, "plugins: failing: no database"},
		{"same function", []Plugin{echoPlugin("a"), twin}, []string{"a", "twin"}, nil, nil, "plugins: a and twin both define the function a.echo"},
		{"imbot's handler", []Plugin{rating}, []string{"stars"}, nil, nil, "plugins: stars defines the handler rating, which is imbot's own"},
		{"same plugin name", []Plugin{echoPlugin("a"), echoPlugin("a")}, nil, nil, nil, "plugins: two plugins are named a"},
		{"no name", []Plugin{{Funcs: echoPlugin("a").Funcs}}, nil, nil, nil, "plugins: a plugin has no name"},
		{"empty", []Plugin{{Name: "void"}}, nil, nil, nil, "plugins: void has neither functions nor handlers"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := newPluginSet(c.plugins)
			var fs rules.Funcs
			var hs rules.Handlers
			if err == nil {
				fs, hs, err = s.build(c.enable, &store.Memory{})
			}
			if c.err != "" {
				if err == nil || err.Error() != c.err {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := slices.Sorted(maps.Keys(fs)); !slices.Equal(got, c.funcs) {
				t.Errorf("functions %v, want %v", got, c.funcs)
			}
			if got := slices.Sorted(maps.Keys(hs)); !slices.Equal(got, c.handlers) {
				t.Errorf("handlers %v, want %v", got, c.handlers)
			}
		})
	}
}

// TestPluginsInCommands: check, test and chat know every plugin's functions and handlers;
// a config file may enable the compiled-in plugins only.
func TestPluginsInCommands(t *testing.T) {
	dir := t.TempDir()
	rulesFile := writeFile(t, dir, "t.yaml", "version: 1\nrules:\n"+
		"  - {name: echo, regex: '^echo (?P<s>.+)$', reply: \"{{ a.echo(match.s) }}\"}\n"+
		"  - {name: hello, match: hi, handler: b.hello}\n")
	testFile := writeFile(t, dir, "t_test.yaml", "version: 1\nrules: [t.yaml]\ntests:\n"+
		"  - name: both\n    steps:\n      - {user: echo this, bot: echo this}\n      - {user: hi, bot: hello from b}\n")
	enabled := writeFile(t, dir, "on.yaml", "rules: [t.yaml]\nplugins: [a, b]\nstore: {driver: memory}\n")
	unknown := writeFile(t, dir, "bad.yaml", "rules: [t.yaml]\nplugins: [a, crm]\n")
	p := Program{Plugins: []Plugin{echoPlugin("a"), echoPlugin("b")}}
	cases := []struct {
		name   string
		args   []string
		stdin  string
		code   int
		stdout []string // in stdout, in this order
		stderr string   // all of stderr
	}{
		{"check", []string{"check", rulesFile}, "", 0, []string{rulesFile + ": rules ok\n"}, ""},
		{"check a config enabling them", []string{"check", "--config", enabled}, "", 0,
			[]string{enabled + ": config ok\n", rulesFile + ": rules ok\n"}, ""},
		{"unknown plugin", []string{"check", unknown}, "", 1, nil,
			unknown + ":2:10: plugins: unknown plugin \"crm\"; compiled into this imbot: a, b\n"},
		{"test", []string{"test", "-v", testFile}, "", 0, []string{"--- PASS: " + testFile + "/both", "ok\t" + testFile + "\t"}, ""},
		{"chat", []string{"chat", "-r", rulesFile}, "echo piped\nhi\n", 0, []string{"you> bot> echo piped\n", "you> bot> hello from b\n"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := p.Run(context.Background(), c.args, strings.NewReader(c.stdin), &out, &errOut)
			if code != c.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, out.String(), errOut.String())
			}
			rest := out.String()
			for _, w := range c.stdout {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("stdout lacks %q (in order):\n%s", w, out.String())
					break
				}
				rest = rest[i+len(w):]
			}
			if errOut.String() != c.stderr {
				t.Errorf("stderr %q, want %q", errOut.String(), c.stderr)
			}
		})
	}
}
