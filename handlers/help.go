package handlers

import (
	"context"
	"strings"

	"github.com/imbot-dev/imbot/bot"
)

// HelpTopic is one thing the bot can do, as listed by Help. The rules engine makes one per
// rule with a description; Go handlers add their own.
type HelpTopic struct {
	// Name identifies the topic (a rule or handler name); it is not shown.
	Name string
	// Description says what the topic does, in the user's words: "Reset a forgotten
	// password". Topics without one are not listed.
	Description string
	// Examples are things a user may write; the first one is shown.
	Examples []string
	// Hidden keeps the topic out of the list.
	Hidden bool
}

// helpWords are the messages Help answers.
var helpWords = map[string]bool{"help": true, "?": true, "/help": true}

// Help returns middleware that answers "help", "?" and "/help" (in any case, with spaces
// around) with the list of topics, one line each with its first example:
//
//	I can help with:
//	- Reset a forgotten password (for example: "I forgot my password")
//	- Check the status of a ticket
//
// topics is called for every help request, so the list follows rule reloads. Other messages
// go on to the next handler.
func Help(topics func() []HelpTopic) bot.Middleware {
	return func(next bot.Handler) bot.Handler {
		return bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
			if ev.Kind != bot.EventMessage || !helpWords[strings.ToLower(strings.TrimSpace(ev.Text))] {
				return next.Handle(ctx, w, ev)
			}
			var list []HelpTopic
			if topics != nil {
				list = topics()
			}
			bot.SetAnswerer(w, "help")
			return w.Reply(ctx, HelpText(list))
		})
	}
}

// HelpText formats topics as Help shows them.
func HelpText(topics []HelpTopic) string {
	var b strings.Builder
	for _, t := range topics {
		if t.Hidden || strings.TrimSpace(t.Description) == "" {
			continue
		}
		b.WriteString("\n- ")
		b.WriteString(strings.TrimSpace(t.Description))
		if len(t.Examples) > 0 && strings.TrimSpace(t.Examples[0]) != "" {
			b.WriteString(` (for example: "`)
			b.WriteString(strings.TrimSpace(t.Examples[0]))
			b.WriteString(`")`)
		}
	}
	if b.Len() == 0 {
		return "I have no topics to list yet. Just tell me what you need."
	}
	return "I can help with:" + b.String()
}
