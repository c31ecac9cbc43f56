package rules

import (
	"context"
	"io/fs"
	"os"
	"slices"
	"time"
)

// fileStamp is what Watch compares to notice a changed file.
type fileStamp struct {
	name  string
	mod   time.Time
	size  int64
	exist bool
}

func stampFiles(fsys fs.FS, names []string) []fileStamp {
	out := make([]fileStamp, len(names))
	for i, n := range names {
		out[i].name = n
		var fi fs.FileInfo
		var err error
		if fsys != nil {
			fi, err = fs.Stat(fsys, n)
		} else {
			fi, err = os.Stat(n)
		}
		if err == nil {
			out[i].mod, out[i].size, out[i].exist = fi.ModTime(), fi.Size(), true
		}
	}
	return out
}

// Reload reads the rule files again. When they load and validate, the new rule set replaces
// the old one atomically: events being handled finish with the old set, later events get
// the new one. When they do not, the old set stays in use, every error is logged, and the
// failure is counted (Stats). It is safe to call from a SIGHUP handler's goroutine:
//
//	hup := make(chan os.Signal, 1)
//	signal.Notify(hup, syscall.SIGHUP)
//	go func() { for range hup { _ = engine.Reload() } }()
func (e *Engine) Reload() error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	return e.reloadLocked()
}

func (e *Engine) reloadLocked() error {
	if len(e.files) == 0 {
		return ErrNoRules
	}
	rs, err := Load(e.opts, e.files...)
	if err != nil {
		e.stats.reloadErrors.Add(1)
		e.stats.lastErr.Store(&err)
		for _, x := range Errors(err) {
			e.log.Error("rules not reloaded", "err", x.Error())
		}
		e.log.Error("rules not reloaded: keeping the previous rules", "files", e.files, "errors", len(Errors(err)))
		// Stamp the files anyway, so that a bad file is not reloaded again until it changes.
		e.stamps = stampFiles(e.opts.FS, unionFiles(e.rs.Load().files, e.stamps))
		return err
	}
	e.Swap(rs)
	e.stamps = stampFiles(e.opts.FS, rs.files)
	e.log.Info("rules reloaded", "files", len(rs.files), "rules", rs.Len(),
		"tried_on_every_message", rs.idx.Always, "unindexed_regexes", rs.idx.UnindexedRegexes)
	e.logWarnings(rs)
	return nil
}

// logWarnings logs the warnings of a rule set that loaded.
func (e *Engine) logWarnings(rs *RuleSet) {
	for _, w := range rs.warnings {
		e.log.Warn("rules: "+w.Msg, "at", w.pos().String())
	}
}

func unionFiles(a []string, st []fileStamp) []string {
	out := slices.Clone(a)
	for _, s := range st {
		if !slices.Contains(out, s.name) {
			out = append(out, s.name)
		}
	}
	return out
}

// Swap replaces the rule set in use.
func (e *Engine) Swap(rs *RuleSet) {
	e.rs.Store(rs)
	e.stats.reloads.Add(1)
	e.stats.loaded.Store(time.Now().UnixNano())
	e.stats.lastErr.Store(nil)
}

// Changed reports whether a rule file (or an included one) changed since the rules were last
// loaded, by modification time and size.
func (e *Engine) Changed() bool {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	return e.changedLocked()
}

func (e *Engine) changedLocked() bool {
	names := make([]string, len(e.stamps))
	for i, s := range e.stamps {
		names[i] = s.name
	}
	now := stampFiles(e.opts.FS, names)
	for i := range now {
		if now[i] != e.stamps[i] {
			return true
		}
	}
	return false
}

// Watch polls the rule files every interval (one second when interval <= 0) and reloads
// them when one changed, until ctx is done. Errors are logged and counted by Reload; the old
// rules stay in use until the files are fixed. Watch blocks: run it in a goroutine.
func (e *Engine) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.reloadMu.Lock()
		if e.changedLocked() {
			_ = e.reloadLocked()
		}
		e.reloadMu.Unlock()
	}
}

// Stats are the engine's counters.
type Stats struct {
	// Rules is the number of rules in use.
	Rules int
	// Loaded is when the rules in use were loaded.
	Loaded time.Time
	// Reloads counts successful reloads (and swaps).
	Reloads uint64
	// ReloadErrors counts reloads that failed and kept the old rules.
	ReloadErrors uint64
	// LastError is the error of the last reload, if it failed.
	LastError error
	// Events counts the events handled by Middleware; NoMatch those no rule answered.
	Events, NoMatch uint64
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	s := Stats{
		Rules:        e.rs.Load().Len(),
		Loaded:       time.Unix(0, e.stats.loaded.Load()),
		Reloads:      e.stats.reloads.Load(),
		ReloadErrors: e.stats.reloadErrors.Load(),
		Events:       e.stats.events.Load(),
		NoMatch:      e.stats.noMatch.Load(),
	}
	if p := e.stats.lastErr.Load(); p != nil {
		s.LastError = *p
	}
	return s
}
