// Package sqlite is imbot's persistent store: one SQLite database file, written with the pure
// Go driver modernc.org/sqlite (no cgo), in WAL mode.
//
// A *DB keeps conversation states (it implements store.StateStore), transcripts, helpdesk
// tickets, questions no rule matched, satisfaction ratings, handoffs to agents in progress
// (store.HandoffStore) and the rooms the bot hosts with what they have yet to deliver
// (store.RoomStore), so that a bot restarted after a crash, even SIGKILL, finds every
// conversation where it was:
//
//	db, err := sqlite.Open(ctx, "/var/lib/imbot/imbot.db")
//	if err != nil {
//		return err // names the file and what is wrong with it
//	}
//	defer db.Close()
//
// # Schema and migrations
//
// The schema is versioned in this repository: migrations/NNNN_name.sql, embedded in the
// binary, applied in order, each inside its own transaction and recorded in the
// schema_version table. Open brings an older database up to date and refuses, with
// *VersionError, a database written by a newer imbot, so that a downgrade never damages
// data. To change the schema, add the next numbered file; never edit one that was released.
//
// # Durability and concurrency
//
// Every write is one transaction, committed before the method returns. The database runs
// in WAL mode with synchronous=NORMAL: a crash of the process loses nothing committed (a
// power cut may lose the last transactions, never corrupt the file). Writes go through one
// connection, reads through a small pool that works alongside it; busy_timeout makes
// another process that writes the same file (imbot check, the sqlite3 shell) wait instead
// of failing. A *DB is safe for concurrent use.
//
// # A database file deleted while open
//
// A process that has an SQLite file open goes on writing into it after the file was deleted
// or renamed, and all of that is gone at the next start (ticket numbers start again at
// 1001). A *DB therefore checks that its path still names the file it has open: before
// every write, in the background every 2 seconds (Options.CheckInterval), in Healthy and in
// Close. When the file is missing, it writes a copy of the open database, everything
// written until then included, to a new file beside it with VACUUM INTO, removes the WAL
// and shared-memory files the old file left at the path (they would be read with the new
// one; files there that are not its own stop the restoration), puts the copy at the path
// (never replacing a file that appeared there meanwhile), reopens on it and logs the
// restoration at Error level; Restored counts them. Statements wait while the connections
// are replaced, so a write goes either into the copy or into the restored file. When the
// path names another file (someone replaced it), the store leaves that file alone: it
// saves its own data beside it (path.rescued-*), refuses writes with an error wrapping
// ErrFileGone and reports it in Healthy, until the other file is removed (then it restores
// its own at the path) or imbot restarts (then it opens the other file).
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/imbot-dev/imbot/store"
	"github.com/imbot-dev/imbot/store/internal/schema"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// busyTimeout is how long a statement waits for a lock held by another connection or
// process before it fails with SQLITE_BUSY.
const busyTimeout = 5 * time.Second

// readers bounds the read connections.
const readers = 4

// DB is an open imbot database. It implements store.StateStore, store.HandoffStore, store.RoomStore and the
// record interfaces of package handlers (TranscriptStore, TicketStore, UnmatchedStore,
// RatingStore). Close it when done.
type DB struct {
	path string
	log  *slog.Logger

	// mu is held for reading by every statement, until its rows are read, and for writing
	// while the file is restored and the pools replaced: no statement runs on a pool being
	// closed, and no write lands in the old file after its copy was taken.
	mu       sync.RWMutex
	w        *sql.DB     // one connection: every write
	r        *sql.DB     // reads
	file     string      // the file the pools have open: path, or a copy beside it
	ids      fileIDs     // what the pools have open: file and its WAL and shm files
	lost     error       // non-nil while path does not name the open database: writes fail with it
	lostTo   os.FileInfo // the other file path names, if any, so that it is reported once
	restored int         // restorations at path
	closed   bool

	stop      chan struct{} // closed by Close: ends watch
	watchDone chan struct{} // closed when watch returns
	closeOnce sync.Once
	closeErr  error
}

// Options tunes a *DB. The zero value is the default.
type Options struct {
	// Logger receives what an operator must know: the database file deleted or replaced
	// while open. Default: slog.Default().
	Logger *slog.Logger
	// CheckInterval is how often the background check looks at the database file. Zero
	// means 2 s; a negative value turns the background check off (writes, Healthy and Close
	// still check).
	CheckInterval time.Duration
}

// VersionError is returned by Open for a database whose schema is newer than this build of
// imbot knows: it was written by a newer version, and opening it could damage it.
type VersionError struct {
	Path  string // the database file
	Found int    // the database's schema version
	Known int    // the newest version this build knows
}

// Error implements error.
func (e *VersionError) Error() string {
	return fmt.Sprintf("store: %s has schema version %d but this imbot knows only up to version %d: it was written by a newer imbot; upgrade imbot, or point the store at another file",
		e.Path, e.Found, e.Known)
}

// Open opens the database file at path, creating it when it does not exist, and brings its
// schema up to date. It fails with a clear error for a file that is not an SQLite database
// and with *VersionError for a database newer than this build. It is OpenWith with the
// default Options.
func Open(ctx context.Context, path string) (*DB, error) {
	return OpenWith(ctx, path, Options{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, path string, o Options) (*DB, error) {
	migs, err := schema.Load(migrationFS)
	if err != nil {
		return nil, err
	}
	return open(ctx, path, migs, o)
}

func open(ctx context.Context, path string, migs []schema.Migration, o Options) (*DB, error) {
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") || path == ":memory:" {
		return nil, fmt.Errorf("store: database path %q: want a plain file path (no '?', '#', file: URIs or :memory:)", path)
	}
	w, err := openWriter(ctx, path)
	if err != nil {
		return nil, err
	}
	db := &DB{path: path, file: path, log: o.Logger, w: w}
	if db.log == nil {
		db.log = slog.Default()
	}
	if err := db.migrate(ctx, migs); err != nil {
		_ = w.Close()
		return nil, err
	}
	if db.r, err = openReaders(ctx, path); err != nil {
		_ = w.Close()
		return nil, err
	}
	if db.ids, err = poolIDs(ctx, w, path); err != nil {
		_ = db.r.Close()
		_ = w.Close()
		return nil, err
	}
	every := o.CheckInterval
	if every == 0 {
		every = defaultCheckInterval
	}
	db.stop, db.watchDone = make(chan struct{}), make(chan struct{})
	if every > 0 {
		go db.watch(every)
	} else {
		close(db.watchDone)
	}
	return db, nil
}

// dsn is the data source name of the database file with the pragmas every connection
// gets, and extra ones ("_pragma=query_only(1)").
func dsn(file string, extra ...string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	for _, e := range extra {
		k, v, _ := strings.Cut(e, "=")
		q.Add(k, v)
	}
	return file + "?" + q.Encode()
}

// openWriter opens the one connection that writes the database file, in WAL mode.
func openWriter(ctx context.Context, file string) (*sql.DB, error) {
	w, err := sql.Open("sqlite", dsn(file, "_pragma=journal_mode(WAL)", "_txlock=immediate"))
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", file, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		_ = w.Close()
		return nil, describeOpenError(file, err)
	}
	return w, nil
}

// openReaders opens the read connections of the database file.
func openReaders(ctx context.Context, file string) (*sql.DB, error) {
	r, err := sql.Open("sqlite", dsn(file, "_pragma=query_only(1)"))
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", file, err)
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	if err := r.PingContext(ctx); err != nil {
		_ = r.Close()
		return nil, describeOpenError(file, err)
	}
	return r, nil
}

// describeOpenError turns the driver's error for an unusable file into one that says what
// to do.
func describeOpenError(path string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "not a database") || strings.Contains(msg, "malformed") || strings.Contains(msg, "SQLITE_NOTADB") || strings.Contains(msg, "SQLITE_CORRUPT"):
		return fmt.Errorf("store: %s is not an SQLite database or is corrupt (%w); restore it from a backup or point the store at another file", path, err)
	case strings.Contains(msg, "unable to open") || strings.Contains(msg, "CANTOPEN"):
		return fmt.Errorf("store: cannot open %s (%w); check that its directory exists and is writable", path, err)
	}
	return fmt.Errorf("store: open %s: %w", path, err)
}

// Close closes the database. A database file deleted since the last check is restored
// first (see the package documentation). Calls made after Close fail.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		close(db.stop)
		<-db.watchDone
		_ = db.check(context.Background(), true)
		db.mu.Lock()
		defer db.mu.Unlock()
		db.closed = true
		db.closeErr = db.closePools()
		if db.lost != nil && db.file == db.path {
			// The pools had the deleted file open, and nothing could copy it.
			db.log.Error("closed the SQLite database while its file was deleted and not restored: what was written to it is lost", "path", db.path, "err", db.lost)
		}
	})
	return db.closeErr
}

// closePools closes the read and write connections, the writer last. db.mu is held for
// writing, or the pools are not shared yet.
func (db *DB) closePools() error {
	return errors.Join(db.r.Close(), db.w.Close())
}

// reader returns the read pool, which stays open until done is called.
func (db *DB) reader() (r *sql.DB, done func()) {
	db.mu.RLock()
	return db.r, db.mu.RUnlock
}

// writer checks that path still names the database file (restoring it when it was
// deleted) and returns the write pool, which stays open until done is called, or the error
// that refuses writes, which wraps ErrFileGone.
func (db *DB) writer(ctx context.Context) (w *sql.DB, done func(), err error) {
	if err := db.check(ctx, false); err != nil {
		return nil, nil, err
	}
	db.mu.RLock()
	if db.lost != nil {
		err := db.lost
		db.mu.RUnlock()
		return nil, nil, err
	}
	return db.w, db.mu.RUnlock, nil
}

// Path returns the file the database was opened from.
func (db *DB) Path() string { return db.path }

// SchemaVersion returns the schema version of the database.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	r, done := db.reader()
	defer done()
	var v int
	err := r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v)
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

// migrate applies the migrations the database lacks, each in its own transaction.
func (db *DB) migrate(ctx context.Context, migs []schema.Migration) error {
	if _, err := db.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version INTEGER PRIMARY KEY,
		name    TEXT NOT NULL,
		applied TEXT NOT NULL
	)`); err != nil {
		return describeOpenError(db.path, err)
	}
	known := len(migs)
	for _, m := range migs {
		if err := db.apply(ctx, m, known); err != nil {
			return err
		}
	}
	// A database already up to date still gets the version check.
	var v int
	if err := db.w.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return describeOpenError(db.path, err)
	}
	if v > known {
		return &VersionError{Path: db.path, Found: v, Known: known}
	}
	return nil
}

func (db *DB) apply(ctx context.Context, m schema.Migration, known int) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return describeOpenError(db.path, err)
	}
	defer func() { _ = tx.Rollback() }()
	var v int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return describeOpenError(db.path, err)
	}
	if v > known {
		return &VersionError{Path: db.path, Found: v, Known: known}
	}
	if v >= m.Version {
		return nil // applied earlier (or by another process meanwhile)
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return fmt.Errorf("store: %s: migration %04d_%s: %w", db.path, m.Version, m.Name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, name, applied) VALUES (?, ?, ?)`,
		m.Version, m.Name, fmtTime(time.Now())); err != nil {
		return fmt.Errorf("store: %s: recording migration %04d: %w", db.path, m.Version, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: %s: migration %04d_%s: %w", db.path, m.Version, m.Name, err)
	}
	return nil
}

// storedTime is RFC 3339 with all nine fraction digits, in UTC: fixed width, so that text
// order is time order (time.RFC3339Nano drops trailing zeros, which breaks that).
const storedTime = "2006-01-02T15:04:05.000000000Z07:00"

// fmtTime encodes a time as stored.
func fmtTime(t time.Time) string { return t.UTC().Format(storedTime) }

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

// sqlLimit maps "0 or less means all" to SQLite's LIMIT -1.
func sqlLimit(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

// Load implements store.StateStore.
func (db *DB) Load(ctx context.Context, key string) (store.ConversationState, error) {
	r, done := db.reader()
	defer done()
	var state, vars, updated string
	err := r.QueryRowContext(ctx, `SELECT state, vars, updated FROM conversations WHERE key = ?`, key).Scan(&state, &vars, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ConversationState{}, nil
	}
	if err != nil {
		return store.ConversationState{}, fmt.Errorf("store: load conversation %q: %w", key, err)
	}
	c := store.ConversationState{State: state, Updated: parseTime(updated)}
	if c.Vars, err = schema.DecodeVars([]byte(vars)); err != nil {
		return store.ConversationState{}, fmt.Errorf("store: conversation %q: variables are not valid JSON: %w", key, err)
	}
	return c, nil
}

// Save implements store.StateStore. Variables are stored as JSON; whole numbers read back as int.
// A zero c.Updated is stored as now.
func (db *DB) Save(ctx context.Context, key string, c store.ConversationState) error {
	vars := []byte("{}")
	if len(c.Vars) > 0 {
		var err error
		if vars, err = json.Marshal(c.Vars); err != nil {
			return fmt.Errorf("store: save conversation %q: variables must be JSON values: %w", key, err)
		}
	}
	w, done, err := db.writer(ctx)
	if err != nil {
		return fmt.Errorf("store: save conversation %q: %w", key, err)
	}
	defer done()
	_, err = w.ExecContext(ctx, `INSERT INTO conversations (key, state, vars, updated) VALUES (?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET state = excluded.state, vars = excluded.vars, updated = excluded.updated`,
		key, c.State, string(vars), fmtTime(orNow(c.Updated)))
	if err != nil {
		return fmt.Errorf("store: save conversation %q: %w", key, err)
	}
	return nil
}

// Delete implements store.StateStore.
func (db *DB) Delete(ctx context.Context, key string) error {
	w, done, err := db.writer(ctx)
	if err != nil {
		return fmt.Errorf("store: delete conversation %q: %w", key, err)
	}
	defer done()
	if _, err := w.ExecContext(ctx, `DELETE FROM conversations WHERE key = ?`, key); err != nil {
		return fmt.Errorf("store: delete conversation %q: %w", key, err)
	}
	return nil
}

// AppendTranscript adds e to the transcript. A zero Time means now.
func (db *DB) AppendTranscript(ctx context.Context, e store.TranscriptEntry) error {
	if e.Direction != store.In && e.Direction != store.Out {
		return fmt.Errorf("store: transcript entry direction %q: want %q or %q", e.Direction, store.In, store.Out)
	}
	w, done, err := db.writer(ctx)
	if err != nil {
		return fmt.Errorf("store: append transcript: %w", err)
	}
	defer done()
	_, err = w.ExecContext(ctx, `INSERT INTO transcript (session_id, key, direction, peer, text, time, answerer)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		e.SessionID, e.Key, string(e.Direction), e.Peer, e.Text, fmtTime(orNow(e.Time)), e.Answerer)
	if err != nil {
		return fmt.Errorf("store: append transcript: %w", err)
	}
	return nil
}

// Transcript returns the last limit entries of the conversation key (all when limit <= 0),
// oldest first, in the order of their times (a message is timed when it arrived or when
// its sending started, whatever the order the entries were written in).
func (db *DB) Transcript(ctx context.Context, key string, limit int) ([]store.TranscriptEntry, error) {
	r, done := db.reader()
	defer done()
	rows, err := r.QueryContext(ctx, `SELECT id, session_id, key, direction, peer, text, time, answerer FROM
		(SELECT * FROM transcript WHERE key = ? ORDER BY time DESC, id DESC LIMIT ?) ORDER BY time, id`, key, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("store: transcript %q: %w", key, err)
	}
	defer rows.Close()
	var out []store.TranscriptEntry
	for rows.Next() {
		var e store.TranscriptEntry
		var dir, t string
		if err := rows.Scan(&e.ID, &e.SessionID, &e.Key, &dir, &e.Peer, &e.Text, &t, &e.Answerer); err != nil {
			return nil, fmt.Errorf("store: transcript %q: %w", key, err)
		}
		e.Direction, e.Time = store.Direction(dir), parseTime(t)
		out = append(out, e)
	}
	return out, rows.Err()
}

// CreateTicket stores t as a new ticket and returns its number. Numbers are sequential and
// start at 1001. An empty Status is stored as store.StatusOpen.
func (db *DB) CreateTicket(ctx context.Context, t store.Ticket) (int64, error) {
	if t.Status == "" {
		t.Status = store.StatusOpen
	}
	w, done, err := db.writer(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: create ticket: %w", err)
	}
	defer done()
	now := fmtTime(time.Now())
	var n int64
	err = w.QueryRowContext(ctx, `INSERT INTO tickets (key, peer, summary, urgency, status, assignee, notes, created, updated)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING number`,
		t.Key, t.Peer, t.Summary, t.Urgency, t.Status, t.Assignee, t.Notes, now, now).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: create ticket: %w", err)
	}
	return n, nil
}

const ticketColumns = `number, key, peer, summary, urgency, status, assignee, notes, created, updated`

func scanTicket(sc interface{ Scan(...any) error }) (store.Ticket, error) {
	var t store.Ticket
	var created, updated string
	err := sc.Scan(&t.Number, &t.Key, &t.Peer, &t.Summary, &t.Urgency, &t.Status, &t.Assignee, &t.Notes, &created, &updated)
	t.Created, t.Updated = parseTime(created), parseTime(updated)
	return t, err
}

// Ticket returns the ticket with this number, or an error wrapping store.ErrNotFound.
func (db *DB) Ticket(ctx context.Context, number int64) (store.Ticket, error) {
	r, done := db.reader()
	defer done()
	t, err := scanTicket(r.QueryRowContext(ctx, `SELECT `+ticketColumns+` FROM tickets WHERE number = ?`, number))
	if errors.Is(err, sql.ErrNoRows) {
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
	w, done, err := db.writer(ctx)
	if err != nil {
		return fmt.Errorf("store: update ticket %d: %w", t.Number, err)
	}
	defer done()
	res, err := w.ExecContext(ctx, `UPDATE tickets SET summary = ?, urgency = ?, status = ?, assignee = ?, notes = ?, updated = ?
		WHERE number = ?`, t.Summary, t.Urgency, t.Status, t.Assignee, t.Notes, fmtTime(time.Now()), t.Number)
	if err != nil {
		return fmt.Errorf("store: update ticket %d: %w", t.Number, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: ticket %d: %w", t.Number, store.ErrNotFound)
	}
	return nil
}

// Tickets returns the last limit tickets of the conversation key (all when limit <= 0),
// oldest first.
func (db *DB) Tickets(ctx context.Context, key string, limit int) ([]store.Ticket, error) {
	r, done := db.reader()
	defer done()
	rows, err := r.QueryContext(ctx, `SELECT `+ticketColumns+` FROM
		(SELECT * FROM tickets WHERE key = ? ORDER BY number DESC LIMIT ?) ORDER BY number`, key, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("store: tickets of %q: %w", key, err)
	}
	defer rows.Close()
	var out []store.Ticket
	for rows.Next() {
		t, err := scanTicket(rows)
		if err != nil {
			return nil, fmt.Errorf("store: tickets of %q: %w", key, err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// AppendUnmatched records a question no rule matched. A zero Time means now.
func (db *DB) AppendUnmatched(ctx context.Context, u store.Unmatched) error {
	w, done, err := db.writer(ctx)
	if err != nil {
		return fmt.Errorf("store: append unmatched question: %w", err)
	}
	defer done()
	_, err = w.ExecContext(ctx, `INSERT INTO unmatched (key, session_id, peer, text, time) VALUES (?, ?, ?, ?, ?)`,
		u.Key, u.SessionID, u.Peer, u.Text, fmtTime(orNow(u.Time)))
	if err != nil {
		return fmt.Errorf("store: append unmatched question: %w", err)
	}
	return nil
}

// Unmatched returns the last limit unmatched questions (all when limit <= 0), oldest first.
func (db *DB) Unmatched(ctx context.Context, limit int) ([]store.Unmatched, error) {
	r, done := db.reader()
	defer done()
	rows, err := r.QueryContext(ctx, `SELECT id, key, session_id, peer, text, time FROM
		(SELECT * FROM unmatched ORDER BY id DESC LIMIT ?) ORDER BY id`, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("store: unmatched questions: %w", err)
	}
	defer rows.Close()
	var out []store.Unmatched
	for rows.Next() {
		var u store.Unmatched
		var t string
		if err := rows.Scan(&u.ID, &u.Key, &u.SessionID, &u.Peer, &u.Text, &t); err != nil {
			return nil, fmt.Errorf("store: unmatched questions: %w", err)
		}
		u.Time = parseTime(t)
		out = append(out, u)
	}
	return out, rows.Err()
}

// AddRating records a satisfaction rating. A zero Time means now.
func (db *DB) AddRating(ctx context.Context, r store.Rating) error {
	w, done, err := db.writer(ctx)
	if err != nil {
		return fmt.Errorf("store: add rating: %w", err)
	}
	defer done()
	_, err = w.ExecContext(ctx, `INSERT INTO ratings (key, session_id, peer, score, comment, agent, handoff_id, time)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Key, r.SessionID, r.Peer, r.Score, r.Comment, r.Agent, r.HandoffID, fmtTime(orNow(r.Time)))
	if err != nil {
		return fmt.Errorf("store: add rating: %w", err)
	}
	return nil
}

// Ratings returns the last limit ratings (all when limit <= 0), oldest first.
func (db *DB) Ratings(ctx context.Context, limit int) ([]store.Rating, error) {
	r, done := db.reader()
	defer done()
	rows, err := r.QueryContext(ctx, `SELECT id, key, session_id, peer, score, comment, agent, handoff_id, time FROM
		(SELECT * FROM ratings ORDER BY id DESC LIMIT ?) ORDER BY id`, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("store: ratings: %w", err)
	}
	defer rows.Close()
	var out []store.Rating
	for rows.Next() {
		var r store.Rating
		var t string
		if err := rows.Scan(&r.ID, &r.Key, &r.SessionID, &r.Peer, &r.Score, &r.Comment, &r.Agent, &r.HandoffID, &t); err != nil {
			return nil, fmt.Errorf("store: ratings: %w", err)
		}
		r.Time = parseTime(t)
		out = append(out, r)
	}
	return out, rows.Err()
}

var _ store.StateStore = (*DB)(nil)

// SaveHandoff implements store.HandoffStore: the row and the last number are written in one
// transaction.
func (db *DB) SaveHandoff(ctx context.Context, h store.Handoff) error {
	tried, err := json.Marshal(nonNil(h.Tried))
	if err != nil {
		return fmt.Errorf("store: save handoff %d: %w", h.ID, err)
	}
	pending, err := json.Marshal(nonNil(h.Pending))
	if err != nil {
		return fmt.Errorf("store: save handoff %d: %w", h.ID, err)
	}
	offered, err := json.Marshal(nonNil(h.Offered))
	if err != nil {
		return fmt.Errorf("store: save handoff %d: %w", h.ID, err)
	}
	lapsed, err := json.Marshal(nonNil(h.Lapsed))
	if err != nil {
		return fmt.Errorf("store: save handoff %d: %w", h.ID, err)
	}
	deadline, offerDeadline := "", ""
	if !h.Deadline.IsZero() {
		deadline = fmtTime(h.Deadline)
	}
	if !h.OfferDeadline.IsZero() {
		offerDeadline = fmtTime(h.OfferDeadline)
	}
	w, done, err := db.writer(ctx)
	if err != nil {
		return fmt.Errorf("store: save handoff %d: %w", h.ID, err)
	}
	defer done()
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: save handoff %d: %w", h.ID, err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `INSERT INTO handoffs
		(id, user_key, user_uri, verified, user_name, reason, state, agent, deadline, started, tried, pending,
			offered, lapsed, offer_deadline)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET user_key = excluded.user_key, user_uri = excluded.user_uri,
			verified = excluded.verified, user_name = excluded.user_name, reason = excluded.reason,
			state = excluded.state, agent = excluded.agent, deadline = excluded.deadline,
			started = excluded.started, tried = excluded.tried, pending = excluded.pending,
			offered = excluded.offered, lapsed = excluded.lapsed, offer_deadline = excluded.offer_deadline`,
		h.ID, h.UserKey, h.UserURI, h.Verified, h.UserName, h.Reason, h.State, h.Agent, deadline,
		fmtTime(orNow(h.Started)), string(tried), string(pending), string(offered), string(lapsed), offerDeadline); err != nil {
		return fmt.Errorf("store: save handoff %d: %w", h.ID, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO handoff_last (one, id) VALUES (1, ?)
		ON CONFLICT (one) DO UPDATE SET id = MAX(id, excluded.id)`, h.ID); err != nil {
		return fmt.Errorf("store: save handoff %d: %w", h.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: save handoff %d: %w", h.ID, err)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// DeleteHandoff implements store.HandoffStore.
func (db *DB) DeleteHandoff(ctx context.Context, id int64) error {
	w, done, err := db.writer(ctx)
	if err != nil {
		return fmt.Errorf("store: delete handoff %d: %w", id, err)
	}
	defer done()
	if _, err := w.ExecContext(ctx, `DELETE FROM handoffs WHERE id = ?`, id); err != nil {
		return fmt.Errorf("store: delete handoff %d: %w", id, err)
	}
	return nil
}

// Handoffs implements store.HandoffStore.
func (db *DB) Handoffs(ctx context.Context) ([]store.Handoff, error) {
	r, done := db.reader()
	defer done()
	rows, err := r.QueryContext(ctx, `SELECT id, user_key, user_uri, verified, user_name, reason, state, agent,
		deadline, started, tried, pending, offered, lapsed, offer_deadline FROM handoffs ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: handoffs: %w", err)
	}
	defer rows.Close()
	var out []store.Handoff
	for rows.Next() {
		var h store.Handoff
		var deadline, started, tried, pending, offered, lapsed, offerDeadline string
		if err := rows.Scan(&h.ID, &h.UserKey, &h.UserURI, &h.Verified, &h.UserName, &h.Reason, &h.State, &h.Agent,
			&deadline, &started, &tried, &pending, &offered, &lapsed, &offerDeadline); err != nil {
			return nil, fmt.Errorf("store: handoffs: %w", err)
		}
		if deadline != "" {
			h.Deadline = parseTime(deadline)
		}
		if offerDeadline != "" {
			h.OfferDeadline = parseTime(offerDeadline)
		}
		h.Started = parseTime(started)
		for _, f := range []struct {
			what string
			data string
			dst  *[]string
		}{{"offered agents", offered, &h.Offered}, {"lapsed offers", lapsed, &h.Lapsed}} {
			if err := json.Unmarshal([]byte(f.data), f.dst); err != nil {
				return nil, fmt.Errorf("store: handoff %d: %s are not valid JSON: %w", h.ID, f.what, err)
			}
			if len(*f.dst) == 0 {
				*f.dst = nil
			}
		}
		if err := json.Unmarshal([]byte(tried), &h.Tried); err != nil {
			return nil, fmt.Errorf("store: handoff %d: tried agents are not valid JSON: %w", h.ID, err)
		}
		if err := json.Unmarshal([]byte(pending), &h.Pending); err != nil {
			return nil, fmt.Errorf("store: handoff %d: pending messages are not valid JSON: %w", h.ID, err)
		}
		if len(h.Tried) == 0 {
			h.Tried = nil
		}
		if len(h.Pending) == 0 {
			h.Pending = nil
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// LastHandoffID implements store.HandoffStore.
func (db *DB) LastHandoffID(ctx context.Context) (int64, error) {
	r, done := db.reader()
	defer done()
	var id int64
	if err := r.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM handoff_last`).Scan(&id); err != nil {
		return 0, fmt.Errorf("store: last handoff number: %w", err)
	}
	return id, nil
}

var _ store.HandoffStore = (*DB)(nil)

// roomParticipant is a store.RoomParticipant as the participants column keeps it (JSON).
type roomParticipant struct {
	URI      string `json:"uri"`
	Verified bool   `json:"verified,omitempty"`
	Name     string `json:"name,omitempty"`
	Key      string `json:"key,omitempty"`
	Joined   string `json:"joined"`
	Managed  bool   `json:"managed,omitempty"`
}

// SaveRoom implements store.RoomStore.
func (db *DB) SaveRoom(ctx context.Context, r store.Room) error {
	ps := make([]roomParticipant, len(r.Participants))
	for i, p := range r.Participants {
		ps[i] = roomParticipant{URI: p.URI, Verified: p.Verified, Name: p.Name, Key: p.Key, Joined: fmtTime(orNow(p.Joined)), Managed: p.Managed}
	}
	data, err := json.Marshal(ps)
	if err != nil {
		return fmt.Errorf("store: save room %s: %w", r.ID, err)
	}
	w, done, err := db.writer(ctx)
	if err != nil {
		return fmt.Errorf("store: save room %s: %w", r.ID, err)
	}
	defer done()
	if _, err := w.ExecContext(ctx, `INSERT INTO rooms (id, created, silent, leave_on_idle, participants)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET created = excluded.created, silent = excluded.silent,
			leave_on_idle = excluded.leave_on_idle, participants = excluded.participants`,
		r.ID, fmtTime(orNow(r.Created)), r.Silent, r.LeaveOnIdle, string(data)); err != nil {
		return fmt.Errorf("store: save room %s: %w", r.ID, err)
	}
	return nil
}

// DeleteRoom implements store.RoomStore: the room and its deliveries go in one transaction.
func (db *DB) DeleteRoom(ctx context.Context, id string) error {
	w, done, err := db.writer(ctx)
	if err != nil {
		return fmt.Errorf("store: delete room %s: %w", id, err)
	}
	defer done()
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: delete room %s: %w", id, err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, q := range []string{`DELETE FROM room_deliveries WHERE room = ?`, `DELETE FROM rooms WHERE id = ?`} {
		if _, err := tx.ExecContext(ctx, q, id); err != nil {
			return fmt.Errorf("store: delete room %s: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: delete room %s: %w", id, err)
	}
	return nil
}

// Rooms implements store.RoomStore.
func (db *DB) Rooms(ctx context.Context) ([]store.Room, error) {
	r, done := db.reader()
	defer done()
	rows, err := r.QueryContext(ctx, `SELECT id, created, silent, leave_on_idle, participants FROM rooms ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: rooms: %w", err)
	}
	defer rows.Close()
	var out []store.Room
	for rows.Next() {
		var rm store.Room
		var created, data string
		if err := rows.Scan(&rm.ID, &created, &rm.Silent, &rm.LeaveOnIdle, &data); err != nil {
			return nil, fmt.Errorf("store: rooms: %w", err)
		}
		rm.Created = parseTime(created)
		var ps []roomParticipant
		if err := json.Unmarshal([]byte(data), &ps); err != nil {
			return nil, fmt.Errorf("store: room %s: participants are not valid JSON: %w", rm.ID, err)
		}
		for _, p := range ps {
			rm.Participants = append(rm.Participants, store.RoomParticipant{
				URI: p.URI, Verified: p.Verified, Name: p.Name, Key: p.Key, Joined: parseTime(p.Joined), Managed: p.Managed,
			})
		}
		out = append(out, rm)
	}
	return out, rows.Err()
}

// AddRoomDeliveries implements store.RoomStore, in one transaction.
func (db *DB) AddRoomDeliveries(ctx context.Context, ds []store.RoomDelivery) error {
	if len(ds) == 0 {
		return nil
	}
	w, done, err := db.writer(ctx)
	if err != nil {
		return fmt.Errorf("store: add room deliveries: %w", err)
	}
	defer done()
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: add room deliveries: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, d := range ds {
		if _, err := tx.ExecContext(ctx, `INSERT INTO room_deliveries (room, seq, recipient, text, time, answerer)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (room, seq) DO UPDATE SET recipient = excluded.recipient, text = excluded.text,
				time = excluded.time, answerer = excluded.answerer`,
			d.Room, d.Seq, d.To, d.Text, fmtTime(orNow(d.Time)), d.Answerer); err != nil {
			return fmt.Errorf("store: add room delivery %s/%d: %w", d.Room, d.Seq, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: add room deliveries: %w", err)
	}
	return nil
}

// DeleteRoomDelivery implements store.RoomStore.
func (db *DB) DeleteRoomDelivery(ctx context.Context, room string, seq int64) error {
	w, done, err := db.writer(ctx)
	if err != nil {
		return fmt.Errorf("store: delete room delivery %s/%d: %w", room, seq, err)
	}
	defer done()
	if _, err := w.ExecContext(ctx, `DELETE FROM room_deliveries WHERE room = ? AND seq = ?`, room, seq); err != nil {
		return fmt.Errorf("store: delete room delivery %s/%d: %w", room, seq, err)
	}
	return nil
}

// RoomDeliveries implements store.RoomStore.
func (db *DB) RoomDeliveries(ctx context.Context, room string) ([]store.RoomDelivery, error) {
	r, done := db.reader()
	defer done()
	rows, err := r.QueryContext(ctx, `SELECT room, seq, recipient, text, time, answerer FROM room_deliveries
		WHERE room = ? ORDER BY seq`, room)
	if err != nil {
		return nil, fmt.Errorf("store: room deliveries of %s: %w", room, err)
	}
	defer rows.Close()
	var out []store.RoomDelivery
	for rows.Next() {
		var d store.RoomDelivery
		var t string
		if err := rows.Scan(&d.Room, &d.Seq, &d.To, &d.Text, &t, &d.Answerer); err != nil {
			return nil, fmt.Errorf("store: room deliveries of %s: %w", room, err)
		}
		d.Time = parseTime(t)
		out = append(out, d)
	}
	return out, rows.Err()
}

var _ store.RoomStore = (*DB)(nil)

// AcquireLease implements store.LeaseStore in one statement: the row is written only when it
// is new, its lease has ended, or owner holds it.
func (db *DB) AcquireLease(ctx context.Context, key, owner string, now time.Time, ttl time.Duration) (bool, error) {
	w, done, err := db.writer(ctx)
	if err != nil {
		return false, fmt.Errorf("store: lease on %q: %w", key, err)
	}
	defer done()
	res, err := w.ExecContext(ctx, `INSERT INTO conversation_leases (key, owner, until) VALUES (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, until = excluded.until
		WHERE conversation_leases.until <= ? OR conversation_leases.owner = excluded.owner`,
		key, owner, fmtTime(now.Add(ttl)), fmtTime(now))
	if err != nil {
		return false, fmt.Errorf("store: lease on %q: %w", key, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// ReleaseLease implements store.LeaseStore.
func (db *DB) ReleaseLease(ctx context.Context, key, owner string) error {
	w, done, err := db.writer(ctx)
	if err != nil {
		return fmt.Errorf("store: release the lease on %q: %w", key, err)
	}
	defer done()
	if _, err := w.ExecContext(ctx, `DELETE FROM conversation_leases WHERE key = ? AND owner = ?`, key, owner); err != nil {
		return fmt.Errorf("store: release the lease on %q: %w", key, err)
	}
	return nil
}

// LeaseHolder implements store.LeaseStore.
func (db *DB) LeaseHolder(ctx context.Context, key string, now time.Time) (string, error) {
	r, done := db.reader()
	defer done()
	var owner string
	err := r.QueryRowContext(ctx, `SELECT owner FROM conversation_leases WHERE key = ? AND until > ?`, key, fmtTime(now)).Scan(&owner)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: holder of the lease on %q: %w", key, err)
	}
	return owner, nil
}

var _ store.LeaseStore = (*DB)(nil)
