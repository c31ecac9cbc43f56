package bot

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Session is one conversation between the bot and a peer: an IM session (an INVITE dialog)
// or a page-mode conversation (the pair of addresses, until it is idle). Its methods are safe
// for concurrent use.
type Session struct {
	b       *Bot
	id      string
	key     string
	mode    Mode
	peer    Peer
	local   sip.Uri // the bot's address in this conversation
	started time.Time

	turns       atomic.Int64
	headerBytes atomic.Int32 // see udpOverhead
	lastActive  atomic.Int64 // unix nanoseconds of the last message in either direction
	lastIn      atomic.Int64 // unix nanoseconds of the peer's last message

	// network is the transport requests go over: the dialog's, or that of the page-mode
	// peer's last request.
	network string

	// page mode: where replies go
	peerURI  sip.Uri
	peerAddr string // source address of the peer's last request

	// session mode
	dlg       dialog
	target    sip.Uri // the peer's Contact: Request-URI of in-dialog requests
	routeLen  int     // bytes of the Route headers of in-dialog requests
	sdpAnswer []byte

	mu        sync.Mutex
	inbox     []*Event
	running   bool
	confirmed bool // the worker may run: always in page mode, after the ACK in session mode
	ended     bool
	expiring  bool        // EventIdle queued
	lastSeq   uint32      // highest in-dialog CSeq released to the inbox
	seqKnown  bool        // lastSeq holds a CSeq of the peer
	held      []heldEvent // in-dialog events that arrived ahead of a lower CSeq
	reorder   *time.Timer
	typing    typingPrefs
	endedCh   chan struct{}
}

// dialog is an IM session's SIP dialog, whichever side opened it: a
// *sipgo.DialogServerSession or a *sipgo.DialogClientSession.
type dialog interface {
	Do(ctx context.Context, req *sip.Request) (*sip.Response, error)
	ReadBye(req *sip.Request, tx sip.ServerTransaction) error
	Bye(ctx context.Context) error
	Close() error
}

var (
	_ dialog = (*sipgo.DialogServerSession)(nil)
	_ dialog = (*sipgo.DialogClientSession)(nil)
)

// setDialog records the dialog and what in-dialog requests need from it.
func (s *Session) setDialog(d dialog, target sip.Uri, network string, recordRoutes []sip.Header) {
	s.dlg, s.target, s.network = d, target, network
	for _, h := range recordRoutes {
		s.routeLen += len("Route: \r\n") + len(h.Value())
	}
}

type heldEvent struct {
	seq uint32
	ev  *Event // nil: a request that only consumes its CSeq (re-INVITE, BYE, OPTIONS)
}

// ID returns the session's identifier: the dialog ID for an IM session, the conversation key
// for page mode.
func (s *Session) ID() string { return s.id }

// Key returns the conversation key "<bot AOR> <peer AOR>", stable across sessions and
// restarts, for stores that keep a conversation's state.
func (s *Session) Key() string { return s.key }

// Mode returns the conversation's dialect.
func (s *Session) Mode() Mode { return s.mode }

// Peer returns who the bot is talking to.
func (s *Session) Peer() Peer { return s.peer }

// Local returns the bot's own address in this conversation.
func (s *Session) Local() string { return s.local.String() }

// Started returns when the conversation started.
func (s *Session) Started() time.Time { return s.started }

// Turns returns how many messages the peer has sent in this conversation.
func (s *Session) Turns() int { return int(s.turns.Load()) }

// Done returns a channel that is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.endedCh }

func (s *Session) touch() { s.lastActive.Store(time.Now().UnixNano()) }

// received notes a message from the peer; the caller holds s.mu.
func (s *Session) received() {
	now := time.Now().UnixNano()
	s.turns.Add(1)
	s.lastActive.Store(now)
	s.lastIn.Store(now)
}

func (s *Session) busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running || len(s.inbox) > 0 || len(s.held) > 0
}

// pending is the number of events waiting; the caller holds s.mu.
func (s *Session) pending() int { return len(s.inbox) + len(s.held) }

// push appends an event to the inbox and starts a worker when none runs; the caller holds s.mu.
func (s *Session) push(ev *Event) {
	s.inbox = append(s.inbox, ev)
	s.kick()
}

// kick starts a worker if there is work and none runs; the caller holds s.mu.
func (s *Session) kick() {
	if s.running || len(s.inbox) == 0 || !s.confirmed {
		return
	}
	s.running = true
	s.b.work.add()
	go s.b.runWorker(s)
}

// sequence releases in-dialog events in CSeq order; the caller holds s.mu. An event whose
// predecessor is missing waits up to the reorder window; a late one is released at once.
func (s *Session) sequence(seq uint32, ev *Event) {
	if !s.seqKnown {
		// A session the bot opened: the peer's first request sets its CSeq space.
		s.seqKnown, s.lastSeq = true, seq-1
	}
	if seq != s.lastSeq+1 && seq > s.lastSeq {
		i, _ := slices.BinarySearchFunc(s.held, seq, func(h heldEvent, t uint32) int { return int(int64(h.seq) - int64(t)) })
		s.held = slices.Insert(s.held, i, heldEvent{seq, ev})
		if s.reorder == nil {
			s.reorder = time.AfterFunc(s.b.cfg.ReorderWindow, s.flushHeld)
		}
		return
	}
	if seq > s.lastSeq {
		s.lastSeq = seq
	}
	if ev != nil {
		s.push(ev)
	}
	s.releaseHeld()
}

func (s *Session) releaseHeld() {
	for len(s.held) > 0 && s.held[0].seq <= s.lastSeq+1 {
		h := s.held[0]
		s.held = s.held[1:]
		if h.seq > s.lastSeq {
			s.lastSeq = h.seq
		}
		if h.ev != nil {
			s.push(h.ev)
		}
	}
	if len(s.held) == 0 && s.reorder != nil {
		s.reorder.Stop()
		s.reorder = nil
	}
}

// flushHeld runs when the reorder window passed: the lowest held event goes on, the gap
// before it is given up.
func (s *Session) flushHeld() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reorder = nil
	if len(s.held) == 0 {
		return
	}
	s.lastSeq = s.held[0].seq - 1
	s.releaseHeld()
	if len(s.held) > 0 {
		s.reorder = time.AfterFunc(s.b.cfg.ReorderWindow, s.flushHeld)
	}
}

// end ends the conversation once: it forgets it, sends BYE when asked (session mode) and
// queues the EventSessionEnd after whatever is still queued.
func (s *Session) end(ctx context.Context, reason EndReason, bye bool) {
	if s.stop() {
		s.finish(ctx, reason, bye)
	}
}

// stop marks the session ended and forgets it, so that requests in its dialog get 481 and a
// page-mode peer writing now starts a new conversation. It reports whether this call ended it.
func (s *Session) stop() bool {
	s.b.sessions.remove(s)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	s.ended = true
	return true
}

// finish completes the end of a stopped session: BYE when asked, then the end event after
// whatever is still queued.
func (s *Session) finish(ctx context.Context, reason EndReason, bye bool) {
	if bye && s.dlg != nil {
		bctx, cancel := context.WithTimeout(ctx, s.b.cfg.RequestTimeout)
		if err := s.dlg.Bye(bctx); err != nil {
			s.b.log.Debug("BYE not confirmed", "session", s.id, "err", err)
		}
		cancel()
	}
	if s.dlg != nil {
		_ = s.dlg.Close()
	}
	s.b.log.Debug("session ended", "session", s.id, "reason", string(reason))
	s.mu.Lock()
	// Whatever waited for a missing CSeq is handled now, before the end event.
	if len(s.held) > 0 {
		s.lastSeq = s.held[len(s.held)-1].seq
		for _, h := range s.held {
			if h.ev != nil {
				s.inbox = append(s.inbox, h.ev)
			}
		}
		s.held = nil
		if s.reorder != nil {
			s.reorder.Stop()
			s.reorder = nil
		}
	}
	s.confirmed = true
	s.push(&Event{Kind: EventSessionEnd, Session: s, Time: time.Now(), Reason: reason})
	s.mu.Unlock()
	close(s.endedCh)
}

// expire queues EventIdle once; the session ends after it is handled.
func (s *Session) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.expiring {
		return
	}
	s.expiring = true
	s.push(&Event{Kind: EventIdle, Session: s, Time: time.Now()})
}

// isEnded reports whether the session has ended.
func (s *Session) isEnded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// runWorker handles the session's events one at a time until its inbox is empty.
func (b *Bot) runWorker(s *Session) {
	defer b.work.done()
	b.sem <- struct{}{}
	defer func() { <-b.sem }()
	for {
		s.mu.Lock()
		if len(s.inbox) == 0 {
			s.running = false
			s.mu.Unlock()
			return
		}
		ev := s.inbox[0]
		s.inbox[0] = nil
		s.inbox = s.inbox[1:]
		if len(s.inbox) == 0 {
			s.inbox = nil
		}
		s.mu.Unlock()
		b.dispatch(s, ev)
	}
}

// sessionTable holds the open conversations: dialogs by dialog ID, page-mode conversations by
// their key.
type sessionTable struct {
	mu     sync.Mutex
	byID   map[string]*Session
	byPage map[string]*Session
}

func (t *sessionTable) init() {
	t.byID = map[string]*Session{}
	t.byPage = map[string]*Session{}
}

func (t *sessionTable) dialog(id string) *Session {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byID[id]
}

func (t *sessionTable) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byID) + len(t.byPage)
}

func (t *sessionTable) addDialog(s *Session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.byID[s.id] = s
}

// page returns the page-mode conversation for key, creating it with mk when there is none
// (created reports that). It returns nil when the table is full.
func (t *sessionTable) page(key string, max int, mk func() *Session) (s *Session, created bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.byPage[key]; s != nil {
		return s, false
	}
	if len(t.byID)+len(t.byPage) >= max {
		return nil, false
	}
	s = mk()
	t.byPage[key] = s
	return s, true
}

func (t *sessionTable) remove(s *Session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.mode == ModePage {
		if t.byPage[s.key] == s {
			delete(t.byPage, s.key)
		}
		return
	}
	if t.byID[s.id] == s {
		delete(t.byID, s.id)
	}
}

func (t *sessionTable) all() []*Session {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*Session, 0, len(t.byID)+len(t.byPage))
	for _, s := range t.byID {
		out = append(out, s)
	}
	for _, s := range t.byPage {
		out = append(out, s)
	}
	return out
}
