package rules

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
	"github.com/imbot-dev/imbot/store"
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
// Replies are printed as "bot> text"; typing is shown as "bot is typing… (800ms)".
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

	e     *Engine
	in    *bufio.Scanner
	out   io.Writer
	conv  store.ConversationState
	why   []string
	turn  int
	at    time.Time
	ended bool // the session ended: the next message starts a new one
}

// NewChat returns a shell that reads lines from in and writes to out.
func NewChat(e *Engine, in io.Reader, out io.Writer) *Chat {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	return &Chat{
		Peer: bot.Peer{URI: "sip:you@localhost", User: "you", Domain: "localhost", DisplayName: "You", Verified: true},
		e:    e, in: sc, out: out, Prompt: "you> ", at: e.opts.clock(),
	}
}

// now is the time by the engine's clock (Options.Now), for the session's start.
func (c *Chat) now() time.Time { return c.e.opts.clock() }

const chatKey = "chat"

// Run starts the session (the rules' greeting, if any) and reads lines until the input ends,
// /quit, or ctx is done.
func (c *Chat) Run(ctx context.Context) error {
	fmt.Fprintf(c.out, "Chatting with %d rules (%s). Type /help for commands.\n", c.e.Rules().Len(), strings.Join(c.e.Rules().Files(), ", "))
	if err := c.event(ctx, Input{Kind: bot.EventSessionStart}); err != nil {
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
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "/") {
			quit, err := c.command(ctx, line)
			if err != nil || quit {
				return err
			}
			continue
		}
		if c.ended {
			c.ended = false
			if err := c.event(ctx, Input{Kind: bot.EventSessionStart}); err != nil {
				return err
			}
		}
		c.turn++
		if err := c.event(ctx, Input{Kind: bot.EventMessage, Text: line}); err != nil {
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
	case "/state":
		fmt.Fprintf(c.out, "state: %s\n", stateName(c.conv.State))
	case "/vars":
		keys := slices.Sorted(maps.Keys(c.conv.Vars))
		shown := 0
		for _, k := range keys {
			if strings.HasPrefix(k, "_") {
				continue
			}
			b, _ := json.Marshal(c.conv.Vars[k])
			fmt.Fprintf(c.out, "  %s = %s\n", k, b)
			shown++
		}
		if shown == 0 {
			fmt.Fprintln(c.out, "no variables")
		}
	case "/reset":
		c.conv = store.ConversationState{}
		c.turn = 0
		c.at = c.now()
		c.why = nil
		fmt.Fprintln(c.out, "conversation forgotten; new session")
		return false, c.event(ctx, Input{Kind: bot.EventSessionStart})
	case "/start":
		return false, c.event(ctx, Input{Kind: bot.EventSessionStart})
	case "/idle":
		return false, c.event(ctx, Input{Kind: bot.EventIdle})
	case "/help":
		fmt.Fprintln(c.out, "/why /state /vars /reset /start /idle /quit; anything else is a message")
	default:
		fmt.Fprintf(c.out, "unknown command %s: try /help\n", cmd)
	}
	return false, nil
}

// event runs one event and prints what the bot does.
func (c *Chat) event(ctx context.Context, in Input) error {
	in.Key, in.SessionID, in.Mode, in.Peer, in.Turns, in.Started = chatKey, chatKey, bot.ModePage, c.Peer, c.turn, c.at
	out, err := c.e.Process(ctx, in, c.conv)
	if err != nil {
		fmt.Fprintf(c.out, "error: %v\n", err)
		c.why = []string{"error: " + err.Error()}
		return nil
	}
	c.conv = out.Conversation
	c.why = out.Why()
	for _, st := range out.Steps {
		for _, m := range st.Messages {
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
		if st.Handler != "" {
			rec := &recorder{}
			hctx := context.WithValue(ctx, infoKey{}, st.Info)
			ev := &bot.Event{Kind: in.Kind, Text: in.Text, Time: c.now()}
			if err := c.e.opts.Handlers[st.Handler].Handle(hctx, rec, ev); err != nil {
				fmt.Fprintf(c.out, "error: handler %s: %v\n", st.Handler, err)
			}
			for _, m := range rec.msgs {
				fmt.Fprintf(c.out, "bot> %s\n", m.Text)
			}
		}
	}
	if out.Pass && in.Kind == bot.EventMessage {
		fmt.Fprintln(c.out, "(no rule answered: the event would go on to the Go handlers)")
	}
	if out.End || in.Kind == bot.EventIdle {
		fmt.Fprintln(c.out, "(session ended; type to start a new one)")
		c.turn = 0
		c.at = c.now()
		c.ended = true
	}
	return nil
}
