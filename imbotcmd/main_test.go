package imbotcmd

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot/bottest"
)

func TestRunServesTheDemoRules(t *testing.T) {
	t.Chdir(t.TempDir()) // the default config keeps its database in the current folder
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	outR, outW := io.Pipe()
	var stderr bytes.Buffer
	exit := make(chan int, 1)
	go func() {
		code := run(runCtx, []string{"run", "-port", "0", "-log-level", "warn"}, outW, &stderr)
		outW.Close()
		exit <- code
	}()
	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil {
		t.Fatalf("no banner: %v (stderr: %s)", err, stderr.String())
	}
	go io.Copy(io.Discard, outR)
	m := regexp.MustCompile(`on udp (127\.0\.0\.1:\d+) and tcp (127\.0\.0\.1:\d+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("banner %q does not give the addresses", line)
	}
	for i, addr := range m[1:] {
		tp := []bottest.Transport{"udp", "tcp"}[i]
		p := bottest.NewPeer(t, bottest.Options{Bot: addr, Transport: tp, BotURI: "sip:imbot@" + addr})
		if _, err := p.SendPage(ctx, "help"); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Wait(ctx, func(r bottest.Record) bool {
			return r.Kind == bottest.KindText && strings.Contains(r.Text, "Reset a forgotten password")
		}); err != nil {
			t.Errorf("%s: no help from the demo rules: %v", tp, err)
		}
	}
	stop()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("imbot run exited %d; stderr: %s", code, stderr.String())
		}
	case <-ctx.Done():
		t.Fatal("imbot run did not stop on cancel")
	}
}

func TestCommandLine(t *testing.T) {
	t.Chdir(t.TempDir())
	cases := []struct {
		name string
		args []string
		code int
		out  string // expected in stdout or stderr
	}{
		{"no command", nil, 2, "Usage"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"version", []string{"version"}, 0, "imbot "},
		{"help", []string{"help"}, 0, "imbot run"},
		{"bad flag", []string{"run", "-nope"}, 1, "flag provided but not defined"},
		{"bad log level", []string{"run", "-port", "0", "-log-level", "loud"}, 1, "want debug, info, warn or error"},
		{"stray argument", []string{"run", "extra"}, 1, "unexpected arguments"},
		{"bad address", []string{"run", "-addr", "not-an-ip", "-port", "0"}, 1, "host must be an IP address"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), c.args, &out, &errOut)
			if code != c.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, c.code, errOut.String())
			}
			if all := out.String() + errOut.String(); !strings.Contains(all, c.out) {
				t.Errorf("output %q does not contain %q", all, c.out)
			}
		})
	}
}

// TestConfigCommand: imbot config prints the embedded default configuration, which loads.
func TestConfigCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"config"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !bytes.Equal(out.Bytes(), defaultConfig) {
		t.Fatalf("imbot config printed something other than the default configuration")
	}
	if _, err := parseConfig("imbot.yaml", out.Bytes()); err != nil {
		t.Fatalf("the printed configuration does not load: %v", err)
	}
}
