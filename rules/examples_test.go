package rules_test

import (
	"testing"

	"github.com/imbot-dev/imbot/rules"
	"github.com/imbot-dev/imbot/rules/rulestest"
)

// TestExamples runs the conversation tests of examples/rules.
func TestExamples(t *testing.T) {
	rulestest.Run(t, rules.Options{}, "../examples/rules/shop_test.yaml")
}
