package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/bot/bottest"
)

func TestSendCommand(t *testing.T) {
	cases := []struct {
		name   string
		status int
		exit   int
		out    string
	}{
		{"delivered", 200, 0, "delivered (200)"},
		{"accepted", 202, 3, "accepted for later delivery (202)"},
		{"refused", 404, 1, "refused: 404"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := bottest.NewPeer(t, bottest.Options{Bot: "127.0.0.1:9", Respond: func(*sip.Request) int { return c.status }})
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			var out, errOut bytes.Buffer
			code := run(ctx, []string{"send", "--to", p.URI(), "Disk", "almost", "full"}, &out, &errOut)
			if code != c.exit {
				t.Errorf("exit %d, want %d (stderr %q)", code, c.exit, errOut.String())
			}
			if all := out.String() + errOut.String(); !strings.Contains(all, c.out) {
				t.Errorf("output %q, want %q", all, c.out)
			}
			if _, err := p.WaitText(ctx, "Disk almost full"); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("usage", func(t *testing.T) {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{"send", "no recipient"}, &out, &errOut); code != 2 {
			t.Errorf("exit %d, want 2", code)
		}
	})
}
