package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/store"
)

// Forwarder hands a message to another instance of the bot; *bot.Bot implements it
// (bot.Bot.Forward).
type Forwarder interface {
	Forward(ctx context.Context, ev *bot.Event, dest, intent string) error
}

// LeaderStore is what Leader reads of the store the instances share: the handoffs and rooms
// in progress, which say whose messages the leader must see. store/postgres implements it.
type LeaderStore interface {
	store.LeaseStore
	Handoffs(ctx context.Context) ([]store.Handoff, error)
	Rooms(ctx context.Context) ([]store.Room, error)
}

// LeaderConfig configures Leader. Store, Address, Forwarder and Handoff are required.
type LeaderConfig struct {
	// Store is the store the instances share.
	Store LeaderStore
	// Address is where the other instances reach this one: its SIP address, such as
	// sip:10.0.0.11:5060 (with ;transport=tcp for TCP). The leader's address is its lease's
	// owner.
	Address string
	// Forwarder forwards messages to the leader: pass the *bot.Bot. The leader must trust the
	// other instances' addresses (bot.TrustConfig.Proxies) to take the forwarded messages as
	// their senders'.
	Forwarder Forwarder
	// Handoff and Rooms are the helpdesk the leader runs (Rooms may be nil). Their Store
	// must be Store, and neither may be restored by anyone but Leader: the instance that
	// takes the lead restores them.
	Handoff *Handoff
	Rooms   *Rooms
	// Key names the lease; default "imbot helpdesk".
	Key string
	// TTL is how long the lead lasts unless renewed (every third of it): how long a dead
	// leader's conversations wait for another instance to take over. Default 6 s.
	TTL time.Duration
	// OnLost is called when another instance took the lead from this one, which could not
	// renew it in time (a store that did not answer for TTL): its helpdesk state is stale
	// from then on, and this Leader only follows. imbot run stops, to start again as a
	// follower. Default: an error in the log.
	OnLost func(holder string)
	// Logger receives the changes of leader and the failures to forward; default
	// slog.Default().
	Logger *slog.Logger
	// now is the clock (tests).
	now func() time.Time
}

// Leader lets several instances of the bot that share a store (store/postgres, behind a
// dispatcher) run one helpdesk: handoffs and rooms live in one instance's memory, the leader,
// elected by a lease in the store (store.LeaseStore); the others, the followers, forward to it
// every message that belongs to the helpdesk, so that a customer served by one instance and an
// agent served by another are in one room. When the leader dies, its lease runs out (TTL) and
// another instance takes the lead: it restores the handoffs and rooms from the store, and
// their participants are told that the conversation continues.
//
// A follower forwards (bot.Bot.Forward) the messages of the agents, of users whose handoff is
// in progress and of participants of rooms (as the store lists them), and hands the leader
// what would start a handoff or a room: the Handoff's triggers, its NoMatchLimit and
// Handler (through HandoffConfig.Delegate), a rule's `invite:` (Delegate). Everything else
// it handles itself. The leader handles forwarded messages as its own: the replies reach the
// senders through its outbound proxy.
//
// Put the Middleware first in the chain (before Exclusive), set HandoffConfig.Delegate to
// Delegate, and call Run once the bot runs:
//
//	ld, err := handlers.NewLeader(handlers.LeaderConfig{Store: db, Address: "sip:10.0.0.11:5060", Forwarder: b, Handoff: ho, Rooms: rooms})
//	b.Use(ld.Middleware(), exclusive, ...)
//	go ld.Run(ctx)
//
// A handoff its agent ended stays in the store until the user's next message
// (store.HandoffEnded), so that a rating given then reaches the leader, which knows whose
// handoff it rates; a rating given later is stored without its agent (LastHandoff). A BYE
// that ends a participant's IM session on a follower is forwarded too: the participant
// leaves the room, the user's handoff ends. A web visitor (bot.Peer.Guest) is forwarded with
// its token, which the leader checks as the follower did (the instances share the web chat's
// secret); what the leader says to it goes to the follower, which holds the visitor's
// connection and passes it on.
type Leader struct {
	cfg LeaderConfig
	log *slog.Logger

	mu       sync.Mutex
	leading  bool          // this instance leads, its helpdesk restored
	lost     bool          // this instance lost the lead: its helpdesk is stale, it never leads again
	holder   string        // the leader's address as last read; "" when unknown
	followed string        // the leader last logged
	promoted chan struct{} // closed once this instance leads
	kick     chan struct{} // asks Run to try for the lead now
}

// DefaultLeaderKey is the lease the instances elect their leader with.
const DefaultLeaderKey = "imbot helpdesk"

// Intents of forwarded messages (bot.Event.Forwarded).
const (
	intentMessage = "message" // handle it as the leader's own message
	intentHandoff = "handoff" // start a handoff for its sender
	intentInvite  = "invite"  // "invite sip:...": invite someone into its conversation
	intentLeft    = "left"    // its sender ended its IM session (a BYE): EventSessionEnd
)

// NewLeader checks cfg and returns a Leader.
func NewLeader(cfg LeaderConfig) (*Leader, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("handlers: leader: needs the Store the instances share")
	case cfg.Forwarder == nil:
		return nil, errors.New("handlers: leader: needs a Forwarder (the *bot.Bot)")
	case cfg.Handoff == nil:
		return nil, errors.New("handlers: leader: needs the Handoff it runs")
	}
	var u sip.Uri
	if err := sip.ParseUri(cfg.Address, &u); err != nil || u.Scheme != "sip" || u.Host == "" || u.User != "" {
		return nil, fmt.Errorf("handlers: leader: Address %q is not this instance's SIP address, such as sip:10.0.0.11:5060", cfg.Address)
	}
	if cfg.Key == "" {
		cfg.Key = DefaultLeaderKey
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 6 * time.Second
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	l := &Leader{cfg: cfg, log: cfg.Logger, promoted: make(chan struct{}), kick: make(chan struct{}, 1)}
	if l.log == nil {
		l.log = slog.Default()
	}
	return l, nil
}

// Leading reports whether this instance leads, its helpdesk restored.
func (l *Leader) Leading() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leading
}

// Run takes the lead when nobody holds it, keeps it while this instance lives, and follows
// who holds it otherwise, until ctx ends; then it gives the lead up, so that another
// instance takes over at once. It returns ctx's error, or the error of restoring the
// helpdesk after taking the lead.
func (l *Leader) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if l.Leading() {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				if err := l.cfg.Store.ReleaseLease(rctx, l.cfg.Key, l.cfg.Address); err != nil {
					l.log.Warn("helpdesk lead not given up: it runs out by itself", "err", err)
				}
				cancel()
			}
			return ctx.Err()
		case <-t.C:
		case <-l.kick:
		}
		if err := l.step(ctx); err != nil {
			return err
		}
		t.Reset(l.cfg.TTL / 3)
	}
}

// step tries for the lead once (or renews it), and notes who holds it.
func (l *Leader) step(ctx context.Context) error {
	l.mu.Lock()
	lost := l.lost
	l.mu.Unlock()
	if !lost {
		ok, err := l.cfg.Store.AcquireLease(ctx, l.cfg.Key, l.cfg.Address, l.cfg.now(), l.cfg.TTL)
		if err != nil {
			if ctx.Err() == nil {
				l.log.Warn("helpdesk lead: the store did not answer", "err", err)
			}
			return nil
		}
		if ok {
			if l.Leading() {
				return nil
			}
			l.mu.Lock()
			l.holder = l.cfg.Address // forwarded messages wait for the restore (awaitLead)
			l.mu.Unlock()
			return l.promote(ctx)
		}
	}
	holder, err := l.cfg.Store.LeaseHolder(ctx, l.cfg.Key, l.cfg.now())
	if err != nil {
		l.log.Warn("helpdesk lead: the store did not answer", "err", err)
		return nil
	}
	l.mu.Lock()
	was, changed := l.leading, l.followed != holder
	l.holder, l.followed, l.leading = holder, holder, false
	if was {
		l.lost = true
	}
	l.mu.Unlock()
	if was {
		l.log.Error("another instance took the helpdesk lead: this one could not renew it in time", "leader", holder)
		if l.cfg.OnLost != nil {
			l.cfg.OnLost(holder)
		}
	} else if changed && holder != "" {
		l.log.Info("the helpdesk is led by another instance", "leader", holder)
	}
	return nil
}

// promote restores the helpdesk from the store and starts leading.
func (l *Leader) promote(ctx context.Context) error {
	if l.cfg.Rooms != nil {
		if err := l.cfg.Rooms.Restore(ctx); err != nil {
			return fmt.Errorf("helpdesk lead: %w", err)
		}
	}
	if err := l.cfg.Handoff.Restore(ctx); err != nil {
		return fmt.Errorf("helpdesk lead: %w", err)
	}
	l.mu.Lock()
	l.leading, l.holder = true, l.cfg.Address
	close(l.promoted)
	l.mu.Unlock()
	l.log.Info("this instance leads the helpdesk", "address", l.cfg.Address)
	return nil
}

// Middleware returns the middleware that forwards the helpdesk's messages to the leader on a
// follower, and on the leader handles what followers forwarded. Put it first in the chain.
func (l *Leader) Middleware() bot.Middleware {
	return func(next bot.Handler) bot.Handler {
		return bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
			return l.handle(ctx, w, ev, next)
		})
	}
}

func (l *Leader) handle(ctx context.Context, w bot.Responder, ev *bot.Event, next bot.Handler) error {
	c, ok := convOf(ev)
	left := ev.Kind == bot.EventSessionEnd && ev.Reason == bot.EndByPeer
	if !ok || (ev.Kind != bot.EventMessage && !left) {
		return next.Handle(ctx, w, ev)
	}
	if intent, fwd := ev.Forwarded(); fwd && ev.Kind == bot.EventMessage {
		return l.forwarded(ctx, w, ev, intent, next)
	}
	if l.Leading() {
		return next.Handle(ctx, w, ev)
	}
	in, err := l.involved(ctx, c)
	if left {
		// A participant hung up here: the leader's handoff or room hears of it.
		if err == nil && in {
			_, _ = l.delegate(ctx, ev, intentLeft)
		}
		return next.Handle(ctx, w, ev)
	}
	if err != nil {
		l.log.Warn("helpdesk: the store did not say whether the message is the leader's: handled here", "from", c.Peer.URI, "err", err)
		return next.Handle(ctx, w, ev)
	}
	if !in {
		return next.Handle(ctx, w, ev)
	}
	done, err := l.delegate(ctx, ev, intentMessage)
	if done {
		return err
	}
	return next.Handle(ctx, w, ev) // this instance took the lead meanwhile
}

// forwarded handles a message another instance forwarded, with its intent.
func (l *Leader) forwarded(ctx context.Context, w bot.Responder, ev *bot.Event, intent string, next bot.Handler) error {
	if !l.awaitLead(ctx) {
		// The sender's view of the leader is stale: pass it on, once.
		l.log.Warn("helpdesk: a message was forwarded to this instance, which does not lead", "from", ev.Session.Peer().URI)
		if done, err := l.delegate(ctx, ev, intent); done {
			return err
		}
	}
	verb, arg, _ := strings.Cut(intent, " ")
	switch verb {
	case intentHandoff:
		return l.cfg.Handoff.Handler().Handle(ctx, w, ev)
	case intentInvite:
		if l.cfg.Rooms == nil {
			return errors.New("helpdesk: an invitation was forwarded, but this instance hosts no rooms")
		}
		return l.cfg.Rooms.InviteInto(ctx, ev, arg)
	case intentLeft:
		// The sender's IM session with a follower ended: as if it ended here.
		return next.Handle(ctx, w, &bot.Event{Kind: bot.EventSessionEnd, Reason: bot.EndByPeer, Session: ev.Session, Time: ev.Time})
	case intentMessage:
	default:
		l.log.Warn("helpdesk: a forwarded message has an intent this instance does not know: handled as a message", "intent", intent)
	}
	return next.Handle(ctx, w, ev)
}

// awaitLead waits a moment for this instance to lead, when it holds the lease and is
// restoring the helpdesk, and reports whether it leads.
func (l *Leader) awaitLead(ctx context.Context) bool {
	l.mu.Lock()
	leading, mine, promoted := l.leading, l.holder == l.cfg.Address, l.promoted
	l.mu.Unlock()
	if leading || !mine {
		return leading
	}
	select {
	case <-promoted:
		return true
	case <-ctx.Done():
		return false
	}
}

// Delegate hands the event to the leader with an intent: "handoff" starts a handoff for its
// sender, "invite sip:..." brings someone into its conversation. It reports whether it did
// (false on the leader itself: the caller does the work). A rule's `invite:` and
// HandoffConfig.Delegate use it.
func (l *Leader) Delegate(ctx context.Context, ev *bot.Event, intent string) (bool, error) {
	if l.Leading() {
		return false, nil
	}
	return l.delegate(ctx, ev, intent)
}

// delegate forwards ev to the leader, trying again (with the leader read anew) until it is
// taken or ctx ends: a message answered 200 is not dropped while a dead leader's lease runs
// out. It reports false when this instance took the lead meanwhile.
func (l *Leader) delegate(ctx context.Context, ev *bot.Event, intent string) (bool, error) {
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		dest, err := l.leader(ctx)
		switch {
		case err != nil:
		case dest == l.cfg.Address:
			if l.awaitLead(ctx) {
				return false, nil
			}
			err = errors.New("this instance holds the lead but has not restored the helpdesk")
		case dest == "":
			err = errors.New("no instance leads")
			l.tryLead()
		default:
			fctx, cancel := context.WithTimeout(ctx, 4*time.Second)
			err = l.cfg.Forwarder.Forward(fctx, ev, dest, intent)
			cancel()
			if err == nil {
				l.log.Debug("helpdesk: message forwarded to the leader", "from", ev.Session.Peer().URI, "leader", dest, "intent", intent)
				return true, nil
			}
			err = fmt.Errorf("forward to %s: %w", dest, err)
			l.forget(dest)
		}
		if attempt == 1 || attempt%10 == 0 {
			l.log.Warn("helpdesk: the message waits for a leader", "from", ev.Session.Peer().URI, "attempt", attempt, "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			l.log.Error("helpdesk: no leader took the message before its time ran out: it is lost", "from", ev.Session.Peer().URI, "text", ev.Text)
			return true, fmt.Errorf("helpdesk: no leader took the message: %w", err)
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

// leader returns the address of the leader: as last read, else from the store.
func (l *Leader) leader(ctx context.Context) (string, error) {
	l.mu.Lock()
	h := l.holder
	l.mu.Unlock()
	if h != "" {
		return h, nil
	}
	h, err := l.cfg.Store.LeaseHolder(ctx, l.cfg.Key, l.cfg.now())
	if err != nil {
		return "", err
	}
	l.mu.Lock()
	if l.holder == "" {
		l.holder = h
	}
	l.mu.Unlock()
	return h, nil
}

// forget drops dest as the leader after a failed forward, and asks Run to look again (and
// take the lead if dest's lease ran out).
func (l *Leader) forget(dest string) {
	l.mu.Lock()
	if l.holder == dest {
		l.holder = ""
	}
	l.mu.Unlock()
	l.tryLead()
}

func (l *Leader) tryLead() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// involved reports whether a follower's message belongs to the leader: its sender is an
// agent, a user whose handoff is in progress, or a participant of a room.
func (l *Leader) involved(ctx context.Context, c conv) (bool, error) {
	if l.cfg.Handoff.agentFor(c.Peer.URI) != nil {
		return true, nil
	}
	hs, err := l.cfg.Store.Handoffs(ctx)
	if err != nil {
		return false, err
	}
	for _, h := range hs {
		if h.UserKey == c.Key {
			return true, nil
		}
	}
	if l.cfg.Rooms == nil {
		return false, nil
	}
	rs, err := l.cfg.Store.Rooms(ctx)
	if err != nil {
		return false, err
	}
	addr, aerr := parseAddr(c.Peer.URI)
	for _, r := range rs {
		for _, p := range r.Participants {
			if p.Key != "" && p.Key == c.Key {
				return true, nil
			}
			if p.Verified && c.Peer.Verified && aerr == nil {
				if pa, err := parseAddr(p.URI); err == nil && sameAddr(pa, addr) {
					return true, nil
				}
			}
		}
	}
	return false, nil
}
