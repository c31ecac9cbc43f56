package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/imbot-dev/imbot/handlers"
	"github.com/imbot-dev/imbot/store"
	"github.com/imbot-dev/imbot/store/internal/schema"
	"github.com/imbot-dev/imbot/store/storetest"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func openTemp(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "imbot.db")
	db, err := Open(testCtx(t), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, path
}

func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		db, _ := openTemp(t)
		return db
	})
}

func TestPragmas(t *testing.T) {
	db, _ := openTemp(t)
	ctx := testCtx(t)
	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
		{"synchronous", "1"},
	}
	for _, tt := range tests {
		t.Run(tt.pragma, func(t *testing.T) {
			for name, pool := range map[string]*sql.DB{"writer": db.w, "reader": db.r} {
				var got string
				if err := pool.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got != tt.want {
					t.Errorf("%s: PRAGMA %s = %s, want %s", name, tt.pragma, got, tt.want)
				}
			}
		})
	}
}

// TestReopen: what was written is found again after Close and Open, as after a restart.
func TestReopen(t *testing.T) {
	ctx := testCtx(t)
	db, path := openTemp(t)
	key := "sip:bot@x sip:alice@x"
	if err := db.Save(ctx, key, store.ConversationState{State: "ask-urgency", Vars: map[string]any{"summary": "VPN", "n": 2}}); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendTranscript(ctx, store.TranscriptEntry{SessionID: "s", Key: key, Direction: store.In, Text: "hello"}); err != nil {
		t.Fatal(err)
	}
	num, err := db.CreateTicket(ctx, store.Ticket{Key: key, Summary: "VPN"})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AddRating(ctx, store.Rating{Key: key, Score: 4}); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendUnmatched(ctx, store.Unmatched{Key: key, Text: "huh"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	conv, err := db2.Load(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if conv.State != "ask-urgency" || conv.Vars["summary"] != "VPN" || conv.Vars["n"] != 2 {
		t.Errorf("conversation after reopen: %#v", conv)
	}
	if tr, _ := db2.Transcript(ctx, key, 0); len(tr) != 1 || tr[0].Text != "hello" {
		t.Errorf("transcript after reopen: %#v", tr)
	}
	if tk, err := db2.Ticket(ctx, num); err != nil || tk.Summary != "VPN" {
		t.Errorf("ticket after reopen: %#v, %v", tk, err)
	}
	if n2, _ := db2.CreateTicket(ctx, store.Ticket{Key: key, Summary: "next"}); n2 != num+1 {
		t.Errorf("numbering after reopen: %d, want %d", n2, num+1)
	}
	if r, _ := db2.Ratings(ctx, 0); len(r) != 1 {
		t.Errorf("ratings after reopen: %#v", r)
	}
	if u, _ := db2.Unmatched(ctx, 0); len(u) != 1 {
		t.Errorf("unmatched after reopen: %#v", u)
	}
}

// TestUpgrade: a database made by an older imbot (schema version 1 only) is brought up to
// date, and its data survives.
func TestUpgrade(t *testing.T) {
	ctx := testCtx(t)
	migs, err := schema.Load(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	if len(migs) < 2 {
		t.Skip("only one migration")
	}
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := open(ctx, path, migs[:1], Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := old.SchemaVersion(ctx); v != 1 {
		t.Fatalf("old schema version = %d", v)
	}
	if err := old.Save(ctx, "k", store.ConversationState{State: "old"}); err != nil {
		t.Fatal(err)
	}
	if err := old.AppendTranscript(ctx, store.TranscriptEntry{Key: "k", Direction: store.In, Text: "from v1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := old.CreateTicket(ctx, store.Ticket{Key: "k"}); err == nil {
		t.Fatal("schema version 1 has tickets already; the test no longer tests an upgrade")
	}
	old.Close()

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, _ := db.SchemaVersion(ctx); v != LatestSchemaVersion() {
		t.Errorf("schema version after upgrade = %d, want %d", v, LatestSchemaVersion())
	}
	if c, _ := db.Load(ctx, "k"); c.State != "old" {
		t.Errorf("conversation lost in the upgrade: %#v", c)
	}
	if tr, _ := db.Transcript(ctx, "k", 0); len(tr) != 1 || tr[0].Text != "from v1" {
		t.Errorf("transcript lost in the upgrade: %#v", tr)
	}
	if n, err := db.CreateTicket(ctx, store.Ticket{Key: "k"}); err != nil || n != 1001 {
		t.Errorf("CreateTicket after upgrade = %d, %v", n, err)
	}
	var applied int
	if err := db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_version`).Scan(&applied); err != nil || applied != LatestSchemaVersion() {
		t.Errorf("schema_version rows = %d, %v", applied, err)
	}
}

// TestFailedMigrationRollsBack: a migration that fails leaves the database at the version
// before it, with nothing of the failed migration applied.
func TestFailedMigrationRollsBack(t *testing.T) {
	ctx := testCtx(t)
	migs, err := schema.Load(fstest.MapFS{
		"migrations/0001_a.sql": {Data: []byte("CREATE TABLE a (x INTEGER);")},
		"migrations/0002_b.sql": {Data: []byte("CREATE TABLE b (x INTEGER); INSERT INTO nowhere VALUES (1);")},
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "x.db")
	if _, err := open(ctx, path, migs, Options{}); err == nil || !strings.Contains(err.Error(), "0002_b") {
		t.Fatalf("open = %v, want an error naming migration 0002_b", err)
	}
	db, err := open(ctx, path, migs[:1], Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, _ := db.SchemaVersion(ctx); v != 1 {
		t.Errorf("version = %d, want 1", v)
	}
	var n int
	if err := db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE name = 'b'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("table b of the failed migration exists (%d, %v)", n, err)
	}
}

func TestNewerDatabaseRefused(t *testing.T) {
	ctx := testCtx(t)
	db, path := openTemp(t)
	if _, err := db.w.ExecContext(ctx, `INSERT INTO schema_version (version, name, applied) VALUES (?, 'future', ?)`,
		LatestSchemaVersion()+1, fmtTime(time.Now())); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err := Open(ctx, path)
	var ve *VersionError
	if !errors.As(err, &ve) {
		t.Fatalf("Open = %v, want *VersionError", err)
	}
	if ve.Found != LatestSchemaVersion()+1 || ve.Known != LatestSchemaVersion() || !strings.Contains(err.Error(), "newer imbot") {
		t.Errorf("error = %v (%+v)", err, ve)
	}
}

func TestUnusableFile(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("this is not a database\n", 400)), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		path string
		want string
	}{
		"not a database": {garbage, "not an SQLite database"},
		"missing dir":    {filepath.Join(dir, "no", "such", "dir", "x.db"), "cannot open"},
		"uri":            {"file:x.db?mode=ro", "plain file path"},
		"memory":         {":memory:", "plain file path"},
		"empty":          {"", "plain file path"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			db, err := Open(ctx, tt.path)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to say %q", err, tt.want)
			}
		})
	}
	b, _ := os.ReadFile(garbage)
	if !strings.HasPrefix(string(b), "this is not a database") {
		t.Error("Open changed the file it refused")
	}
}

// TestTwoHandles: two *DB on one file (a second process, such as imbot check, or a
// restarted bot whose predecessor is still shutting down) write at the same time without
// SQLITE_BUSY errors.
func TestTwoHandles(t *testing.T) {
	ctx := testCtx(t)
	a, path := openTemp(t)
	b, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	for _, db := range []*DB{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if _, err := db.CreateTicket(ctx, store.Ticket{Key: "k", Summary: "s"}); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if list, _ := a.Tickets(ctx, "k", 0); len(list) != 200 {
		t.Errorf("%d tickets, want 200", len(list))
	}
}

// *DB is what package handlers writes its records to.
var (
	_ handlers.TranscriptStore = (*DB)(nil)
	_ handlers.TicketStore     = (*DB)(nil)
	_ handlers.UnmatchedStore  = (*DB)(nil)
	_ handlers.RatingStore     = (*DB)(nil)
	_ handlers.TranscriptStore = (*store.Memory)(nil)
	_ handlers.TicketStore     = (*store.Memory)(nil)
	_ handlers.UnmatchedStore  = (*store.Memory)(nil)
	_ handlers.RatingStore     = (*store.Memory)(nil)
)

// TestUpgradeHandoffs: a database of schema version 4 (handoffs without their offer
// fields) keeps its handoffs through the upgrade to the offer fields of version 5, which
// start empty and are saved from then on.
func TestUpgradeHandoffs(t *testing.T) {
	ctx := testCtx(t)
	migs, err := schema.Load(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	if len(migs) < 5 {
		t.Skip("fewer than five migrations")
	}
	path := filepath.Join(t.TempDir(), "v4.db")
	old, err := open(ctx, path, migs[:4], Options{})
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now().Truncate(time.Second)
	h := store.Handoff{ID: 7, UserKey: "bot alice", UserURI: "sip:alice@example.com", Verified: true, UserName: "alice",
		Reason: "a human please", State: store.HandoffAccepted, Agent: "sip:ann@example.com", Started: started}
	// Written as version 4 wrote it: its columns only.
	if _, err := old.w.ExecContext(ctx, `INSERT INTO handoffs (id, user_key, user_uri, verified, user_name, reason, state, agent, started)
		VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?)`, h.ID, h.UserKey, h.UserURI, h.UserName, h.Reason, h.State, h.Agent, fmtTime(started)); err != nil {
		t.Fatalf("a handoff in a version 4 database: %v", err)
	}
	old.Close()

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.Handoffs(ctx)
	if err != nil || len(got) != 1 {
		t.Fatalf("handoffs after the upgrade: %+v, %v", got, err)
	}
	g := got[0]
	if g.ID != 7 || g.UserKey != h.UserKey || g.Agent != h.Agent || g.State != store.HandoffAccepted || !g.Verified ||
		len(g.Offered) != 0 || !g.OfferDeadline.IsZero() || len(g.Lapsed) != 0 {
		t.Errorf("handoff after the upgrade: %+v", g)
	}
	g.State, g.Offered, g.Lapsed = store.HandoffOffered, []string{"sip:bob@example.com"}, []string{"sip:ann@example.com"}
	g.OfferDeadline = started.Add(time.Minute)
	if err := db.SaveHandoff(ctx, g); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Handoffs(ctx); len(got) != 1 || len(got[0].Offered) != 1 || got[0].Offered[0] != "sip:bob@example.com" ||
		len(got[0].Lapsed) != 1 || !got[0].OfferDeadline.Equal(started.Add(time.Minute)) {
		t.Errorf("offer fields after the upgrade: %+v", got)
	}
}

// TestEmbeddedMigrations: the files in migrations/ are numbered as schema.Load wants.
func TestEmbeddedMigrations(t *testing.T) {
	if _, err := schema.Load(migrationFS); err != nil {
		t.Error(err)
	}
}

// BenchmarkStore is what the store costs a message (storetest.Benchmark);
// store/postgres's BenchmarkStore compares it with PostgreSQL in one run.
func BenchmarkStore(b *testing.B) {
	db, err := Open(context.Background(), filepath.Join(b.TempDir(), "imbot.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	storetest.Benchmark(b, db)
}
