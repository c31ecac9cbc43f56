package handlers

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/bot"
)

// rateLimitSenders bounds how many senders RateLimit remembers.
const rateLimitSenders = 10000

// RateLimit returns middleware that limits how fast each sender may write: a token bucket
// per sender that holds up to burst messages and gains one every interval (every =
// 6*time.Second with burst = 5 allows 10 messages a minute, 5 in a row). A message past the
// limit is not handled: the first one gets politeReply (none when it is empty), the
// following ones get silence until the bucket has a token again, so that a flood never
// turns into a flood of apologies.
//
// A Verified sender (bot.Peer.Verified) is known by its address. An unverified one is known
// by where its message came from, the source IP address of the SIP request (its /64 network
// for IPv6), since the address in its From header is whatever it chose: changing it on every
// message does not give it a new bucket. So unverified senders behind one address share a
// bucket, and those that reach the bot through a trusted proxy without its assertion share
// the proxy's. An event without a SIP request (built in a test) is known by its address.
//
// Only messages count; typing notices and session events always pass. The middleware
// remembers at most 10,000 senders: a sender whose bucket is full again is forgotten first,
// then the one idle the longest. every <= 0 or burst <= 0 disables the limit.
//
// RateLimit is RateLimitWith without exemptions; with human handoff, use RateLimitWith.
func RateLimit(every time.Duration, burst int, politeReply string) bot.Middleware {
	return RateLimitWith(RateLimitConfig{Every: every, Burst: burst, Reply: politeReply})
}

// DefaultRelayedRateLimitReply is what a user in a handoff hears when a message is refused
// and RateLimitConfig.Reply is empty.
const DefaultRelayedRateLimitReply = "You are writing too fast: your last message was not passed on. Please wait a moment and send it again."

// RateLimitConfig configures RateLimitWith.
type RateLimitConfig struct {
	// Every and Burst size each sender's bucket (see RateLimit); either <= 0 disables the
	// limit.
	Every time.Duration
	Burst int
	// Reply is the polite answer to the first message refused; "" means none.
	Reply string
	// Exempt, when set, reports senders the limit does not apply to: verified handoff
	// agents (Handoff.IsAgent), whose words are relayed to users and must never be dropped.
	Exempt func(bot.Peer) bool
	// Relayed, when set, reports the conversations (by key) whose messages are relayed to a
	// person (Handoff.Relaying). Every message refused there gets Reply (or
	// DefaultRelayedRateLimitReply), not only the first: the user must know that their words
	// did not reach the agent.
	Relayed func(key string) bool
}

// Validate reports negative Every or Burst, each as a *FieldError (joined with
// errors.Join): RateLimitWith takes them as no limit, as it does 0, but a configuration
// that writes one most likely means something else.
func (c RateLimitConfig) Validate() error {
	var errs []error
	if c.Every < 0 {
		errs = append(errs, &FieldError{Field: "Every", Err: fmt.Errorf("%v: must not be negative (0: no limit)", c.Every)})
	}
	if c.Burst < 0 {
		errs = append(errs, &FieldError{Field: "Burst", Err: fmt.Errorf("%d: must not be negative", c.Burst)})
	}
	return errors.Join(errs...)
}

// RateLimitWith returns the middleware of RateLimit, with the exemptions of cfg.
func RateLimitWith(cfg RateLimitConfig) bot.Middleware {
	l := newLimiter(cfg.Every, cfg.Burst, rateLimitSenders, time.Now)
	return l.middleware(cfg)
}

// limiter keeps one token bucket per sender, least recently used first.
type limiter struct {
	every time.Duration
	burst float64
	max   int
	now   func() time.Time

	mu      sync.Mutex
	senders map[string]*list.Element // of *bucket
	lru     list.List                // front: most recently used
}

type bucket struct {
	sender string
	tokens float64
	last   time.Time
	warned bool // the polite reply went out since the bucket ran dry
}

func newLimiter(every time.Duration, burst, max int, now func() time.Time) *limiter {
	return &limiter{every: every, burst: float64(burst), max: max, now: now, senders: map[string]*list.Element{}}
}

// verdict of one message.
type verdict int

const (
	allow verdict = iota
	warn          // refuse, with the polite reply
	drop          // refuse silently
)

func (l *limiter) take(sender string) verdict {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.senders[sender]
	if !ok {
		l.makeRoom(now)
		el = l.lru.PushFront(&bucket{sender: sender, tokens: l.burst, last: now})
		l.senders[sender] = el
	} else {
		l.lru.MoveToFront(el)
	}
	b := el.Value.(*bucket)
	b.tokens = l.refilled(b, now)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		b.warned = false
		return allow
	}
	if b.warned {
		return drop
	}
	b.warned = true
	return warn
}

func (l *limiter) refilled(b *bucket, now time.Time) float64 {
	return min(l.burst, b.tokens+float64(now.Sub(b.last))/float64(l.every))
}

// makeRoom evicts senders when the table is full: those whose bucket is full again (they
// are as good as new), else the least recently seen.
func (l *limiter) makeRoom(now time.Time) {
	if len(l.senders) < l.max {
		return
	}
	for el := l.lru.Back(); el != nil; {
		prev := el.Prev()
		if b := el.Value.(*bucket); l.refilled(b, now) >= l.burst {
			l.lru.Remove(el)
			delete(l.senders, b.sender)
		}
		el = prev
	}
	for len(l.senders) >= l.max {
		el := l.lru.Back()
		l.lru.Remove(el)
		delete(l.senders, el.Value.(*bucket).sender)
	}
}

func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.senders)
}

func (l *limiter) middleware(cfg RateLimitConfig) bot.Middleware {
	return func(next bot.Handler) bot.Handler {
		if l.every <= 0 || l.burst <= 0 {
			return next
		}
		return bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
			c, ok := convOf(ev)
			if ev.Kind != bot.EventMessage || !ok || cfg.Exempt != nil && cfg.Exempt(c.Peer) {
				return next.Handle(ctx, w, ev)
			}
			v := l.take(rateKey(c.Peer, ev.SIPRequest()))
			if v == allow {
				return next.Handle(ctx, w, ev)
			}
			bot.SetAnswerer(w, "ratelimit")
			reply := cfg.Reply
			if cfg.Relayed != nil && cfg.Relayed(c.Key) {
				v = warn // the words were meant for a person: never drop them unnoticed
				if reply == "" {
					reply = DefaultRelayedRateLimitReply
				}
			}
			if v == warn && reply != "" {
				return w.Reply(ctx, reply)
			}
			return nil
		})
	}
}

// rateKey names the bucket of a message of peer carried by req (nil for an event that came
// from no request): the peer's address when it is Verified, else the request's source IP
// address, or its /64 network for IPv6, where one host commonly holds the whole network.
func rateKey(peer bot.Peer, req *sip.Request) string {
	if peer.Verified || req == nil {
		return "uri " + peer.URI
	}
	src := req.Source()
	host, _, err := net.SplitHostPort(src)
	if err != nil {
		host = src
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		return "uri " + peer.URI
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		return "ip " + netip.PrefixFrom(ip, 64).Masked().String()
	}
	return "ip " + ip.String()
}
