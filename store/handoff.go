package store

import (
	"context"
	"slices"
	"time"
)

// Handoff states: where a handoff in progress stands.
const (
	// HandoffWaiting is a user waiting in line for a free agent.
	HandoffWaiting = "waiting"
	// HandoffOffered is a handoff offered to an agent who has not accepted it yet.
	HandoffOffered = "offered"
	// HandoffAccepted is a handoff an agent accepted: the two talk through the bot.
	HandoffAccepted = "accepted"
	// HandoffEnded is a handoff its agent ended, kept until the user's next message (which
	// may rate it: handlers.EndedHandoff) or the end of the user's conversation.
	HandoffEnded = "ended"
)

// Handoff is a handoff to a human agent in progress (see handlers.Handoff), as a
// HandoffStore keeps it: what a restarted bot needs to resume it.
type Handoff struct {
	// ID is the number agents know it by (#n).
	ID int64
	// UserKey is the user's conversation key (bot.Conversation.Key).
	UserKey string
	// UserURI is the user's address; Verified says whether the bot verified it.
	UserURI  string
	Verified bool
	// UserName is the user's name as agents see it.
	UserName string
	// Reason is the message that started the handoff.
	Reason string
	// State is HandoffWaiting, HandoffOffered, HandoffAccepted or HandoffEnded.
	State string
	// Agent is the address of the agent it is offered to (the first one, when offered to
	// several) or accepted by; "" while waiting.
	Agent string
	// Offered are the addresses of the agents holding the offer now, while State is
	// HandoffOffered: one agent, or several when offers go to every free agent at once.
	Offered []string
	// OfferDeadline is when the current offer moves on to another agent; zero when it does
	// not (accepted, waiting in line, offered to every free agent, or no offer timeout).
	OfferDeadline time.Time
	// Lapsed are the addresses of the agents whose offer moved on unanswered, the one it left
	// longest ago first: the offer goes back to them only after every other free agent.
	Lapsed []string
	// Deadline is when the user stops waiting for an agent to accept (then a ticket is
	// opened); zero once accepted.
	Deadline time.Time
	// Started is when the user asked.
	Started time.Time
	// Tried are the addresses of the agents that passed or could not be reached.
	Tried []string
	// Pending are the user's messages written before an agent accepted, kept for the agent.
	Pending []string
}

// Clone returns a copy that shares no slices with h.
func (h Handoff) Clone() Handoff {
	h.Tried = slices.Clone(h.Tried)
	h.Offered = slices.Clone(h.Offered)
	h.Lapsed = slices.Clone(h.Lapsed)
	h.Pending = slices.Clone(h.Pending)
	return h
}

// HandoffStore keeps the handoffs in progress, so that a restarted bot resumes them
// (handlers.HandoffConfig.Store). Implementations must be safe for concurrent use. Memory,
// store/sqlite and store/postgres implement it.
type HandoffStore interface {
	// SaveHandoff stores h under h.ID, replacing what was there, and raises the number
	// LastHandoffID reports to h.ID when it is lower.
	SaveHandoff(ctx context.Context, h Handoff) error
	// DeleteHandoff forgets the handoff id (it ended); deleting a missing one is not an
	// error. LastHandoffID is not lowered.
	DeleteHandoff(ctx context.Context, id int64) error
	// Handoffs returns the stored handoffs, by ID.
	Handoffs(ctx context.Context) ([]Handoff, error)
	// LastHandoffID returns the highest ID ever saved, deleted ones included; 0 when none
	// was: numbering continues after it.
	LastHandoffID(ctx context.Context) (int64, error)
}
