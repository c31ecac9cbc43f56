package rules

import (
	"context"
	"time"

	"github.com/imbot-dev/imbot/bot"
)

// Info describes the event a rule is handling. Plugin functions and named Go handlers find it
// in their context with InfoFrom. It must not be modified.
type Info struct {
	// Rule is the name of the rule that matched ("" while conditions are evaluated).
	Rule string
	// Event is the kind of event.
	Event bot.EventKind
	// Text is the message text.
	Text string
	// Match holds the rule's captures: named ones and star1, star2, ... (group1, ... for
	// regexes).
	Match map[string]string
	// State is the conversation state before the event ("start" for the initial state).
	State string
	// Vars are the conversation's variables (without the file's constants).
	Vars map[string]any
	// Sender is the peer.
	Sender bot.Peer
	// Key is the conversation key (bot.Conversation.Key).
	Key string
	// Now is the time the event is handled at, in the engine's location.
	Now time.Time

	budget *budget // what the event's expressions may still spend
}

type infoKey struct{}

// InfoFrom returns the Info of the event a rule is handling, when ctx came from the rules
// engine.
func InfoFrom(ctx context.Context) (*Info, bool) {
	i, ok := ctx.Value(infoKey{}).(*Info)
	return i, ok
}
