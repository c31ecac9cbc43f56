package bot

import (
	"sync"
	"time"
)

// The bot runs handlers on at most Config.MaxWorkers goroutines, started as work comes and
// parked when there is none. A session with events waits on one run queue, in the order it
// got work; a worker takes the session at the head, handles a few of its events in order,
// and puts it back at the tail if it has more. No goroutine waits for a worker: an idle
// session costs none, and a flood of messages costs queued events, which admission bounds.
//
// Admission happens before the 200: a message that would wait longer than the bot can
// honour is refused with 503 and Retry-After instead of being accepted and answered late (or
// never). The run queue's head-of-line delay says how far behind the workers are; past
// Config.MaxQueueDelay, or with Config.MaxQueued events waiting, new messages are refused.

// batch is how many events a worker handles for one session before it lets others go.
const batch = 8

// runQueue holds the sessions that have events, oldest first.
type runQueue struct {
	mu      sync.Mutex
	cond    sync.Cond  // signals parked workers
	q       []*Session // ring buffer
	at      []int64    // enqueue time (unix ns) per slot
	head, n int
	workers int // goroutines started and not stopped
	parked  int // of which waiting for work
	max     int
	closed  bool
	run     func(*Session) bool // handles some events; reports whether more remain
}

func (r *runQueue) init(max int, run func(*Session) bool) {
	r.max, r.run = max, run
	r.cond.L = &r.mu
	r.q = make([]*Session, 64)
	r.at = make([]int64, 64)
}

// close stops the workers once the queue is empty.
func (r *runQueue) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	r.cond.Broadcast()
}

// put appends s and starts a worker if fewer than max run.
func (r *runQueue) put(s *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == len(r.q) {
		q := make([]*Session, 2*len(r.q))
		at := make([]int64, 2*len(r.q))
		for i := 0; i < r.n; i++ {
			q[i] = r.q[(r.head+i)%len(r.q)]
			at[i] = r.at[(r.head+i)%len(r.q)]
		}
		r.q, r.at, r.head = q, at, 0
	}
	i := (r.head + r.n) % len(r.q)
	r.q[i], r.at[i] = s, time.Now().UnixNano()
	r.n++
	switch {
	case r.parked > 0:
		r.cond.Signal()
	case r.workers < r.max:
		r.workers++
		go r.work()
	}
}

// take removes the session at the head, waiting for one; nil when the queue is closed and
// empty, and then the calling worker stops. Workers stay parked rather than stop when the
// queue is empty: a goroutine started afresh for every burst would grow its stack again
// through sipgo's deep calls each time.
func (r *runQueue) take() *Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.n == 0 {
		if r.closed {
			r.workers--
			return nil
		}
		r.parked++
		r.cond.Wait()
		r.parked--
	}
	s := r.q[r.head]
	r.q[r.head] = nil
	r.head = (r.head + 1) % len(r.q)
	r.n--
	return s
}

// delay is how long the session at the head has waited for a worker.
func (r *runQueue) delay(now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == 0 {
		return 0
	}
	return time.Duration(now.UnixNano() - r.at[r.head])
}

func (r *runQueue) work() {
	for {
		s := r.take()
		if s == nil {
			return
		}
		if r.run(s) {
			r.put(s)
		}
	}
}

// runSession handles up to batch events of s, one at a time, and reports whether it has
// more. While it runs, s stays marked queued, so no other worker takes it.
func (b *Bot) runSession(s *Session) bool {
	for range batch {
		s.mu.Lock()
		if len(s.inbox) == 0 {
			s.queued = false
			s.mu.Unlock()
			return false
		}
		ev := s.inbox[0]
		s.inbox[0] = nil
		s.inbox = s.inbox[1:]
		if len(s.inbox) == 0 {
			s.inbox = nil
		}
		s.mu.Unlock()
		b.dispatch(s, ev)
		b.work.done()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.inbox) == 0 {
		s.queued = false
		return false
	}
	return true
}

// overloaded reports whether a new message must be refused with 503: too many events wait,
// or the oldest waiting session has waited too long.
func (b *Bot) overloaded() bool {
	if b.work.count() >= b.cfg.MaxQueued {
		return true
	}
	return b.runq.delay(time.Now()) > b.cfg.MaxQueueDelay
}
