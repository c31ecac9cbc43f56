package bot

import (
	"context"
	"time"
)

// Conversation is what a handler sees of the conversation an event belongs to
// (Event.Session): who the peer is, in which mode, since when, and a way to write to the peer
// outside of a handler. The bot's *Session implements it for both modes, an IM session (an
// INVITE dialog) and a page-mode conversation (a pair of addresses); bottest.Conversation
// implements it for unit tests with no SIP at all. Its methods are safe for concurrent use.
//
// Handlers that need more than this of a live conversation (Session.Close, Session.Local)
// test for a *Session with a type assertion, as net/http handlers test for an
// http.Flusher.
type Conversation interface {
	// ID identifies the conversation while it lasts: the dialog ID of an IM session, the
	// conversation key in page mode.
	ID() string
	// Key is "<bot AOR> <peer AOR>", stable across sessions and restarts: the key a store
	// keeps the conversation's state under. When the bot can verify identities
	// (TrustConfig.Proxies or Users) and the peer is not Verified, it is followed by
	// " unverified": a sender that only claims an address has its own conversation, apart
	// from the verified user of that address.
	Key() string
	// Mode is the conversation's dialect.
	Mode() Mode
	// Peer is who the bot is talking to.
	Peer() Peer
	// Started is when the conversation started.
	Started() time.Time
	// Turns is how many messages the peer has sent in the conversation, the one being
	// handled included.
	Turns() int
	// Send sends text to the peer outside of a handler, for example from a goroutine a
	// handler started for a long job; inside a handler use the Responder. It returns
	// ErrSessionEnded once the conversation has ended.
	Send(ctx context.Context, text string) error
	// Done returns a channel that is closed when the conversation has ended.
	Done() <-chan struct{}
}

var _ Conversation = (*Session)(nil)
