package bottest

import (
	"context"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/emiago/sipgo/sip"
)

// packetConn wraps the peer's UDP socket for sipgo's read loop.
//
// It signals when sipgo first reads from it: sipgo has put the socket in its
// connection pool by then, which requests leaving from the listening socket
// rely on. And when draining it drops datagrams, and lets Close know when
// sipgo has finished with the last one it delivered: sipgo's read loop parses
// a datagram and runs the transport-layer handlers (arrivals.stamp) before it
// reads the next one.
type packetConn struct {
	net.PacketConn
	once  sync.Once
	ready chan struct{}

	mu         sync.Mutex
	cond       sync.Cond
	draining   bool
	delivering bool // a datagram was returned and sipgo has not read again yet
}

func newPacketConn(pc net.PacketConn) *packetConn {
	c := &packetConn{PacketConn: pc, ready: make(chan struct{})}
	c.cond.L = &c.mu
	return c
}

// ReadFrom implements net.PacketConn.
func (c *packetConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.once.Do(func() { close(c.ready) })
	c.mu.Lock()
	c.delivering = false
	c.cond.Broadcast()
	c.mu.Unlock()
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		c.mu.Lock()
		if c.draining && err == nil {
			c.mu.Unlock()
			continue
		}
		c.delivering = err == nil
		c.mu.Unlock()
		return n, addr, err
	}
}

// drain stops delivering datagrams and waits until sipgo is done with the
// last one delivered.
func (c *packetConn) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	for c.delivering {
		c.cond.Wait()
	}
}

// dialControl refuses TCP connections once the peer is closing, so that
// sipgo cannot open one that nothing would close.
func (p *Peer) dialControl(network, address string, _ syscall.RawConn) error {
	if p.isClosed() {
		return errClosed
	}
	return nil
}

// arrivals stamps incoming requests with a sequence number and a time in
// the transport's read goroutine, that is in wire order, and hands the stamp
// to the handler goroutine sipgo starts for the request. Without it the
// handlers' order would be the order in which goroutines happen to run.
//
// It also tracks requests that are on their way to a handler, by server
// transaction key: retransmissions, and ACKs and CANCELs of a known INVITE,
// never reach a handler (sipgo's transaction layer absorbs them), so only
// the first request with a key counts.
type arrivals struct {
	closed  <-chan struct{}
	mu      sync.Mutex
	seq     uint64
	pruned  time.Time
	m       map[*sip.Request]*arrival
	seen    map[string]time.Time // server transaction keys stamped
	pending map[string]stamped   // keys stamped and not yet recorded
	changed chan struct{}        // closed and replaced when pending shrinks
}

// stamped is when and in which place a pending request arrived.
type stamped struct {
	at  time.Time
	seq uint64
}

type arrival struct {
	seq  uint64
	time time.Time
	key  string
	done chan struct{} // closed when stamped
}

func (a *arrivals) init(closed <-chan struct{}) {
	a.closed = closed
	a.m = make(map[*sip.Request]*arrival)
	a.seen = make(map[string]time.Time)
	a.pending = make(map[string]stamped)
	a.changed = make(chan struct{})
}

func (a *arrivals) entry(req *sip.Request) *arrival {
	e := a.m[req]
	if e == nil {
		e = &arrival{done: make(chan struct{})}
		a.m[req] = e
	}
	return e
}

// stamp is a sipgo transport-layer message handler. sipgo calls it in the
// read goroutine, right after the transaction layer has started the
// request's own goroutine.
func (a *arrivals) stamp(msg sip.Message) {
	req, ok := msg.(*sip.Request)
	if !ok {
		return
	}
	key, keyErr := sip.ServerTxKeyMake(req)
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now() // under the lock: times grow with seq
	a.seq++
	e := a.entry(req)
	e.seq, e.time = a.seq, now
	if keyErr == nil {
		e.key = key
		_, dup := a.seen[key]
		if req.Method == sip.CANCEL {
			_, invite := a.seen[inviteKey(key)]
			dup = dup || invite
		}
		if !dup {
			a.seen[key] = now
			a.pending[key] = stamped{at: now, seq: a.seq}
		}
	}
	close(e.done)

	// Forget what is a minute old: stamps of requests that never reached a
	// handler, keys of finished transactions.
	if len(a.m)+len(a.seen) > 1024 && now.Sub(a.pruned) > 10*time.Second {
		a.pruned = now
		for r, old := range a.m {
			if old.seq != 0 && now.Sub(old.time) > time.Minute {
				delete(a.m, r)
			}
		}
		for k, t := range a.seen {
			if now.Sub(t) > time.Minute {
				delete(a.seen, k)
			}
		}
		for k, t := range a.pending {
			if now.Sub(t.at) > time.Minute {
				delete(a.pending, k)
			}
		}
	}
}

// inviteKey turns the server transaction key of a CANCEL into the key of
// the INVITE it cancels.
func inviteKey(key string) string {
	sep := sip.TxSeperator
	if k, ok := strings.CutSuffix(key, sep+string(sip.CANCEL)); ok {
		return k + sep + string(sip.INVITE)
	}
	return strings.Replace(key, sep+string(sip.CANCEL)+sep, sep+string(sip.INVITE)+sep, 1)
}

// take returns the stamp of a request that reached its handler, waiting for
// the read goroutine to set it (it does so right after starting the
// handler's goroutine).
func (a *arrivals) take(req *sip.Request) (uint64, time.Time) {
	a.mu.Lock()
	e := a.entry(req)
	a.mu.Unlock()
	select {
	case <-e.done:
	case <-a.closed: // a guard: the stamp follows the start of the handler's goroutine at once
		select {
		case <-e.done:
		default:
			return 0, time.Now()
		}
	}
	a.mu.Lock()
	delete(a.m, req)
	a.mu.Unlock()
	return e.seq, e.time
}

// settled says that a request taken by its handler has been recorded (or needs no record).
func (a *arrivals) settled(req *sip.Request) {
	key, err := sip.ServerTxKeyMake(req)
	if err != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.pending[key]; ok {
		delete(a.pending, key)
		close(a.changed)
		a.changed = make(chan struct{})
	}
}

// waitBefore waits until every request that arrived before the one stamped seq has been
// recorded: requests the bot pipelines reach their handlers in any order, and a wait for
// one must also see those that came before it.
func (a *arrivals) waitBefore(ctx context.Context, seq uint64) error {
	for {
		a.mu.Lock()
		n, changed := 0, a.changed
		for _, st := range a.pending {
			if st.seq < seq {
				n++
			}
		}
		a.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-a.closed:
			return errClosed
		}
	}
}

// waitPending waits until every request stamped has reached its handler, or
// for timeout; it reports whether they all did.
func (a *arrivals) waitPending(timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		a.mu.Lock()
		n, changed := len(a.pending), a.changed
		a.mu.Unlock()
		if n == 0 {
			return true
		}
		select {
		case <-changed:
		case <-timer.C:
			return false
		}
	}
}
