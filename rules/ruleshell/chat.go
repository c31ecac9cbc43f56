// Package ruleshell runs rules without SIP, through the engine's Middleware, as `imbot run`
// does: the interactive chat shell of `imbot chat` (Chat) and the conversation tests of `imbot
// test` and package rulestest (RunTestFiles). Events are built with package bottest and
// answered into a bottest.Recorder; which rule answered, and why, is read with
// rules.WithOutcome, and the conversation's state and variables from the engine's store.
package ruleshell

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/rules"
)

// Chat is an interactive shell against an engine's rules, with no SIP: what `imbot chat`
// runs. Each line the user types is a message; lines starting with / are commands:
//
//	/why     which rule answered the last event, and why
//	/state   the conversation state
//	/vars    the conversation variables
//	/reset   forget the conversation and start a new session
//	/start   send a session start event (the greeting)
//	/idle    send an idle timeout event (the farewell)
//	/help    list the commands
//	/quit    leave (end of input works too)
//
// Replies are printed as "bot> text"; typing is shown as "bot is typing… (800ms)". An empty
// line is a message with no text, as a blank message over SIP: the rules do not take it (see
// rules.Engine.Middleware).
//
// Each event goes through the engine's Middleware, wrapping no Go handler, with a
// bottest.Recorder as the Responder: the rules' replies, the Go handlers they name and the end
// of the session are carried out as `imbot run` carries them out. The conversation is kept in
// the engine's store.
type Chat struct {
	// Peer is who the user pretends to be. NewChat makes it Verified: the person at the
	// terminal runs the rules on their own machine and may be anyone they like, so rules that
	// grant something to verified senders (sender.verified) can be tried; set Verified false
	// to see what an unverified sender gets.
	Peer bot.Peer
	// Pace makes typing delays real: the shell waits before printing a reply.
	Pace bool
	// Prompt is printed before reading each line; "you> " by default.
	Prompt string

	e    *rules.Engine
	h    bot.Handler
	in   *bufio.Scanner
	out  io.Writer
	conv *conversation // the session; nil until the first event, and after it ends
	why  []string
}

// Key is the conversation key, and the session ID, of the chat shell's conversation in the
// engine's store.
const Key = "chat"

// NewChat returns a shell that reads lines from in and writes to out.
func NewChat(e *rules.Engine, in io.Reader, out io.Writer) *Chat {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	return &Chat{
		Peer: bot.Peer{URI: "sip:you@localhost", User: "you", Domain: "localhost", DisplayName: "You", Verified: true},
		e:    e, h: e.Middleware()(nil), in: sc, out: out, Prompt: "you> ",
	}
}

// conversation is a session of the shell or of a test: a bottest.Conversation with the peer
// exactly as the shell's Peer or the test's sender gives it.
type conversation struct {
	*bottest.Conversation
	peer bot.Peer
}

// Peer implements bot.Conversation.
func (c *conversation) Peer() bot.Peer { return c.peer }

// Run starts the session (the rules' greeting, if any) and reads lines until the input ends,
// /quit, or ctx is done.
func (c *Chat) Run(ctx context.Context) error {
	rs := c.e.Rules()
	fmt.Fprintf(c.out, "Chatting with %d rules (%s). Type /help for commands.\n", rs.Len(), strings.Join(rs.Files(), ", "))
	if err := c.event(ctx, bot.EventSessionStart, ""); err != nil {
		return err
	}
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fmt.Fprint(c.out, c.Prompt)
		if !c.in.Scan() {
			fmt.Fprintln(c.out)
			return c.in.Err()
		}
		line := strings.TrimSpace(c.in.Text())
		if strings.HasPrefix(line, "/") {
			quit, err := c.command(ctx, line)
			if err != nil || quit {
				return err
			}
			continue
		}
		if c.conv == nil {
			if err := c.event(ctx, bot.EventSessionStart, ""); err != nil {
				return err
			}
		}
		if err := c.event(ctx, bot.EventMessage, line); err != nil {
			return err
		}
	}
}

func (c *Chat) command(ctx context.Context, line string) (quit bool, err error) {
	cmd, _, _ := strings.Cut(line, " ")
	switch cmd {
	case "/quit", "/exit", "/q":
		return true, nil
	case "/why":
		if len(c.why) == 0 {
			fmt.Fprintln(c.out, "nothing happened yet")
		}
		for _, w := range c.why {
			fmt.Fprintln(c.out, "  "+w)
		}
	case "/state", "/vars":
		st, err := c.e.Store().Load(ctx, Key)
		if err != nil {
			return false, fmt.Errorf("loading the conversation: %w", err)
		}
		if cmd == "/state" {
			name := st.State
			if name == "" {
				name = rules.StartState
			}
			fmt.Fprintf(c.out, "state: %s\n", name)
			break
		}
		shown := 0
		for _, k := range slices.Sorted(maps.Keys(st.Vars)) {
			if strings.HasPrefix(k, "_") {
				continue
			}
			b, _ := json.Marshal(st.Vars[k])
			fmt.Fprintf(c.out, "  %s = %s\n", k, b)
			shown++
		}
		if shown == 0 {
			fmt.Fprintln(c.out, "no variables")
		}
	case "/reset":
		if err := c.e.Store().Delete(ctx, Key); err != nil {
			return false, fmt.Errorf("forgetting the conversation: %w", err)
		}
		c.conv, c.why = nil, nil
		fmt.Fprintln(c.out, "conversation forgotten; new session")
		return false, c.event(ctx, bot.EventSessionStart, "")
	case "/start":
		return false, c.event(ctx, bot.EventSessionStart, "")
	case "/idle":
		return false, c.event(ctx, bot.EventIdle, "")
	case "/help":
		fmt.Fprintln(c.out, "/why /state /vars /reset /start /idle /quit; anything else is a message")
	default:
		fmt.Fprintf(c.out, "unknown command %s: try /help\n", cmd)
	}
	return false, nil
}

// event runs one event through the engine's Middleware and prints what the bot does.
func (c *Chat) event(ctx context.Context, kind bot.EventKind, text string) error {
	if c.conv == nil {
		bc := bottest.NewConversation(bottest.WithKey(Key), bottest.WithID(Key), bottest.WithMode(bot.ModePage), bottest.WithStarted(c.e.Now()))
		c.conv = &conversation{Conversation: bc, peer: c.Peer}
	}
	ev := c.conv.Event(kind, text)
	ev.Session, ev.Time = c.conv, c.e.Now()
	rec := bottest.NewRecorder()
	var out *rules.Outcome
	err := c.h.Handle(rules.WithOutcome(ctx, func(o *rules.Outcome) { out = o }), rec, ev)
	if out != nil {
		c.why = out.Why()
	} else {
		c.why = []string{fmt.Sprintf("no rule takes %s events", kind)}
		if kind == bot.EventMessage {
			c.why = []string{"a blank message is not for the rules: it goes on to the Go handlers"}
		}
	}
	for _, m := range rec.Messages() {
		if m.Typing > 0 {
			fmt.Fprintf(c.out, "bot is typing… (%v)\n", m.Typing)
			if c.Pace {
				select {
				case <-time.After(m.Typing):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		fmt.Fprintf(c.out, "bot> %s\n", m.Text)
	}
	if err != nil {
		fmt.Fprintf(c.out, "error: %v\n", err)
		c.why = []string{"error: " + err.Error()}
		return nil
	}
	if (out == nil || out.Pass) && kind == bot.EventMessage {
		fmt.Fprintln(c.out, "(no rule answered: the event would go on to the Go handlers)")
	}
	if rec.Ended() || kind == bot.EventIdle {
		fmt.Fprintln(c.out, "(session ended; type to start a new one)")
		c.conv = nil
	}
	return nil
}
