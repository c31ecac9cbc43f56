package sqlite

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/store"
)

// logBuffer collects log lines from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// openWatched opens the database at path with a logger writing to the returned buffer.
func openWatched(t *testing.T, path string, every time.Duration) (*DB, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	db, err := OpenWith(testCtx(t), path, Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), CheckInterval: every})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, logs
}

// waitFor polls cond until it holds, failing the test at ctx's deadline.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// writeBefore writes one of each record for alice; the ticket is 1001.
func writeBefore(ctx context.Context, t *testing.T, db *DB) {
	t.Helper()
	if err := db.Save(ctx, "alice", store.ConversationState{State: "ask-urgency", Vars: map[string]any{"summary": "VPN"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendTranscript(ctx, store.TranscriptEntry{Key: "alice", Direction: store.In, Text: "my vpn"}); err != nil {
		t.Fatal(err)
	}
	if n, err := db.CreateTicket(ctx, store.Ticket{Key: "alice", Summary: "VPN"}); err != nil || n != 1001 {
		t.Fatalf("CreateTicket = %d, %v", n, err)
	}
	if err := db.AddRating(ctx, store.Rating{Key: "alice", Score: 5}); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendUnmatched(ctx, store.Unmatched{Key: "alice", Text: "huh"}); err != nil {
		t.Fatal(err)
	}
}

// restoreFiles lists the copies on their way to the path left in dir.
func restoreFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+restoreSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDeletedFileRestored: a database file deleted or renamed while open is restored at its
// path with everything written before and after, whoever notices it first; after a restart
// nothing is missing and ticket numbers go on.
func TestDeletedFileRestored(t *testing.T) {
	remove := func(t *testing.T, path string) {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
	removeAll := func(t *testing.T, path string) {
		for _, f := range []string{path, path + "-wal", path + "-shm"} {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	rename := func(t *testing.T, path string) {
		if err := os.Rename(path, path+".old"); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		lose    func(t *testing.T, path string)
		noticed string // by: "write", "background", "healthy", "close"
	}{
		{"removed, noticed by a write", remove, "write"},
		{"removed, noticed in the background", remove, "background"},
		{"removed, noticed by Healthy", remove, "healthy"},
		{"removed, noticed by Close", remove, "close"},
		{"removed with its WAL and shm", removeAll, "write"},
		{"renamed, noticed by a write", rename, "write"},
		{"renamed, noticed in the background", rename, "background"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			dir := t.TempDir()
			path := filepath.Join(dir, "imbot.db")
			every := time.Duration(-1)
			if tt.noticed == "background" {
				every = 10 * time.Millisecond
			}
			db, logs := openWatched(t, path, every)
			if db.ids.wal == nil || db.ids.shm == nil {
				t.Fatalf("the WAL and shm files were not identified at open: %+v", db.ids)
			}
			writeBefore(ctx, t, db)

			tt.lose(t, path)
			// A write that raced the deletion lands in the deleted file; the restored file
			// has it too.
			db.mu.RLock()
			var raced int64
			err := db.w.QueryRowContext(ctx, `INSERT INTO tickets (key, peer, summary, urgency, status, assignee, notes, created, updated)
				VALUES ('carol', '', 'raced', '', 'open', '', '', '', '') RETURNING number`).Scan(&raced)
			db.mu.RUnlock()
			if err != nil || raced != 1002 {
				t.Fatalf("raced insert = %d, %v", raced, err)
			}

			switch tt.noticed {
			case "write":
				if err := db.Save(ctx, "bob", store.ConversationState{State: "ask-summary"}); err != nil {
					t.Fatalf("the write after the deletion: %v", err)
				}
			case "background":
				waitFor(ctx, t, "the background restoration", func() bool { return db.Restored() == 1 })
			case "healthy":
				if err := db.Healthy(ctx); err != nil {
					t.Fatalf("Healthy = %v", err)
				}
			}
			next := int64(1003)
			if tt.noticed != "close" {
				if got := db.Restored(); got != 1 {
					t.Fatalf("Restored = %d, want 1", got)
				}
				if _, err := os.Stat(path); err != nil {
					t.Fatalf("not restored at the path: %v", err)
				}
				if err := db.Save(ctx, "bob", store.ConversationState{State: "ask-summary", Vars: map[string]any{"n": 2}}); err != nil {
					t.Fatal(err)
				}
				if err := db.AppendTranscript(ctx, store.TranscriptEntry{Key: "bob", Direction: store.In, Text: "printer"}); err != nil {
					t.Fatal(err)
				}
				if n, err := db.CreateTicket(ctx, store.Ticket{Key: "bob", Summary: "printer"}); err != nil || n != 1003 {
					t.Fatalf("CreateTicket after the restoration = %d, %v", n, err)
				}
				if err := db.Healthy(ctx); err != nil {
					t.Errorf("Healthy after the restoration = %v", err)
				}
				next = 1004
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if got := db.Restored(); got != 1 {
				t.Errorf("Restored after Close = %d, want 1", got)
			}
			if err := db.Healthy(ctx); err == nil {
				t.Error("Healthy after Close = nil")
			}
			if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "restored it from the open database") || !strings.Contains(l, path) {
				t.Errorf("log does not tell of the restoration:\n%s", l)
			}
			if left := restoreFiles(t, dir); len(left) > 0 {
				t.Errorf("copies left behind: %v", left)
			}

			re, err := Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer re.Close()
			if c, err := re.Load(ctx, "alice"); err != nil || c.State != "ask-urgency" || c.Vars["summary"] != "VPN" {
				t.Errorf("alice after the restart: %#v, %v", c, err)
			}
			if tr, _ := re.Transcript(ctx, "alice", 0); len(tr) != 1 {
				t.Errorf("alice's transcript after the restart: %+v", tr)
			}
			if r, _ := re.Ratings(ctx, 0); len(r) != 1 {
				t.Errorf("ratings after the restart: %+v", r)
			}
			if u, _ := re.Unmatched(ctx, 0); len(u) != 1 {
				t.Errorf("unmatched after the restart: %+v", u)
			}
			for n := int64(1001); n < next; n++ {
				if _, err := re.Ticket(ctx, n); err != nil {
					t.Errorf("ticket %d after the restart: %v", n, err)
				}
			}
			if tt.noticed != "close" {
				if c, _ := re.Load(ctx, "bob"); c.State != "ask-summary" || c.Vars["n"] != 2 {
					t.Errorf("bob after the restart: %#v", c)
				}
				if tr, _ := re.Transcript(ctx, "bob", 0); len(tr) != 1 {
					t.Errorf("bob's transcript after the restart: %+v", tr)
				}
			}
			if n, err := re.CreateTicket(ctx, store.Ticket{Key: "dave", Summary: "next"}); err != nil || n != next {
				t.Errorf("the first ticket after the restart is %d (%v), want %d", n, err, next)
			}
		})
	}
}

// TestReplacedFileLeftAlone: another file put at the path while the database is open is
// neither overwritten nor written to; writes fail with ErrFileGone, Healthy says so, reads
// go on, and the store's data is saved beside it.
func TestReplacedFileLeftAlone(t *testing.T) {
	tests := []struct {
		name    string
		replace func(t *testing.T, path string) // puts another file at path
		check   func(t *testing.T, path string) // checks the other file after Close
	}{
		{"plain file", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte("not imbot's\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"another SQLite database renamed over it", func(t *testing.T, path string) {
			ctx := testCtx(t)
			other := filepath.Join(t.TempDir(), "other.db")
			o, err := Open(ctx, other)
			if err != nil {
				t.Fatal(err)
			}
			if err := o.Save(ctx, "marker", store.ConversationState{State: "other"}); err != nil {
				t.Fatal(err)
			}
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(other, path); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, path string) {
			ctx := testCtx(t)
			o, err := Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			if c, err := o.Load(ctx, "marker"); err != nil || c.State != "other" {
				t.Errorf("the other database lost its data: %#v, %v", c, err)
			}
			if c, _ := o.Load(ctx, "alice"); c.State != "" {
				t.Errorf("the other database got imbot's data: %#v", c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			dir := t.TempDir()
			path := filepath.Join(dir, "imbot.db")
			db, logs := openWatched(t, path, -1)
			writeBefore(ctx, t, db)
			tt.replace(t, path)
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}

			writes := map[string]func() error{
				"Save":   func() error { return db.Save(ctx, "bob", store.ConversationState{State: "x"}) },
				"Delete": func() error { return db.Delete(ctx, "alice") },
				"CreateTicket": func() error {
					_, err := db.CreateTicket(ctx, store.Ticket{Key: "bob"})
					return err
				},
				"UpdateTicket":     func() error { return db.UpdateTicket(ctx, store.Ticket{Number: 1001, Status: "closed"}) },
				"AppendTranscript": func() error { return db.AppendTranscript(ctx, store.TranscriptEntry{Key: "bob", Direction: store.In}) },
				"AppendUnmatched":  func() error { return db.AppendUnmatched(ctx, store.Unmatched{Key: "bob"}) },
				"AddRating":        func() error { return db.AddRating(ctx, store.Rating{Key: "bob", Score: 1}) },
			}
			for name, write := range writes {
				err := write()
				if !errors.Is(err, ErrFileGone) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "another file") {
					t.Errorf("%s = %v, want an error wrapping ErrFileGone that names %s", name, err, path)
				}
			}
			err = db.Healthy(ctx)
			if !errors.Is(err, ErrFileGone) || !strings.Contains(err.Error(), rescueSuffix[:len(rescueSuffix)-1]) {
				t.Errorf("Healthy = %v, want ErrFileGone naming the saved copy", err)
			}
			if c, err := db.Load(ctx, "alice"); err != nil || c.State != "ask-urgency" {
				t.Errorf("reads stopped: %#v, %v", c, err)
			}
			if tk, err := db.Ticket(ctx, 1001); err != nil || tk.Status != store.StatusOpen {
				t.Errorf("ticket 1001 = %+v, %v", tk, err)
			}
			if n := db.Restored(); n != 0 {
				t.Errorf("Restored = %d, want 0", n)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
				t.Errorf("the other file was changed (%v)", err)
			}
			if l := logs.String(); strings.Count(l, "writes are refused") < 1 || strings.Count(l, "another file") != 1 {
				t.Errorf("want the replacement logged once, at Error level:\n%s", l)
			}
			if tt.check != nil {
				tt.check(t, path)
			}

			saved, err := filepath.Glob(filepath.Join(dir, "imbot.db"+rescueSuffix))
			if err != nil || len(saved) != 1 {
				t.Fatalf("saved copies: %v, %v", saved, err)
			}
			cp, err := Open(ctx, saved[0])
			if err != nil {
				t.Fatal(err)
			}
			defer cp.Close()
			if c, _ := cp.Load(ctx, "alice"); c.State != "ask-urgency" {
				t.Errorf("alice in the saved copy: %#v", c)
			}
			if _, err := cp.Ticket(ctx, 1001); err != nil {
				t.Errorf("ticket 1001 in the saved copy: %v", err)
			}
		})
	}
}

// restart closes db and opens the database at path again, as a restarted imbot does.
func restart(ctx context.Context, t *testing.T, db *DB, path string) *DB {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	re, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = re.Close() })
	return re
}

// checkRecovered checks that db, after what made it whole again, is healthy with one
// restoration and writes (the ticket after writeBefore's is 1002), and that after a restart
// the data is there and ticket numbers go on.
func checkRecovered(ctx context.Context, t *testing.T, db *DB, path, what string) {
	t.Helper()
	if err := db.Healthy(ctx); err != nil {
		t.Fatalf("Healthy %s = %v", what, err)
	}
	if n := db.Restored(); n != 1 {
		t.Errorf("Restored %s = %d, want 1", what, n)
	}
	if n, err := db.CreateTicket(ctx, store.Ticket{Key: "bob"}); err != nil || n != 1002 {
		t.Fatalf("CreateTicket %s = %d, %v", what, n, err)
	}
	re := restart(ctx, t, db, path)
	if c, _ := re.Load(ctx, "alice"); c.State != "ask-urgency" {
		t.Errorf("alice after the restart: %#v", c)
	}
	if list, _ := re.Tickets(ctx, "bob", 0); len(list) != 1 {
		t.Errorf("bob's tickets after the restart: %+v", list)
	}
	if n, err := re.CreateTicket(ctx, store.Ticket{Key: "bob"}); err != nil || n != 1003 {
		t.Errorf("CreateTicket after the restart = %d, %v", n, err)
	}
}

// TestReplacedThenRemoved: once the other file is removed, the store restores its own
// database at the path and writes go on.
func TestReplacedThenRemoved(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "imbot.db")
	db, _ := openWatched(t, path, -1)
	writeBefore(ctx, t, db)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("in the way"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := db.Healthy(ctx); !errors.Is(err, ErrFileGone) {
		t.Fatalf("Healthy with another file at the path = %v", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	checkRecovered(ctx, t, db, path, "after the other file was removed")
}

// TestRestoreRetried: when the file cannot be restored (its directory is gone), writes fail
// with ErrFileGone and Healthy says why; once the directory is back, the next check
// restores it.
func TestRestoreRetried(t *testing.T) {
	ctx := testCtx(t)
	sub := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(sub, "imbot.db")
	db, logs := openWatched(t, path, -1)
	writeBefore(ctx, t, db)
	if err := os.RemoveAll(sub); err != nil {
		t.Fatal(err)
	}
	if err := db.Healthy(ctx); !errors.Is(err, ErrFileGone) || !strings.Contains(err.Error(), "restoring it from the open database failed") {
		t.Fatalf("Healthy without the directory = %v", err)
	}
	if err := db.Save(ctx, "bob", store.ConversationState{State: "x"}); !errors.Is(err, ErrFileGone) {
		t.Fatalf("Save without the directory = %v", err)
	}
	if c, err := db.Load(ctx, "alice"); err != nil || c.State != "ask-urgency" {
		t.Errorf("reads stopped: %#v, %v", c, err)
	}
	if err := db.Healthy(ctx); !errors.Is(err, ErrFileGone) {
		t.Fatalf("Healthy, asked again = %v", err)
	}
	if n := strings.Count(logs.String(), "restoring it from the open database failed"); n != 1 {
		t.Errorf("the failure was logged %d times, want once:\n%s", n, logs)
	}
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	checkRecovered(ctx, t, db, path, "once the directory is back")
}

// TestForeignWALBlocksRestore: a WAL file at the path that is not the open database's would
// be read with a restored file, so nothing is restored (or copied) until it is removed.
func TestForeignWALBlocksRestore(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "imbot.db")
	db, _ := openWatched(t, path, -1)
	writeBefore(ctx, t, db)
	for _, f := range []string{path, path + "-wal"} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path+"-wal", []byte("someone else's"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := db.Healthy(ctx); !errors.Is(err, ErrFileGone) || !strings.Contains(err.Error(), path+"-wal") {
		t.Fatalf("Healthy = %v, want ErrFileGone naming the WAL file", err)
	}
	if left := restoreFiles(t, dir); len(left) > 0 {
		t.Errorf("copies made: %v", left)
	}
	if err := os.Remove(path + "-wal"); err != nil {
		t.Fatal(err)
	}
	checkRecovered(ctx, t, db, path, "once the WAL file is removed")
}

// TestRestoreUnderLoad: writers and readers running while the file is deleted see no error,
// and every ticket they were given a number for is in the restored file.
func TestRestoreUnderLoad(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "imbot.db")
	db, _ := openWatched(t, path, time.Millisecond)
	const writers, perWriter = 4, 60
	var (
		mu      sync.Mutex
		numbers []int64
		wg      sync.WaitGroup
	)
	created := make(chan struct{}, writers*perWriter)
	stop := make(chan struct{})
	errc := make(chan error, writers+2)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perWriter {
				n, err := db.CreateTicket(ctx, store.Ticket{Key: "load", Summary: "s"})
				if err != nil {
					errc <- err
					return
				}
				mu.Lock()
				numbers = append(numbers, n)
				mu.Unlock()
				created <- struct{}{}
			}
		}()
	}
	var rg sync.WaitGroup
	for range 2 {
		rg.Add(1)
		go func() {
			defer rg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := db.Tickets(ctx, "load", 5); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	for range writers * perWriter / 3 {
		<-created
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the restoration", func() bool { return db.Restored() == 1 })
	wg.Wait()
	close(stop)
	rg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	re := restart(ctx, t, db, path)
	list, err := re.Tickets(ctx, "load", 0)
	if err != nil {
		t.Fatal(err)
	}
	var stored []int64
	for _, tk := range list {
		stored = append(stored, tk.Number)
	}
	slices.Sort(numbers)
	if !slices.Equal(stored, numbers) {
		t.Errorf("after the restart %d tickets are stored, %d were created", len(stored), len(numbers))
	}
}

// BenchmarkCheck is the cost the check adds to each write.
func BenchmarkCheck(b *testing.B) {
	path := filepath.Join(b.TempDir(), "imbot.db")
	db, err := OpenWith(context.Background(), path, Options{CheckInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for b.Loop() {
		if err := db.check(context.Background(), false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSave is the cost of a write, the check included.
func BenchmarkSave(b *testing.B) {
	path := filepath.Join(b.TempDir(), "imbot.db")
	db, err := OpenWith(context.Background(), path, Options{CheckInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	for b.Loop() {
		if err := db.Save(ctx, "k", store.ConversationState{State: "s"}); err != nil {
			b.Fatal(err)
		}
	}
}
