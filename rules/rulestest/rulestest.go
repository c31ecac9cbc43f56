// Package rulestest runs YAML conversation tests from Go tests, with no network.
//
//	func TestRules(t *testing.T) {
//		rulestest.Run(t, rules.Options{Funcs: myFuncs}, "testdata/helpdesk_test.yaml")
//	}
//
// Each conversation test becomes a subtest (t.Run) named after it; a rule or test file that
// does not load fails the test with every error found. The format of test files is described
// in package rules (ParseTestFile); they run as ruleshell.RunTestFiles runs them, through
// the engine's Middleware.
package rulestest

import (
	"strings"
	"testing"

	"github.com/imbot-dev/imbot/rules"
	"github.com/imbot-dev/imbot/rules/ruleshell"
)

// Run runs the conversation tests of the files as subtests of t.
func Run(t *testing.T, opts rules.Options, files ...string) {
	t.Helper()
	results, err := ruleshell.RunTestFiles(opts, files...)
	if err != nil {
		for _, e := range rules.Errors(err) {
			t.Error(e)
		}
	}
	for _, r := range results {
		name := r.Name
		if len(files) > 1 {
			name = r.File + "/" + name
		}
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			if r.Skipped {
				t.Skip("skip: true")
			}
			for _, f := range r.Failures {
				t.Error(f)
			}
		})
	}
}
