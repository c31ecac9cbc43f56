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

func TestOpenSession(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			rec := newRecorder()
			r := startBot(t, bot.Config{Identity: "sip:helpdesk@127.0.0.1"}, rec)
			p := newPeer(t, r, network, bottest.Options{AcceptSessions: true})
			ctx := testCtx(t)
			s, err := r.Open(ctx, p.URI()+";transport="+network)
			if err != nil {
				t.Fatal(err)
			}
			if s.Mode() != bot.ModeSession || s.Peer().User != "alice" {
				t.Errorf("session %v with %+v", s.Mode(), s.Peer())
			}
			ps, err := p.WaitSession(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(ps.SDP()), "m=message") {
				t.Errorf("offer %q", ps.SDP())
			}
			rec.waitFor(t, "session.start")
			if err := s.Send(ctx, "Your printer is fixed."); err != nil {
				t.Fatal(err)
			}
			if _, err := ps.WaitText(ctx, "Your printer is fixed."); err != nil {
				t.Fatal(err)
			}
			// The user answers in the session the bot opened: the same handler serves it.
			if res, err := ps.Send(ctx, "thanks"); err != nil || res.StatusCode != 200 {
				t.Fatalf("answered %v, %v", res, err)
			}
			if _, err := ps.WaitText(ctx, "echo: thanks"); err != nil {
				t.Fatal(err)
			}
			s.Close(ctx)
			select {
			case <-ps.Ended():
			case <-ctx.Done():
				t.Fatal("no BYE from the bot")
			}
			rec.waitFor(t, "session.end:closed")
		})
	}
}

func TestOpenSessionRefused(t *testing.T) {
	r := startBot(t, bot.Config{}, newRecorder())
	p := newPeer(t, r, "udp", bottest.Options{}) // does not take sessions: 480
	ctx := testCtx(t)
	_, err := r.Open(ctx, p.URI())
	var se *bot.SendError
	if !errors.As(err, &se) || se.Code != 480 {
		t.Fatalf("Open: %v, want a SendError 480", err)
	}
}
