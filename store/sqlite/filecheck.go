package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// ErrFileGone is wrapped by the errors of writes refused, and of Healthy, while the path of
// the database no longer names the file the *DB has open and the store could not restore it
// there: the file was deleted or replaced while open. The error says what happened and what
// to do.
var ErrFileGone = errors.New("the database file was deleted or replaced while open")

// defaultCheckInterval is how often the background check looks at the database file.
const defaultCheckInterval = 2 * time.Second

// Suffixes of the files written beside the database (os.CreateTemp patterns): a copy of the
// open database on its way to the path, and the data of a store whose path was taken by
// another file.
const (
	restoreSuffix = ".restore-*"
	rescueSuffix  = ".rescued-*"
)

// fileIDs identifies the files the pools have open: the database file and its WAL and
// shared-memory files (nil when there were none).
type fileIDs struct{ db, wal, shm os.FileInfo }

// poolIDs identifies the files behind w, an open writer on file. A read makes SQLite open
// the WAL and shared-memory files, so that they exist when they are looked at.
func poolIDs(ctx context.Context, w *sql.DB, file string) (fileIDs, error) {
	var n int
	if err := w.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master`).Scan(&n); err != nil {
		return fileIDs{}, describeOpenError(file, err)
	}
	var ids fileIDs
	var err error
	if ids.db, err = os.Stat(file); err != nil {
		return fileIDs{}, fmt.Errorf("store: %w", err)
	}
	ids.wal, _ = os.Lstat(file + "-wal")
	ids.shm, _ = os.Lstat(file + "-shm")
	return ids, nil
}

// watch runs the background check every interval until Close.
func (db *DB) watch(every time.Duration) {
	defer close(db.watchDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-db.stop:
			return
		case <-t.C:
			_ = db.check(context.Background(), true)
		}
	}
}

// Healthy checks now that the path of the database names the file the *DB has open,
// restoring the file first when it is missing. It returns nil, or the error, wrapping
// ErrFileGone, that says why writes are refused and what to do; after Close, an error.
func (db *DB) Healthy(ctx context.Context) error {
	err := db.check(ctx, true)
	db.mu.RLock()
	closed := db.closed
	db.mu.RUnlock()
	if closed {
		return errors.New("store: the database is closed")
	}
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// Restored returns how many times the database file was restored at its path after it was
// deleted or renamed while open.
func (db *DB) Restored() int {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.restored
}

// check looks at the file at path: one stat when it is the file the pools have open. When
// it is not, it restores the file or records why it cannot (repairLocked), and returns the
// error that refuses writes, or nil. While writes are refused, only a check with retry set
// (the background check, Healthy, Close) looks again, so that writes fail at once.
//
// A stat per write costs 1 to 2 µs (BenchmarkCheck), 3 to 5 % of the cheapest write (a
// Save, 30 to 50 µs), and it makes a write that follows a deletion go to the restored file
// rather than to the deleted one: with the background check alone, up to an interval of
// writes would sit in a file that only the running process can read, lost if it is killed
// before the next check.
func (db *DB) check(ctx context.Context, retry bool) error {
	db.mu.RLock()
	ids, lost, lostTo, closed := db.ids, db.lost, db.lostTo, db.closed
	db.mu.RUnlock()
	if closed || (lost != nil && !retry) {
		return lost
	}
	fi, err := os.Stat(db.path)
	switch {
	case err == nil && lost == nil && os.SameFile(fi, ids.db):
		return nil
	case err == nil && lostTo != nil && os.SameFile(fi, lostTo):
		return lost // the other file, reported already
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return lost // cannot tell (a directory made unreadable): change nothing
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return db.lost
	}
	return db.repairLocked(ctx)
}

// repairLocked acts on a path that does not name the open database: it restores a missing
// file and leaves another file alone. db.mu is held for writing. The work is not cut short
// by ctx: half a restoration would only have to be done again.
func (db *DB) repairLocked(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	fi, err := os.Stat(db.path)
	switch {
	case err == nil && os.SameFile(fi, db.ids.db):
		// The open file is back at path (renamed back).
		db.setLostLocked(nil, nil)
		return nil
	case err == nil && db.lostTo != nil && os.SameFile(fi, db.lostTo):
		return db.lost
	case err == nil:
		return db.replacedLocked(ctx, fi)
	case !errors.Is(err, fs.ErrNotExist):
		return db.lost
	}
	return db.restoreLocked(ctx)
}

// restoreLocked writes the open database to the missing file at path: VACUUM INTO a new
// file beside it, close the pools, remove the WAL and shared-memory files the pools used
// (SQLite leaves them when the database file was moved, and they would be read with the
// restored file), give the copy the name path without replacing anything, and open the
// pools on it.
func (db *DB) restoreLocked(ctx context.Context) error {
	// A WAL or shared-memory file at path that is not the pools' would be read with the
	// restored file: leave it to the operator, and copy nothing until it is gone.
	for _, f := range db.sideFiles(db.path) {
		if foreign(f.name, f.ours) {
			return db.setLostLocked(fmt.Errorf("%w: %s is missing, and %s is not the open database's, so a restored file would be read with it: remove it, and imbot restores the database at %s",
				ErrFileGone, db.path, f.name, db.path), nil)
		}
	}
	cp, err := db.copyOutLocked(ctx, restoreSuffix)
	if err != nil {
		return db.setLostLocked(fmt.Errorf("%w: %s is missing, and restoring it from the open database failed (%v); imbot tries again every few seconds: fix that, or put the file back",
			ErrFileGone, db.path, err), nil)
	}
	closeErr := db.closePools()
	target, conflict := db.path, error(nil)
	for _, f := range db.sideFiles(db.path) {
		if err := removeIfOurs(f.name, f.ours); err != nil {
			conflict = err
		}
	}
	if conflict == nil {
		conflict = publish(cp, db.path)
	}
	if conflict != nil {
		target = cp
	}
	if err := db.reopenLocked(ctx, target); err != nil {
		return db.setLostLocked(fmt.Errorf("%w: %s was restored, but opening it failed (%v); restart imbot", ErrFileGone, target, errors.Join(err, closeErr)), nil)
	}
	if closeErr != nil {
		db.log.Warn("closing the connections to the deleted SQLite file", "path", db.path, "err", closeErr)
	}
	if conflict != nil {
		// Another file appeared meanwhile: it is left alone, as in replacedLocked.
		other, _ := os.Stat(db.path)
		return db.setLostLocked(fmt.Errorf("%w: %s was deleted, and imbot could not put the restored copy there (%v): writes are refused; imbot's data is in %s: remove what is in the way to have imbot restore its database at %s, or restart imbot",
			ErrFileGone, db.path, conflict, cp, db.path), other)
	}
	if err := os.Remove(cp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		db.log.Warn("could not remove the name of the restored copy", "path", cp, "err", err)
	}
	syncDir(filepath.Dir(db.path))
	db.restored++
	db.setLostLocked(nil, nil)
	db.log.Error("the SQLite file was deleted while open; restored it from the open database",
		"path", db.path, "restorations", db.restored)
	return nil
}

// replacedLocked handles another file at path: it is left as it is and writes are refused.
// The open database is saved beside it and the pools move there, which frees path of the
// WAL and shared-memory files of the replaced database (they would be read with the other
// file).
func (db *DB) replacedLocked(ctx context.Context, other os.FileInfo) error {
	cp, err := db.copyOutLocked(ctx, rescueSuffix)
	if err != nil {
		return db.setLostLocked(fmt.Errorf("%w: %s is now another file, which imbot leaves alone: writes are refused, and saving imbot's data beside it failed (%v); remove the other file to have imbot restore its database there, or restart imbot to use the other file",
			ErrFileGone, db.path, err), other)
	}
	closeErr := db.closePools()
	for _, f := range db.sideFiles(db.path) {
		_ = removeIfOurs(f.name, f.ours) // another's are left alone
	}
	if err := db.reopenLocked(ctx, cp); err != nil {
		return db.setLostLocked(fmt.Errorf("%w: %s is now another file, which imbot leaves alone: writes are refused; imbot's data is saved in %s, but opening that failed (%v); restart imbot",
			ErrFileGone, db.path, cp, errors.Join(err, closeErr)), other)
	}
	return db.setLostLocked(fmt.Errorf("%w: %s is now another file, which imbot leaves alone: writes are refused; imbot's data is saved in %s: remove the other file to have imbot restore its database there, or restart imbot to use the other file",
		ErrFileGone, db.path, cp), other)
}

// setLostLocked records why writes are refused (nil: they are not) and the other file at
// path, if any, and logs a new reason at Error level.
func (db *DB) setLostLocked(lost error, other os.FileInfo) error {
	if lost != nil && (db.lost == nil || db.lost.Error() != lost.Error()) {
		db.log.Error("the SQLite file was deleted or replaced while open; writes are refused", "path", db.path, "err", lost)
	}
	db.lost, db.lostTo = lost, other
	return lost
}

// copyOutLocked writes a copy of the open database, everything committed included, to a
// new file beside path named with the os.CreateTemp pattern path+suffix, with the mode of
// the database file, and returns its name.
func (db *DB) copyOutLocked(ctx context.Context, suffix string) (string, error) {
	dir := filepath.Dir(db.path)
	f, err := os.CreateTemp(dir, filepath.Base(db.path)+suffix)
	if err != nil {
		// Without the random name, so that the same failure reads the same every time.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("cannot create a file in %s: %w", dir, err)
	}
	name := f.Name()
	_ = f.Chmod(db.ids.db.Mode().Perm())
	if err := f.Close(); err != nil {
		_ = os.Remove(name)
		return "", err
	}
	// VACUUM INTO writes into an empty file, and into nothing else.
	if _, err := db.w.ExecContext(ctx, `VACUUM INTO ?`, name); err != nil {
		_ = os.Remove(name)
		return "", fmt.Errorf("VACUUM INTO: %w", err)
	}
	if err := syncFile(name); err != nil {
		_ = os.Remove(name)
		return "", err
	}
	return name, nil
}

// reopenLocked opens the pools on file.
func (db *DB) reopenLocked(ctx context.Context, file string) error {
	w, err := openWriter(ctx, file)
	if err != nil {
		return err
	}
	r, err := openReaders(ctx, file)
	if err != nil {
		_ = w.Close()
		return err
	}
	ids, err := poolIDs(ctx, w, file)
	if err != nil {
		_ = r.Close()
		_ = w.Close()
		return err
	}
	db.w, db.r, db.ids, db.file = w, r, ids, file
	return nil
}

// sideFile is the WAL or shared-memory file of a database file, and the one the pools have
// open (nil: none).
type sideFile struct {
	name string
	ours os.FileInfo
}

// sideFiles returns the WAL and shared-memory files at file's name, with the ones the pools
// have open.
func (db *DB) sideFiles(file string) []sideFile {
	return []sideFile{{file + "-wal", db.ids.wal}, {file + "-shm", db.ids.shm}}
}

// foreign reports whether a file other than ours exists at name.
func foreign(name string, ours os.FileInfo) bool {
	fi, err := os.Lstat(name)
	return err == nil && (ours == nil || !os.SameFile(fi, ours))
}

// removeIfOurs removes the file at name if it is ours, and fails if another file is there.
func removeIfOurs(name string, ours os.FileInfo) error {
	if foreign(name, ours) {
		return fmt.Errorf("%s is not the open database's", name)
	}
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// publish gives the file from the name to, failing rather than replacing a file there: a
// hard link does that atomically. On a file system without hard links, it renames, after
// checking that to is free (a narrow race that the link does not have).
func publish(from, to string) error {
	err := os.Link(from, to)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return err
	}
	if _, serr := os.Lstat(to); !errors.Is(serr, fs.ErrNotExist) {
		return fmt.Errorf("link %s: %w; and %s exists", to, err, to)
	}
	return os.Rename(from, to)
}

// syncFile flushes the file at name to disk.
func syncFile(name string) error {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

// syncDir flushes a directory's entries to disk, where the system allows it.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
