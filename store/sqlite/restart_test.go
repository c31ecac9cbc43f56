package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/imbot-dev/imbot/store"
	"github.com/imbot-dev/imbot/store/sqlite"
	"github.com/imbot-dev/imbot/store/storetest"
)

// TestRestartContinuesFlow: a user in the middle of a flow finds it where it was after the
// bot restarted on the same database.
func TestRestartContinuesFlow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "imbot.db")
	storetest.RestartContinuesFlow(t, func(t *testing.T) (store.StateStore, func()) {
		db, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		return db, func() { _ = db.Close() }
	})
}
