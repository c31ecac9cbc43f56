package bot

import (
	"context"
	"maps"
	"sync"
	"time"
)

// Conversation is the state a conversation keeps between events: where a multi-step flow is
// and the variables it collected. Values must be encodable as JSON (strings, numbers, bools,
// lists and maps of those) so that any Store can keep them.
type Conversation struct {
	// State is the current step of a flow; "" is the initial state.
	State string
	// Vars are the conversation's variables.
	Vars map[string]any
	// Updated is when the conversation was last saved.
	Updated time.Time
}

// Clone returns a deep enough copy: the Vars map is copied (its values are shared).
func (c Conversation) Clone() Conversation {
	c.Vars = maps.Clone(c.Vars)
	return c
}

// Store keeps conversations by key (Session.Key), so that a conversation can continue after
// its session ended or the bot restarted. Implementations must be safe for concurrent use.
// Events of one conversation are handled one at a time, so a Load, then a Save, of one key
// never race with each other inside one bot process.
type Store interface {
	// Load returns the conversation saved under key, or a zero Conversation and no error
	// when there is none.
	Load(ctx context.Context, key string) (Conversation, error)
	// Save stores c under key, replacing what was there.
	Save(ctx context.Context, key string, c Conversation) error
	// Delete forgets key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// MemoryStore is a Store in memory, for tests and bots that need no persistence.
// The zero value is ready to use.
type MemoryStore struct {
	mu sync.Mutex
	m  map[string]Conversation
}

// Load implements Store.
func (s *MemoryStore) Load(_ context.Context, key string) (Conversation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[key].Clone(), nil
}

// Save implements Store.
func (s *MemoryStore) Save(_ context.Context, key string, c Conversation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]Conversation{}
	}
	c = c.Clone()
	if c.Updated.IsZero() {
		c.Updated = time.Now()
	}
	s.m[key] = c
	return nil
}

// Delete implements Store.
func (s *MemoryStore) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}
