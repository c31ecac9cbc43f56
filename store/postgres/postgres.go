// Package postgres is imbot's store on a PostgreSQL server, for several imbot instances that
// share one database (and for operators who keep everything in PostgreSQL). It is written
// with github.com/jackc/pgx/v5 and its connection pool.
//
// A *DB keeps what store/sqlite keeps, with the same behaviour: conversation states (it
// implements store.StateStore), transcripts, helpdesk tickets, questions no rule matched,
// satisfaction ratings and handoffs to agents in progress (store.HandoffStore). The same
// test suite (store/storetest) runs against both.
//
//	db, err := postgres.Open(ctx, os.Getenv("IMBOT_POSTGRES_DSN"))
//	if err != nil {
//		return err // says which server and what is wrong
//	}
//	defer db.Close()
//
// The DSN is a PostgreSQL URL or keyword/value string (postgres://imbot@db.example.com/imbot,
// "host=/run/postgresql dbname=imbot"), as libpq takes it; PG* environment variables fill in
// what it leaves out. It usually holds a password: keep it in the environment, not in a file.
//
// # Schema and migrations
//
// The schema is versioned like the SQLite store's, with the same version numbers and names:
// migrations/NNNN_name.sql, embedded in the binary, applied in order, each inside its own
// transaction and recorded in the schema_version table. Open brings an older database up to
// date and refuses, with *VersionError, a database written by a newer imbot. Instances that
// start at once on one database take turns: the migrations run under a PostgreSQL advisory
// lock, so each is applied exactly once. To change the schema, add the next numbered file
// here and in store/sqlite/migrations; never edit one that was released.
//
// # Types and precision
//
// Times are timestamptz, kept to the microsecond (finer fractions are rounded); conversation
// variables are jsonb and read back with whole numbers as int; handoffs' agent lists are
// text[]. Ticket numbers come from a sequence that starts at 1001, so instances sharing the
// database never give one number twice.
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/imbot-dev/imbot/store"
	"github.com/imbot-dev/imbot/store/internal/schema"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLock is the key of the advisory lock held while the schema is migrated: "imbot"
// in ASCII, so that it does not collide with locks of other applications by accident.
const migrationLock int64 = 0x696d626f74

// DB is an open imbot database on a PostgreSQL server. It implements store.StateStore,
// store.HandoffStore and the record interfaces of package handlers (TranscriptStore,
// TicketStore, UnmatchedStore, RatingStore). It is safe for concurrent use, and several
// processes may share one database. Close it when done.
type DB struct {
	pool  *pgxpool.Pool
	where string // host, port and database, for messages: never the password
	log   *slog.Logger
}

// Options tunes a *DB. The zero value is the default.
type Options struct {
	// Logger receives the migrations applied. Default: slog.Default().
	Logger *slog.Logger
	// MaxConns bounds the connections to the server. Zero means pgx's default (the larger
	// of 4 and the number of CPUs), unless the DSN sets pool_max_conns.
	MaxConns int32
}

// VersionError is returned by Open for a database whose schema is newer than this build of
// imbot knows: it was written by a newer version, and using it could damage it.
type VersionError struct {
	Database string // the server and database, such as db.example.com:5432/imbot
	Found    int    // the database's schema version
	Known    int    // the newest version this build knows
}

// Error implements error.
func (e *VersionError) Error() string {
	return fmt.Sprintf("store: PostgreSQL database %s has schema version %d but this imbot knows only up to version %d: it was written by a newer imbot; upgrade imbot, or point the store at another database",
		e.Database, e.Found, e.Known)
}

// Open connects to the PostgreSQL database named by dsn and brings its schema up to date. It
// fails with an error naming the server (never the password) when it cannot connect, and
// with *VersionError for a database newer than this build. It is OpenWith with the default
// Options.
func Open(ctx context.Context, dsn string) (*DB, error) {
	return OpenWith(ctx, dsn, Options{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, dsn string, o Options) (*DB, error) {
	migs, err := schema.Load(migrationFS)
	if err != nil {
		return nil, err
	}
	return open(ctx, dsn, migs, o)
}

func open(ctx context.Context, dsn string, migs []schema.Migration, o Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx leaves the password out of its parse errors.
		return nil, fmt.Errorf("store: PostgreSQL DSN: %w; write it as postgres://user@host:port/database or \"host=... dbname=...\"", err)
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "imbot"
	}
	db := &DB{where: fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database), log: o.Logger}
	if db.log == nil {
		db.log = slog.Default()
	}
	if db.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("store: PostgreSQL %s: %w", db.where, err)
	}
	if err := db.pool.Ping(ctx); err != nil {
		db.pool.Close()
		return nil, fmt.Errorf("store: cannot connect to PostgreSQL %s: %w; check that the server runs and that the DSN names it, its user and its database", db.where, err)
	}
	if err := db.migrate(ctx, migs); err != nil {
		db.pool.Close()
		return nil, err
	}
	return db, nil
}

// Close closes the connections. Calls made after Close fail.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// healthTimeout bounds Healthy: a readiness probe must get its answer in time, and a server
// that takes longer is not one to send traffic to.
const healthTimeout = 3 * time.Second

// Healthy reports whether the server answers within 3 seconds, for readiness probes.
func (db *DB) Healthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("store: PostgreSQL %s does not answer: %w", db.where, err)
	}
	return nil
}

// SchemaVersion returns the schema version of the database.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := db.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v)
	return v, err
}

// LatestSchemaVersion returns the schema version this build brings a database to.
func LatestSchemaVersion() int {
	migs, err := schema.Load(migrationFS)
	if err != nil || len(migs) == 0 {
		return 0
	}
	return migs[len(migs)-1].Version
}

// migrate applies the migrations the database lacks, each in its own transaction, holding
// the migration lock on one connection throughout, so that instances starting at once take
// turns: the first applies them, the others find them applied.
func (db *DB) migrate(ctx context.Context, migs []schema.Migration) error {
	c, err := db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("store: PostgreSQL %s: %w", db.where, err)
	}
	defer c.Release()
	if _, err := c.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("store: PostgreSQL %s: waiting for the schema migration lock: %w", db.where, err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, uerr := c.Exec(uctx, `SELECT pg_advisory_unlock($1)`, migrationLock); uerr != nil {
			// Ending the session releases the lock.
			_ = c.Conn().Close(uctx)
		}
	}()
	if _, err := c.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version integer PRIMARY KEY,
		name    text NOT NULL,
		applied timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("store: PostgreSQL %s: creating the schema_version table: %w; the DSN's user needs the right to create tables", db.where, err)
	}
	var v int
	if err := c.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return fmt.Errorf("store: PostgreSQL %s: reading the schema version: %w", db.where, err)
	}
	if known := len(migs); v > known {
		return &VersionError{Database: db.where, Found: v, Known: known}
	}
	for _, m := range migs[v:] {
		err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			// No arguments: the simple protocol, which runs a file of several statements.
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_version (version, name) VALUES ($1, $2)`, m.Version, m.Name)
			return err
		})
		if err != nil {
			return fmt.Errorf("store: PostgreSQL %s: migration %04d_%s: %w", db.where, m.Version, m.Name, err)
		}
		db.log.Info("store: applied a schema migration", "database", db.where, "version", m.Version, "name", m.Name)
	}
	return nil
}

func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

// nullTime maps the zero time to NULL.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// fromNull maps NULL to the zero time, and times to UTC.
func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// sqlLimit maps "0 or less means all" to LIMIT NULL.
func sqlLimit(n int) *int64 {
	if n <= 0 {
		return nil
	}
	l := int64(n)
	return &l
}

// Load implements store.StateStore.
func (db *DB) Load(ctx context.Context, key string) (store.ConversationState, error) {
	var c store.ConversationState
	var vars []byte
	err := db.pool.QueryRow(ctx, `SELECT state, vars, updated FROM conversations WHERE key = $1`, key).Scan(&c.State, &vars, &c.Updated)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ConversationState{}, nil
	}
	if err != nil {
		return store.ConversationState{}, fmt.Errorf("store: load conversation %q: %w", key, err)
	}
	c.Updated = c.Updated.UTC()
	if c.Vars, err = schema.DecodeVars(vars); err != nil {
		return store.ConversationState{}, fmt.Errorf("store: conversation %q: variables are not valid JSON: %w", key, err)
	}
	return c, nil
}

// Save implements store.StateStore. Variables are stored as jsonb; whole numbers read back
// as int. A zero c.Updated is stored as now.
func (db *DB) Save(ctx context.Context, key string, c store.ConversationState) error {
	vars := []byte("{}")
	if len(c.Vars) > 0 {
		var err error
		if vars, err = json.Marshal(c.Vars); err != nil {
			return fmt.Errorf("store: save conversation %q: variables must be JSON values: %w", key, err)
		}
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO conversations (key, state, vars, updated) VALUES ($1, $2, $3, $4)
		ON CONFLICT (key) DO UPDATE SET state = excluded.state, vars = excluded.vars, updated = excluded.updated`,
		key, c.State, string(vars), orNow(c.Updated))
	if err != nil {
		return fmt.Errorf("store: save conversation %q: %w", key, err)
	}
	return nil
}

// Delete implements store.StateStore.
func (db *DB) Delete(ctx context.Context, key string) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM conversations WHERE key = $1`, key); err != nil {
		return fmt.Errorf("store: delete conversation %q: %w", key, err)
	}
	return nil
}

// AppendTranscript adds e to the transcript. A zero Time means now.
func (db *DB) AppendTranscript(ctx context.Context, e store.TranscriptEntry) error {
	if e.Direction != store.In && e.Direction != store.Out {
		return fmt.Errorf("store: transcript entry direction %q: want %q or %q", e.Direction, store.In, store.Out)
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO transcript (session_id, key, direction, peer, text, time, answerer)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		e.SessionID, e.Key, string(e.Direction), e.Peer, e.Text, orNow(e.Time), e.Answerer)
	if err != nil {
		return fmt.Errorf("store: append transcript: %w", err)
	}
	return nil
}

// Transcript returns the last limit entries of the conversation key (all when limit <= 0),
// oldest first, in the order of their times (a message is timed when it arrived or when
// its sending started, whatever the order the entries were written in).
func (db *DB) Transcript(ctx context.Context, key string, limit int) ([]store.TranscriptEntry, error) {
	rows, _ := db.pool.Query(ctx, `SELECT id, session_id, key, direction, peer, text, time, answerer FROM
		(SELECT * FROM transcript WHERE key = $1 ORDER BY time DESC, id DESC LIMIT $2) last ORDER BY time, id`, key, sqlLimit(limit))
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.TranscriptEntry, error) {
		var e store.TranscriptEntry
		err := row.Scan(&e.ID, &e.SessionID, &e.Key, &e.Direction, &e.Peer, &e.Text, &e.Time, &e.Answerer)
		e.Time = e.Time.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: transcript %q: %w", key, err)
	}
	return out, nil
}

// CreateTicket stores t as a new ticket and returns its number. Numbers are sequential and
// start at 1001. An empty Status is stored as store.StatusOpen.
func (db *DB) CreateTicket(ctx context.Context, t store.Ticket) (int64, error) {
	if t.Status == "" {
		t.Status = store.StatusOpen
	}
	now := time.Now()
	var n int64
	err := db.pool.QueryRow(ctx, `INSERT INTO tickets (key, peer, summary, urgency, status, assignee, notes, created, updated)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING number`,
		t.Key, t.Peer, t.Summary, t.Urgency, t.Status, t.Assignee, t.Notes, now).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: create ticket: %w", err)
	}
	return n, nil
}

const ticketColumns = `number, key, peer, summary, urgency, status, assignee, notes, created, updated`

func scanTicket(row pgx.Row) (store.Ticket, error) {
	var t store.Ticket
	err := row.Scan(&t.Number, &t.Key, &t.Peer, &t.Summary, &t.Urgency, &t.Status, &t.Assignee, &t.Notes, &t.Created, &t.Updated)
	t.Created, t.Updated = t.Created.UTC(), t.Updated.UTC()
	return t, err
}

// Ticket returns the ticket with this number, or an error wrapping store.ErrNotFound.
func (db *DB) Ticket(ctx context.Context, number int64) (store.Ticket, error) {
	t, err := scanTicket(db.pool.QueryRow(ctx, `SELECT `+ticketColumns+` FROM tickets WHERE number = $1`, number))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Ticket{}, fmt.Errorf("store: ticket %d: %w", number, store.ErrNotFound)
	}
	if err != nil {
		return store.Ticket{}, fmt.Errorf("store: ticket %d: %w", number, err)
	}
	return t, nil
}

// UpdateTicket replaces the summary, urgency, status, assignee and notes of ticket t.Number,
// or returns an error wrapping store.ErrNotFound.
func (db *DB) UpdateTicket(ctx context.Context, t store.Ticket) error {
	res, err := db.pool.Exec(ctx, `UPDATE tickets SET summary = $1, urgency = $2, status = $3, assignee = $4, notes = $5, updated = $6
		WHERE number = $7`, t.Summary, t.Urgency, t.Status, t.Assignee, t.Notes, time.Now(), t.Number)
	if err != nil {
		return fmt.Errorf("store: update ticket %d: %w", t.Number, err)
	}
	if res.RowsAffected() == 0 {
		return fmt.Errorf("store: ticket %d: %w", t.Number, store.ErrNotFound)
	}
	return nil
}

// Tickets returns the last limit tickets of the conversation key (all when limit <= 0),
// oldest first.
func (db *DB) Tickets(ctx context.Context, key string, limit int) ([]store.Ticket, error) {
	rows, _ := db.pool.Query(ctx, `SELECT `+ticketColumns+` FROM
		(SELECT * FROM tickets WHERE key = $1 ORDER BY number DESC LIMIT $2) last ORDER BY number`, key, sqlLimit(limit))
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Ticket, error) { return scanTicket(row) })
	if err != nil {
		return nil, fmt.Errorf("store: tickets of %q: %w", key, err)
	}
	return out, nil
}

// AppendUnmatched records a question no rule matched. A zero Time means now.
func (db *DB) AppendUnmatched(ctx context.Context, u store.Unmatched) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO unmatched (key, session_id, peer, text, time) VALUES ($1, $2, $3, $4, $5)`,
		u.Key, u.SessionID, u.Peer, u.Text, orNow(u.Time))
	if err != nil {
		return fmt.Errorf("store: append unmatched question: %w", err)
	}
	return nil
}

// Unmatched returns the last limit unmatched questions (all when limit <= 0), oldest first.
func (db *DB) Unmatched(ctx context.Context, limit int) ([]store.Unmatched, error) {
	rows, _ := db.pool.Query(ctx, `SELECT id, key, session_id, peer, text, time FROM
		(SELECT * FROM unmatched ORDER BY id DESC LIMIT $1) last ORDER BY id`, sqlLimit(limit))
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Unmatched, error) {
		var u store.Unmatched
		err := row.Scan(&u.ID, &u.Key, &u.SessionID, &u.Peer, &u.Text, &u.Time)
		u.Time = u.Time.UTC()
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: unmatched questions: %w", err)
	}
	return out, nil
}

// AddRating records a satisfaction rating. A zero Time means now.
func (db *DB) AddRating(ctx context.Context, r store.Rating) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO ratings (key, session_id, peer, score, comment, agent, handoff_id, time)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		r.Key, r.SessionID, r.Peer, r.Score, r.Comment, r.Agent, r.HandoffID, orNow(r.Time))
	if err != nil {
		return fmt.Errorf("store: add rating: %w", err)
	}
	return nil
}

// Ratings returns the last limit ratings (all when limit <= 0), oldest first.
func (db *DB) Ratings(ctx context.Context, limit int) ([]store.Rating, error) {
	rows, _ := db.pool.Query(ctx, `SELECT id, key, session_id, peer, score, comment, agent, handoff_id, time FROM
		(SELECT * FROM ratings ORDER BY id DESC LIMIT $1) last ORDER BY id`, sqlLimit(limit))
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Rating, error) {
		var r store.Rating
		err := row.Scan(&r.ID, &r.Key, &r.SessionID, &r.Peer, &r.Score, &r.Comment, &r.Agent, &r.HandoffID, &r.Time)
		r.Time = r.Time.UTC()
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: ratings: %w", err)
	}
	return out, nil
}

var _ store.StateStore = (*DB)(nil)

// nonNil maps a nil list to an empty one, since the columns are NOT NULL.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// orNil maps an empty list read back to nil, as it was saved.
func orNil(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// SaveHandoff implements store.HandoffStore: the row and the last number are written in one
// transaction.
func (db *DB) SaveHandoff(ctx context.Context, h store.Handoff) error {
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO handoffs
			(id, user_key, user_uri, verified, user_name, reason, state, agent, deadline, started, tried, pending,
				offered, lapsed, offer_deadline)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
			ON CONFLICT (id) DO UPDATE SET user_key = excluded.user_key, user_uri = excluded.user_uri,
				verified = excluded.verified, user_name = excluded.user_name, reason = excluded.reason,
				state = excluded.state, agent = excluded.agent, deadline = excluded.deadline,
				started = excluded.started, tried = excluded.tried, pending = excluded.pending,
				offered = excluded.offered, lapsed = excluded.lapsed, offer_deadline = excluded.offer_deadline`,
			h.ID, h.UserKey, h.UserURI, h.Verified, h.UserName, h.Reason, h.State, h.Agent, nullTime(h.Deadline),
			orNow(h.Started), nonNil(h.Tried), nonNil(h.Pending), nonNil(h.Offered), nonNil(h.Lapsed), nullTime(h.OfferDeadline)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO handoff_last (one, id) VALUES (1, $1)
			ON CONFLICT (one) DO UPDATE SET id = GREATEST(handoff_last.id, excluded.id)`, h.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: save handoff %d: %w", h.ID, err)
	}
	return nil
}

// DeleteHandoff implements store.HandoffStore.
func (db *DB) DeleteHandoff(ctx context.Context, id int64) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM handoffs WHERE id = $1`, id); err != nil {
		return fmt.Errorf("store: delete handoff %d: %w", id, err)
	}
	return nil
}

// Handoffs implements store.HandoffStore.
func (db *DB) Handoffs(ctx context.Context) ([]store.Handoff, error) {
	rows, _ := db.pool.Query(ctx, `SELECT id, user_key, user_uri, verified, user_name, reason, state, agent,
		deadline, started, tried, pending, offered, lapsed, offer_deadline FROM handoffs ORDER BY id`)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Handoff, error) {
		var h store.Handoff
		var deadline, offerDeadline *time.Time
		err := row.Scan(&h.ID, &h.UserKey, &h.UserURI, &h.Verified, &h.UserName, &h.Reason, &h.State, &h.Agent,
			&deadline, &h.Started, &h.Tried, &h.Pending, &h.Offered, &h.Lapsed, &offerDeadline)
		h.Deadline, h.OfferDeadline, h.Started = fromNull(deadline), fromNull(offerDeadline), h.Started.UTC()
		h.Tried, h.Pending, h.Offered, h.Lapsed = orNil(h.Tried), orNil(h.Pending), orNil(h.Offered), orNil(h.Lapsed)
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: handoffs: %w", err)
	}
	return out, nil
}

// LastHandoffID implements store.HandoffStore.
func (db *DB) LastHandoffID(ctx context.Context) (int64, error) {
	var id int64
	if err := db.pool.QueryRow(ctx, `SELECT COALESCE(MAX(id), 0) FROM handoff_last`).Scan(&id); err != nil {
		return 0, fmt.Errorf("store: last handoff number: %w", err)
	}
	return id, nil
}

var _ store.HandoffStore = (*DB)(nil)
