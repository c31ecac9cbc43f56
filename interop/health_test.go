package interop

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/imbot-dev/imbot/bot"
)

// TestRawOptionsProbe: an OPTIONS outside a dialog, as Kamailio's dispatcher probes its
// destinations, gets 200 while Config.Health says the bot is healthy, and 503 with
// Retry-After and a Warning naming why while it does not.
func TestRawOptionsProbe(t *testing.T) {
	var sick atomic.Bool
	b := startBotConfig(t, func(c *bot.Config) {
		c.Health = func(context.Context) error {
			if sick.Load() {
				return errors.New("registration failed: 403 Forbidden")
			}
			return nil
		}
	})
	addr := b.Addr("udp")
	p := dialRaw(t, "udp", addr)
	probe := func() *rawMsg {
		t.Helper()
		return p.do(&rawReq{Method: "OPTIONS"}, addr)
	}
	requireStatus(t, probe(), 200)
	sick.Store(true)
	res := probe()
	requireStatus(t, res, 503)
	if res.header("Retry-After") == "" || !strings.Contains(res.header("Warning"), "registration failed") {
		t.Errorf("503 without Retry-After or a Warning that says why:\n%s", res)
	}
	sick.Store(false)
	requireStatus(t, probe(), 200)
}
