package postgres

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imbot-dev/imbot/handlers"
	"github.com/imbot-dev/imbot/store"
	"github.com/imbot-dev/imbot/store/internal/schema"
	"github.com/imbot-dev/imbot/store/postgres/pgtest"
	"github.com/imbot-dev/imbot/store/storetest"
)

// server is the PostgreSQL server of this package's tests, started by TestMain.
var server *pgtest.Server

// quiet are the options of stores whose migrations need not be logged.
var quiet = Options{Logger: slog.New(slog.DiscardHandler)}

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &server)) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// openNew opens the store on a new, empty database and returns it with the DSN.
func openNew(t *testing.T) (*DB, string) {
	t.Helper()
	dsn := server.Database(t)
	db, err := OpenWith(testCtx(t), dsn, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, dsn
}

func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		db, _ := openNew(t)
		return db
	})
}

// TestMigrations: an empty database is brought to the latest version, each migration
// recorded once; opening it again applies nothing and keeps what was written.
func TestMigrations(t *testing.T) {
	ctx := testCtx(t)
	db, dsn := openNew(t)
	if v, err := db.SchemaVersion(ctx); err != nil || v != LatestSchemaVersion() || v < 5 {
		t.Fatalf("schema version = %d, %v; want %d", v, err, LatestSchemaVersion())
	}
	migs, err := schema.Load(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateTicket(ctx, store.Ticket{Key: "k", Summary: "before reopen"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(ctx, dsn)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer again.Close()
	rows, _ := again.pool.Query(ctx, `SELECT version, name FROM schema_version ORDER BY version`)
	type row struct {
		Version int
		Name    string
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(migs) {
		t.Fatalf("schema_version has %d rows after a reopen, want %d: %v", len(got), len(migs), got)
	}
	for i, m := range migs {
		if got[i].Version != m.Version || got[i].Name != m.Name {
			t.Errorf("schema_version row %d = %v, want %d %s", i, got[i], m.Version, m.Name)
		}
	}
	if n, err := again.CreateTicket(ctx, store.Ticket{Key: "k", Summary: "after"}); err != nil || n != 1002 {
		t.Errorf("ticket after reopen = %d, %v; want 1002", n, err)
	}
}

// TestSameMigrationsAsSQLite: the two stores stay at one schema version, with the same
// migration names, so that a schema change is made in both.
func TestSameMigrationsAsSQLite(t *testing.T) {
	pg, err := schema.Load(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	lite, err := schema.Load(os.DirFS("../sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	var a, b []string
	for _, m := range pg {
		a = append(a, m.Name)
	}
	for _, m := range lite {
		b = append(b, m.Name)
	}
	if strings.Join(a, " ") != strings.Join(b, " ") {
		t.Errorf("PostgreSQL migrations %v, SQLite migrations %v: add the missing ones to the other store", a, b)
	}
}

func TestNewerDatabaseRefused(t *testing.T) {
	ctx := testCtx(t)
	db, dsn := openNew(t)
	if _, err := db.pool.Exec(ctx, `INSERT INTO schema_version (version, name) VALUES ($1, 'future')`, LatestSchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err := Open(ctx, dsn)
	var ve *VersionError
	if !errors.As(err, &ve) {
		t.Fatalf("Open = %v, want *VersionError", err)
	}
	if ve.Found != LatestSchemaVersion()+1 || ve.Known != LatestSchemaVersion() || !strings.Contains(err.Error(), "newer imbot") ||
		!strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("error = %v (%+v)", err, ve)
	}
}

// TestUpgrade: a database made by an older imbot (schema version 1) is brought up to date,
// and its data survives.
func TestUpgrade(t *testing.T) {
	ctx := testCtx(t)
	migs, err := schema.Load(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	dsn := server.Database(t)
	old, err := open(ctx, dsn, migs[:1], Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Save(ctx, "k", store.ConversationState{State: "old", Vars: map[string]any{"n": 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := old.CreateTicket(ctx, store.Ticket{Key: "k"}); err == nil {
		t.Fatal("schema version 1 has tickets already; the test no longer tests an upgrade")
	}
	old.Close()
	db, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, _ := db.SchemaVersion(ctx); v != LatestSchemaVersion() {
		t.Errorf("schema version after upgrade = %d, want %d", v, LatestSchemaVersion())
	}
	if c, _ := db.Load(ctx, "k"); c.State != "old" || c.Vars["n"] != 1 {
		t.Errorf("conversation lost in the upgrade: %#v", c)
	}
	if n, err := db.CreateTicket(ctx, store.Ticket{Key: "k"}); err != nil || n != 1001 {
		t.Errorf("CreateTicket after upgrade = %d, %v", n, err)
	}
}

// TestFailedMigrationRollsBack: a migration that fails leaves the database at the version
// before it, with nothing of the failed migration applied.
func TestFailedMigrationRollsBack(t *testing.T) {
	ctx := testCtx(t)
	migs, err := schema.Load(fstest.MapFS{
		"migrations/0001_a.sql": {Data: []byte("CREATE TABLE a (x integer);")},
		"migrations/0002_b.sql": {Data: []byte("CREATE TABLE b (x integer); INSERT INTO nowhere VALUES (1);")},
	})
	if err != nil {
		t.Fatal(err)
	}
	dsn := server.Database(t)
	if _, err := open(ctx, dsn, migs, Options{}); err == nil || !strings.Contains(err.Error(), "0002_b") {
		t.Fatalf("open = %v, want an error naming migration 0002_b", err)
	}
	db, err := open(ctx, dsn, migs[:1], Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, _ := db.SchemaVersion(ctx); v != 1 {
		t.Errorf("version = %d, want 1", v)
	}
	var b *string
	if err := db.pool.QueryRow(ctx, `SELECT to_regclass('b')::text`).Scan(&b); err != nil || b != nil {
		t.Errorf("table b of the failed migration exists (%v, %v)", b, err)
	}
}

// TestConcurrentMigration: instances that start at once on one empty database all open it;
// the migration lock makes each migration run once.
func TestConcurrentMigration(t *testing.T) {
	ctx := testCtx(t)
	dsn := server.Database(t)
	const instances = 4
	dbs := make([]*DB, instances)
	errs := make([]error, instances)
	var wg sync.WaitGroup
	for i := range instances {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dbs[i], errs[i] = Open(ctx, dsn)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("instance %d: %v", i, err)
			continue
		}
		defer dbs[i].Close()
	}
	if t.Failed() {
		return
	}
	var rows, distinct int
	if err := dbs[0].pool.QueryRow(ctx, `SELECT COUNT(*), COUNT(DISTINCT version) FROM schema_version`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != LatestSchemaVersion() || distinct != rows {
		t.Errorf("schema_version: %d rows, %d versions; want %d of each", rows, distinct, LatestSchemaVersion())
	}
}

// TestTicketsFromTwoPools: two instances on one database number tickets without giving a
// number twice or skipping one.
func TestTicketsFromTwoPools(t *testing.T) {
	ctx := testCtx(t)
	a, dsn := openNew(t)
	b, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const each = 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[int64]bool{}
	errc := make(chan error, 8)
	for _, db := range []*DB{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				n, err := db.CreateTicket(ctx, store.Ticket{Key: "k", Summary: "s"})
				if err != nil {
					errc <- err
					return
				}
				mu.Lock()
				if seen[n] {
					errc <- errors.New("a ticket number given twice")
				}
				seen[n] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	for n := int64(1001); n < 1001+4*each; n++ {
		if !seen[n] {
			t.Fatalf("ticket number %d not given; %d numbers given", n, len(seen))
		}
	}
	if list, _ := b.Tickets(ctx, "k", 0); len(list) != 4*each {
		t.Errorf("%d tickets stored, want %d", len(list), 4*each)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := testCtx(t)
	dsn := server.Database(t) // a running server, for the database that does not exist
	tests := map[string]struct {
		dsn  string
		want []string
	}{
		"not a DSN":        {"postgres://imbot:secret@[::1", []string{"DSN"}},
		"nobody listening": {"postgres://imbot:secret@127.0.0.1:1/imbot?connect_timeout=5", []string{"cannot connect", "127.0.0.1:1/imbot"}},
		"no such database": {strings.Replace(dsn, "/test", "/nosuchdb", 1), []string{"cannot connect", "nosuchdb"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			db, err := Open(ctx, tt.dsn)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error = %v, want it to say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func TestHealthy(t *testing.T) {
	ctx := testCtx(t)
	db, _ := openNew(t)
	if err := db.Healthy(ctx); err != nil {
		t.Fatalf("Healthy = %v", err)
	}
	db.Close()
	if err := db.Healthy(ctx); err == nil {
		t.Error("Healthy after Close = nil, want an error")
	}
}

// *DB is what package handlers writes its records to.
var (
	_ handlers.TranscriptStore = (*DB)(nil)
	_ handlers.TicketStore     = (*DB)(nil)
	_ handlers.UnmatchedStore  = (*DB)(nil)
	_ handlers.RatingStore     = (*DB)(nil)
)

// TestUpgradeHandoffs: a database of schema version 4 (handoffs without their offer fields)
// keeps its handoffs through the upgrade to version 5, whose offer fields start empty and
// are saved from then on.
func TestUpgradeHandoffs(t *testing.T) {
	ctx := testCtx(t)
	migs, err := schema.Load(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	dsn := server.Database(t)
	old, err := open(ctx, dsn, migs[:4], quiet)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now().Truncate(time.Second).UTC()
	// Written as version 4 wrote it: its columns only.
	if _, err := old.pool.Exec(ctx, `INSERT INTO handoffs (id, user_key, user_uri, verified, user_name, reason, state, agent, started, tried)
		VALUES (7, 'bot alice', 'sip:alice@example.com', true, 'alice', 'a human please', $1, 'sip:ann@example.com', $2, '{sip:bo@example.com}')`,
		store.HandoffAccepted, started); err != nil {
		t.Fatalf("a handoff in a version 4 database: %v", err)
	}
	old.Close()
	db, err := OpenWith(ctx, dsn, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.Handoffs(ctx)
	if err != nil || len(got) != 1 {
		t.Fatalf("handoffs after the upgrade: %+v, %v", got, err)
	}
	g := got[0]
	if g.ID != 7 || g.UserKey != "bot alice" || g.Agent != "sip:ann@example.com" || g.State != store.HandoffAccepted || !g.Verified ||
		!g.Started.Equal(started) || len(g.Tried) != 1 || g.Offered != nil || !g.OfferDeadline.IsZero() || g.Lapsed != nil || !g.Deadline.IsZero() {
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

// TestDSNSessionSetting: a setting in the DSN's query (as the README suggests for
// synchronous_commit) reaches every session of the pool.
func TestDSNSessionSetting(t *testing.T) {
	ctx := testCtx(t)
	dsn := server.Database(t) // the test server runs with synchronous_commit off
	db, err := OpenWith(ctx, dsn+"&synchronous_commit=on", quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got string
	if err := db.pool.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&got); err != nil || got != "on" {
		t.Errorf("synchronous_commit = %q, %v; want on", got, err)
	}
}

// TestRestartContinuesFlow: a user in the middle of a flow finds it where it was after the
// bot restarted, or another instance took over its address, on the same database.
func TestRestartContinuesFlow(t *testing.T) {
	dsn := server.Database(t)
	storetest.RestartContinuesFlow(t, func(t *testing.T) (store.StateStore, func()) {
		db, err := OpenWith(testCtx(t), dsn, quiet)
		if err != nil {
			t.Fatal(err)
		}
		return db, func() { _ = db.Close() }
	})
}
