package imbotcmd

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/bot"
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

func TestSendWaitPrintsTheReply(t *testing.T) {
	t.Chdir(t.TempDir())
	e := startEchoBot(t, bot.TrustConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"send", "--to", e.uri("udp"), "--wait", "5s", "are", "you", "there?"}, &out, &errOut)
	if code != exitDelivered {
		t.Fatalf("exit %d, want %d (stderr %q)", code, exitDelivered, errOut.String())
	}
	for _, want := range []string{"delivered (200)", "bot> echo: are you there?"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output %q, want %q (stderr %q)", out.String(), want, errOut.String())
		}
	}
}

func TestSendFrom(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want *regexp.Regexp // the From the peer sees
	}{
		{"default", nil, regexp.MustCompile(`^sip:[^@]+@127\.0\.0\.1:[1-9][0-9]*$`)},
		{"given", []string{"--from", "sip:ops@example.com"}, regexp.MustCompile(`^sip:ops@example\.com$`)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := bottest.NewPeer(t, bottest.Options{Bot: "127.0.0.1:9"})
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			var out, errOut bytes.Buffer
			args := append([]string{"send", "--to", p.URI()}, c.args...)
			if code := run(ctx, append(args, "hello"), &out, &errOut); code != exitDelivered {
				t.Fatalf("exit %d (stderr %q)", code, errOut.String())
			}
			r, err := p.WaitText(ctx, "hello")
			if err != nil {
				t.Fatal(err)
			}
			from := r.Request.From().Address
			from.UriParams, from.Headers = nil, nil
			if !c.want.MatchString(from.String()) {
				t.Errorf("From %q, want %s", from.String(), c.want)
			}
		})
	}
}
