package store

import (
	"context"
	"time"
)

// LeaseStore hands out leases on conversations, so that several bot instances that share a
// store never handle one conversation's events at once (handlers.Exclusive). A lease has an
// owner (an instance) and an end: a crashed instance's leases run out by themselves.
// Instances compare ends with their own clocks (now), which must agree within a fraction of
// the leases' length (NTP does). Implementations must be safe for concurrent use; Memory,
// store/sqlite and store/postgres implement it.
type LeaseStore interface {
	// AcquireLease takes the lease on key for owner until now+ttl and reports whether it
	// got it: when nobody held it, its holder's lease had ended at now, or owner held it
	// already (then it is renewed).
	AcquireLease(ctx context.Context, key, owner string, now time.Time, ttl time.Duration) (bool, error)
	// ReleaseLease ends owner's lease on key; releasing one that owner does not hold is not
	// an error.
	ReleaseLease(ctx context.Context, key, owner string) error
	// LeaseHolder returns the owner of the lease on key that runs at now; "" when none does.
	LeaseHolder(ctx context.Context, key string, now time.Time) (string, error)
}

// lease is a lease as Memory keeps it.
type lease struct {
	owner string
	until time.Time
}

// AcquireLease implements LeaseStore.
func (m *Memory) AcquireLease(ctx context.Context, key, owner string, now time.Time, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.leases[key]; ok && l.owner != owner && now.Before(l.until) {
		return false, nil
	}
	if m.leases == nil {
		m.leases = map[string]lease{}
	}
	m.leases[key] = lease{owner: owner, until: now.Add(ttl)}
	return true, nil
}

// ReleaseLease implements LeaseStore.
func (m *Memory) ReleaseLease(ctx context.Context, key, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.leases[key]; ok && l.owner == owner {
		delete(m.leases, key)
	}
	return nil
}

// LeaseHolder implements LeaseStore.
func (m *Memory) LeaseHolder(ctx context.Context, key string, now time.Time) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.leases[key]; ok && now.Before(l.until) {
		return l.owner, nil
	}
	return "", nil
}

var _ LeaseStore = (*Memory)(nil)
