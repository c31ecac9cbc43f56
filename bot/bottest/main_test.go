package bottest_test

import (
	"log/slog"
	"os"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestMain(m *testing.M) {
	// sipgo logs some warnings ("TCP ref went negative") through its global
	// default logger, whatever the per-component loggers are.
	if os.Getenv("BOTTEST_SIPGO_LOG") == "" {
		sip.SetDefaultLogger(slog.New(slog.DiscardHandler))
	}
	os.Exit(m.Run())
}
