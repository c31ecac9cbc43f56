package imbotcmd

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/handlers"
)

// TestCheckReportsSectionErrors: imbot check prints the errors of the handlers' sections with
// their positions.
func TestCheckReportsSectionErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "imbot.yaml")
	yaml := "ratelimit:\n  every: -1s\nhandoff:\n  agents:\n    - {uri: bob}\n  offer_mode: many\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"check", "--config", path}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1; stdout %s stderr %s", code, &stdout, &stderr)
	}
	out := stdout.String() + stderr.String()
	for _, w := range []string{
		path + ":5:5: handoff.agents: agent 1: URI: \"bob\" is not a SIP address",
		path + ":6:15: handoff.offer_mode: \"many\": want one",
		path + ":2:10: ratelimit.every: -1s: must not be negative",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output\n%s\ndoes not contain\n%s", out, w)
		}
	}
}

// TestHandoffTriggersFromConfig: a config without handoff.triggers gets the handoff's default
// triggers, as the default config writes them; an empty list means none.
func TestHandoffTriggersFromConfig(t *testing.T) {
	const agents = "handoff:\n  agents: [{uri: \"sip:ann@example.com\"}]\n"
	cases := []struct {
		name      string
		yaml      string
		triggered bool // "I want a human" starts a handoff
	}{
		{"left out", agents, true},
		{"null", agents + "  triggers:\n", true},
		{"empty", agents + "  triggers: []\n", false},
		{"own", agents + "  triggers: [operator]\n", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fc, err := parseConfig("cfg.yaml", []byte(c.yaml))
			if err != nil {
				t.Fatal(err)
			}
			hc := fc.handoffConfig()
			hc.Dialer, hc.Logger = nopDialer{}, slog.New(slog.DiscardHandler)
			ho, err := handlers.NewHandoff(hc)
			if err != nil {
				t.Fatal(err)
			}
			defer ho.Close()
			w := bottest.NewRecorder()
			ev := bottest.NewEvent(bot.EventMessage, "I want a human", bottest.WithPeer("sip:user@example.com"))
			next := bot.HandlerFunc(func(context.Context, bot.Responder, *bot.Event) error { return nil })
			if err := ho.Middleware()(next).Handle(context.Background(), w, ev); err != nil {
				t.Fatal(err)
			}
			searching := slices.Contains(w.Replies(), handlers.DefaultHandoffTexts.Searching)
			if searching != c.triggered {
				t.Errorf("handoff started: %v, want %v (replies %q)", searching, c.triggered, w.Replies())
			}
		})
	}
	fc, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fc.Handoff.Triggers, handlers.DefaultHandoffTriggers(); !slices.Equal(got, want) {
		t.Errorf("default config triggers %q, the handoff's default %q", got, want)
	}
}

// nopDialer sends nothing.
type nopDialer struct{}

func (nopDialer) Send(context.Context, string, string) (bot.Delivery, error) {
	return bot.Delivered, nil
}

// TestCheckPostgresDSN: imbot check says which variable to set for a postgres store whose
// DSN is missing from the environment, and passes once it is set, without connecting.
func TestCheckPostgresDSN(t *testing.T) {
	path := filepath.Join(t.TempDir(), "imbot.yaml")
	if err := os.WriteFile(path, []byte("store:\n  driver: postgres\n  dsn_env: IMBOT_TEST_CHECK_DSN\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"check", "--config", path}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1; stdout %s stderr %s", code, &stdout, &stderr)
	}
	if want := path + ": store.dsn_env: the environment variable IMBOT_TEST_CHECK_DSN is not set"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr\n%s\ndoes not contain\n%s", &stderr, want)
	}
	t.Setenv("IMBOT_TEST_CHECK_DSN", "postgres://imbot@127.0.0.1:1/imbot")
	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), []string{"check", "--config", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d with the variable set, want 0; stdout %s stderr %s", code, &stdout, &stderr)
	}
}

// TestClusterAddress: where the other instances reach this one, for a helpdesk on several
// instances: cluster.address when set (and a SIP address of an instance), else the first
// listen address when it names an IP (the advertise host when it does not); a clustered
// helpdesk with none is refused with its key.
func TestClusterAddress(t *testing.T) {
	const clustered = "store: {driver: postgres}\nhandoff: {agents: [{uri: \"sip:ann@example.com\"}]}\n"
	for _, c := range []struct {
		name, yaml string
		want       string // the address, or the error's words
		bad        bool
	}{
		{"set", clustered + "cluster: {address: \"sip:10.0.0.11:5060\"}\n", "sip:10.0.0.11:5060", false},
		{"set with a transport", clustered + "cluster: {address: \"sip:10.0.0.11:5060;transport=tcp\"}\n", "sip:10.0.0.11:5060;transport=tcp", false},
		{"from listen", clustered + "listen: [\"udp://10.0.0.11:5070\"]\n", "sip:10.0.0.11:5070", false},
		{"from a TCP listen", clustered + "listen: [\"tcp://10.0.0.11:5070\"]\n", "sip:10.0.0.11:5070;transport=tcp", false},
		{"from advertise", clustered + "listen: [\"udp://0.0.0.0:5070\"]\nadvertise: \"bot.example.com:5090\"\n", "sip:bot.example.com:5070", false},
		{"listening everywhere", clustered + "listen: [\"udp://0.0.0.0:5070\"]\n", "cluster.address: set it to this instance's SIP address", true},
		{"a user part", clustered + "cluster: {address: \"sip:bot@10.0.0.11\"}\n", "cluster.address: \"sip:bot@10.0.0.11\": want this instance's SIP address", true},
		{"not postgres", "cluster: {address: \"sip:10.0.0.11:5060\"}\n", "set store.driver to postgres", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			fc, err := parseConfig("imbot.yaml", []byte(c.yaml))
			if c.bad {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("parseConfig: %v, want an error with %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, err := fc.clusterAddress(); err != nil || got != c.want {
				t.Errorf("clusterAddress() = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}
