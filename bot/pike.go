package bot

import (
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
)

// SourceLimit limits how fast each source address may send requests, in the manner of
// Kamailio's pike module: the check is the first thing done with a request, before it is
// parsed any further, and costs one map lookup. It is off by default, because a load test
// sends thousands of requests a second from one address; a bot reachable from the internet
// should set it (Rate 50 and Burst 100 leave any real client alone). Behind a proxy, every
// request comes from the proxy's address: requests from trusted proxies are exempt.
//
// A source past its limit gets 503 Service Unavailable with Retry-After for its first
// request over the limit in each second, and no answer at all for the others, so that a
// flood with a forged source address is not reflected to that address. ACK and CANCEL are
// never limited (they end transactions the bot has started on), nor responses to the bot's
// own requests.
//
// Sources are told apart by IP address alone, whatever the port; IPv6 addresses by their
// /64 prefix, which one host usually holds whole. An attacker with many addresses gets
// Burst requests from each (about MaxSources*Burst at once, then Rate per address per
// second while the table holds it): a table that fills up forgets sources whose bucket is
// full again, then arbitrary ones, and a forgotten source starts again with a full bucket.
// Against such a flood, the bot's global bounds (MaxQueued, MaxQueueDelay) remain.
type SourceLimit struct {
	// Rate is the requests per second each source may send, on average. 0 (the default) or
	// less: no limit.
	Rate float64
	// Burst is how many requests a source may send at once, above Rate. Default: 2*Rate, at
	// least 1.
	Burst int
	// MaxSources bounds the sources tracked at once (each costs about 100 bytes).
	// Default: 65536.
	MaxSources int
}

// withDefaults fills in Burst and MaxSources; a Rate that is not a positive finite number is
// no limit.
func (c SourceLimit) withDefaults() SourceLimit {
	if !(c.Rate > 0) || math.IsInf(c.Rate, 1) {
		c.Rate = 0
	}
	if c.Burst <= 0 {
		c.Burst = max(1, int(min(math.Ceil(2*c.Rate), math.MaxInt32)))
	}
	if c.MaxSources <= 0 {
		c.MaxSources = 65536
	}
	return c
}

// limitVerdict is what the source limit says of one request.
type limitVerdict uint8

const (
	limitPass   limitVerdict = iota // handle the request
	limitAnswer                     // over the limit, first time this second: answer 503
	limitDrop                       // over the limit again: no answer
)

// noticeWindow is how often a source over its limit gets a 503 (and a log line).
const noticeWindow = time.Second

// sourceLimiter keeps one token bucket per source address. Its methods are safe for
// concurrent use.
type sourceLimiter struct {
	rate  float64 // tokens per second; 0: no limit
	burst float64
	max   int
	clock func() time.Duration // monotonic time; tests replace it

	// exempt, when set, says which sources are never limited (trusted proxies). It is given
	// the request's source address as it came, an IPv4 address unmapped. Set it with
	// setExempt before the bot serves.
	exempt func(netip.Addr) bool

	limited atomic.Uint64 // requests refused or dropped

	mu      sync.Mutex
	sources map[netip.Addr]*sourceBucket // by sourceKey
}

// sourceBucket is one source's token bucket.
type sourceBucket struct {
	tokens     float64
	last       time.Duration // when tokens was right
	quietUntil time.Duration // until then, requests over the limit are dropped unanswered
}

// newSourceLimiter returns the limiter of cfg, whose defaults are applied. A nil clock is the
// process's monotonic clock.
func newSourceLimiter(cfg SourceLimit, clock func() time.Duration) *sourceLimiter {
	if clock == nil {
		start := time.Now()
		clock = func() time.Duration { return time.Since(start) }
	}
	l := &sourceLimiter{rate: cfg.Rate, burst: float64(cfg.Burst), max: cfg.MaxSources, clock: clock}
	if l.rate > 0 {
		l.sources = map[netip.Addr]*sourceBucket{}
	}
	return l
}

// setExempt sets the hook that exempts sources from the limit (nil: none). Call it before
// the bot serves.
func (l *sourceLimiter) setExempt(f func(netip.Addr) bool) { l.exempt = f }

// checkRequest applies the limit to a request. retry is the Retry-After of limitAnswer, in
// seconds.
func (l *sourceLimiter) checkRequest(req *sip.Request) (v limitVerdict, src netip.Addr, retry int) {
	if l.rate == 0 || req.IsAck() || req.IsCancel() {
		return limitPass, netip.Addr{}, 0
	}
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return limitPass, netip.Addr{}, 0 // no address to count it against
	}
	src = ap.Addr().Unmap()
	v, retry = l.check(src)
	return v, src, retry
}

// check takes a token from src's bucket.
func (l *sourceLimiter) check(src netip.Addr) (v limitVerdict, retry int) {
	if l.rate == 0 || (l.exempt != nil && l.exempt(src)) {
		return limitPass, 0
	}
	key := sourceKey(src)
	now := l.clock()
	l.mu.Lock()
	b := l.sources[key]
	if b == nil {
		if len(l.sources) >= l.max {
			l.evictLocked(now)
		}
		b = &sourceBucket{tokens: l.burst, last: now}
		l.sources[key] = b
	}
	b.refill(now, l.rate, l.burst)
	if b.tokens >= 1 {
		b.tokens--
		l.mu.Unlock()
		return limitPass, 0
	}
	v = limitDrop
	if now >= b.quietUntil {
		v, b.quietUntil = limitAnswer, now+noticeWindow
		retry = max(1, int(math.Ceil((1-b.tokens)/l.rate)))
	}
	l.mu.Unlock()
	l.limited.Add(1)
	return v, retry
}

// sourceKey is the address a source is counted by: an IPv4 address, or the /64 prefix of an
// IPv6 one (without zone).
func sourceKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.WithZone("").Prefix(64)
		return p.Addr()
	}
	return a
}

// evictLocked makes room in a full table: it forgets every source whose bucket is full again
// (a new bucket would be the same), then arbitrary ones, until an eighth of the table is
// free, so that the sweep runs once per MaxSources/8 new sources at most. l.mu is held.
func (l *sourceLimiter) evictLocked(now time.Duration) {
	for k, b := range l.sources {
		if b.refill(now, l.rate, l.burst); b.tokens >= l.burst {
			delete(l.sources, k)
		}
	}
	keep := l.max - max(1, l.max/8)
	for k := range l.sources {
		if len(l.sources) <= keep {
			break
		}
		delete(l.sources, k)
	}
}

// refill adds the tokens earned since b.last, up to burst.
func (b *sourceBucket) refill(now time.Duration, rate, burst float64) {
	if d := now - b.last; d > 0 {
		b.tokens = min(burst, b.tokens+d.Seconds()*rate)
		b.last = now
	}
}

// LimitedRequests returns how many requests Config.SourceLimit has refused (503) or dropped
// unanswered since the bot was created. The 503s are also reported to Config.Observer.
func (b *Bot) LimitedRequests() uint64 { return b.pike.limited.Load() }
