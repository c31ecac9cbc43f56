// Package store holds what a bot keeps between events and across restarts: the state of each
// conversation (ConversationState, kept by a StateStore) and the records of a helpdesk:
// transcripts, tickets, questions no rule matched and satisfaction ratings. It defines the
// types shared by the stores (such as store/sqlite), by the rules engine that loads and saves
// conversation states (package rules) and by the handlers that write records (package
// handlers), and Memory, an in-memory implementation for tests and bots that need no
// persistence.
//
// Every store in this tree implements StateStore and the record interfaces of package
// handlers, so one value can be handed to the rules engine (rules.Options.Store) and to the
// handlers (handlers.TranscriptStore, handlers.TicketStore, ...):
//
//	db, err := sqlite.Open(ctx, "imbot.db")
//	if err != nil {
//		return err
//	}
//	defer db.Close()
//	engine, err := rules.New(rules.Options{Store: db}, "rules.yaml")
//	...
//	b.Use(handlers.Transcript(db))
package store

import (
	"errors"
	"time"
)

// ErrNotFound is returned when a record asked for by number or key does not exist.
var ErrNotFound = errors.New("store: not found")

// Direction says which way a message went, seen from the bot.
type Direction string

// Directions of a transcript entry.
const (
	// In is a message the peer sent to the bot.
	In Direction = "in"
	// Out is a message the bot sent to the peer.
	Out Direction = "out"
)

// TranscriptEntry is one message of a conversation, in or out. Typing notices are not
// transcribed.
type TranscriptEntry struct {
	// ID is assigned by the store; entries of one store are numbered in the order they
	// were appended.
	ID int64
	// SessionID identifies the session (bot.Conversation.ID) the message belongs to.
	SessionID string
	// Key is the conversation key (bot.Conversation.Key), stable across sessions and restarts.
	Key string
	// Direction is In for what the peer wrote, Out for what the bot (or an agent relayed by
	// the bot) sent.
	Direction Direction
	// Peer is the address of the peer of the conversation, such as "sip:alice@example.com".
	Peer string
	// Text is the message.
	Text string
	// Time is when the message was received or sent.
	Time time.Time
	// Answerer names the rule or handler that answered (or, for relayed messages, the
	// agent who wrote them); "" when unknown.
	Answerer string
}

// Ticket statuses. A store accepts any status text; these are the ones the bundled handlers
// use.
const (
	StatusOpen   = "open"
	StatusClosed = "closed"
)

// Ticket is a helpdesk ticket. Tickets are numbered by the store with sequential,
// human-friendly numbers (the first is 1001).
type Ticket struct {
	// Number is the ticket number, assigned by CreateTicket.
	Number int64
	// Key is the conversation key of the user who opened it.
	Key string
	// Peer is the user's address, such as "sip:alice@example.com".
	Peer string
	// Summary says what the problem is.
	Summary string
	// Urgency is free text such as "low", "normal" or "high".
	Urgency string
	// Status is StatusOpen when empty at creation.
	Status string
	// Assignee is who works on it (an agent's address), if anyone.
	Assignee string
	// Notes is free text, for example why the ticket was opened by the bot.
	Notes string
	// Created and Updated are set by the store.
	Created, Updated time.Time
}

// Unmatched is a question no rule or handler matched, kept so that rule authors can see what
// users ask.
type Unmatched struct {
	// ID is assigned by the store.
	ID int64
	// Key and SessionID identify the conversation.
	Key, SessionID string
	// Peer is who asked.
	Peer string
	// Text is the question.
	Text string
	// Time is when it was asked.
	Time time.Time
}

// Rating is a satisfaction rating given at the end of a conversation.
type Rating struct {
	// ID is assigned by the store.
	ID int64
	// Key and SessionID identify the conversation.
	Key, SessionID string
	// Peer is who rated.
	Peer string
	// Score is the rating, for example 1 to 5.
	Score int
	// Comment is optional free text.
	Comment string
	// Agent is the address of the agent whose handoff the rating follows; "" when it
	// follows none.
	Agent string
	// HandoffID is the number of that handoff (the #n agents saw); 0 when it follows none.
	HandoffID int64
	// Time is when the rating was given.
	Time time.Time
}
