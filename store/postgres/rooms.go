package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imbot-dev/imbot/store"
)

// roomParticipant is a store.RoomParticipant as the participants column holds it (JSON).
type roomParticipant struct {
	URI      string    `json:"uri"`
	Verified bool      `json:"verified,omitempty"`
	Name     string    `json:"name,omitempty"`
	Key      string    `json:"key,omitempty"`
	Joined   time.Time `json:"joined"`
	Managed  bool      `json:"managed,omitempty"`
}

// SaveRoom implements store.RoomStore.
func (db *DB) SaveRoom(ctx context.Context, r store.Room) error {
	ps := make([]roomParticipant, len(r.Participants))
	for i, p := range r.Participants {
		ps[i] = roomParticipant{URI: p.URI, Verified: p.Verified, Name: p.Name, Key: p.Key, Joined: orNow(p.Joined).UTC(), Managed: p.Managed}
	}
	data, err := json.Marshal(ps)
	if err != nil {
		return fmt.Errorf("store: save room %s: %w", r.ID, err)
	}
	if _, err := db.pool.Exec(ctx, `INSERT INTO rooms (id, created, silent, leave_on_idle, participants)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET created = excluded.created, silent = excluded.silent,
			leave_on_idle = excluded.leave_on_idle, participants = excluded.participants`,
		r.ID, orNow(r.Created), r.Silent, r.LeaveOnIdle, string(data)); err != nil {
		return fmt.Errorf("store: save room %s: %w", r.ID, err)
	}
	return nil
}

// DeleteRoom implements store.RoomStore: the room and its deliveries go in one transaction.
func (db *DB) DeleteRoom(ctx context.Context, id string) error {
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		for _, q := range []string{`DELETE FROM room_deliveries WHERE room = $1`, `DELETE FROM rooms WHERE id = $1`} {
			if _, err := tx.Exec(ctx, q, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: delete room %s: %w", id, err)
	}
	return nil
}

// Rooms implements store.RoomStore.
func (db *DB) Rooms(ctx context.Context) ([]store.Room, error) {
	rows, _ := db.pool.Query(ctx, `SELECT id, created, silent, leave_on_idle, participants FROM rooms ORDER BY id`)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Room, error) {
		var rm store.Room
		var data []byte
		if err := row.Scan(&rm.ID, &rm.Created, &rm.Silent, &rm.LeaveOnIdle, &data); err != nil {
			return rm, err
		}
		var ps []roomParticipant
		if err := json.Unmarshal(data, &ps); err != nil {
			return rm, fmt.Errorf("room %s: participants are not valid JSON: %w", rm.ID, err)
		}
		for _, p := range ps {
			rm.Participants = append(rm.Participants, store.RoomParticipant{
				URI: p.URI, Verified: p.Verified, Name: p.Name, Key: p.Key, Joined: p.Joined, Managed: p.Managed,
			})
		}
		return rm, nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: rooms: %w", err)
	}
	return out, nil
}

// AddRoomDeliveries implements store.RoomStore, in one transaction.
func (db *DB) AddRoomDeliveries(ctx context.Context, ds []store.RoomDelivery) error {
	if len(ds) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		for _, d := range ds {
			if _, err := tx.Exec(ctx, `INSERT INTO room_deliveries (room, seq, recipient, text, time, answerer)
				VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (room, seq) DO UPDATE SET recipient = excluded.recipient, text = excluded.text,
					time = excluded.time, answerer = excluded.answerer`,
				d.Room, d.Seq, d.To, d.Text, orNow(d.Time), d.Answerer); err != nil {
				return fmt.Errorf("%s/%d: %w", d.Room, d.Seq, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: add room deliveries: %w", err)
	}
	return nil
}

// DeleteRoomDelivery implements store.RoomStore.
func (db *DB) DeleteRoomDelivery(ctx context.Context, room string, seq int64) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM room_deliveries WHERE room = $1 AND seq = $2`, room, seq); err != nil {
		return fmt.Errorf("store: delete room delivery %s/%d: %w", room, seq, err)
	}
	return nil
}

// RoomDeliveries implements store.RoomStore.
func (db *DB) RoomDeliveries(ctx context.Context, room string) ([]store.RoomDelivery, error) {
	rows, _ := db.pool.Query(ctx, `SELECT room, seq, recipient, text, time, answerer FROM room_deliveries
		WHERE room = $1 ORDER BY seq`, room)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.RoomDelivery, error) {
		var d store.RoomDelivery
		err := row.Scan(&d.Room, &d.Seq, &d.To, &d.Text, &d.Time, &d.Answerer)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: room deliveries of %s: %w", room, err)
	}
	return out, nil
}

var _ store.RoomStore = (*DB)(nil)
