package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/rules"
	"github.com/imbot-dev/imbot/store"
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

// Agent is a person who can take conversations over from the bot.
type Agent struct {
	// URI is the agent's SIP address, such as "sip:bob@example.com" (required). The bot
	// sends to it, and recognises the agent's messages by it.
	URI string
	// Name is shown to users; default: the user part of URI.
	Name string
	// Max is how many conversations the agent holds at once; default 1.
	Max int
}

// HandoffConfig configures human handoff. Agents and Dialer are required; every other field
// has a useful zero value.
type HandoffConfig struct {
	// Agents are the people conversations are handed to, asked in this order.
	Agents []Agent
	// Dialer sends the messages the bot relays; pass the *bot.Bot.
	Dialer Dialer
	// AnswerTimeout is how long a user waits for an agent to accept; then the user is told
	// and a ticket is created. Default: 2 minutes.
	AnswerTimeout time.Duration
	// OfferTimeout is how long an agent has to accept an offer before it moves on to another
	// free agent that has not passed: first to those who have not had it yet, in the order of
	// Agents, then back round to the one it left longest ago. The agent it leaves is told
	// (HandoffTexts.Reoffered). When no other agent is free, the offer stays where it is and
	// moves on once one is. AnswerTimeout still ends the whole handoff. Default (0): 30
	// seconds; negative: an offer stays with its agent until AnswerTimeout. Not used with
	// Broadcast, where every free agent has the offer already.
	OfferTimeout time.Duration
	// Broadcast offers each handoff to every free agent at once (and to agents that become
	// free while it waits) instead of to one at a time: the first to accept takes it, and the
	// others are told who did (HandoffTexts.Taken), also when they try to accept it later.
	Broadcast bool
	// Triggers are phrases that start a handoff when a user's message contains them as whole
	// words, in any case. nil means "agent" and "human"; an empty, non-nil slice means none
	// (handoffs then start from a rule, through Handler, or after repeated no-match).
	Triggers []string
	// NoMatchLimit starts a handoff after this many messages in a row that nothing matched
	// (see NoMatch; with the rules engine, messages only a fallback answered outside a
	// flow). 0 turns it off.
	NoMatchLimit int
	// DoneCommand is what an agent writes to end a conversation; default "/done". Agents
	// also have /accept, /pass and /list (see Handoff).
	DoneCommand string
	// Transcript, when set, shows the agent the last TranscriptLines messages of the user's
	// conversation, and records the agent's relayed messages in it.
	Transcript TranscriptStore
	// TranscriptLines bounds the transcript shown to the agent; default 20.
	TranscriptLines int
	// Tickets, when set, receives a ticket for every user no agent answered.
	Tickets TicketStore
	// Observer, when set, counts handoffs (pass the *Metrics).
	Observer HandoffObserver
	// Texts are what the bot says; empty fields keep the defaults (DefaultHandoffTexts).
	Texts HandoffTexts
	// UnverifiedAgent is the answer to an unverified sender claiming an agent's address
	// (see Handoff), with the placeholder {agent}; default DefaultUnverifiedAgentText.
	UnverifiedAgent string
	// Logger receives a line per handoff step; default slog.Default().
	Logger *slog.Logger
	// Store, when set, keeps every handoff in progress, written on each step (requested,
	// offered, accepted, passed, ended), so that a restarted bot resumes them: call Restore
	// before the bot serves. nil keeps handoffs in memory only: a restart ends them.
	Store store.HandoffStore
	// Ready, when set, holds back what Restore and the restored deadlines send until it is
	// closed: pass the bot's Ready() when Restore runs before the bot's Run.
	Ready <-chan struct{}
}

// HandoffTexts are the messages of a handoff. They may use the placeholders {user} (the
// user's name), {uri} (the user's address, followed by ", not verified" when the user is not
// Verified), {agent} (the agent's name), {id} (the conversation's number for the agent),
// {text} (a relayed message), {ticket} (a ticket number), {transcript} (the conversation so
// far) and {done} (the DoneCommand).
type HandoffTexts struct {
	// To the user.
	Searching    string // the handoff starts
	StillWaiting string // the user asks again while waiting
	Connected    string // an agent accepted
	FromAgent    string // a message of the agent, relayed
	Ended        string // the agent ended the conversation
	NoAgent      string // nobody answered; a ticket was created
	NoAgentLater string // nobody answered; no ticket store
	// To the agent.
	Offer          string // a user is waiting
	AgentConnected string // the agent accepted
	FromUser       string // a message of the user, relayed
	AgentEnded     string // the conversation ended
	Withdrawn      string // the offer is no longer open (timeout)
	Reoffered      string // the agent did not accept in time: the offer went to another agent
	Taken          string // another agent, {agent}, accepted the offer first
	UserLeft       string // the user ended the session
	AgentHelp      string // an unknown command
	// After a restart (HandoffConfig.Store), once per restored handoff.
	Resumed      string // to the user: the conversation with the agent continues
	WaitResumed  string // to the user: still looking for an agent
	AgentResumed string // to the agent: the conversation continues
	OfferResumed string // to the agent: the offer is still open
	// To the agent: a restored handoff's user is not verified, and the bot can write to it
	// only once it writes again; the agent's message {text} is held until then.
	Held string
}

// DefaultHandoffTexts are the English texts used for empty HandoffTexts fields.
var DefaultHandoffTexts = HandoffTexts{
	Searching:    "Let me find a person to help you. Please wait a moment.",
	StillWaiting: "I am still looking for someone to help you. Please wait.",
	Connected:    "{agent} is now with you.",
	FromAgent:    "{agent}: {text}",
	Ended:        "{agent} has left the conversation. You are talking with the bot again.",
	NoAgent:      "Sorry, nobody is available right now. I opened ticket #{ticket} for you; the helpdesk will get back to you.",
	NoAgentLater: "Sorry, nobody is available right now. Please try again later.",

	Offer: "#{id} {user} ({uri}) is waiting for help. Reply to take the conversation " +
		"(/accept {id}), or /pass {id} to leave it to someone else.{transcript}",
	AgentConnected: "You are now talking with {user} (#{id}). What you write goes to them; {done} ends the conversation.",
	FromUser:       "#{id} {user}: {text}",
	AgentEnded:     "Conversation #{id} with {user} ended.",
	Withdrawn:      "#{id} {user} is no longer waiting.",
	Reoffered:      "#{id} {user} waited too long for an answer and was offered to someone else.",
	Taken:          "#{id} {user} was taken by {agent}.",
	UserLeft:       "#{id} {user} left the conversation.",
	AgentHelp: "Commands: /accept [n], /pass [n], {done} [n], /list. " +
		"Plain text goes to your current conversation; '#n text' goes to conversation n.",

	Resumed:      "(The helpdesk restarted; your conversation #{id} with {agent} continues.)",
	WaitResumed:  "(The helpdesk restarted; I am still looking for someone to help you.)",
	AgentResumed: "(The helpdesk restarted; your conversation #{id} with {user} continues.)",
	OfferResumed: "(The helpdesk restarted; #{id} {user} ({uri}) is still waiting: /accept {id} or /pass {id}.)",
	Held: "(#{id} {user} is not verified: the bot can write to them only once they write again. " +
		"Your message waits until then.)",
}

// DefaultUnverifiedAgentText is the default HandoffConfig.UnverifiedAgent.
const DefaultUnverifiedAgentText = "I cannot verify that you are {agent}: agents must write through the trusted proxy or sign in."

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
	ended   map[string]HandoffInfo // handoffs an agent ended, until the user's next message
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
}

// heldText is a message for a user that cannot be sent yet.
type heldText struct{ text, answerer string }

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

// DefaultOfferTimeout is the default HandoffConfig.OfferTimeout.
const DefaultOfferTimeout = 30 * time.Second

// NewHandoff checks cfg and returns a Handoff. Call Close when the bot stops.
func NewHandoff(cfg HandoffConfig) (*Handoff, error) {
	if cfg.Dialer == nil {
		return nil, errors.New("handlers: handoff needs a Dialer (the *bot.Bot)")
	}
	if len(cfg.Agents) == 0 {
		return nil, errors.New("handlers: handoff needs at least one agent")
	}
	if cfg.AnswerTimeout <= 0 {
		cfg.AnswerTimeout = 2 * time.Minute
	}
	if cfg.OfferTimeout == 0 {
		cfg.OfferTimeout = DefaultOfferTimeout
	}
	if cfg.Triggers == nil {
		cfg.Triggers = []string{"agent", "human"}
	}
	if cfg.DoneCommand == "" {
		cfg.DoneCommand = "/done"
	}
	if cfg.TranscriptLines <= 0 {
		cfg.TranscriptLines = 20
	}
	if cfg.UnverifiedAgent == "" {
		cfg.UnverifiedAgent = DefaultUnverifiedAgentText
	}
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
	seen := map[sipAddr]bool{}
	for _, a := range cfg.Agents {
		addr, err := parseAddr(a.URI)
		if err != nil || addr.user == "" {
			return nil, fmt.Errorf("handlers: handoff agent %q: want a SIP address such as sip:bob@example.com", a.URI)
		}
		if seen[addr] {
			return nil, fmt.Errorf("handlers: handoff agent %q is listed twice", a.URI)
		}
		seen[addr] = true
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

func (t *HandoffTexts) fill(d HandoffTexts) {
	for _, f := range []struct {
		dst *string
		def string
	}{
		{&t.Searching, d.Searching}, {&t.StillWaiting, d.StillWaiting}, {&t.Connected, d.Connected},
		{&t.FromAgent, d.FromAgent}, {&t.Ended, d.Ended}, {&t.NoAgent, d.NoAgent}, {&t.NoAgentLater, d.NoAgentLater},
		{&t.Offer, d.Offer}, {&t.AgentConnected, d.AgentConnected}, {&t.FromUser, d.FromUser},
		{&t.AgentEnded, d.AgentEnded}, {&t.Withdrawn, d.Withdrawn}, {&t.Reoffered, d.Reoffered}, {&t.Taken, d.Taken},
		{&t.UserLeft, d.UserLeft}, {&t.AgentHelp, d.AgentHelp},
		{&t.Resumed, d.Resumed}, {&t.WaitResumed, d.WaitResumed}, {&t.AgentResumed, d.AgentResumed},
		{&t.OfferResumed, d.OfferResumed}, {&t.Held, d.Held},
	} {
		if *f.dst == "" {
			*f.dst = f.def
		}
	}
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
		Answered(ctx, "handoff")
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

// sink is the conversation whose handler runs now: messages to it go through its Responder.
type sink struct {
	key string
	w   bot.Responder
}

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
	ctx, _ = track(ctx)
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
	if ev.Kind == bot.EventMessage || ev.Kind == bot.EventSessionEnd {
		delete(h.ended, c.Key) // only the next message can answer for it
	}
	last, hadOne := h.last[c.Key]
	if ev.Kind == bot.EventSessionEnd {
		delete(h.last, c.Key)
	}
	h.mu.Unlock()
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
			Answered(ctx, "handoff")
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
	if !Unanswered(ctx, w) {
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

// unverifiedAgent answers an event of a sender that claims agent a's address without being
// Verified: a message gets the one answer UnverifiedAgent, and nothing goes further.
func (h *Handoff) unverifiedAgent(ctx context.Context, w bot.Responder, ev *bot.Event, c conv, a *agentState) error {
	if ev.Kind != bot.EventMessage {
		return nil
	}
	Answered(ctx, "handoff")
	source := ""
	if req := ev.SIPRequest(); req != nil {
		source = req.Source()
	}
	h.log.Warn("handoff: an unverified sender claims an agent's address; refused",
		"agent", a.URI, "session", c.ID, "source", source)
	return w.Reply(ctx, strings.ReplaceAll(h.cfg.UnverifiedAgent, "{agent}", a.Name))
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
	h.run(ctx, sink{key: c.Key, w: w}, acts)
	return nil
}

// place offers ho to the first free agent that has not refused it (with Broadcast: to every
// such agent not holding it yet), queues it when every such agent is busy, or gives up when
// every agent refused. The caller holds h.mu.
func (h *Handoff) place(ho *handoff) []action {
	if h.byID[ho.id] != ho || ho.accepted || (!h.cfg.Broadcast && len(ho.offered) > 0) {
		return nil
	}
	h.mark(ho)
	var acts []action
	if h.cfg.Broadcast {
		for _, a := range h.agents {
			if !ho.tried[a] && a.load() < a.Max && !slices.Contains(ho.offered, a) {
				acts = append(acts, h.offerTo(ho, a))
			}
		}
	} else if a := h.nextAgent(ho, nil); a != nil {
		acts = append(acts, h.offerTo(ho, a))
	}
	if len(ho.offered) > 0 {
		return acts
	}
	if slices.ContainsFunc(h.agents, func(a *agentState) bool { return !ho.tried[a] }) {
		if !ho.queued {
			ho.queued = true
			h.queue = append(h.queue, ho)
		}
		return nil
	}
	h.remove(ho)
	return []action{h.failAction(ho, "unavailable")}
}

// nextAgent returns the free agent ho goes to next, other than except, or nil when there is
// none: of the agents that neither refused it nor hold it, one that never had it (the first
// in configuration order), else the one whose offer lapsed longest ago. The caller holds h.mu.
func (h *Handoff) nextAgent(ho *handoff, except *agentState) *agentState {
	var best *agentState
	bestRank := 0
	for _, a := range h.agents {
		if a == except || ho.tried[a] || a.load() >= a.Max || slices.Contains(ho.offered, a) {
			continue
		}
		if rank := slices.Index(ho.lapsed, a); best == nil || rank < bestRank {
			best, bestRank = a, rank
		}
	}
	return best
}

// offerTo offers ho to agent a, which is free. The caller holds h.mu.
func (h *Handoff) offerTo(ho *handoff, a *agentState) action {
	h.unqueue(ho)
	h.mark(ho)
	ho.offered = append(ho.offered, a)
	a.offers = append(a.offers, ho)
	if !h.cfg.Broadcast {
		h.armOffer(ho, h.cfg.OfferTimeout)
	}
	h.log.Info("handoff offered", "handoff", ho.id, "user", ho.userURI, "agent", a.URI)
	return h.offerAction(ho, a)
}

// withdraw takes the offer ho back from agent a. The caller holds h.mu.
func (h *Handoff) withdraw(ho *handoff, a *agentState) {
	h.mark(ho)
	a.offers = slices.DeleteFunc(a.offers, func(x *handoff) bool { return x == ho })
	ho.offered = slices.DeleteFunc(ho.offered, func(x *agentState) bool { return x == a })
	if len(ho.offered) == 0 {
		h.stopOffer(ho)
	}
}

// armOffer starts ho's offer timer to fire after d, unless offers do not move on. The caller
// holds h.mu.
func (h *Handoff) armOffer(ho *handoff, d time.Duration) {
	h.stopOffer(ho)
	if h.cfg.OfferTimeout < 0 || h.cfg.Broadcast {
		return
	}
	gen := ho.offerGen
	ho.offerDeadline = time.Now().Add(d)
	ho.offerTimer = h.afterFunc(d, func() { h.escalate(ho, gen) })
}

// stopOffer stops ho's offer timer; one that fired already finds it stale. The caller holds
// h.mu.
func (h *Handoff) stopOffer(ho *handoff) {
	if ho.offerTimer != nil {
		ho.offerTimer.Stop()
		ho.offerTimer = nil
	}
	ho.offerDeadline = time.Time{}
	ho.offerGen++
}

// escalate runs when the agent holding the offer ho did not accept it within OfferTimeout
// (gen is the timer's generation): the offer moves on to the next free agent, or stays
// where it is, to be looked at again after OfferTimeout, when no other agent is free.
func (h *Handoff) escalate(ho *handoff, gen int) {
	h.mu.Lock()
	if h.closed || h.byID[ho.id] != ho || ho.accepted || ho.offerGen != gen || len(ho.offered) != 1 {
		h.mu.Unlock()
		return
	}
	from := ho.offered[0]
	to := h.nextAgent(ho, from)
	if to == nil {
		h.armOffer(ho, h.cfg.OfferTimeout)
		h.mark(ho)
		h.mu.Unlock()
		h.background(nil)
		return
	}
	h.withdraw(ho, from)
	ho.lapsed = append(slices.DeleteFunc(ho.lapsed, func(x *agentState) bool { return x == from }), from)
	from.addLost(ho)
	text := h.fill(h.texts.Reoffered, ho, from.Name)
	acts := []action{func(ctx context.Context, s sink) { h.toAgent(ctx, s, from, text) }, h.offerTo(ho, to)}
	acts = append(acts, h.drain()...)
	h.mu.Unlock()
	h.observe("escalated")
	h.log.Info("handoff offer moved on: not accepted in time", "handoff", ho.id, "from", from.URI, "to", to.URI)
	h.background(acts)
}

// background does acts outside any handler (after HandoffConfig.Ready), once the Store has
// the changes.
func (h *Handoff) background(acts []action) {
	if h.cfg.Ready != nil {
		select {
		case <-h.cfg.Ready:
		case <-h.ctx.Done():
		}
	}
	ctx, cancel := context.WithTimeout(h.ctx, time.Minute)
	defer cancel()
	h.run(ctx, sink{}, acts)
}

// drain offers waiting users to agents that became free (with Broadcast, the open offers
// too). The caller holds h.mu.
func (h *Handoff) drain() []action {
	waiting := slices.Clone(h.queue)
	if h.cfg.Broadcast {
		waiting = waiting[:0]
		for _, ho := range h.byID {
			if !ho.accepted {
				waiting = append(waiting, ho)
			}
		}
		slices.SortFunc(waiting, func(a, b *handoff) int { return a.id - b.id })
	}
	var acts []action
	for _, ho := range waiting {
		acts = append(acts, h.place(ho)...)
	}
	return acts
}

func (h *Handoff) unqueue(ho *handoff) {
	if ho.queued {
		ho.queued = false
		h.queue = slices.DeleteFunc(h.queue, func(x *handoff) bool { return x == ho })
	}
}

// remove forgets ho everywhere. The caller holds h.mu.
func (h *Handoff) remove(ho *handoff) {
	if h.byID[ho.id] != ho {
		return
	}
	h.mark(ho)
	delete(h.byID, ho.id)
	if h.byUser[ho.userKey] == ho {
		delete(h.byUser, ho.userKey)
	}
	if ho.timer != nil {
		ho.timer.Stop()
	}
	h.stopOffer(ho)
	h.unqueue(ho)
	for _, a := range ho.offered {
		a.offers = slices.DeleteFunc(a.offers, func(x *handoff) bool { return x == ho })
	}
	ho.offered = nil
	if a := ho.agent; a != nil {
		a.active = slices.DeleteFunc(a.active, func(x *handoff) bool { return x == ho })
		if a.current == ho {
			a.current = nil
			if n := len(a.active); n > 0 {
				a.current = a.active[n-1]
			}
		}
	}
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

// toAgents is an action telling each of the agents as its text: texts[i] goes to as[i].
func (h *Handoff) toAgents(as []*agentState, texts []string) action {
	return func(ctx context.Context, s sink) {
		for i, a := range as {
			h.toAgent(ctx, s, a, texts[i])
		}
	}
}

// told returns ho's offer holders, or its agent once accepted, each with text filled in for
// it. The caller holds h.mu.
func (h *Handoff) told(ho *handoff, text string) ([]*agentState, []string) {
	as := slices.Clone(ho.offered)
	if ho.accepted {
		as = []*agentState{ho.agent}
	}
	texts := make([]string, len(as))
	for i, a := range as {
		texts[i] = h.fill(text, ho, a.Name)
	}
	return as, texts
}

func (h *Handoff) fill(text string, ho *handoff, agent string, extra ...string) string {
	uri := ho.userURI
	if !ho.verified && uri != "" {
		uri += ", not verified"
	}
	r := []string{"{user}", ho.name, "{uri}", uri, "{agent}", agent, "{id}", strconv.Itoa(ho.id), "{done}", h.cfg.DoneCommand}
	return strings.NewReplacer(append(r, extra...)...).Replace(text)
}

// offerAction sends the offer to the agent; an agent that cannot be reached counts as one
// that passed.
func (h *Handoff) offerAction(ho *handoff, a *agentState) action {
	return func(ctx context.Context, s sink) {
		text := h.fill(h.texts.Offer, ho, a.Name, "{transcript}", h.transcriptText(ctx, ho))
		if _, err := h.cfg.Dialer.Send(ctx, a.URI, text); err != nil {
			h.log.Warn("handoff: agent unreachable", "handoff", ho.id, "agent", a.URI, "err", err)
			h.mu.Lock()
			var acts []action
			if h.byID[ho.id] == ho && slices.Contains(ho.offered, a) && !ho.accepted {
				h.withdraw(ho, a)
				ho.tried[a] = true
				acts = append(h.place(ho), h.drain()...)
			}
			h.mu.Unlock()
			h.run(ctx, s, acts)
		}
	}
}

// transcriptText is the conversation so far, for the agent: one line per message.
func (h *Handoff) transcriptText(ctx context.Context, ho *handoff) string {
	var entries []store.TranscriptEntry
	if h.cfg.Transcript != nil {
		var err error
		if entries, err = h.cfg.Transcript.Transcript(ctx, ho.userKey, h.cfg.TranscriptLines); err != nil {
			h.log.Warn("handoff: transcript not read", "handoff", ho.id, "err", err)
		}
	}
	if len(entries) == 0 {
		if ho.reason == "" {
			return ""
		}
		return "\n" + ho.name + ": " + ho.reason
	}
	var b strings.Builder
	for _, e := range entries {
		who := "bot"
		switch {
		case e.Direction == store.In:
			who = ho.name
		case strings.HasPrefix(e.Answerer, "agent:"):
			who = strings.TrimPrefix(e.Answerer, "agent:")
			if strings.HasPrefix(e.Text, who+": ") {
				// Recorded as the user read it (FromAgent): it names the agent already.
				fmt.Fprintf(&b, "\n%s", e.Text)
				continue
			}
		}
		fmt.Fprintf(&b, "\n%s: %s", who, e.Text)
	}
	return b.String()
}

// failAction tells the user nobody is available, with a ticket when there is a store.
func (h *Handoff) failAction(ho *handoff, outcome string) action {
	return func(ctx context.Context, s sink) {
		h.observe(outcome)
		text := h.fill(h.texts.NoAgentLater, ho, "")
		if h.cfg.Tickets != nil {
			summary := ho.reason
			if len(summary) > 200 {
				summary = summary[:200]
			}
			tk := store.Ticket{
				Key: ho.userKey, Peer: ho.userURI, Summary: "Asked for a person: " + summary, Urgency: "normal",
				Notes: "Opened by the bot: no agent answered (" + outcome + ")." + h.transcriptText(ctx, ho),
			}
			if !ho.verified {
				// The ticket belongs to nobody the bot knows: whoever later proves to be
				// this address must not find it among their tickets.
				tk.Peer = ""
				tk.Notes = "The user was not verified; it claimed to be " + ho.userURI + ".\n" + tk.Notes
			}
			n, err := h.cfg.Tickets.CreateTicket(ctx, tk)
			if err != nil {
				h.log.Error("handoff: ticket not created", "handoff", ho.id, "user", ho.userURI, "err", err)
			} else {
				text = h.fill(h.texts.NoAgent, ho, "", "{ticket}", strconv.FormatInt(n, 10))
			}
		}
		h.log.Info("handoff failed", "handoff", ho.id, "user", ho.userURI, "outcome", outcome)
		h.toUser(ctx, s, ho, text, "handoff")
	}
}

// toUser sends text to ho's user: through the user's Responder when the user's handler runs
// now, else recorded in the transcript and sent as a page-mode message to a verified user's
// address, or through an unverified user's conversation (never to the address it claims: a
// forged From must not make the bot write to someone else).
//
// After a restart an unverified user has no conversation yet: text is held until the user
// writes again, and toUser reports true.
func (h *Handoff) toUser(ctx context.Context, s sink, ho *handoff, text, answerer string) (held bool) {
	if s.w != nil && s.key == ho.userKey {
		if err := s.w.Reply(ctx, text); err != nil {
			h.log.Warn("handoff: message to user failed", "handoff", ho.id, "err", err)
		}
		return false
	}
	sent := time.Now() // the user may answer before the 200 comes back: time it at the start
	// Into the user's own conversation (an IM session stays one: the relay goes inside it,
	// not as a page-mode message beside it); a verified user whose conversation has ended
	// gets a new page-mode one.
	h.mu.Lock()
	c := ho.conv
	if c == nil && !ho.verified {
		ho.held = append(ho.held, heldText{text, answerer})
		h.mu.Unlock()
		h.log.Info("handoff: message to an unverified user held until the user writes again", "handoff", ho.id, "user", ho.userURI)
		return true
	}
	h.mu.Unlock()
	err := bot.ErrSessionEnded
	if c != nil {
		err = c.Send(ctx, text)
	}
	switch {
	case err == nil:
	case errors.Is(err, bot.ErrSessionEnded) && ho.verified:
		if _, err := h.cfg.Dialer.Send(ctx, ho.userURI, text); err != nil {
			h.log.Warn("handoff: message to user failed", "handoff", ho.id, "user", ho.userURI, "err", err)
			return false
		}
	case errors.Is(err, bot.ErrSessionEnded):
		h.log.Warn("handoff: message to an unverified user not sent: the conversation has ended", "handoff", ho.id, "user", ho.userURI)
		return false
	default:
		h.log.Warn("handoff: message to user failed", "handoff", ho.id, "user", ho.userURI, "err", err)
		return false
	}
	if h.cfg.Transcript != nil {
		appendEntry(ctx, h.cfg.Transcript, store.TranscriptEntry{
			SessionID: ho.userKey, Key: ho.userKey, Direction: store.Out, Peer: ho.userURI, Text: text,
			Time: sent, Answerer: answerer,
		})
	}
	return false
}

// toAgent sends text to agent a: through the agent's Responder when the agent's handler runs
// now, else as a page-mode message.
func (h *Handoff) toAgent(ctx context.Context, s sink, a *agentState, text string) {
	if s.w != nil && s.key == "agent "+a.URI {
		if err := s.w.Reply(ctx, text); err != nil {
			h.log.Warn("handoff: message to agent failed", "agent", a.URI, "err", err)
		}
		return
	}
	if _, err := h.cfg.Dialer.Send(ctx, a.URI, text); err != nil {
		h.log.Warn("handoff: message to agent failed", "agent", a.URI, "err", err)
	}
}

// timeout runs when no agent accepted ho in time.
func (h *Handoff) timeout(ho *handoff) {
	h.mu.Lock()
	if h.closed || h.byID[ho.id] != ho || ho.accepted {
		h.mu.Unlock()
		return
	}
	acts := []action{h.toAgents(h.told(ho, h.texts.Withdrawn))}
	h.remove(ho)
	acts = append(acts, h.failAction(ho, "timeout"))
	acts = append(acts, h.drain()...)
	h.mu.Unlock()
	h.background(acts)
}

// fromUser handles an event of a user whose conversation is handed off: the bot stays
// silent.
func (h *Handoff) fromUser(ctx context.Context, w bot.Responder, ev *bot.Event, c conv, ho *handoff, next bot.Handler) error {
	s := sink{key: c.Key, w: w}
	if ev.Session != nil && ev.Kind != bot.EventSessionEnd {
		h.mu.Lock()
		ho.conv = ev.Session // the latest: a page-mode conversation starts again after an idle timeout
		held := ho.held
		ho.held = nil
		h.mu.Unlock()
		for _, m := range held {
			h.toUser(ctx, s, ho, m.text, m.answerer)
		}
	}
	switch ev.Kind {
	case bot.EventMessage:
		Answered(ctx, "handoff")
		h.mu.Lock()
		if h.byID[ho.id] != ho {
			h.mu.Unlock()
			return next.Handle(ctx, w, ev) // it just ended
		}
		if !ho.accepted {
			ho.pending = append(ho.pending, Visible(ev.Text))
			h.mark(ho)
			h.mu.Unlock()
			h.flush(ctx)
			if h.triggered(ev.Text) {
				return w.Reply(ctx, h.texts.StillWaiting)
			}
			return nil
		}
		a := ho.agent
		h.mu.Unlock()
		h.toAgent(ctx, s, a, h.fill(h.texts.FromUser, ho, a.Name, "{text}", Visible(ev.Text)))
		return nil
	case bot.EventSessionEnd:
		if ev.Reason == bot.EndByPeer {
			h.mu.Lock()
			var acts []action
			if h.byID[ho.id] == ho {
				acts = append(acts, h.toAgents(h.told(ho, h.texts.UserLeft)))
				h.remove(ho)
				acts = append(acts, h.drain()...)
			}
			h.mu.Unlock()
			if len(acts) > 0 {
				h.observe("user_left")
				h.log.Info("handoff ended: the user left", "handoff", ho.id, "user", ho.userURI)
			}
			h.run(ctx, s, acts)
		}
		return next.Handle(ctx, w, ev)
	}
	return nil // typing, session start, idle: the bot says nothing
}

var addressed = regexp.MustCompile(`(?s)^#([0-9]+)\s+(.*)$`)

// fromAgent handles an event of agent a; it reports false when the event is not about a
// handoff, so the bot handles it as any other.
func (h *Handoff) fromAgent(ctx context.Context, w bot.Responder, ev *bot.Event, c conv, a *agentState) bool {
	s := sink{key: "agent " + a.URI, w: w}
	h.mu.Lock()
	busy := a.load() > 0
	h.mu.Unlock()
	if ev.Kind != bot.EventMessage {
		return busy // the agent's typing and session events are not the bot's business
	}
	text := strings.TrimSpace(ev.Text)
	if strings.HasPrefix(text, "/") {
		fields := strings.Fields(text)
		cmd, arg := strings.ToLower(fields[0]), 0
		if len(fields) > 1 {
			arg, _ = strconv.Atoi(strings.TrimPrefix(fields[1], "#"))
		}
		switch cmd {
		case "/accept":
			h.accept(ctx, s, a, arg, "")
		case "/pass":
			h.pass(ctx, s, a, arg)
		case strings.ToLower(h.cfg.DoneCommand):
			h.done(ctx, s, a, arg)
		case "/list":
			h.list(ctx, s, a)
		default:
			if !busy {
				return false
			}
			h.toAgent(ctx, s, a, h.fill(h.texts.AgentHelp, &handoff{}, a.Name))
		}
		Answered(ctx, "handoff")
		return true
	}
	h.mu.Lock()
	var target *handoff
	if m := addressed.FindStringSubmatch(text); m != nil {
		id, _ := strconv.Atoi(m[1])
		if ho := h.byID[id]; ho != nil && ho.agent == a && ho.accepted {
			target, text = ho, m[2]
			a.current = ho
		}
	}
	if target == nil {
		target = a.current
	}
	if target == nil && len(a.active) == 0 && len(a.offers) > 0 {
		h.mu.Unlock()
		h.accept(ctx, s, a, 0, text) // the first words of an agent accept the oldest offer
		Answered(ctx, "handoff")
		return true
	}
	h.mu.Unlock()
	if target == nil {
		if !busy {
			return false
		}
		h.toAgent(ctx, s, a, h.fill(h.texts.AgentHelp, &handoff{}, a.Name))
		Answered(ctx, "handoff")
		return true
	}
	Answered(ctx, "handoff")
	h.relayToUser(ctx, s, target, a, text)
	return true
}

func (h *Handoff) relayToUser(ctx context.Context, s sink, ho *handoff, a *agentState, text string) {
	if h.toUser(ctx, s, ho, h.fill(h.texts.FromAgent, ho, a.Name, "{text}", text), "agent:"+a.Name) {
		h.toAgent(ctx, s, a, h.fill(h.texts.Held, ho, a.Name, "{text}", text))
	}
}

// accept gives agent a the offer id (0: the oldest) and relays first, if any.
func (h *Handoff) accept(ctx context.Context, s sink, a *agentState, id int, first string) {
	h.mu.Lock()
	ho := a.offer(id)
	if ho == nil {
		text := h.gone(a, id)
		h.mu.Unlock()
		h.toAgent(ctx, s, a, text)
		return
	}
	ho.timer.Stop()
	others := slices.DeleteFunc(slices.Clone(ho.offered), func(x *agentState) bool { return x == a })
	for _, o := range append(others, a) {
		h.withdraw(ho, o)
	}
	ho.accepted, ho.agent = true, a
	a.active = append(a.active, ho)
	a.current = ho
	a.lost = nil
	taken := make([]string, len(others))
	for i, o := range others {
		o.addLost(ho)
		taken[i] = h.fill(h.texts.Taken, ho, a.Name)
	}
	pending := ho.pending
	ho.pending = nil
	h.mark(ho)
	acts := h.drain() // the others are free again
	h.mu.Unlock()
	h.flush(ctx)

	h.observe("accepted")
	h.log.Info("handoff accepted", "handoff", ho.id, "user", ho.userURI, "agent", a.URI)
	h.toAgents(others, taken)(ctx, s)
	defer h.run(ctx, s, acts)
	h.toAgent(ctx, s, a, h.fill(h.texts.AgentConnected, ho, a.Name))
	for _, p := range pending {
		h.toAgent(ctx, s, a, h.fill(h.texts.FromUser, ho, a.Name, "{text}", p))
	}
	h.toUser(ctx, s, ho, h.fill(h.texts.Connected, ho, a.Name), "handoff")
	if first != "" {
		h.relayToUser(ctx, s, ho, a, first)
	}
}

// offer returns agent a's offer number id, or its oldest when id is 0; nil when there is
// none. The caller holds h.mu.
func (a *agentState) offer(id int) *handoff {
	for _, o := range a.offers {
		if id == 0 || o.id == id {
			return o
		}
	}
	return nil
}

// gone is the answer to agent a accepting the offer id (0: the oldest) it does not hold: who
// took it, when a lost it lately, else that there is none. The caller holds h.mu.
func (h *Handoff) gone(a *agentState, id int) string {
	var ho *handoff
	for _, x := range slices.Backward(a.lost) {
		if id == 0 || x.id == id {
			ho = x
			break
		}
	}
	switch {
	case ho == nil:
		return "There is no conversation waiting for you" + idSuffix(id) + "."
	case ho.accepted && ho.agent != a:
		return h.fill(h.texts.Taken, ho, ho.agent.Name)
	case h.byID[ho.id] != ho:
		return h.fill(h.texts.Withdrawn, ho, a.Name)
	default:
		return h.fill(h.texts.Reoffered, ho, a.Name)
	}
}

func idSuffix(id int) string {
	if id == 0 {
		return ""
	}
	return " with number #" + strconv.Itoa(id)
}

// pass leaves the offer id (0: the oldest) of agent a to the next agent.
func (h *Handoff) pass(ctx context.Context, s sink, a *agentState, id int) {
	h.mu.Lock()
	ho := a.offer(id)
	if ho == nil {
		h.mu.Unlock()
		h.toAgent(ctx, s, a, "There is no conversation waiting for you"+idSuffix(id)+".")
		return
	}
	h.withdraw(ho, a)
	ho.tried[a] = true
	acts := append(h.place(ho), h.drain()...)
	h.mu.Unlock()
	h.flush(ctx)
	h.log.Info("handoff passed", "handoff", ho.id, "agent", a.URI)
	h.toAgent(ctx, s, a, "Passed #"+strconv.Itoa(ho.id)+".")
	h.run(ctx, s, acts)
}

// done ends the conversation id (0: the current one) of agent a.
func (h *Handoff) done(ctx context.Context, s sink, a *agentState, id int) {
	h.mu.Lock()
	ho := a.current
	if id != 0 {
		ho = nil
		for _, x := range a.active {
			if x.id == id {
				ho = x
			}
		}
	}
	if ho == nil {
		h.mu.Unlock()
		h.toAgent(ctx, s, a, "You have no open conversation"+idSuffix(id)+".")
		return
	}
	h.remove(ho)
	info := HandoffInfo{ID: ho.id, User: ho.userURI, UserKey: ho.userKey, Agent: a.URI, Accepted: true, Started: ho.started}
	h.ended[ho.userKey], h.last[ho.userKey] = info, info
	acts := h.drain()
	h.mu.Unlock()
	h.flush(ctx)

	h.observe("done")
	h.log.Info("handoff done", "handoff", ho.id, "user", ho.userURI, "agent", a.URI)
	h.toUser(ctx, s, ho, h.fill(h.texts.Ended, ho, a.Name), "handoff")
	h.toAgent(ctx, s, a, h.fill(h.texts.AgentEnded, ho, a.Name))
	h.run(ctx, s, acts)
}

// list tells agent a its conversations and offers.
func (h *Handoff) list(ctx context.Context, s sink, a *agentState) {
	h.mu.Lock()
	var b strings.Builder
	for _, ho := range a.active {
		mark := ""
		if ho == a.current {
			mark = " (current)"
		}
		fmt.Fprintf(&b, "\n#%d %s%s", ho.id, ho.name, mark)
	}
	for _, ho := range a.offers {
		fmt.Fprintf(&b, "\n#%d %s (waiting for you)", ho.id, ho.name)
	}
	h.mu.Unlock()
	if b.Len() == 0 {
		h.toAgent(ctx, s, a, "You have no conversations.")
		return
	}
	h.toAgent(ctx, s, a, "Your conversations:"+b.String())
}

// mark notes that ho changed, for the next flush. The caller holds h.mu.
func (h *Handoff) mark(ho *handoff) {
	if h.cfg.Store != nil {
		h.dirty[ho.id] = true
	}
}

// flush writes the handoffs changed since the last flush to the Store: the open ones as they
// are now, the ended ones deleted. Writes are serialised, each one taken as it is when
// written, so the Store never goes back to an older state.
func (h *Handoff) flush(ctx context.Context) {
	if h.cfg.Store == nil {
		return
	}
	h.pmu.Lock()
	defer h.pmu.Unlock()
	type write struct {
		id  int
		rec *store.Handoff // nil: delete
	}
	h.mu.Lock()
	ws := make([]write, 0, len(h.dirty))
	for id := range h.dirty {
		w := write{id: id}
		if ho := h.byID[id]; ho != nil {
			r := h.record(ho)
			w.rec = &r
		}
		ws = append(ws, w)
	}
	clear(h.dirty)
	h.mu.Unlock()
	if len(ws) == 0 {
		return
	}
	slices.SortFunc(ws, func(a, b write) int { return a.id - b.id })
	// The step happened: record it even when the event that caused it was cancelled.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for _, w := range ws {
		var err error
		if w.rec == nil {
			err = h.cfg.Store.DeleteHandoff(ctx, int64(w.id))
		} else {
			err = h.cfg.Store.SaveHandoff(ctx, *w.rec)
		}
		if err != nil {
			h.log.Error("handoff: not written to the store: a restart would lose this step", "handoff", w.id, "err", err)
		}
	}
}

// record is ho as the Store keeps it. The caller holds h.mu.
func (h *Handoff) record(ho *handoff) store.Handoff {
	r := store.Handoff{
		ID: int64(ho.id), UserKey: ho.userKey, UserURI: ho.userURI, Verified: ho.verified, UserName: ho.name,
		Reason: ho.reason, State: store.HandoffWaiting, Started: ho.started, Pending: slices.Clone(ho.pending),
	}
	switch {
	case ho.accepted:
		r.Agent, r.State = ho.agent.URI, store.HandoffAccepted
	case len(ho.offered) > 0:
		r.Agent, r.State = ho.offered[0].URI, store.HandoffOffered
		r.OfferDeadline = ho.offerDeadline
		for _, a := range ho.offered {
			r.Offered = append(r.Offered, a.URI)
		}
	}
	if !ho.accepted {
		r.Deadline = ho.deadline
	}
	for _, a := range h.agents {
		if ho.tried[a] {
			r.Tried = append(r.Tried, a.URI)
		}
	}
	for _, a := range ho.lapsed {
		r.Lapsed = append(r.Lapsed, a.URI)
	}
	return r
}

// Restore resumes the handoffs HandoffConfig.Store kept, as a previous process left them
// (see Handoff); without a Store it does nothing. Call it once, before the bot serves. It
// returns once the handoffs are back in place; the notices to both sides, the timeouts of
// deadlines already past and the offers to agents that became free follow, after
// HandoffConfig.Ready when set.
func (h *Handoff) Restore(ctx context.Context) error {
	if h.cfg.Store == nil {
		return nil
	}
	recs, err := h.cfg.Store.Handoffs(ctx)
	if err != nil {
		return fmt.Errorf("handlers: restore handoffs: %w", err)
	}
	last, err := h.cfg.Store.LastHandoffID(ctx)
	if err != nil {
		return fmt.Errorf("handlers: restore handoffs: %w", err)
	}
	now := time.Now()
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return errors.New("handlers: restore handoffs: the handoff is closed")
	}
	h.nextID = max(h.nextID, int(last))
	var notices []action
	var expired []*handoff
	type overdueOffer struct {
		ho  *handoff
		gen int
	}
	var overdue []overdueOffer // offers whose OfferTimeout passed: they move on after the notices
	for _, r := range recs {
		id := int(r.ID)
		h.nextID = max(h.nextID, id)
		if h.byID[id] != nil || h.byUser[r.UserKey] != nil {
			continue // restored already
		}
		ho := &handoff{
			id: id, userKey: r.UserKey, userURI: r.UserURI, name: r.UserName, verified: r.Verified,
			reason: r.Reason, started: r.Started, deadline: r.Deadline, tried: map[*agentState]bool{},
			pending: slices.Clone(r.Pending),
		}
		for _, u := range r.Tried {
			if a := h.agentFor(u); a != nil {
				ho.tried[a] = true
			}
		}
		for _, u := range r.Lapsed {
			if a := h.agentFor(u); a != nil && !slices.Contains(ho.lapsed, a) {
				ho.lapsed = append(ho.lapsed, a)
			}
		}
		holders := r.Offered
		if len(holders) == 0 && r.Agent != "" {
			holders = []string{r.Agent} // a record written before offers could go to several
		}
		var a *agentState // the accepting agent, or the first holding the offer
		var offered []*agentState
		for _, u := range holders {
			if r.State == store.HandoffAccepted {
				break
			}
			if x := h.agentFor(u); x != nil && !slices.Contains(offered, x) {
				offered = append(offered, x)
			} else if x == nil {
				h.log.Warn("handoff restored without an agent it was offered to: no longer configured", "handoff", id, "agent", u)
			}
		}
		if len(offered) > 0 {
			a = offered[0]
		}
		if r.State == store.HandoffAccepted && r.Agent != "" {
			if a = h.agentFor(r.Agent); a == nil {
				h.log.Warn("handoff restored without its agent: no longer configured; the user waits for another",
					"handoff", id, "agent", r.Agent)
			}
		}
		h.byUser[ho.userKey], h.byID[id] = ho, ho
		h.mark(ho)
		switch {
		case r.State == store.HandoffAccepted && a != nil:
			ho.agent, ho.accepted = a, true
			a.active = append(a.active, ho)
			a.current = ho
			toAgent, toUser := h.fill(h.texts.AgentResumed, ho, a.Name), h.fill(h.texts.Resumed, ho, a.Name)
			notices = append(notices, func(ctx context.Context, s sink) {
				h.toAgent(ctx, s, a, toAgent)
				h.toUser(ctx, s, ho, toUser, "handoff")
			})
		case r.State == store.HandoffOffered && a != nil:
			ho.offered = offered
			for _, x := range offered {
				x.offers = append(x.offers, ho)
			}
			toAgents := h.toAgents(h.told(ho, h.texts.OfferResumed))
			toUser := h.fill(h.texts.WaitResumed, ho, a.Name)
			notices = append(notices, func(ctx context.Context, s sink) {
				toAgents(ctx, s)
				h.toUser(ctx, s, ho, toUser, "handoff")
			})
			if len(offered) == 1 && !h.cfg.Broadcast && h.cfg.OfferTimeout >= 0 {
				left := h.cfg.OfferTimeout
				if !r.OfferDeadline.IsZero() {
					left = r.OfferDeadline.Sub(now)
				}
				if left > 0 {
					h.armOffer(ho, left)
				} else {
					overdue = append(overdue, overdueOffer{ho, ho.offerGen})
				}
			}
		default: // waiting in line, or its agent is gone
			ho.queued = true
			h.queue = append(h.queue, ho)
			toUser := h.fill(h.texts.WaitResumed, ho, "")
			notices = append(notices, func(ctx context.Context, s sink) { h.toUser(ctx, s, ho, toUser, "handoff") })
		}
		if !ho.accepted {
			if ho.deadline.IsZero() {
				ho.deadline = now.Add(h.cfg.AnswerTimeout)
			}
			if left := ho.deadline.Sub(now); left > 0 {
				ho.timer = time.AfterFunc(left, func() { h.timeout(ho) })
			} else {
				expired = append(expired, ho)
				notices = notices[:len(notices)-1] // it ends at once: no "still waiting"
			}
		}
		h.log.Info("handoff restored", "handoff", id, "user", ho.userURI, "state", r.State, "agent", r.Agent)
	}
	if h.cfg.Ready != nil {
		h.wg.Add(1) // before Close can wait
	}
	h.mu.Unlock()
	h.flush(ctx)

	resume := func() {
		ctx, cancel := context.WithTimeout(h.ctx, 5*time.Minute)
		defer cancel()
		h.run(ctx, sink{}, notices)
		for _, ho := range expired {
			h.timeout(ho)
		}
		for _, o := range overdue {
			h.escalate(o.ho, o.gen)
		}
		h.mu.Lock()
		acts := h.drain()
		h.mu.Unlock()
		h.run(ctx, sink{}, acts)
	}
	if h.cfg.Ready == nil {
		resume()
		return nil
	}
	go func() {
		defer h.wg.Done()
		select {
		case <-h.cfg.Ready:
			resume()
		case <-h.ctx.Done():
		}
	}()
	return nil
}
