package rules_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/rules"
	"github.com/imbot-dev/imbot/store"
)

const inviteFile = `version: 1
vars: {supervisor: "sip:sam@example.com"}
rules:
  - name: supervisor
    match: ["* supervisor*"]
    reply: "Asking {{ vars.supervisor }}."
    invite: "{{ vars.supervisor }}"
  - name: only-invite
    match: ["colleague"]
    invite: "sip:cy@example.com"
`

// TestInvite: a rule's `invite:` renders its address and hands it to Options.Invite after the
// rule's replies; a rule may do nothing else; without Options.Invite, or when it fails, the
// event fails.
func TestInvite(t *testing.T) {
	failed := errors.New("unreachable")
	tests := map[string]struct {
		text    string
		hook    func(got *[]string) func(context.Context, *bot.Event, string) error
		replies []string
		invited []string
		err     string
	}{
		"after the reply": {
			text: "I want a supervisor", replies: []string{"Asking sip:sam@example.com."}, invited: []string{"sip:sam@example.com"},
			hook: func(got *[]string) func(context.Context, *bot.Event, string) error {
				return func(_ context.Context, ev *bot.Event, to string) error {
					*got = append(*got, to)
					return nil
				}
			},
		},
		"invite alone": {
			text: "colleague", invited: []string{"sip:cy@example.com"},
			hook: func(got *[]string) func(context.Context, *bot.Event, string) error {
				return func(_ context.Context, _ *bot.Event, to string) error {
					*got = append(*got, to)
					return nil
				}
			},
		},
		"no hook": {text: "I want a supervisor", replies: []string{"Asking sip:sam@example.com."}, err: "Options.Invite is not set"},
		"hook fails": {
			text: "colleague", err: "unreachable",
			hook: func(*[]string) func(context.Context, *bot.Event, string) error {
				return func(context.Context, *bot.Event, string) error { return failed }
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var invited []string
			opts := rules.Options{FS: fstest.MapFS{"r.yaml": {Data: []byte(inviteFile)}}, Store: &store.Memory{}, Logger: slog.New(slog.DiscardHandler)}
			if tc.hook != nil {
				opts.Invite = tc.hook(&invited)
			}
			e, err := rules.New(opts, "r.yaml")
			if err != nil {
				t.Fatal(err)
			}
			rec := bottest.NewRecorder()
			err = e.Middleware()(nil).Handle(context.Background(), rec, bottest.NewEvent(bot.EventMessage, tc.text))
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("error: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one with %q", err, tc.err)
			}
			if got := rec.Replies(); !slices.Equal(got, tc.replies) {
				t.Errorf("replies %q, want %q", got, tc.replies)
			}
			if !slices.Equal(invited, tc.invited) {
				t.Errorf("invited %q, want %q", invited, tc.invited)
			}
		})
	}
}
