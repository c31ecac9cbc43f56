package bot

import (
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// In-dialog requests are handled in the order they arrived, which is the only order SIP
// gives them (RFC 3261 §12.2.2 allows gaps in the peer's CSeq, so a CSeq-ordered queue would
// have to wait for numbers that never come). sipgo reads each connection in one goroutine
// and calls every TransportLayer.OnMessage handler in turn: the transaction layer's, which
// hands the request to a new goroutine, then onArrival, which gives each in-dialog request a
// ticket in its session's arrival order, still in the read loop. The request's SIP handler
// first waits until onArrival has seen its request (arrivalOf), then for its turn (see
// Session.takeTurn), applies the CSeq rule and answers; the next request's handler runs
// after it.
//
// Retransmissions (same branch) are absorbed by the transaction layer and never reach a
// handler, so they get no ticket. ACK and CANCEL are not ordered either. An in-dialog
// MESSAGE over UDP takes the lean path (leanudp.go): its read loop calls onArrival itself,
// after absorbing retransmissions as the transaction layer would.

// arrivalGuard bounds how long a request waits for a predecessor whose handler never runs
// (its transaction could not be created). It only guards against the unexpected: in the
// normal course a turn comes within microseconds.
const arrivalGuard = 2 * time.Second

// branchMemory is how long a session remembers the branches of the peer's requests to tell
// a retransmission from a new request: longer than Timer F (64*T1, the longest a client
// retransmits) and Timer J (how long sipgo keeps the transaction that absorbs them).
const branchMemory = 40 * time.Second

// arrival is what onArrival learnt about one request; the handler takes it by the request.
type arrival struct {
	ready  chan struct{} // closed by onArrival
	s      *Session      // nil: no session (481), or not ordered
	ticket uint64
	at     int64 // unix nanoseconds, for sweeping arrivals no handler took
}

// arrivals pairs onArrival with the handlers of the same requests.
type arrivals struct {
	m sync.Map // *sip.Request -> *arrival
}

func (a *arrivals) get(req *sip.Request) *arrival {
	v, ok := a.m.Load(req)
	if !ok {
		v, _ = a.m.LoadOrStore(req, &arrival{ready: make(chan struct{}), at: time.Now().UnixNano()})
	}
	return v.(*arrival)
}

// sweep forgets arrivals older than age whose handler never came (requests the transaction
// layer absorbed).
func (a *arrivals) sweep(age time.Duration) {
	limit := time.Now().Add(-age).UnixNano()
	a.m.Range(func(k, v any) bool {
		if v.(*arrival).at < limit {
			a.m.Delete(k)
		}
		return true
	})
}

// ordered reports whether a request is sequenced in its dialog.
func ordered(req *sip.Request) bool {
	if req.IsAck() || req.IsCancel() || !inDialog(req) {
		return false
	}
	via := req.Via()
	return via != nil && req.CSeq() != nil && req.CallID() != nil && req.From() != nil
}

// onArrival runs in the transport's read loop for every message, in arrival order.
func (b *Bot) onArrival(msg sip.Message) {
	req, ok := msg.(*sip.Request)
	if !ok || !ordered(req) {
		return
	}
	s := b.lookup(req) // dialogs only: page-mode conversations are not ordered
	var ticket uint64
	if s != nil {
		branch, _ := req.Via().Params.Get("branch")
		var fresh bool
		if ticket, fresh = s.arrive(branch+" "+string(req.Method), time.Now()); !fresh {
			return // a retransmission: the transaction layer answers it
		}
	}
	a := b.arrivals.get(req)
	if s != nil {
		a.s, a.ticket = s, ticket
	}
	close(a.ready)
}

// arrivalOf returns the ticket onArrival gave req, waiting for onArrival if the handler got
// there first. It returns nil for requests that are not ordered.
func (b *Bot) arrivalOf(req *sip.Request) *arrival {
	if !ordered(req) {
		return nil
	}
	a := b.arrivals.get(req)
	select {
	case <-a.ready: // the usual case: onArrival ran while the handler's goroutine started
	default:
		t := time.NewTimer(arrivalGuard)
		select {
		case <-a.ready:
		case <-t.C:
			// onArrival decided it was a retransmission whose transaction had already
			// gone: handle it without a ticket (the CSeq rule refuses it).
		}
		t.Stop()
	}
	b.arrivals.m.Delete(req)
	return a
}

// passTurn gives up the turn of a request that is not handled (over Config.SourceLimit), so
// that the requests after it in its session need not wait for it. Like the handled ones, it
// waits for its predecessors, and for onArrival (see arrivalOf).
func (b *Bot) passTurn(req *sip.Request) {
	if a := b.arrivalOf(req); a != nil && a.s != nil {
		a.s.takeTurn(a.ticket)
		a.s.endTurn(a.ticket)
	}
}

// arrive records a request's branch and gives it the next arrival ticket, unless the branch
// was seen before (a retransmission: fresh is false). Branches older than branchMemory are
// forgotten.
func (s *Session) arrive(branchKey string, now time.Time) (ticket uint64, fresh bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgetBranchesLocked(now)
	for _, b := range s.branches {
		if b.key == branchKey {
			return 0, false
		}
	}
	s.branches = append(s.branches, seenBranch{key: branchKey, at: now.UnixNano()})
	ticket = s.nextTicket
	s.nextTicket++
	return ticket, true
}

// forgetBranches drops the branches older than branchMemory (the idle sweeper calls it, so
// that a quiet session keeps none).
func (s *Session) forgetBranches(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgetBranchesLocked(now)
}

func (s *Session) forgetBranchesLocked(now time.Time) {
	limit := now.Add(-branchMemory).UnixNano()
	i := 0
	for i < len(s.branches) && s.branches[i].at < limit {
		i++
	}
	switch {
	case i == len(s.branches):
		s.branches = nil
	case i > 0:
		s.branches = append(s.branches[:0], s.branches[i:]...)
	}
}

type seenBranch struct {
	key string
	at  int64
}

// takeTurn waits until every request that arrived before ticket in this session was
// handled. The caller must call endTurn when it has answered.
func (s *Session) takeTurn(ticket uint64) {
	s.mu.Lock()
	if s.serving == ticket {
		s.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	if s.waiters == nil {
		s.waiters = map[uint64]chan struct{}{}
	}
	s.waiters[ticket] = ch
	s.mu.Unlock()
	t := time.NewTimer(arrivalGuard)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
		s.mu.Lock()
		if _, waiting := s.waiters[ticket]; waiting {
			// A predecessor never came: give up on it.
			s.b.log.Warn("in-dialog request waited too long for its predecessor", "session", s.id, "ticket", ticket, "serving", s.serving)
			delete(s.waiters, ticket)
			s.serving = max(s.serving, ticket)
		}
		s.mu.Unlock()
	}
}

// endTurn lets the next request in arrival order go on.
func (s *Session) endTurn(ticket uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.serving > ticket {
		return // skipped by the guard
	}
	s.serving = ticket + 1
	if ch, ok := s.waiters[s.serving]; ok {
		delete(s.waiters, s.serving)
		close(ch)
	}
}

// checkCSeq applies RFC 3261 §12.2.2 to a request taken in arrival order: a CSeq lower than
// or equal to the last one is refused (500), a gap is fine. It reports whether the request
// may go on.
func (s *Session) checkCSeq(seq uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seqKnown && seq <= s.lastSeq {
		return false
	}
	s.seqKnown, s.lastSeq = true, seq
	return true
}
