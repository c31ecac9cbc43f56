package postgres

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/store/postgres/pgtest"
	"github.com/imbot-dev/imbot/store/sqlite"
	"github.com/imbot-dev/imbot/store/storetest"
)

// BenchmarkStore compares what a message costs in the PostgreSQL store and in the SQLite
// store, in one run, so that the ratio holds on a noisy machine (run it with -count):
//
//   - sqlite: WAL, synchronous=NORMAL, as store/sqlite opens its file;
//   - postgres: a local server (TCP on 127.0.0.1) with fsync on and synchronous_commit off,
//     the same guarantee as SQLite's (a crash may lose the last commits, never corrupts);
//   - postgres-sync: the same server with synchronous_commit on, PostgreSQL's default (each
//     commit waits for its WAL flush).
//
// Each store gets storetest.Benchmark's save+load (a conversation state loaded and saved)
// and transcript (one entry appended).
func BenchmarkStore(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv := pgtest.New(b, "fsync=on", "full_page_writes=on", "synchronous_commit=off")
	stores := []struct {
		name string
		open func(b *testing.B) storetest.Store
	}{
		{"sqlite", func(b *testing.B) storetest.Store {
			db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "imbot.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = db.Close() })
			return db
		}},
		{"postgres", func(b *testing.B) storetest.Store { return openBench(ctx, b, srv, "") }},
		{"postgres-sync", func(b *testing.B) storetest.Store { return openBench(ctx, b, srv, "synchronous_commit=on") }},
	}
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) { storetest.Benchmark(b, st.open(b)) })
	}
}

// openBench opens the store on a new database of srv, with a session setting ("name=value")
// when one is given.
func openBench(ctx context.Context, b *testing.B, srv *pgtest.Server, setting string) *DB {
	dsn, err := srv.CreateDatabase(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if setting != "" {
		dsn += "&" + setting // the DSN has a query already; pgx sends unknown keys as session settings
	}
	db, err := OpenWith(ctx, dsn, quiet)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	return db
}
