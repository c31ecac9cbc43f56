package bot

import (
	"container/list"
	"context"
	"sync"
	"sync/atomic"
	"time"

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
	// unreachable: the peer did not answer the bot's last request (page mode); nothing is
	// sent until it writes again.
	unreachable atomic.Bool
	// heard: the peer answered one of the bot's requests (page mode): it is where its
	// requests say it is (see unprovenWait).
	heard atomic.Bool
	// peerSpoke: the peer sent a request in the dialog, so it knows of it (see noAck).
	peerSpoke atomic.Bool

	dlg        *dialog // session mode; nil in page mode
	*pageState         // page mode; nil in session mode

	mu sync.Mutex

	inbox    []*Event
	queued   bool // on the run queue or being run by a worker
	ended    bool
	expiring bool // EventIdle queued
	typing   typingPrefs
	endedCh  chan struct{}
	// hurry is closed at the peer's next message: a reply waiting out its typing delay
	// (WithTyping) goes at once then (see newerMessage). Nil until someone waits.
	hurry chan struct{}

	// arrival order of the peer's in-dialog requests (see arrival.go)
	nextTicket, serving uint64
	waiters             map[uint64]chan struct{}
	lastSeq             uint32 // highest CSeq of the peer taken
	seqKnown            bool
	branches            []seenBranch

	ty  typingState // guarded by tmu
	tmu sync.Mutex
}

// pageState is what only a page-mode conversation keeps (an IM session does without it).
type pageState struct {
	peerURI sip.Uri // where replies go
	// guarded by the session's mu: the transport and source address of the peer's last
	// request
	network  string
	peerAddr string
	proxied  atomic.Bool   // the peer's last request came through a proxy (see viaProxy)
	lru      *list.Element // place in the eviction order, guarded by the table's lock
	// admission: closed once Config.Admit decided
	admitted  chan struct{}
	refusal   int
	refReason string
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
	if s.hurry != nil {
		close(s.hurry)
		s.hurry = nil
	}
}

// newerMessage returns a channel that is closed once the peer has sent a message after ev
// was queued: closed already if it has.
func (s *Session) newerMessage(ev *Event) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.turns.Load() > ev.turn {
		c := make(chan struct{}) // rare: the peer wrote again before the delay began
		close(c)
		return c
	}
	if s.hurry == nil {
		s.hurry = make(chan struct{})
	}
	return s.hurry
}

func (s *Session) busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queued || len(s.inbox) > 0
}

// push appends an event to the inbox and puts the session on the run queue when it is not
// there; the caller holds s.mu.
func (s *Session) push(ev *Event) {
	ev.turn = s.turns.Load()
	s.inbox = append(s.inbox, ev)
	s.b.work.add()
	if !s.queued {
		s.queued = true
		s.b.runq.put(s)
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
	s.typingOff()
	if d := s.dlg; d != nil {
		if bye {
			bctx, cancel := context.WithTimeout(ctx, s.b.cfg.RequestTimeout)
			if _, err := s.request(bctx, sip.BYE, "", nil); err != nil {
				s.b.log.Debug("BYE not confirmed", "session", s.id, "err", err)
			}
			cancel()
		}
		d.close(s.b)
	}
	s.b.log.Debug("session ended", "session", s.id, "reason", string(reason))
	s.mu.Lock()
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

// sessionTable holds the open conversations: dialogs by dialog ID, page-mode conversations by
// their key, in the order of their last activity (the idlest first) for eviction.
type sessionTable struct {
	mu     sync.Mutex
	byID   map[string]*Session
	byPage map[string]*Session
	pages  list.List // *Session, least recently active first
}

func (t *sessionTable) init() {
	t.byID = map[string]*Session{}
	t.byPage = map[string]*Session{}
	t.pages.Init()
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

// addDialog adds an IM session unless max are open.
func (t *sessionTable) addDialog(s *Session, max int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.byID) >= max {
		return false
	}
	t.byID[s.id] = s
	return true
}

// page returns the page-mode conversation for key, creating it with mk when there is none
// (created reports that) and marking it the most recently active. When max conversations
// are open, the idlest one that is not busy is returned as evict, for the caller to end; s is
// nil when none can be evicted.
func (t *sessionTable) page(key string, max int, mk func() *Session) (s *Session, created bool, evict *Session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.byPage[key]; s != nil {
		t.pages.MoveToBack(s.lru)
		return s, false, nil
	}
	if len(t.byPage) >= max {
		// The idlest conversation that has no work makes room. Busy ones are skipped (at
		// most a few: the least recently active rarely have work).
		for e, n := t.pages.Front(), 0; e != nil && n < 64; e, n = e.Next(), n+1 {
			c := e.Value.(*Session)
			if !c.busy() {
				evict = c
				break
			}
		}
		if evict == nil {
			return nil, false, nil
		}
		delete(t.byPage, evict.key)
		t.pages.Remove(evict.lru)
	}
	s = mk()
	s.lru = t.pages.PushBack(s)
	t.byPage[key] = s
	return s, true, evict
}

// pageOf returns the page-mode conversation for key, nil when there is none.
func (t *sessionTable) pageOf(key string) *Session {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byPage[key]
}

func (t *sessionTable) remove(s *Session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.mode == ModePage {
		if t.byPage[s.key] == s {
			delete(t.byPage, s.key)
			t.pages.Remove(s.lru)
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
