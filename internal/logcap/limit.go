package logcap

import (
	"log/slog"
	"strings"
	"sync"
	"time"
)

// maxKeyMessage is how much of a message tells keys apart: longer messages that share this
// prefix share a bucket, and a key never holds on to more of a long message than this.
const maxKeyMessage = 128

// sweepEvery is the least time between two sweeps of the full buckets, so that a stream of
// new keys into a full table does not cost a sweep per line.
const sweepEvery = time.Second

// limitKey identifies the lines that share a token bucket.
type limitKey struct {
	level slog.Level
	msg   string // at most maxKeyMessage bytes
}

// bucket is a token bucket: tokens at the time last, and the lines dropped since the last
// one that passed.
type bucket struct {
	tokens     float64
	last       time.Time
	suppressed int64
}

// limiter holds one token bucket per key. All its methods are safe for concurrent use.
type limiter struct {
	burst   float64
	rate    float64 // tokens per second
	maxKeys int
	now     func() time.Time // nil: the caller passes the record's time

	mu        sync.Mutex
	buckets   map[limitKey]*bucket
	overflow  *bucket // shared by new keys while the table is full
	lastSweep time.Time
}

func newLimiter(opts Options) *limiter {
	return &limiter{
		burst:   float64(opts.Burst),
		rate:    opts.Rate,
		maxKeys: opts.MaxKeys,
		now:     opts.Now,
		buckets: map[limitKey]*bucket{},
	}
}

// allow takes a token from the bucket of (level, msg) at the time now. It reports whether
// the line passes and, if it does, how many lines of that bucket were dropped since the last
// one that passed.
func (l *limiter) allow(now time.Time, level slog.Level, msg string) (pass bool, suppressed int64) {
	if len(msg) > maxKeyMessage {
		msg = msg[:maxKeyMessage]
	}
	k := limitKey{level: level, msg: msg}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[k]
	if b == nil {
		b = l.add(k, now)
	}
	b.refill(now, l.rate, l.burst)
	if b.tokens < 1 {
		b.suppressed++
		return false, 0
	}
	b.tokens--
	suppressed, b.suppressed = b.suppressed, 0
	return true, suppressed
}

// add returns a new full bucket for k, or the overflow bucket when the table is full and
// a sweep finds no room. l.mu is held.
func (l *limiter) add(k limitKey, now time.Time) *bucket {
	if len(l.buckets) >= l.maxKeys && now.Sub(l.lastSweep) >= sweepEvery {
		l.lastSweep = now
		l.sweep(now)
	}
	if len(l.buckets) >= l.maxKeys {
		if l.overflow == nil {
			l.overflow = &bucket{tokens: l.burst, last: now}
		}
		return l.overflow
	}
	k.msg = strings.Clone(k.msg) // not the caller's buffer
	b := &bucket{tokens: l.burst, last: now}
	l.buckets[k] = b
	return b
}

// sweep forgets the buckets that are full again and owe no count: a new bucket would be the
// same. l.mu is held.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		b.refill(now, l.rate, l.burst)
		if b.tokens >= l.burst && b.suppressed == 0 {
			delete(l.buckets, k)
		}
	}
}

// refill adds the tokens earned since b.last, up to burst.
func (b *bucket) refill(now time.Time, rate, burst float64) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(burst, b.tokens+d.Seconds()*rate)
		b.last = now
	}
}
