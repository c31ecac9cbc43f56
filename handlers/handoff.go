package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/rules"
)

// Dialer sends a page-mode message to any SIP address. *bot.Bot implements it.
type Dialer interface {
	Send(ctx context.Context, to, text string) (bot.Delivery, error)
}

// HandoffObserver is told about handoffs as they happen; *Metrics implements it. Outcomes
// are "requested", "accepted", "done", "timeout" (no agent answered in time),
// "unavailable" (every agent passed or could not be reached), "user_left" and "escalated"
// (an offer moved on to another agent after HandoffConfig.OfferTimeout).
type HandoffObserver interface {
	ObserveHandoff(outcome string)
}

// HandoffWaitObserver is a HandoffObserver that is also told how long each accepted handoff
// waited for its agent, from the user's request (before any restart) to the acceptance;
// *Metrics is one.
type HandoffWaitObserver interface {
	ObserveHandoffWait(d time.Duration)
}

// Handoff hands conversations over to human agents and relays messages both ways while the
// bot stays silent. Create one with NewHandoff and put its Middleware in the chain, before
// the rules and handlers it must silence:
//
//	ho, err := handlers.NewHandoff(handlers.HandoffConfig{Agents: agents, Dialer: b, Tickets: db, Transcript: db})
//	b.Use(handlers.Transcript(db), ho.Middleware(), engine.Middleware())
//
// A handoff starts when a user's message contains a trigger phrase, after NoMatchLimit
// unmatched messages in a row, or when a rule hands the event to Handler. The user is told
// to wait, and the first agent (in configuration order) with a free slot gets an offer: who
// waits and the transcript so far. An offer not accepted within OfferTimeout moves on to the
// next free agent; with Broadcast, every free agent gets it at once and the first to accept
// takes it. Agents' messages reach the bot as conversations of their
// own; the middleware recognises them by address and routes them:
//
//	any text, /accept [n]   accept the oldest offer (or offer n); the first text is relayed
//	/pass [n]               leave the offer to the next free agent
//	text, #n text           relay to the current conversation, or to conversation n
//	/done [n]               end the current conversation (or n): the bot takes it back
//	/list                   list the agent's conversations and offers
//	/invite [#n] sip:...    bring a supervisor or a colleague into the conversation (with
//	                        HandoffConfig.Rooms; see below)
//
// While a handoff is open, every message of the user goes to the agent (or waits for one)
// and nothing of the user's reaches the handlers after the middleware. When no agent
// accepts within AnswerTimeout, or every agent passed, the user is told, and a ticket is
// created when a TicketStore is set. Relayed messages travel as page-mode messages through
// the Dialer (to an unverified user, through its own conversation: see below).
//
// Agents must be Verified (bot.Peer.Verified: asserted by a trusted proxy, or signed in with
// the bot's digest challenge). A sender that is not, writing from an agent's address, gets
// none of the agent's powers: no offers, commands or relays. Each of its messages gets
// UnverifiedAgent as the only answer and a warning in the log; it does not reach the
// handlers after the middleware either (it is no customer: it claims to be an agent).
// Users need not be verified; the agent sees an unverified user's address marked ", not
// verified" ({uri}), and messages relayed to such a user go through the user's own
// conversation (answered where the user wrote from, as replies are), never to the address it
// only claims: once that conversation has ended (a page-mode one after the idle timeout, with
// neither side writing), they are dropped and logged until the user writes again. Its ticket,
// if one is opened, records that address in its notes, not as its Peer.
//
// Several handoffs run at once; each agent holds at most Agent.Max of them (offers
// included), and users wait in line for a free agent.
//
// With HandoffConfig.Rooms, an accepted handoff is a room (see Rooms) of the user and the
// agent, whose lines the Handoff routes as above, and the silent bot. Their lines go through
// the room: with the Rooms' Store each one is written down before it is sent and until it
// was delivered, so that a crash loses none (a line for an unverified user with no
// conversation waits in the room, the agent told as above). /invite brings a guest in: the bot writes to them in page mode, they see the conversation from then on ("alice:
// ...", "Ann: ..."), their lines reach the user ("Sam: ...") and the agent ("#1 Sam: ..."),
// and they leave with /leave or a BYE, or when the agent ends the handoff. The room, its
// guests and what it has yet to deliver survive a restart with the Rooms' Store. An agent
// invited as a colleague is a guest like any other: until it leaves, what it writes goes to
// that room, commands included.
//
// Without HandoffConfig.Store, handoffs live in memory: a restart ends them (users and agents
// then talk to the bot again). With one, every step of a handoff is written to it before the
// two sides hear of it, and Restore, called before the bot serves, resumes what the last
// process left open, even after a crash: agents' lines are relayed again, users' lines go to
// their agents, offers can be accepted, numbering continues after the highest number given,
// and deadlines run for the time they had left (one already past ends its handoff at once:
// the user is told and a ticket is opened). Both sides are told once that their conversation
// continues (HandoffTexts.Resumed and the others). A user's conversation does not survive
// the restart: a verified user gets the relayed messages as page-mode messages; an
// unverified one only once it writes again (the agent is told: HandoffTexts.Held).
type Handoff struct {
	cfg    HandoffConfig
	texts  HandoffTexts
	log    *slog.Logger
	ctx    context.Context // for work outside a handler (timeouts)
	cancel context.CancelFunc

	mu      sync.Mutex
	closed  bool
	nextID  int
	agents  []*agentState
	byUser  map[string]*handoff // by the user's conversation key
	byID    map[int]*handoff
	queue   []*handoff             // waiting for a free agent, in order
	noMatch map[string]int         // unmatched messages in a row, by conversation key
	ended   map[string]HandoffInfo // handoffs an agent ended, until the user's next message (kept in the Store as HandoffEnded)
	last    map[string]HandoffInfo // the last handoff an agent ended, until the conversation ends
	dirty   map[int]bool           // handoffs changed since they were last written to the Store

	pmu sync.Mutex     // held while writing to the Store: writes go in the order of the changes
	wg  sync.WaitGroup // Restore's work after Ready

	afterFunc func(d time.Duration, f func()) stopper // starts the offer timers; tests replace it
}

// stopper is a timer that can be stopped, as a *time.Timer.
type stopper interface{ Stop() bool }

type agentState struct {
	Agent
	addr    sipAddr
	offers  []*handoff
	active  []*handoff
	current *handoff   // where plain text goes
	lost    []*handoff // the latest offers it lost (taken by another, or moved on), newest last
}

// maxLost bounds agentState.lost.
const maxLost = 8

// addLost notes that a lost the offer ho.
func (a *agentState) addLost(ho *handoff) {
	a.lost = append(slices.DeleteFunc(a.lost, func(x *handoff) bool { return x == ho }), ho)
	if len(a.lost) > maxLost {
		a.lost = slices.Delete(a.lost, 0, len(a.lost)-maxLost)
	}
}

func (a *agentState) load() int { return len(a.offers) + len(a.active) }

// handoff is one user's handoff. Its identity fields never change once made.
type handoff struct {
	id                     int
	userKey, userURI, name string
	verified               bool             // the user is Verified
	conv                   bot.Conversation // the user's latest conversation; guarded by Handoff.mu
	reason                 string           // the message that started it
	started                time.Time
	timer                  *time.Timer
	deadline               time.Time   // when timer fires
	agent                  *agentState // accepted by
	accepted               bool
	offered                []*agentState        // holding the offer, until one accepts
	lapsed                 []*agentState        // whose offer moved on unanswered, longest ago first
	offerTimer             stopper              // moves the offer on
	offerDeadline          time.Time            // when offerTimer fires
	offerGen               int                  // counts the offer timers armed and stopped: a stale one does nothing
	tried                  map[*agentState]bool // agents that passed or could not be reached
	pending                []string             // the user's messages before an agent accepted
	queued                 bool
	held                   []heldText // for an unverified user after a restart, until it writes again
	room                   *Room      // the room of an accepted handoff (HandoffConfig.Rooms); guarded by Handoff.mu
}

// HandoffInfo describes one open handoff.
type HandoffInfo struct {
	// ID is the number agents use for it (#n).
	ID int
	// User and UserKey are the user's address and conversation key.
	User, UserKey string
	// Agent is the address of the agent it is offered to (the first one, with Broadcast) or
	// accepted by; "" while the user waits in line.
	Agent string
	// Accepted reports whether the agent accepted it.
	Accepted bool
	// Started is when the user asked.
	Started time.Time
}

// NewHandoff checks cfg and returns a Handoff. Call Close when the bot stops.
func NewHandoff(cfg HandoffConfig) (*Handoff, error) {
	if cfg.Dialer == nil {
		return nil, errors.New("handlers: handoff needs a Dialer (the *bot.Bot)")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("handlers: handoff: %w", err)
	}
	cfg = cfg.withDefaults()
	h := &Handoff{
		cfg: cfg, texts: cfg.Texts, log: cfg.Logger,
		byUser: map[string]*handoff{}, byID: map[int]*handoff{}, noMatch: map[string]int{},
		ended: map[string]HandoffInfo{}, last: map[string]HandoffInfo{}, dirty: map[int]bool{},
		afterFunc: func(d time.Duration, f func()) stopper { return time.AfterFunc(d, f) },
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.texts.fill(DefaultHandoffTexts)
	for _, a := range cfg.Agents {
		addr, _ := parseAddr(a.URI) // Validate read it
		if a.Name == "" {
			a.Name = addr.user
		}
		if a.Max <= 0 {
			a.Max = 1
		}
		h.agents = append(h.agents, &agentState{Agent: a, addr: addr})
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h, nil
}

// Close ends the handoffs' timers. Open handoffs are dropped without notice (a Store keeps
// them for the next Restore).
func (h *Handoff) Close() {
	h.mu.Lock()
	h.closed = true
	h.cancel()
	for _, ho := range h.byID {
		if ho.timer != nil {
			ho.timer.Stop()
		}
		h.stopOffer(ho)
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// List returns the open handoffs, oldest first.
func (h *Handoff) List() []HandoffInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]HandoffInfo, 0, len(h.byID))
	for _, ho := range h.byID {
		i := HandoffInfo{ID: ho.id, User: ho.userURI, UserKey: ho.userKey, Accepted: ho.accepted, Started: ho.started}
		if a := ho.owner(); a != nil {
			i.Agent = a.URI
		}
		out = append(out, i)
	}
	slices.SortFunc(out, func(a, b HandoffInfo) int { return a.ID - b.ID })
	return out
}

// Middleware returns the middleware that starts handoffs, routes agents' messages and keeps
// the bot silent for users in a handoff.
func (h *Handoff) Middleware() bot.Middleware {
	return func(next bot.Handler) bot.Handler {
		return bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
			return h.handle(ctx, w, ev, next)
		})
	}
}

// IsAgent reports whether peer is one of the agents, Verified: a sender whose messages the
// handoff routes as an agent's (for RateLimitConfig.Exempt).
func (h *Handoff) IsAgent(peer bot.Peer) bool {
	return peer.Verified && h.agentFor(peer.URI) != nil
}

// Relaying reports whether the conversation with this key is handed off: its messages go to
// an agent or wait for one (for RateLimitConfig.Relayed).
func (h *Handoff) Relaying(key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.byUser[key] != nil
}

// Handler returns a handler that starts a handoff for the event's conversation, for rules
// that hand an event to Go ("handler: handoff"). The Middleware must be in the chain too.
func (h *Handoff) Handler() bot.Handler {
	return bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		c, ok := convOf(ev)
		if !ok {
			return errors.New("handlers: handoff: the event has no conversation")
		}
		if h.agentFor(c.Peer.URI) != nil {
			return nil
		}
		bot.SetAnswerer(w, "handoff")
		return h.start(ctx, w, ev, c)
	})
}

type endedKey struct{}

type lastKey struct{}

// RuleFuncs are the rule functions of the handlers, for rules.Options.Funcs:
//
//   - handoff.ended() is true for the user's first message after an agent ended a handoff
//     (EndedHandoff): a helpdesk takes a score given then as the answer to the survey
//     question the handoff's closing text asked (HandoffTexts.Ended), and lets anything
//     else through to its other rules.
func RuleFuncs() rules.Funcs {
	return rules.Funcs{
		"handoff.ended": {
			Call: func(ctx context.Context, _ ...any) (any, error) {
				_, ok := EndedHandoff(ctx)
				return ok, nil
			},
			Signature: new(func() bool),
		},
	}
}

// LastHandoff returns the handoff an agent last ended in the conversation of the event
// handled with ctx, until that conversation ends: a rating given after it, right away or
// after the user said thanks, records its agent and number.
func LastHandoff(ctx context.Context) (HandoffInfo, bool) {
	i, ok := ctx.Value(lastKey{}).(HandoffInfo)
	return i, ok
}

// EndedHandoff returns the handoff an agent ended (DoneCommand) just before the message
// handled with ctx: the handlers after the Handoff middleware see it with the user's first
// message after the agent left, and only then (Rating records its agent and number).
func EndedHandoff(ctx context.Context) (HandoffInfo, bool) {
	i, ok := ctx.Value(endedKey{}).(HandoffInfo)
	return i, ok
}

// sink is the conversation whose handler runs now, a user's or an agent's: messages to it go
// through its Responder. The zero sink is no conversation (work outside a handler).
type sink struct {
	w       bot.Responder
	userKey string      // the user's conversation key, for a user's conversation
	agent   *agentState // the agent, for an agent's conversation
}

// userSink is the conversation with key, of a user, whose handler runs now with w.
func userSink(key string, w bot.Responder) sink { return sink{w: w, userKey: key} }

// agentSink is a conversation of agent a, whose handler runs now with w.
func agentSink(a *agentState, w bot.Responder) sink { return sink{w: w, agent: a} }

// isUser reports whether s is the conversation of the user with this key.
func (s sink) isUser(key string) bool { return s.w != nil && s.agent == nil && s.userKey == key }

// isAgent reports whether s is a conversation of agent a.
func (s sink) isAgent(a *agentState) bool { return s.w != nil && s.agent == a }

// action is work decided under the lock and done after it.
type action func(ctx context.Context, s sink)

func (h *Handoff) run(ctx context.Context, s sink, acts []action) {
	h.flush(ctx)
	for _, a := range acts {
		a(ctx, s)
	}
}

func (h *Handoff) observe(outcome string) {
	if h.cfg.Observer != nil {
		h.cfg.Observer.ObserveHandoff(outcome)
	}
}

func (h *Handoff) agentFor(uri string) *agentState {
	u, err := parseAddr(uri)
	if err != nil {
		return nil
	}
	for _, a := range h.agents {
		if sameAddr(a.addr, u) {
			return a
		}
	}
	return nil
}

func (h *Handoff) handle(ctx context.Context, w bot.Responder, ev *bot.Event, next bot.Handler) error {
	c, ok := convOf(ev)
	if !ok {
		return next.Handle(ctx, w, ev)
	}
	w = recording(w)
	if a := h.agentFor(c.Peer.URI); a != nil {
		if !c.Peer.Verified {
			return h.unverifiedAgent(ctx, w, ev, c, a)
		}
		if h.fromAgent(ctx, w, ev, c, a) {
			return nil
		}
		return next.Handle(ctx, w, ev)
	}
	h.mu.Lock()
	ho := h.byUser[c.Key]
	ended, wasEnded := h.ended[c.Key]
	consumed := wasEnded && (ev.Kind == bot.EventMessage || ev.Kind == bot.EventSessionEnd)
	if consumed {
		delete(h.ended, c.Key) // only the next message can answer for it
		if h.cfg.Store != nil {
			h.dirty[ended.ID] = true // deleted from the Store at the next flush
		}
	}
	last, hadOne := h.last[c.Key]
	if ev.Kind == bot.EventSessionEnd {
		delete(h.last, c.Key)
	}
	h.mu.Unlock()
	if consumed {
		h.flush(ctx)
	}
	if hadOne {
		ctx = context.WithValue(ctx, lastKey{}, last)
	}
	if ho != nil {
		return h.fromUser(ctx, w, ev, c, ho, next)
	}
	if wasEnded && ev.Kind == bot.EventMessage {
		ctx = context.WithValue(ctx, endedKey{}, ended)
	}
	switch ev.Kind {
	case bot.EventMessage:
		if h.triggered(ev.Text) {
			bot.SetAnswerer(w, "handoff")
			h.resetNoMatch(c.Key)
			return h.start(ctx, w, ev, c)
		}
	case bot.EventSessionEnd:
		h.resetNoMatch(c.Key)
		return next.Handle(ctx, w, ev)
	default:
		return next.Handle(ctx, w, ev)
	}
	err := next.Handle(ctx, w, ev)
	if err != nil || h.cfg.NoMatchLimit <= 0 {
		return err
	}
	if !Unanswered(w) {
		h.resetNoMatch(c.Key)
		return nil
	}
	h.mu.Lock()
	h.noMatch[c.Key]++
	n := h.noMatch[c.Key]
	h.mu.Unlock()
	if n < h.cfg.NoMatchLimit {
		return nil
	}
	h.resetNoMatch(c.Key)
	return h.start(ctx, w, ev, c)
}

func (h *Handoff) resetNoMatch(key string) {
	h.mu.Lock()
	delete(h.noMatch, key)
	h.mu.Unlock()
}

// triggered reports whether text contains a trigger phrase as whole words.
func (h *Handoff) triggered(text string) bool {
	ws := words(text)
	for _, t := range h.cfg.Triggers {
		tw := words(t)
		if len(tw) == 0 {
			continue
		}
		for i := 0; i+len(tw) <= len(ws); i++ {
			if slices.Equal(ws[i:i+len(tw)], tw) {
				return true
			}
		}
	}
	return false
}

func words(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// start opens a handoff for the user of conversation c, whose handler runs now.
func (h *Handoff) start(ctx context.Context, w bot.Responder, ev *bot.Event, c conv) error {
	if h.cfg.Delegate != nil {
		if done, err := h.cfg.Delegate(ctx, ev, intentHandoff); done {
			return err
		}
	}
	h.mu.Lock()
	if ho := h.byUser[c.Key]; ho != nil || h.closed {
		h.mu.Unlock()
		if ho == nil {
			return nil
		}
		return w.Reply(ctx, h.texts.StillWaiting)
	}
	h.nextID++
	ho := &handoff{
		id: h.nextID, userKey: c.Key, userURI: c.Peer.URI, name: Visible(c.Peer.Name()), reason: Visible(ev.Text),
		verified: c.Peer.Verified, conv: ev.Session, started: time.Now(), tried: map[*agentState]bool{},
	}
	if ho.name == "" {
		ho.name = c.Peer.URI
	}
	h.byUser[ho.userKey] = ho
	h.byID[ho.id] = ho
	ho.deadline = ho.started.Add(h.cfg.AnswerTimeout)
	ho.timer = time.AfterFunc(h.cfg.AnswerTimeout, func() { h.timeout(ho) })
	h.mark(ho)
	h.mu.Unlock()
	h.flush(ctx)

	h.observe("requested")
	h.log.Info("handoff requested", "handoff", ho.id, "user", ho.userURI)
	if err := w.Reply(ctx, h.texts.Searching); err != nil {
		h.log.Warn("handoff: user not told to wait", "handoff", ho.id, "err", err)
	}
	h.mu.Lock()
	acts := h.place(ho)
	h.mu.Unlock()
	h.run(ctx, userSink(c.Key, w), acts)
	return nil
}

// owner is the agent that accepted ho, else the first one holding its offer; nil while it
// waits in line.
func (ho *handoff) owner() *agentState {
	if ho.accepted {
		return ho.agent
	}
	if len(ho.offered) > 0 {
		return ho.offered[0]
	}
	return nil
}
