package imbotcmd

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// sipLog receives what sipgo logs through its package-level logger (sip.DefaultLogger):
// the reference counting of its connections ("TCP ref went negative") and a few more lines
// that no per-user-agent option reaches. The bot gives its own logger to every sipgo layer
// that takes one; for the rest, sipgo only has sip.SetDefaultLogger, a global, so main alone
// installs a sipLog there, once, and imbot run points it at the configured logger when the
// config is read. Until then lines go to the fallback.
type sipLog struct {
	target   atomic.Pointer[slog.Handler]
	fallback slog.Handler
}

// newSIPLog returns a sipLog that writes to fallback until set is called.
func newSIPLog(fallback slog.Handler) *sipLog { return &sipLog{fallback: fallback} }

// set sends the lines from now on to log, marked component=sipgo.
func (l *sipLog) set(log *slog.Logger) {
	h := log.With("component", "sipgo").Handler()
	l.target.Store(&h)
}

func (l *sipLog) current() slog.Handler {
	if h := l.target.Load(); h != nil {
		return *h
	}
	return l.fallback
}

// handler is the slog.Handler to give sipgo: it resolves the target at every line, so
// loggers sipgo derived (With) before set follow it too.
func (l *sipLog) handler() slog.Handler { return lateHandler{root: l} }

// lateHandler applies the attributes and groups sipgo added to the sipLog's current target.
type lateHandler struct {
	root *sipLog
	ops  []func(slog.Handler) slog.Handler
}

func (h lateHandler) resolve() slog.Handler {
	t := h.root.current()
	for _, op := range h.ops {
		t = op(t)
	}
	return t
}

func (h lateHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.root.current().Enabled(ctx, level)
}

func (h lateHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.resolve().Handle(ctx, r)
}

func (h lateHandler) with(op func(slog.Handler) slog.Handler) lateHandler {
	ops := append(h.ops[:len(h.ops):len(h.ops)], op)
	return lateHandler{root: h.root, ops: ops}
}

func (h lateHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return h.with(func(t slog.Handler) slog.Handler { return t.WithAttrs(attrs) })
}

func (h lateHandler) WithGroup(name string) slog.Handler {
	return h.with(func(t slog.Handler) slog.Handler { return t.WithGroup(name) })
}
