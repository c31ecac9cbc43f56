// Package logcap bounds what a logger writes for events that a remote peer can trigger at
// will: a garbage datagram, a malformed request, a body too large. Such a peer chooses both
// how often a line is logged and what it carries (sipgo logs every unparsable datagram
// whole, at ERROR), so without a cap it can fill the disk or drown the lines that matter.
//
// A Handler wraps another slog.Handler and does two things to every record:
//
//   - It limits the rate of lines per key, the record's level and message: a key passes a
//     burst of Options.Burst lines, then Options.Rate lines a second (a token bucket). Lines
//     over the limit are dropped and counted; the next line of that key that passes carries
//     the count in an attribute named "suppressed", so a flood shows in the log as one line
//     a while with the number of lines it stands for. Messages are constant text in the
//     code that logs them, so one flooded message does not hold back the others: startup
//     and registration lines pass while parse failures are limited.
//   - It truncates the message, every attribute key and every attribute value (strings,
//     values inside groups, and values of kind Any by their formatted form, such as an
//     error that quotes a datagram) to Options.MaxValue bytes of output, and says how many
//     bytes it cut. Options.Uncut names the keys of values the program makes long itself
//     (a stack trace) and passes them whole.
//
// Use it where a logger is handed to code that logs per packet or per request:
//
//	log := logcap.Wrap(cfg.Logger, logcap.Options{})
//	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(log))
//
// A record that needs neither cut nor count passes to the wrapped handler as it is: the
// handler then costs a map lookup under a mutex and a scan of the string values longer
// than Options.MaxValue/10 bytes, and no allocation, except that values of kind Any are
// formatted once more to be measured (the wrapped handler formats them again).
package logcap

import (
	"context"
	"log/slog"
	"slices"
	"time"
)

// SuppressedKey is the attribute that counts the lines of a key dropped since the previous
// line of that key that passed. It is added as the record's last attribute (so inside the
// groups opened with WithGroup). Lines dropped at the end of a flood are reported by the
// next line of their key, whenever that comes: nothing is logged from a timer.
const SuppressedKey = "suppressed"

// Defaults of Options.
const (
	DefaultMaxValue = 512
	DefaultBurst    = 20
	DefaultRate     = 10
	DefaultMaxKeys  = 1024
)

// Options configures a Handler. The zero value of every field is its default.
type Options struct {
	// MaxValue bounds, in bytes of log output, the message, each attribute key and each
	// attribute value; a cut value ends with a marker of about 20 bytes that says how many
	// bytes were cut. Output bytes count what a text or JSON handler writes: a byte it
	// escapes (a control character, invalid UTF-8) counts as up to six.
	// Default: DefaultMaxValue (512).
	MaxValue int
	// Uncut lists attribute keys whose values pass whole, at any depth: values the program
	// makes long itself and that are useless cut, such as a stack trace. Default: none.
	Uncut []string
	// Burst is how many lines of one key pass at once. Default: DefaultBurst (20).
	Burst int
	// Rate is how many lines of one key pass per second after the burst.
	// Default: DefaultRate (10).
	Rate float64
	// MaxKeys bounds the keys the rate limiter remembers. Past it, keys whose bucket is
	// full again are forgotten, at most once a second, and new keys share one bucket until
	// there is room. Default: DefaultMaxKeys (1024).
	MaxKeys int
	// Now is the rate limiter's clock. Default: the record's time (slog.Logger reads the
	// clock for it anyway), or time.Now for a record without one. Tests set a fake one.
	Now func() time.Time
}

// Handler is a slog.Handler that caps the rate and the size of what it passes to another
// handler (see the package comment). Create one with NewHandler; it is safe for concurrent
// use, and the handlers its WithAttrs and WithGroup return share its rate limiter.
type Handler struct {
	next     slog.Handler
	maxValue int
	uncut    []string
	lim      *limiter
}

// NewHandler returns a Handler that passes capped records to next.
func NewHandler(next slog.Handler, opts Options) *Handler {
	if opts.MaxValue <= 0 {
		opts.MaxValue = DefaultMaxValue
	}
	if opts.Burst <= 0 {
		opts.Burst = DefaultBurst
	}
	if opts.Rate <= 0 {
		opts.Rate = DefaultRate
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = DefaultMaxKeys
	}
	return &Handler{next: next, maxValue: opts.MaxValue, uncut: slices.Clone(opts.Uncut), lim: newLimiter(opts)}
}

// Wrap returns a logger that writes through a Handler wrapping l's handler. A nil l wraps
// slog.Default().
func Wrap(l *slog.Logger, opts Options) *slog.Logger {
	if l == nil {
		l = slog.Default()
	}
	return slog.New(NewHandler(l.Handler(), opts))
}

// Enabled reports whether the wrapped handler handles records at level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle drops r if its key is over its rate, and otherwise passes it on with its message
// and attributes truncated and, after dropped lines, their count.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	now := r.Time
	if h.lim.now != nil {
		now = h.lim.now()
	} else if now.IsZero() {
		now = time.Now()
	}
	pass, suppressed := h.lim.allow(now, r.Level, r.Message)
	if !pass {
		return nil
	}
	r, rebuilt := h.capRecord(r)
	if suppressed > 0 {
		if !rebuilt {
			r = r.Clone()
		}
		r.AddAttrs(slog.Int64(SuppressedKey, suppressed))
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs returns a Handler whose wrapped handler has attrs, truncated, added.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	capped, copied := attrs, false
	for i, a := range attrs {
		c, cut := h.capAttr(a)
		if !cut {
			continue
		}
		if !copied { // the caller owns attrs
			capped, copied = append([]slog.Attr(nil), attrs...), true
		}
		capped[i] = c
	}
	return &Handler{next: h.next.WithAttrs(capped), maxValue: h.maxValue, uncut: h.uncut, lim: h.lim}
}

// WithGroup returns a Handler whose wrapped handler opens the group name, truncated.
func (h *Handler) WithGroup(name string) slog.Handler {
	name, _ = capString(name, h.maxValue)
	return &Handler{next: h.next.WithGroup(name), maxValue: h.maxValue, uncut: h.uncut, lim: h.lim}
}
