package rulestest_test

import (
	"testing"

	"github.com/imbot-dev/imbot/rules"
	"github.com/imbot-dev/imbot/rules/rulestest"
)

func TestDemo(t *testing.T) {
	rulestest.Run(t, rules.Options{FS: rules.Demo}, rules.DemoTestFile)
}
