package store

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// firstTicket is the number of the first ticket of a store.
const firstTicket = 1001

// Memory keeps conversation states, transcripts, tickets, unmatched questions, ratings and
// handoffs in progress in memory: for tests, `imbot chat` and bots that need no persistence.
// It behaves like store/sqlite (same numbering, same ordering) but forgets everything when
// the process ends. The zero value is ready to use; it is safe for concurrent use.
type Memory struct {
	mu         sync.Mutex
	states     map[string]ConversationState
	transcript []TranscriptEntry
	tickets    []Ticket // tickets[i].Number == firstTicket+i
	unmatched  []Unmatched
	ratings    []Rating
	handoffs   map[int64]Handoff
	lastHO     int64 // the highest handoff ID saved
	rooms      map[string]Room
	deliveries map[string][]RoomDelivery // by room, by Seq
	leases     map[string]lease          // by conversation key
}

func now(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

// lastN returns the last n elements of s (all of them when n <= 0), copied.
func lastN[T any](s []T, n int) []T {
	if n > 0 && len(s) > n {
		s = s[len(s)-n:]
	}
	return slices.Clone(s)
}

// Load implements StateStore.
func (m *Memory) Load(_ context.Context, key string) (ConversationState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.states[key].Clone(), nil
}

// Save implements StateStore. A zero c.Updated is stored as now.
func (m *Memory) Save(_ context.Context, key string, c ConversationState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.states == nil {
		m.states = map[string]ConversationState{}
	}
	c = c.Clone()
	c.Updated = now(c.Updated)
	m.states[key] = c
	return nil
}

// Delete implements StateStore.
func (m *Memory) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.states, key)
	return nil
}

// AppendTranscript adds e to the transcript. A zero Time means now.
func (m *Memory) AppendTranscript(_ context.Context, e TranscriptEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e.ID = int64(len(m.transcript) + 1)
	e.Time = now(e.Time)
	m.transcript = append(m.transcript, e)
	return nil
}

// Transcript returns the last limit entries of the conversation key (all when limit <= 0),
// oldest first.
func (m *Memory) Transcript(_ context.Context, key string, limit int) ([]TranscriptEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []TranscriptEntry
	for _, e := range m.transcript {
		if e.Key == key {
			out = append(out, e)
		}
	}
	// In time order, as the SQLite store: entries may be written after later ones.
	slices.SortStableFunc(out, func(a, b TranscriptEntry) int { return a.Time.Compare(b.Time) })
	return lastN(out, limit), nil
}

// CreateTicket stores t as a new ticket and returns its number.
func (m *Memory) CreateTicket(_ context.Context, t Ticket) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t.Number = int64(firstTicket + len(m.tickets))
	if t.Status == "" {
		t.Status = StatusOpen
	}
	t.Created = time.Now()
	t.Updated = t.Created
	m.tickets = append(m.tickets, t)
	return t.Number, nil
}

// Ticket returns the ticket with this number, or ErrNotFound.
func (m *Memory) Ticket(_ context.Context, number int64) (Ticket, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := number - firstTicket
	if i < 0 || i >= int64(len(m.tickets)) {
		return Ticket{}, ErrNotFound
	}
	return m.tickets[i], nil
}

// UpdateTicket replaces the summary, urgency, status, assignee and notes of ticket
// t.Number, or returns ErrNotFound.
func (m *Memory) UpdateTicket(_ context.Context, t Ticket) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := t.Number - firstTicket
	if i < 0 || i >= int64(len(m.tickets)) {
		return ErrNotFound
	}
	old := &m.tickets[i]
	old.Summary, old.Urgency, old.Status, old.Assignee, old.Notes = t.Summary, t.Urgency, t.Status, t.Assignee, t.Notes
	old.Updated = time.Now()
	return nil
}

// Tickets returns the last limit tickets of the conversation key (all when limit <= 0),
// oldest first.
func (m *Memory) Tickets(_ context.Context, key string, limit int) ([]Ticket, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Ticket
	for _, t := range m.tickets {
		if t.Key == key {
			out = append(out, t)
		}
	}
	return lastN(out, limit), nil
}

// AppendUnmatched records a question no rule matched. A zero Time means now.
func (m *Memory) AppendUnmatched(_ context.Context, u Unmatched) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u.ID = int64(len(m.unmatched) + 1)
	u.Time = now(u.Time)
	m.unmatched = append(m.unmatched, u)
	return nil
}

// Unmatched returns the last limit unmatched questions (all when limit <= 0), oldest first.
func (m *Memory) Unmatched(_ context.Context, limit int) ([]Unmatched, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return lastN(m.unmatched, limit), nil
}

// AddRating records a satisfaction rating. A zero Time means now.
func (m *Memory) AddRating(_ context.Context, r Rating) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r.ID = int64(len(m.ratings) + 1)
	r.Time = now(r.Time)
	m.ratings = append(m.ratings, r)
	return nil
}

// Ratings returns the last limit ratings (all when limit <= 0), oldest first.
func (m *Memory) Ratings(_ context.Context, limit int) ([]Rating, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return lastN(m.ratings, limit), nil
}

// SaveHandoff implements HandoffStore.
func (m *Memory) SaveHandoff(_ context.Context, h Handoff) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.handoffs == nil {
		m.handoffs = map[int64]Handoff{}
	}
	m.handoffs[h.ID] = h.Clone()
	m.lastHO = max(m.lastHO, h.ID)
	return nil
}

// DeleteHandoff implements HandoffStore.
func (m *Memory) DeleteHandoff(_ context.Context, id int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.handoffs, id)
	return nil
}

// Handoffs implements HandoffStore.
func (m *Memory) Handoffs(_ context.Context) ([]Handoff, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Handoff, 0, len(m.handoffs))
	for _, h := range m.handoffs {
		out = append(out, h.Clone())
	}
	slices.SortFunc(out, func(a, b Handoff) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// LastHandoffID implements HandoffStore.
func (m *Memory) LastHandoffID(_ context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastHO, nil
}

// SaveRoom implements RoomStore.
func (m *Memory) SaveRoom(_ context.Context, r Room) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rooms == nil {
		m.rooms = map[string]Room{}
	}
	m.rooms[r.ID] = r.Clone()
	return nil
}

// DeleteRoom implements RoomStore.
func (m *Memory) DeleteRoom(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.rooms, id)
	delete(m.deliveries, id)
	return nil
}

// Rooms implements RoomStore.
func (m *Memory) Rooms(_ context.Context) ([]Room, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Room, 0, len(m.rooms))
	for _, r := range m.rooms {
		out = append(out, r.Clone())
	}
	slices.SortFunc(out, func(a, b Room) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// AddRoomDeliveries implements RoomStore.
func (m *Memory) AddRoomDeliveries(_ context.Context, ds []RoomDelivery) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.deliveries == nil {
		m.deliveries = map[string][]RoomDelivery{}
	}
	for _, d := range ds {
		l := slices.DeleteFunc(m.deliveries[d.Room], func(x RoomDelivery) bool { return x.Seq == d.Seq })
		l = append(l, d)
		slices.SortFunc(l, func(a, b RoomDelivery) int { return cmp.Compare(a.Seq, b.Seq) })
		m.deliveries[d.Room] = l
	}
	return nil
}

// DeleteRoomDelivery implements RoomStore.
func (m *Memory) DeleteRoomDelivery(_ context.Context, room string, seq int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.deliveries[room]; ok {
		m.deliveries[room] = slices.DeleteFunc(l, func(x RoomDelivery) bool { return x.Seq == seq })
	}
	return nil
}

// RoomDeliveries implements RoomStore.
func (m *Memory) RoomDeliveries(_ context.Context, room string) ([]RoomDelivery, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.deliveries[room]), nil
}

var (
	_ StateStore   = (*Memory)(nil)
	_ HandoffStore = (*Memory)(nil)
	_ RoomStore    = (*Memory)(nil)
)
