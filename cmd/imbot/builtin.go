package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/imbot-dev/imbot/bot"
)

// builtinHandler answers when no rules are configured: a greeting, help, and an echo.
func builtinHandler() bot.Handler {
	return bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		switch ev.Kind {
		case bot.EventSessionStart:
			if ev.Session.Mode() == bot.ModeSession {
				return w.Reply(ctx, fmt.Sprintf("Hello %s! I am imbot. Type 'help' to see what I can do.", ev.Session.Peer().Name()))
			}
		case bot.EventMessage:
			text := strings.TrimSpace(ev.Text)
			switch strings.ToLower(text) {
			case "":
				return nil
			case "help", "?":
				return w.Reply(ctx, "I echo what you write. Commands: help, bye.")
			case "bye":
				if err := w.Reply(ctx, "Goodbye!"); err != nil {
					return err
				}
				w.End()
				return nil
			}
			return w.Reply(ctx, "echo: "+text)
		}
		return nil
	})
}
