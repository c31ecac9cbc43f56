package handlers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/store"
)

// restart ends the rig's Handoff as a stopping process does and starts a new one on the same
// store, resumed by Restore; the users' conversations end with the process.
func (r *hoRig) restart(cfg HandoffConfig) {
	r.t.Helper()
	r.h.Close()
	r.mu.Lock()
	r.convs = map[string]*rigConv{}
	r.mu.Unlock()
	cfg.Store = r.mem
	r.build(cfg)
	if err := r.h.Restore(testCtx(r.t)); err != nil {
		r.t.Fatal(err)
	}
}

// TestHandoffRestoreAccepted: an accepted handoff survives a restart. Both sides are told it
// continues; the agent's lines reach the user (a verified user by a page-mode message, an
// unverified one when it writes again, the agent being told so), the user's lines reach the
// agent and not the bot, and /done ends it.
func TestHandoffRestoreAccepted(t *testing.T) {
	const alice = "sip:alice@x"
	tests := []struct {
		name     string
		verified bool
	}{
		{"verified user", true},
		{"unverified user", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, HandoffConfig{})
			r.restart(HandoffConfig{}) // from an empty store
			if tt.verified {
				r.verify(alice)
			}
			expect(t, "trigger", r.say(alice, "I want a human"), "find a person")
			expect(t, "accept", r.say(agent1, "/accept"), "You are now talking with alice (#1)")
			r.d.wait(t, testCtx(t), alice, "Ann is now with you")

			r.restart(HandoffConfig{})
			r.d.wait(t, testCtx(t), agent1, "helpdesk restarted", "#1 with alice continues")
			if l := r.h.List(); len(l) != 1 || !l[0].Accepted || l[0].Agent != agent1 || l[0].ID != 1 {
				t.Fatalf("List after restart = %+v", l)
			}
			if tt.verified {
				r.d.wait(t, testCtx(t), alice, "helpdesk restarted", "#1 with Ann continues")
				before := r.d.dialCount(alice)
				expect(t, "agent writes", r.say(agent1, "still there?"))
				r.d.wait(t, testCtx(t), alice, "Ann: still there?")
				if n := r.d.dialCount(alice); n != before+1 {
					t.Errorf("the relay to alice went out by %d page-mode messages, want 1", n-before)
				}
				expect(t, "user writes", r.say(alice, "yes"))
			} else {
				expect(t, "agent writes", r.say(agent1, "still there?"), "is not verified: the bot can write to them only once they write again")
				if n := r.d.dialCount(alice); n != 0 {
					t.Errorf("%d page-mode messages to an unverified user's claimed address", n)
				}
				expect(t, "user writes", r.say(alice, "yes"), "#1 with Ann continues", "Ann: still there?")
			}
			r.d.wait(t, testCtx(t), agent1, "#1 alice: yes")
			un, _ := r.mem.Unmatched(context.Background(), 0)
			if len(un) != 0 {
				t.Errorf("the user's line reached the bot: unmatched %+v", un)
			}
			expect(t, "done", r.say(agent1, "/done"), "Conversation #1 with alice ended")
			expect(t, "bot back", r.say(alice, "thanks"), "echo: thanks")
			if hs, _ := r.mem.Handoffs(context.Background()); len(hs) != 0 {
				t.Errorf("stored handoffs after /done: %+v", hs)
			}
		})
	}
}

// TestHandoffRestoreOffer: an offer open at the restart can be accepted after it, and the
// user's words written while waiting reach the agent.
func TestHandoffRestoreOffer(t *testing.T) {
	const alice = "sip:alice@x"
	r := newRig(t, HandoffConfig{})
	r.restart(HandoffConfig{})
	r.verify(alice)
	r.say(alice, "agent please")
	r.d.wait(t, testCtx(t), agent1, "#1 alice", "/accept 1")
	expect(t, "waiting", r.say(alice, "it is urgent"))

	r.restart(HandoffConfig{})
	r.d.wait(t, testCtx(t), agent1, "helpdesk restarted", "#1 alice", "/accept 1")
	r.d.wait(t, testCtx(t), alice, "helpdesk restarted", "still looking")
	expect(t, "accept", r.say(agent1, "/accept 1"), "You are now talking with alice (#1)", "#1 alice: it is urgent")
	r.d.wait(t, testCtx(t), alice, "Ann is now with you")
	hs, _ := r.mem.Handoffs(context.Background())
	if len(hs) != 1 || hs[0].State != store.HandoffAccepted || hs[0].Agent != agent1 || !hs[0].Deadline.IsZero() || len(hs[0].Pending) != 0 {
		t.Errorf("stored after accept: %+v", hs)
	}
}

// TestHandoffRestoreDeadline: a deadline runs on after a restart for the time it had left;
// one already past ends the handoff during Restore: the user is told, a ticket is opened, the
// offer is withdrawn.
func TestHandoffRestoreDeadline(t *testing.T) {
	const alice = "sip:alice@x"
	tests := []struct {
		name   string
		left   time.Duration // of the deadline at the restart
		atOnce bool
	}{
		{"already past", -time.Minute, true},
		{"time left", time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, HandoffConfig{})
			r.restart(HandoffConfig{})
			r.verify(alice)
			r.say(alice, "can I talk to an agent?")
			r.d.wait(t, testCtx(t), agent1, "#1")
			r.h.Close()
			hs, err := r.mem.Handoffs(context.Background())
			if err != nil || len(hs) != 1 {
				t.Fatalf("stored: %+v, %v", hs, err)
			}
			hs[0].Deadline = time.Now().Add(tt.left)
			if err := r.mem.SaveHandoff(context.Background(), hs[0]); err != nil {
				t.Fatal(err)
			}

			r.restart(HandoffConfig{})
			_, err = r.mem.Ticket(context.Background(), 1001)
			if got := err == nil; got != tt.atOnce {
				t.Fatalf("ticket right after Restore: %v, want %v", got, tt.atOnce)
			}
			text := r.d.wait(t, testCtx(t), alice, "nobody is available", "ticket #1001")
			r.d.wait(t, testCtx(t), agent1, "#1 alice is no longer waiting")
			if tt.atOnce {
				for _, s := range r.d.texts(alice) {
					if strings.Contains(s, "restarted") {
						t.Errorf("told to wait for a handoff that ended: %q", s)
					}
				}
			}
			tk, err := r.mem.Ticket(context.Background(), 1001)
			if err != nil || !strings.Contains(tk.Summary, "can I talk to an agent?") || tk.Peer != alice {
				t.Errorf("ticket = %+v, %v (user told %q)", tk, err, text)
			}
			if hs, _ := r.mem.Handoffs(context.Background()); len(hs) != 0 {
				t.Errorf("stored handoffs after the timeout: %+v", hs)
			}
			expect(t, "bot back", r.say(alice, "ok"), "echo: ok")
		})
	}
}

// TestHandoffRestoreNumbering: numbers continue after the highest one given before the
// restart, even when its handoff ended.
func TestHandoffRestoreNumbering(t *testing.T) {
	r := newRig(t, HandoffConfig{})
	r.restart(HandoffConfig{})
	r.say("sip:alice@x", "agent")
	r.d.wait(t, testCtx(t), agent1, "#1 alice")
	r.say(agent1, "/accept")
	r.say("sip:bob@x", "agent")
	r.d.wait(t, testCtx(t), agent2, "#2 bob")
	r.say(agent2, "/accept")
	expect(t, "done", r.say(agent2, "/done"), "Conversation #2 with bob ended")

	r.restart(HandoffConfig{})
	r.say("sip:carol@x", "agent")
	r.d.wait(t, testCtx(t), agent2, "#3 carol", "/accept 3")
}

// TestHandoffRestoreEnded: a handoff its agent ended stays in the Store until the user's next
// message, which a restarted bot (or another instance that leads) still knows to be the
// answer to the survey: EndedHandoff names the handoff and its agent. Then it is gone.
func TestHandoffRestoreEnded(t *testing.T) {
	const alice = "sip:alice@x"
	r := newRig(t, HandoffConfig{})
	r.restart(HandoffConfig{})
	r.verify(alice)
	expect(t, "trigger", r.say(alice, "I want a human"), "find a person")
	expect(t, "accept", r.say(agent1, "/accept"), "You are now talking with alice (#1)")
	expect(t, "done", r.say(agent1, "/done"), "Conversation #1 with alice ended")
	hs, err := r.mem.Handoffs(context.Background())
	if err != nil || len(hs) != 1 || hs[0].State != store.HandoffEnded || hs[0].Agent != agent1 || hs[0].UserURI != alice {
		t.Fatalf("stored after /done: %+v, %v; want handoff 1 ended by %s", hs, err, agent1)
	}

	r.restart(HandoffConfig{})
	if l := r.h.List(); len(l) != 0 {
		t.Errorf("an ended handoff was restored as open: %+v", l)
	}
	r.next = Transcript(r.mem)(r.h.Middleware()(bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		if i, ok := EndedHandoff(ctx); ok {
			return w.Reply(ctx, fmt.Sprintf("rated #%d of %s", i.ID, i.Agent))
		}
		return w.Reply(ctx, "echo: "+ev.Text)
	})))
	expect(t, "the rating", r.say(alice, "5"), "rated #1 of "+agent1)
	expect(t, "then nothing", r.say(alice, "thanks"), "echo: thanks")
	if hs, _ := r.mem.Handoffs(context.Background()); len(hs) != 0 {
		t.Errorf("stored after the user's next message: %+v", hs)
	}
}
