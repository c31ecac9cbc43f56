package rules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVarsOverride: Options.Vars replaces a constant of the rule files (an example's office
// hours, for trying it at any hour), and a name no file declares is an error that says
// which names exist.
func TestVarsOverride(t *testing.T) {
	const src = `version: 1
vars:
  hours: "Mon-Fri 08:00-18:00"
  company: Contoso
rules:
  - name: open
    match: hours
    reply: "{{ vars.company }} {{ business_hours(vars.hours) ? 'open' : 'closed' }}"
`
	cases := []struct {
		name string
		vars map[string]any
		want string // reply; "" = load error expected
		err  string
	}{
		{name: "files' own value on a Sunday", want: "Contoso closed"},
		{name: "overridden", vars: map[string]any{"hours": "daily 00:00-23:59", "company": "Fabrikam"}, want: "Fabrikam open"},
		{name: "unknown name", vars: map[string]any{"huors": "daily 00:00-23:59"}, err: "'huors' is not a constant of the rule files; did you mean 'hours'?"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "rules.yaml")
			if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			opts := Options{Vars: c.vars, Now: sunday}
			if c.err != "" {
				_, err := Load(opts, f)
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("Load: %v, want an error saying %q", err, c.err)
				}
				return
			}
			e := newTestEngine(t, opts, src)
			replies, _, _ := converse(t, e, "hours")
			if len(replies) != 1 || len(replies[0]) != 1 || replies[0][0] != c.want {
				t.Fatalf("replies %q, want %q", replies, c.want)
			}
		})
	}
}

// sunday is a clock stopped on a Sunday at noon, when "Mon-Fri" hours are closed.
func sunday() time.Time { return time.Date(2026, 11, 29, 12, 0, 0, 0, time.Local) }
