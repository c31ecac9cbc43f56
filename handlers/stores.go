package handlers

import (
	"context"

	"github.com/imbot-dev/imbot/store"
)

// TranscriptStore keeps the transcript of conversations. store/sqlite's *DB and
// *store.Memory implement it.
type TranscriptStore interface {
	// AppendTranscript adds one message to the transcript.
	AppendTranscript(ctx context.Context, e store.TranscriptEntry) error
	// Transcript returns the last limit messages of the conversation key (all when limit
	// <= 0), oldest first.
	Transcript(ctx context.Context, key string, limit int) ([]store.TranscriptEntry, error)
}

// TicketStore creates helpdesk tickets. store/sqlite's *DB and *store.Memory implement it.
type TicketStore interface {
	// CreateTicket stores a new ticket and returns its number.
	CreateTicket(ctx context.Context, t store.Ticket) (int64, error)
}

// UnmatchedStore keeps the questions no rule matched. store/sqlite's *DB and *store.Memory
// implement it.
type UnmatchedStore interface {
	// AppendUnmatched records one question.
	AppendUnmatched(ctx context.Context, u store.Unmatched) error
}

// RatingStore keeps satisfaction ratings. store/sqlite's *DB and *store.Memory implement it.
type RatingStore interface {
	// AddRating records one rating.
	AddRating(ctx context.Context, r store.Rating) error
}
