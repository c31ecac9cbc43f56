package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imbot-dev/imbot/store"
)

// AcquireLease implements store.LeaseStore in one statement: the row is written only when it
// is new, its lease has ended, or owner holds it.
func (db *DB) AcquireLease(ctx context.Context, key, owner string, now time.Time, ttl time.Duration) (bool, error) {
	var got string
	err := db.pool.QueryRow(ctx, `INSERT INTO conversation_leases (key, owner, until) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, until = excluded.until
		WHERE conversation_leases.until <= $4 OR conversation_leases.owner = excluded.owner
		RETURNING owner`, key, owner, now.Add(ttl), now).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil // another owner's lease runs
	}
	if err != nil {
		return false, fmt.Errorf("store: lease on %q: %w", key, err)
	}
	return true, nil
}

// ReleaseLease implements store.LeaseStore.
func (db *DB) ReleaseLease(ctx context.Context, key, owner string) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM conversation_leases WHERE key = $1 AND owner = $2`, key, owner); err != nil {
		return fmt.Errorf("store: release the lease on %q: %w", key, err)
	}
	return nil
}

// LeaseHolder implements store.LeaseStore.
func (db *DB) LeaseHolder(ctx context.Context, key string, now time.Time) (string, error) {
	var owner string
	err := db.pool.QueryRow(ctx, `SELECT owner FROM conversation_leases WHERE key = $1 AND until > $2`, key, now).Scan(&owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: holder of the lease on %q: %w", key, err)
	}
	return owner, nil
}

var _ store.LeaseStore = (*DB)(nil)
