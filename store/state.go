package store

import (
	"context"
	"maps"
	"time"
)

// ConversationState is what a conversation keeps between events: where a multi-step flow is
// and the variables it collected. The rules engine loads it before an event and saves it when
// a rule changed it. Values must be encodable as JSON (strings, numbers, bools, lists and maps
// of those) so that any StateStore can keep them.
type ConversationState struct {
	// State is the current step of a flow; "" is the initial state.
	State string
	// Vars are the conversation's variables.
	Vars map[string]any
	// Updated is when the state was last saved.
	Updated time.Time
}

// Clone returns a deep enough copy: the Vars map is copied (its values are shared).
func (c ConversationState) Clone() ConversationState {
	c.Vars = maps.Clone(c.Vars)
	return c
}

// StateStore keeps conversation states by conversation key (bot.Conversation.Key), so that a
// conversation can continue after its session ended or the bot restarted. Implementations must
// be safe for concurrent use. Events of one conversation are handled one at a time, so a
// Load, then a Save, of one key never race with each other inside one bot process.
//
// Memory, store/sqlite and store/postgres implement it.
type StateStore interface {
	// Load returns the state saved under key, or a zero ConversationState and no error when
	// there is none.
	Load(ctx context.Context, key string) (ConversationState, error)
	// Save stores c under key, replacing what was there.
	Save(ctx context.Context, key string, c ConversationState) error
	// Delete forgets key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}
