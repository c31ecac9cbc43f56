package bot_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

func TestSend(t *testing.T) {
	cases := []struct {
		name    string
		status  int
		want    bot.Delivery
		wantErr int
	}{
		{"delivered", 200, bot.Delivered, 0},
		{"stored for later", 202, bot.Accepted, 0},
		{"offline", 480, 0, 480},
		{"unknown user", 404, 0, 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := startBot(t, bot.Config{Identity: "sip:notify@127.0.0.1"}, newRecorder())
			p := newPeer(t, r, "udp", bottest.Options{Respond: func(*sip.Request) int { return c.status }})
			ctx := testCtx(t)
			got, err := r.Send(ctx, p.URI(), "Your ticket 42 was updated.")
			var se *bot.SendError
			switch {
			case c.wantErr != 0 && (!errors.As(err, &se) || se.Code != c.wantErr):
				t.Fatalf("Send: %v, want a SendError %d", err, c.wantErr)
			case c.wantErr == 0 && err != nil:
				t.Fatal(err)
			case got != c.want:
				t.Errorf("Send = %v, want %v", got, c.want)
			}
			rec, err := p.WaitText(ctx, "Your ticket 42 was updated.")
			if err != nil {
				t.Fatal(err)
			}
			if from := rec.Request.From(); from.Address.User != "notify" {
				t.Errorf("From %v, want the bot's identity", from)
			}
		})
	}
}

func TestSendThroughOutboundProxy(t *testing.T) {
	proxy := bottest.NewPeer(t, bottest.Options{Bot: "127.0.0.1:9"}) // stands in for the proxy
	r := startBot(t, bot.Config{OutboundProxy: proxy.Addr()}, newRecorder())
	ctx := testCtx(t)
	if _, err := r.Send(ctx, "sip:carol@example.invalid", "hello via proxy"); err != nil {
		t.Fatal(err)
	}
	rec, err := proxy.WaitText(ctx, "hello via proxy")
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.Request.Recipient.String(); !strings.HasPrefix(got, "sip:carol@example.invalid") {
		t.Errorf("Request-URI %s, want the user's address", got)
	}
	if _, err := r.Send(ctx, "not a uri\r\nX: y", "x"); err == nil {
		t.Error("Send accepted an address with a line break")
	}
}
