package rules

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/imbot-dev/imbot/store"
)

// FuzzLoad feeds arbitrary bytes to the loader: it must return rules or errors, never
// panic or hang, and loaded rules must answer a message without panicking.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/bad/*.yaml")
	seeds = append(seeds, "demo/demo.yaml", "testdata/good.yaml")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("version: 1\nrules:\n  - {name: a, match: '(a|b) {x} *', reply: '{{ match.x }}'}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := fstest.MapFS{"r.yaml": {Data: data}}
		rs, err := Load(Options{FS: fsys}, "r.yaml")
		if err != nil {
			for _, e := range Errors(err) {
				if !strings.HasPrefix(e.Error(), "r.yaml") {
					t.Fatalf("error without position: %v", e)
				}
			}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		for _, text := range []string{"a b c", "hello", ""} {
			_, _ = rs.process(ctx, &Options{}, Input{Text: text}, store.ConversationState{})
		}
	})
}

func TestBadInput(t *testing.T) {
	big := "version: 1\nrules:\n" + strings.Repeat("  - {name: x, reply: y}\n", MaxFileSize/20)
	deepYAML := "version: 1\nvars: {a: " + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "}\nrules: []\n"
	tests := map[string]struct{ data, want string }{
		"huge":            {big, "is larger than 8 MiB"},
		"deep yaml":       {deepYAML, "r.yaml:"},
		"nul":             {"version: 1\x00", "NUL byte"},
		"invalid utf-8":   {"version: 1\nrules: [\xc3\x28]", "not valid UTF-8"},
		"only comments":   {"# nothing\n", "file is empty"},
		"scalar":          {"hello", "the file must be a mapping"},
		"long regex":      {"version: 1\nrules:\n  - {name: a, regex: '" + strings.Repeat("a", 2000) + "', reply: x}\n", "the limit is 1000"},
		"huge regex prog": {"version: 1\nrules:\n  - {name: a, regex: '(((a{100}){100}){100})', reply: x}\n", "bad regex"},
		"long pattern":    {"version: 1\nrules:\n  - {name: a, match: '" + strings.Repeat("a ", 600) + "', reply: x}\n", "the limit is"},
		"huge expression": {"version: 1\nrules:\n  - {name: a, when: '" + strings.Repeat("1 + ", 2000) + "1 > 0', reply: x}\n", "r.yaml:3"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := Load(Options{FS: fstest.MapFS{"r.yaml": {Data: []byte(tt.data)}}}, "r.yaml")
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("error %v; want it to contain %q", err, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Load hangs")
			}
		})
	}
}

// TestExpressionBudget checks that an expression over a huge range fails instead of eating
// memory or time. Constant bounds are refused when the rules load (TestStaticLimits); these
// are only known when the event comes.
func TestExpressionBudget(t *testing.T) {
	e := newTestEngine(t, Options{}, `version: 1
vars: {n: 100000000}
rules:
  - {name: a, match: loop, reply: "{{ len(filter(1..vars.n, # % 2 == 0)) }}"}
  - {name: b, match: repeat, reply: "{{ repeat('x', vars.n) }}"}
`)
	for text, want := range map[string]string{"loop": "memory budget", "repeat": "Limits.TextBytes"} {
		start := time.Now()
		_, err := e.Process(context.Background(), Input{Text: text}, store.ConversationState{})
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrLimit) {
			t.Errorf("%s: err = %v; want ErrLimit, %s", text, err, want)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("%s took %v", text, time.Since(start))
		}
	}
}
