package rules_test

import (
	"context"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/rules"
	"github.com/imbot-dev/imbot/rules/ruleshell"
)

// verifiedRules answer differently whether the sender is verified or not.
const verifiedRules = `version: 1
rules:
  - name: account
    match: my account
    when: sender.verified
    reply: "Your account, {{ sender.user }}."
  - name: account-unverified
    match: my account
    when: "!sender.verified"
    reply: "I cannot verify who you are ({{ sender.verified }})."
`

// TestSenderVerified: sender.verified is the peer's Verified, through the middleware.
func TestSenderVerified(t *testing.T) {
	fsys := fstest.MapFS{"r.yaml": {Data: []byte(verifiedRules)}}
	e, err := rules.New(rules.Options{FS: fsys, Logger: slog.New(slog.DiscardHandler)}, "r.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h := e.Middleware()(nil)
	tests := []struct {
		name string
		opts []bottest.ConversationOption
		want []string
	}{
		{"verified", []bottest.ConversationOption{bottest.WithPeer("sip:alice@example.com"), bottest.Verified()}, []string{"Your account, alice."}},
		{"unverified", []bottest.ConversationOption{bottest.WithPeer("sip:alice@example.com")}, []string{"I cannot verify who you are (false)."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := bottest.NewRecorder()
			if err := h.Handle(context.Background(), w, bottest.NewEvent(bot.EventMessage, "my account", tt.opts...)); err != nil {
				t.Fatal(err)
			}
			if got := w.Replies(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("replies %q, want %q", got, tt.want)
			}
		})
	}
}

// TestConversationTestVerified: a conversation test sets whether its sender is verified
// (not by default), and refuses a value that is not a boolean.
func TestConversationTestVerified(t *testing.T) {
	tests := []struct {
		name    string
		sender  string
		reply   string
		loadErr string // "" = the file loads
	}{
		{"verified", "{user: alice, domain: example.com, verified: true}", "Your account, alice.", ""},
		{"not verified", "{uri: 'sip:alice@example.com', verified: false}", "I cannot verify who you are (false).", ""},
		{"default", "{user: alice}", "I cannot verify who you are (false).", ""},
		{"not a boolean", "{user: alice, verified: maybe}", "", "'verified' must be true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			test := "version: 1\nrules: [r.yaml]\ntests:\n  - name: t\n    sender: " + tt.sender +
				"\n    steps:\n      - user: my account\n        bot: \"" + tt.reply + "\"\n"
			fsys := fstest.MapFS{"r.yaml": {Data: []byte(verifiedRules)}, "r_test.yaml": {Data: []byte(test)}}
			res, err := ruleshell.RunTestFiles(rules.Options{FS: fsys}, "r_test.yaml")
			if tt.loadErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.loadErr) {
					t.Fatalf("err = %v, want one that says %q", err, tt.loadErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != 1 || !res[0].Passed() {
				t.Errorf("results %+v", res)
			}
		})
	}
}
