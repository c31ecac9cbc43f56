package bottest_test

import (
	"os"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func init() {
	if os.Getenv("ZZ") != "" {
		sip.SIPDebug = true
	}
}

func TestZZ(t *testing.T) {}
