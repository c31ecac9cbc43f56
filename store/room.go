package store

import (
	"context"
	"slices"
	"time"
)

// Room is a multi-party conversation the bot hosts (see handlers.Rooms), as a RoomStore keeps
// it: what a restarted bot needs to resume it.
type Room struct {
	// ID names the room; unique in a store.
	ID string
	// Created is when the room was made.
	Created time.Time
	// Silent rooms have the bot announce nothing (joins, leaves, its restart): their owner
	// says what it wants.
	Silent bool
	// LeaveOnIdle makes participants leave when their conversation with the bot ends idle.
	LeaveOnIdle bool
	// Participants are the people in the room, in the order they joined.
	Participants []RoomParticipant
}

// RoomParticipant is one person in a Room.
type RoomParticipant struct {
	// URI is the participant's address; Verified says whether the bot verified it (or chose
	// it: someone it invited).
	URI      string
	Verified bool
	// Name is what the others see before the participant's lines.
	Name string
	// Key is the participant's conversation key (bot.Conversation.Key), when known: the
	// conversation an unverified participant is recognised by.
	Key string
	// Joined is when the participant joined.
	Joined time.Time
	// Managed says the room's owner (handlers.Handoff) routes the participant's lines, not
	// the rooms' middleware: the user and the agent of a handoff.
	Managed bool
}

// Clone returns a copy that shares no slices with r.
func (r Room) Clone() Room {
	r.Participants = slices.Clone(r.Participants)
	return r
}

// RoomDelivery is a message the room relays to one participant, kept from before it is sent
// until it was delivered, so that a restarted bot sends what it had not sent yet, once.
type RoomDelivery struct {
	// Room is the room's ID.
	Room string
	// Seq numbers the room's deliveries in the order they were made; unique in the room.
	Seq int64
	// To is the recipient's address (RoomParticipant.URI).
	To string
	// Text is the message as the recipient reads it (authorship included).
	Text string
	// Time is when the message was relayed.
	Time time.Time
	// Answerer is recorded with the message in the recipient's transcript
	// (store.TranscriptEntry.Answerer); "" for the room's default.
	Answerer string
}

// RoomStore keeps the rooms the bot hosts and the messages they have yet to deliver, so that
// a restarted bot resumes them (handlers.RoomsConfig.Store). Implementations must be safe for
// concurrent use. Memory and store/sqlite implement it.
type RoomStore interface {
	// SaveRoom stores r under r.ID, replacing what was there.
	SaveRoom(ctx context.Context, r Room) error
	// DeleteRoom forgets the room id and its deliveries; deleting a missing one is not an
	// error.
	DeleteRoom(ctx context.Context, id string) error
	// Rooms returns the stored rooms, by ID.
	Rooms(ctx context.Context) ([]Room, error)
	// AddRoomDeliveries stores ds, all or none.
	AddRoomDeliveries(ctx context.Context, ds []RoomDelivery) error
	// DeleteRoomDelivery forgets the delivery seq of the room (it was delivered, or its
	// recipient left); deleting a missing one is not an error.
	DeleteRoomDelivery(ctx context.Context, room string, seq int64) error
	// RoomDeliveries returns the deliveries of the room still stored, by Seq.
	RoomDeliveries(ctx context.Context, room string) ([]RoomDelivery, error)
}
