// Package netguard keeps a stream server alive under a connection flood: a listener that
// bounds the connections open at once and rides out accept errors (too many open files, a
// connection aborted before it was accepted) with a backoff, instead of handing them to a
// serve loop that would stop.
package netguard

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Backoff bounds of Accept after a failed accept: the first pause, doubled per failure up
// to the last. These are net/http.Server's.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// warnEvery is how often a lasting condition (accepts failing, the limit reached) is logged
// again while it lasts.
const warnEvery = time.Minute

// Listener is a net.Listener with two guards for a server whose serve loop ends at the first
// accept error (sipgo's, for one):
//
//   - At most Max connections it accepted are open at once. Past it, a new connection is
//     closed (with a reset) as soon as it is accepted: a flood costs the process no more
//     than Max file descriptors, and clients learn at once to try again later.
//   - A failed accept is retried after a pause, 5 ms doubling to 1 s, and never returned.
//     The errors a listening socket meets (too many open files, no buffer space, a
//     connection aborted or refused by a firewall before it was accepted) all pass; there
//     is nothing better to do with one than to wait and try again.
//
// Accept returns an error only once the listener is closed.
type Listener struct {
	net.Listener
	max int64
	log *slog.Logger

	open      atomic.Int64 // accepted connections not yet closed
	done      chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex // the bookkeeping of what is logged
	failures int        // accept errors in a row
	failedAt time.Time  // first of them
	warnedAt time.Time  // last warning about failures or refusals
	refused  int        // connections refused since the last warning
}

// NewListener guards ln. max bounds the connections open at once; zero or less means no
// bound. Nil log discards the logs.
func NewListener(ln net.Listener, max int, log *slog.Logger) *Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Listener{Listener: ln, max: int64(max), log: log, done: make(chan struct{})}
}

// Accept waits for the next connection. It returns an error only once the listener is
// closed; the error then matches net.ErrClosed.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			if l.closed() {
				return nil, net.ErrClosed
			}
			if err := l.pause(err); err != nil {
				return nil, err
			}
			continue
		}
		l.recovered()
		if n := l.open.Add(1); l.max > 0 && n > l.max {
			l.open.Add(-1)
			l.refuse(c)
			continue
		}
		return &conn{Conn: c, release: func() { l.open.Add(-1) }}, nil
	}
}

// Close closes the listener and ends a pause of Accept. Connections already accepted stay
// open.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// Open returns how many of the connections Accept returned are not closed yet.
func (l *Listener) Open() int { return int(l.open.Load()) }

func (l *Listener) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// pause waits before the next accept after err, longer after each failure in a row. It
// returns net.ErrClosed if the listener is closed meanwhile.
func (l *Listener) pause(err error) error {
	l.mu.Lock()
	l.failures++
	now := time.Now()
	if l.failures == 1 {
		l.failedAt = now
	}
	delay := min(minBackoff<<min(l.failures-1, 16), maxBackoff)
	if l.failures == 1 || now.Sub(l.warnedAt) >= warnEvery {
		l.warnedAt = now
		l.log.Warn("accepting a connection failed; retrying after a pause", "addr", l.Addr().String(),
			"err", err, "failures", l.failures, "pause", delay)
	}
	l.mu.Unlock()
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-l.done:
		return net.ErrClosed
	}
}

// recovered notes a successful accept after failures.
func (l *Listener) recovered() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failures == 0 {
		return
	}
	l.log.Info("accepting connections again", "addr", l.Addr().String(), "failures", l.failures,
		"after", time.Since(l.failedAt).Round(time.Millisecond))
	l.failures = 0
}

// refuse closes a connection accepted past the limit, with a reset rather than a FIN: the
// client learns at once, and no TIME_WAIT is left behind.
func (l *Listener) refuse(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refused++
	if now := time.Now(); now.Sub(l.warnedAt) >= warnEvery {
		l.log.Warn("connection limit reached; refusing new connections", "addr", l.Addr().String(),
			"limit", l.max, "refused", l.refused)
		l.warnedAt = now
		l.refused = 0
	}
}

// conn frees its place under the limit when it is closed.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

// Close closes the connection. Closing it again does nothing and returns nil.
func (c *conn) Close() error {
	var err error
	c.once.Do(func() {
		err = c.Conn.Close()
		c.release()
	})
	return err
}
