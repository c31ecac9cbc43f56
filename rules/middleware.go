package rules

import (
	"context"
	"fmt"
	"strings"

	"github.com/imbot-dev/imbot/bot"
)

// Middleware returns the engine as bot middleware. For each event it loads the
// conversation's state from the store (by Conversation.Key), runs the rules, saves the state
// when a rule changed it, sends the replies (with typing when a rule asks for it), runs the Go
// handlers rules name, and ends the session when a rule says `end: true`. When no rule
// answered, or the last one that did has `continue: true`, the event goes on to next.
//
// A message whose text is empty or only white space is not for the rules: it goes on to next
// untouched, with no state loaded or saved, as over SIP, in `imbot chat` and in conversation
// tests alike. A rule that takes any message in a state (asking for a name, say) is not fed a
// blank answer.
//
// It is the one place where an Outcome is carried out: `imbot run` wraps the Go handlers with
// it, and the chat shell and the conversation-test runner call it with a recording
// Responder (bottest.Recorder), reading the outcome through WithOutcome.
//
// Place it before Go handlers so rules answer first, or after them (wrapping a fallback)
// so that Go handlers answer first:
//
//	chain := bot.Chain{recoverer, logger, engine.Middleware()}
//	b.Handle(chain.Then(goHandlers))
func (e *Engine) Middleware() bot.Middleware {
	return func(next bot.Handler) bot.Handler {
		if next == nil {
			next = bot.HandlerFunc(func(context.Context, bot.Responder, *bot.Event) error { return nil })
		}
		return bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
			return e.handle(ctx, w, ev, next)
		})
	}
}

func (e *Engine) handle(ctx context.Context, w bot.Responder, ev *bot.Event, next bot.Handler) error {
	rs := e.rs.Load() // in-flight events finish with the set they started with
	if ev.Session == nil {
		return next.Handle(ctx, w, ev)
	}
	if ev.Kind > bot.EventIdle || ev.Kind <= 0 {
		return next.Handle(ctx, w, ev) // a kind no rule names (a room's join and leave): for Go handlers
	}
	if ev.Kind != bot.EventMessage && ev.Kind != bot.EventIdle && len(rs.byKind[ev.Kind]) == 0 {
		return next.Handle(ctx, w, ev) // nothing to do: skip the store
	}
	if ev.Kind == bot.EventMessage && Blank(ev.Text) {
		return next.Handle(ctx, w, ev)
	}
	e.stats.events.Add(1)
	s := ev.Session
	in := Input{
		Kind: ev.Kind, Text: ev.Text, Typing: ev.Typing, Key: s.Key(), SessionID: s.ID(),
		Mode: s.Mode(), Peer: s.Peer(), Turns: s.Turns(), Started: s.Started(), Time: ev.Time,
	}
	conv, err := e.store.Load(ctx, in.Key)
	if err != nil {
		return fmt.Errorf("rules: loading conversation: %w", err)
	}
	out, err := rs.process(ctx, &e.opts, in, conv)
	if err != nil {
		return err
	}
	if out.Changed {
		if err := e.store.Save(ctx, in.Key, out.Conversation); err != nil {
			return fmt.Errorf("rules: saving conversation: %w", err)
		}
	}
	e.observe(ctx, w, ev, out)
	if f, ok := ctx.Value(outcomeKey{}).(func(*Outcome)); ok {
		f(out)
	}
	if err := e.perform(ctx, w, ev, out); err != nil {
		return err
	}
	if out.Pass {
		if len(out.Steps) == 0 {
			e.stats.noMatch.Add(1)
		}
		return next.Handle(ctx, w, ev)
	}
	return nil
}

// observe records on w (bot.SetAnswerer, bot.SetNoMatch), and tells Options.OnRule and
// Options.OnNoMatch, which rules answered and whether only fallbacks answered a message
// outside a flow.
func (e *Engine) observe(ctx context.Context, w bot.Responder, ev *bot.Event, out *Outcome) {
	matched := false
	for _, st := range out.Steps {
		bot.SetAnswerer(w, st.Rule)
		if e.opts.OnRule != nil {
			e.opts.OnRule(ctx, st.Rule)
		}
		matched = matched || !st.Fallback
	}
	// A message that passes on with no step may still be answered by a Go handler: only a
	// fallback's answer is a no-match the engine can be sure of. Inside a flow (a state other
	// than start), a fallback answers what the flow asked ("please answer yes or no"): the
	// user is being led, not misunderstood.
	inFlow := out.st != ""
	if ev.Kind == bot.EventMessage && !matched && !inFlow && len(out.Steps) > 0 {
		bot.SetNoMatch(w)
		if e.opts.OnNoMatch != nil {
			e.opts.OnNoMatch(ctx)
		}
	}
}

// perform sends an outcome's replies and runs its handlers.
func (e *Engine) perform(ctx context.Context, w bot.Responder, ev *bot.Event, out *Outcome) error {
	canReply := ev.Kind != bot.EventSessionEnd
	for _, st := range out.Steps {
		if canReply {
			for _, m := range st.Messages {
				var opts []bot.ReplyOption
				if m.Typing > 0 {
					opts = append(opts, bot.WithTyping(m.Typing))
				}
				if err := w.Reply(ctx, m.Text, opts...); err != nil {
					return fmt.Errorf("rules: rule '%s': %w", st.Rule, err)
				}
			}
		}
		if st.Invite != "" {
			if e.opts.Invite == nil {
				return fmt.Errorf("rules: rule '%s' invites %s, but rules.Options.Invite is not set", st.Rule, st.Invite)
			}
			if err := e.opts.Invite(ctx, ev, st.Invite); err != nil {
				return fmt.Errorf("rules: rule '%s': invite %s: %w", st.Rule, st.Invite, err)
			}
		}
		if st.Handler != "" {
			h := e.opts.Handlers[st.Handler]
			if h == nil {
				return fmt.Errorf("rules: rule '%s': handler '%s' is not registered", st.Rule, st.Handler)
			}
			hctx := ctx
			if st.Info != nil {
				hctx = context.WithValue(ctx, infoKey{}, st.Info)
			}
			if err := h.Handle(hctx, w, ev); err != nil {
				return fmt.Errorf("rules: handler '%s' (rule '%s'): %w", st.Handler, st.Rule, err)
			}
		}
	}
	if out.End {
		w.End()
	}
	return nil
}

type outcomeKey struct{}

// WithOutcome returns a copy of ctx under which Middleware hands f the outcome of each event
// it carries out, after the conversation is saved and before the replies are sent: which
// rules answered and why (Outcome.Why), the conversation after the event, whether the event
// goes on to the next handler. f is not called for an event the rules do not run on (a blank
// message, an event kind no rule takes). It must not change the outcome. The chat shell and
// the conversation-test runner read the rules' decisions with it.
func WithOutcome(ctx context.Context, f func(*Outcome)) context.Context {
	return context.WithValue(ctx, outcomeKey{}, f)
}

// Blank reports whether a message's text is empty or only white space: such a message is
// not for the rules (see Engine.Middleware).
func Blank(text string) bool { return strings.TrimSpace(text) == "" }
