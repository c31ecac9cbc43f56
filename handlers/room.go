package handlers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/store"
)

// RoomBot is what rooms need of the bot: *bot.Bot implements it. Send and Open reach
// participants (page mode, or an IM session the bot opens), Post sends the rooms' EventJoin
// and EventLeave through the chain, URI is the bot's own address.
type RoomBot interface {
	Send(ctx context.Context, to, text string) (bot.Delivery, error)
	Open(ctx context.Context, to string) (*bot.Session, error)
	Post(ctx context.Context, ev *bot.Event) error
	URI() string
}

// RoomAnswerer is the store.TranscriptEntry.Answerer of the lines a room delivered
// (RoomsConfig.Transcript): their text names their author already.
const RoomAnswerer = "room"

// Errors of rooms.
var (
	// ErrRoomClosed is returned by the methods of a Room that has closed (its last
	// participant left, or Close).
	ErrRoomClosed = errors.New("handlers: the room has closed")
	// ErrInRoom is returned when inviting someone who takes part in another room already: a
	// participant's messages go to one room at a time.
	ErrInRoom = errors.New("handlers: already in a room")
)

// RoomsConfig configures Rooms. Bot is required; every other field has a useful zero value.
type RoomsConfig struct {
	// Bot reaches the participants and posts the join and leave events; pass the *bot.Bot.
	Bot RoomBot
	// Store, when set, keeps every room and what it has yet to deliver, so that a restarted
	// bot resumes them: call Restore before the bot serves. nil keeps rooms in memory only.
	Store store.RoomStore
	// Ready, when set, holds back what Restore sends until it is closed: pass the bot's
	// Ready() when Restore runs before the bot's Run.
	Ready <-chan struct{}
	// LeaveCommand is what a participant writes to leave a room; default "/leave".
	LeaveCommand string
	// BotName is the author of what the bot says in a room (Room.Say); default "bot".
	BotName string
	// Texts are what the rooms say; empty fields keep the defaults (DefaultRoomTexts).
	Texts RoomTexts
	// Transcript, when set, records every line a room delivers in the transcript of its
	// recipient's conversation, with the answerer RoomAnswerer (an agent's lines to the user
	// of a handoff: AgentAnswerer); the lines a participant writes are recorded by the
	// Transcript middleware, as any message.
	Transcript TranscriptStore
	// Logger receives a line per join, leave and failed delivery; default slog.Default().
	Logger *slog.Logger
}

// RoomTexts are the messages of rooms. They may use the placeholders {name} (the author of a
// line, or who joined or left), {text} (a relayed line), {by} (who invited), {names} (the
// other participants) and {leave} (the LeaveCommand).
type RoomTexts struct {
	Relay   string // a line of another participant, to each of the others
	Invited string // to an invited participant
	Joined  string // to the others: someone joined
	Left    string // to the others: someone left
	YouLeft string // to a participant who wrote the LeaveCommand
	Closed  string // to everyone when the room closes (Room.Close)
	Resumed string // to everyone, once, after a restart (RoomsConfig.Store)
}

// DefaultRoomTexts are the English texts used for empty RoomTexts fields.
var DefaultRoomTexts = RoomTexts{
	Relay:   "{name}: {text}",
	Invited: "{by} invited you to a conversation with {names}. What you write here goes to all of them; {leave} leaves it.",
	Joined:  "{name} joined the conversation.",
	Left:    "{name} left the conversation.",
	YouLeft: "You left the conversation.",
	Closed:  "The conversation has ended.",
	Resumed: "(The bot restarted; your conversation with {names} continues.)",
}

func (t *RoomTexts) fill(d RoomTexts) {
	for _, f := range []struct {
		dst *string
		def string
	}{
		{&t.Relay, d.Relay}, {&t.Invited, d.Invited}, {&t.Joined, d.Joined}, {&t.Left, d.Left},
		{&t.YouLeft, d.YouLeft}, {&t.Closed, d.Closed}, {&t.Resumed, d.Resumed},
	} {
		if *f.dst == "" {
			*f.dst = f.def
		}
	}
}

// Rooms hosts multi-party conversations: each Room has participants, each reached in their
// own dialect and mode (inside their IM session with the bot when they have one, page mode
// otherwise), and every line one of them writes is relayed to all the others with its
// author's name ("Alice: text"). The bot is a participant too: it stays silent unless a
// handler makes it speak (Room.Say). Create rooms with Create, add people with Room.Invite
// (by address: the bot opens a session or writes in page mode) or Room.Join (the peer of a
// conversation, such as the user writing now), and put the Middleware in the chain before
// the rules and handlers it must silence:
//
//	rooms, err := handlers.NewRooms(handlers.RoomsConfig{Bot: b, Store: db, Ready: b.Ready()})
//	if err := rooms.Restore(ctx); err != nil { ... }
//	b.Use(rooms.Middleware(), engine.Middleware())
//
// The middleware takes the events of participants: messages are relayed (the bot says
// nothing of its own), LeaveCommand leaves, and a participant leaves when its IM session
// ends with a BYE (and, with RoomOptions.LeaveOnIdle, when its conversation ends idle).
// Everything else of a participant stops there too, except EventSessionEnd. A room closes
// when its last participant leaves. Someone takes part in one room at a time (ErrInRoom);
// InviteInto brings someone into the conversation of an event, as a rule's `invite:` does.
//
// Joins and leaves go through the chain as bot.EventJoin and bot.EventLeave (Event.Room
// names the room), posted with RoomBot.Post: handlers see them as events of the
// participant's conversation. (Those of Managed participants are their owner's business:
// a handoff's user and agent have the Handoff's own events.)
//
// A participant is recognised by address: a Verified one (someone the bot invited, or a
// verified peer that joined) from any conversation the bot does not mark unverified
// (bot.Conversation.Key), an unverified one only from the conversation it joined from. Lines
// for an unverified participant go through its own conversation only: once that has ended
// they wait until it writes again.
//
// With RoomsConfig.Store, every room is written to the store when it changes, and every
// relayed line before it is sent, until it was delivered: Restore, called before the bot
// serves, resumes the rooms a previous process left open, even after a crash, tells every
// participant once that the conversation continues (RoomTexts.Resumed, unless the room is
// Silent), and sends what had not been delivered yet, once. A line delivered just before a
// crash, whose delivery was not recorded yet, is the only one that can arrive twice.
type Rooms struct {
	cfg   RoomsConfig
	texts RoomTexts
	log   *slog.Logger
	ctx   context.Context // for work outside a handler (Restore)
	stop  context.CancelFunc
	never chan struct{} // never closed: the Done of conversations that do not end

	// mu guards the rooms and their participants. Every event of the bot looks its sender
	// up (Middleware): that takes it for reading only.
	mu     sync.RWMutex
	closed bool
	rooms  map[string]*Room
	byAddr map[string][]*member // the participants of rooms, by user@host

	pmu sync.Mutex     // held while writing a room to the Store: the latest state wins
	wg  sync.WaitGroup // Restore's work after Ready
}

// RoomOptions configures a room made with Rooms.Create.
type RoomOptions struct {
	// ID names the room; default a random one.
	ID string
	// Silent rooms announce nothing (joins, leaves, the bot's restart): their owner says what
	// it wants with Say and Tell.
	Silent bool
	// LeaveOnIdle makes participants leave when their conversation with the bot ends idle
	// (bot.Config.IdleTimeout).
	LeaveOnIdle bool
	// Format, when set, makes the text a line of from reads as for to, instead of
	// RoomTexts.Relay. It is not kept in the Store: set it again after a restart with
	// Room.SetFormat.
	Format func(from, to Participant, text string) string
}

// Room is one multi-party conversation of Rooms. Its methods are safe for concurrent use.
type Room struct {
	rs      *Rooms
	id      string
	opts    RoomOptions
	created time.Time

	// guarded by rs.mu
	members []*member
	seq     int64 // the last delivery number given
	closed  bool
}

// Participant is one person in a room.
type Participant struct {
	// URI is the participant's address.
	URI string
	// Name is what the others see before the participant's lines.
	Name string
	// Verified says whether the bot verified the address (or chose it: someone it invited).
	Verified bool
	// Key is the conversation key of the conversation the participant joined from; "" for
	// someone invited by address.
	Key string
	// Joined is when the participant joined.
	Joined time.Time
	// Managed says the room's owner routes the participant's lines, not the Middleware: the
	// user and the agent of a handoff (see HandoffConfig.Rooms). Managed participants may
	// take part in several rooms, and hear nothing from the room on a restart or when it
	// closes: their owner tells them.
	Managed bool
}

// member is a participant as a room keeps it.
type member struct {
	Participant
	room *Room
	addr sipAddr

	// guarded by rs.mu
	conv   bot.Conversation     // the participant's latest conversation with the bot; nil: none known
	outbox []store.RoomDelivery // relayed, not delivered yet, by Seq
	notice string               // said before the outbox at the next delivery (after a restart)
	gone   bool                 // left the room

	smu sync.Mutex // held while sending to the participant: its lines go out in order
}

// NewRooms checks cfg and returns Rooms. Call Close when the bot stops.
func NewRooms(cfg RoomsConfig) (*Rooms, error) {
	if cfg.Bot == nil {
		return nil, errors.New("handlers: rooms need a Bot (the *bot.Bot)")
	}
	if cfg.LeaveCommand == "" {
		cfg.LeaveCommand = "/leave"
	}
	if cfg.BotName == "" {
		cfg.BotName = "bot"
	}
	r := &Rooms{
		cfg: cfg, texts: cfg.Texts, log: cfg.Logger, never: make(chan struct{}),
		rooms: map[string]*Room{}, byAddr: map[string][]*member{},
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.texts.fill(DefaultRoomTexts)
	r.ctx, r.stop = context.WithCancel(context.Background())
	return r, nil
}

// Close stops the work Restore started. Open rooms stay in the Store for the next Restore.
func (r *Rooms) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.stop()
	r.wg.Wait()
}

// Create opens an empty room; add participants with Invite and Join.
func (r *Rooms) Create(ctx context.Context, opts RoomOptions) (*Room, error) {
	if opts.ID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		opts.ID = hex.EncodeToString(b[:])
	}
	rm := &Room{rs: r, id: opts.ID, opts: opts, created: time.Now()}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errors.New("handlers: rooms are closed")
	}
	if r.rooms[opts.ID] != nil {
		r.mu.Unlock()
		return nil, fmt.Errorf("handlers: room %q exists already", opts.ID)
	}
	r.rooms[opts.ID] = rm
	r.mu.Unlock()
	r.save(ctx, rm)
	r.log.Info("room created", "room", rm.id)
	return rm, nil
}

// Room returns the open room with this ID, or nil.
func (r *Rooms) Room(id string) *Room {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rooms[id]
}

// List returns the open rooms, by ID.
func (r *Rooms) List() []*Room {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Room, 0, len(r.rooms))
	for _, rm := range r.rooms {
		out = append(out, rm)
	}
	slices.SortFunc(out, func(a, b *Room) int { return strings.Compare(a.id, b.id) })
	return out
}

// Of returns the room the peer of conversation c takes part in, or nil.
func (r *Rooms) Of(c bot.Conversation) *Room {
	if c == nil {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if m := r.find(c.Peer().URI, c.Key()); m != nil {
		return m.room
	}
	return nil
}

// Relaying reports whether the conversation with this key (bot.Conversation.Key: "<bot
// AOR> <peer AOR>", maybe followed by " unverified") is a participant's whose lines a room
// relays (for RateLimitConfig.Relayed: each line refused is answered).
func (r *Rooms) Relaying(key string) bool {
	f := strings.Fields(key)
	if len(f) < 2 {
		return false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.find(f[1], key) != nil
}

// addrKey is the index key of an address: user@host (the port may differ).
func addrKey(a sipAddr) string { return a.user + "@" + a.host }

// find returns the participant that conversation (uri, key) belongs to, or nil. The caller
// holds r.mu (for reading at least).
func (r *Rooms) find(uri, key string) *member {
	if len(r.byAddr) == 0 {
		return nil // no room: no need to read the address
	}
	a, err := parseAddr(uri)
	if err != nil {
		return nil
	}
	for _, m := range r.byAddr[addrKey(a)] {
		if !m.Managed && m.matches(a, key) {
			return m
		}
	}
	return nil
}

// matches reports whether the conversation of address a with key is m's: a verified
// participant's from any conversation the bot does not mark unverified, an unverified one's
// only from the conversation it joined from.
func (m *member) matches(a sipAddr, key string) bool {
	if m.Verified {
		return sameAddr(m.addr, a) && !strings.HasSuffix(key, " unverified")
	}
	return key != "" && key == m.Key
}

// ID returns the room's ID.
func (rm *Room) ID() string { return rm.id }

// Participants returns the people in the room, in the order they joined (the bot is not
// listed).
func (rm *Room) Participants() []Participant {
	rm.rs.mu.Lock()
	defer rm.rs.mu.Unlock()
	out := make([]Participant, len(rm.members))
	for i, m := range rm.members {
		out[i] = m.Participant
	}
	return out
}

// InviteOptions says how to invite someone into a room.
type InviteOptions struct {
	// Name is what the others see before the invitee's lines; default the user part of the
	// address.
	Name string
	// By is who invites, for the invitation text ({by}); default the BotName.
	By string
	// Session makes the bot open an IM session to the invitee (as Lync-style clients
	// expect) instead of writing in page mode.
	Session bool
}

// Invite adds the person at address uri to the room: the bot opens an IM session to them
// (InviteOptions.Session) or writes in page mode, with RoomTexts.Invited; the others are told
// (RoomTexts.Joined, unless Silent), and EventJoin goes through the chain. It fails, and the
// invitee is not added, when the address is not a SIP address, the invitee takes part in a
// room already (ErrInRoom), or cannot be reached.
func (rm *Room) Invite(ctx context.Context, uri string, opts InviteOptions) error {
	r := rm.rs
	a, err := parseAddr(uri)
	if err != nil || a.user == "" {
		return fmt.Errorf("handlers: invite: %q is not a SIP address such as sip:bob@example.com", uri)
	}
	name := opts.Name
	if name == "" {
		name = a.user
	}
	m := &member{Participant: Participant{URI: a.String(), Name: Visible(name), Verified: true, Joined: time.Now()}, room: rm, addr: a}
	if err := rm.add(m); err != nil {
		return fmt.Errorf("handlers: invite %s: %w", uri, err)
	}
	r.save(ctx, rm)
	by := opts.By
	if by == "" {
		by = r.cfg.BotName
	}
	text := r.fill(r.texts.Invited, "", "", "{by}", by, "{names}", rm.names(m))
	if opts.Session {
		s, err := r.cfg.Bot.Open(ctx, uri)
		if err == nil {
			r.mu.Lock()
			m.conv = s
			r.mu.Unlock()
			err = s.Send(ctx, text)
		}
		if err != nil {
			rm.drop(ctx, m)
			return fmt.Errorf("handlers: invite %s: %w", uri, err)
		}
	} else if _, err := r.cfg.Bot.Send(ctx, m.URI, text); err != nil {
		rm.drop(ctx, m)
		return fmt.Errorf("handlers: invite %s: %w", uri, err)
	}
	rm.joined(ctx, roomSink{}, m)
	return nil
}

// Join adds the peer of conversation c to the room, under name (default the peer's name): a
// handler adds the user it is talking to. The others are told (RoomTexts.Joined, unless
// Silent), and EventJoin goes through the chain as an event of c. It fails when the peer
// takes part in a room already (ErrInRoom).
func (rm *Room) Join(ctx context.Context, c bot.Conversation, name string) error {
	r := rm.rs
	p := c.Peer()
	a, err := parseAddr(p.URI)
	if err != nil {
		return fmt.Errorf("handlers: join: %w", err)
	}
	if name == "" {
		name = p.Name()
	}
	m := &member{
		Participant: Participant{URI: p.URI, Name: Visible(name), Verified: p.Verified, Key: c.Key(), Joined: time.Now()},
		room:        rm, addr: a, conv: c,
	}
	if err := rm.add(m); err != nil {
		return fmt.Errorf("handlers: join %s: %w", p.URI, err)
	}
	r.save(ctx, rm)
	rm.joined(ctx, roomSink{}, m)
	return nil
}

// add puts m in the room, unless the room closed or m takes part in a room already.
func (rm *Room) add(m *member) error {
	r := rm.rs
	r.mu.Lock()
	defer r.mu.Unlock()
	if rm.closed {
		return ErrRoomClosed
	}
	for _, o := range rm.members {
		if sameAddr(o.addr, m.addr) {
			return ErrInRoom
		}
	}
	if !m.Managed && r.find(m.URI, m.Key) != nil {
		return ErrInRoom
	}
	if !m.Managed && !m.Verified {
		for _, o := range r.byAddr[addrKey(m.addr)] {
			if !o.Managed && o.Verified && sameAddr(o.addr, m.addr) {
				return ErrInRoom // it would be taken for the verified one
			}
		}
	}
	rm.members = append(rm.members, m)
	k := addrKey(m.addr)
	r.byAddr[k] = append(r.byAddr[k], m)
	return nil
}

// drop takes m out of the room without a word: an invitee that could not be reached.
func (rm *Room) drop(ctx context.Context, m *member) {
	rm.rs.mu.Lock()
	rm.remove(m)
	rm.rs.mu.Unlock()
	rm.rs.save(ctx, rm)
}

// remove forgets m; the caller holds rs.mu.
func (rm *Room) remove(m *member) {
	r := rm.rs
	m.gone = true
	rm.members = slices.DeleteFunc(rm.members, func(x *member) bool { return x == m })
	k := addrKey(m.addr)
	r.byAddr[k] = slices.DeleteFunc(r.byAddr[k], func(x *member) bool { return x == m })
	if len(r.byAddr[k]) == 0 {
		delete(r.byAddr, k)
	}
}

// joined tells the others that m joined and posts EventJoin.
func (rm *Room) joined(ctx context.Context, s roomSink, m *member) {
	r := rm.rs
	r.log.Info("room: joined", "room", rm.id, "participant", m.URI)
	if !rm.opts.Silent {
		rm.broadcast(ctx, s, m, func(*member) string { return r.fill(r.texts.Joined, m.Name, "") })
	}
	r.post(ctx, rm, m, bot.EventJoin, "")
}

// names is the names of the participants other than m, for texts.
func (rm *Room) names(m *member) string {
	rm.rs.mu.Lock()
	defer rm.rs.mu.Unlock()
	return namesBut(rm.members, m, rm.rs.cfg.BotName)
}

func joinNames(ns []string) string { return strings.Join(ns, ", ") }

// Say relays text from the bot to every participant, as "BotName: text".
func (rm *Room) Say(ctx context.Context, text string) error {
	from := Participant{Name: rm.rs.cfg.BotName, Verified: true}
	return rm.broadcast(ctx, roomSink{}, nil, func(to *member) string { return rm.line(from, to, text) })
}

// SetFormat sets RoomOptions.Format.
func (rm *Room) SetFormat(f func(from, to Participant, text string) string) {
	rm.rs.mu.Lock()
	defer rm.rs.mu.Unlock()
	rm.opts.Format = f
}

// line is a line of from as to reads it.
func (rm *Room) line(from Participant, to *member, text string) string {
	rm.rs.mu.Lock()
	f := rm.opts.Format
	rm.rs.mu.Unlock()
	if f != nil {
		return f(from, to.Participant, text)
	}
	return rm.rs.fill(rm.rs.texts.Relay, from.Name, text)
}

// memberAt returns the participant at address uri.
func (rm *Room) memberAt(uri string) (*member, error) {
	a, err := parseAddr(uri)
	if err != nil {
		return nil, err
	}
	rm.rs.mu.Lock()
	defer rm.rs.mu.Unlock()
	for _, m := range rm.members {
		if sameAddr(m.addr, a) {
			return m, nil
		}
	}
	return nil, fmt.Errorf("%s is not in room %s", uri, rm.id)
}

// Tell sends text, as it is, to the participant at address uri only.
func (rm *Room) Tell(ctx context.Context, uri, text string) error {
	to, err := rm.memberAt(uri)
	if err != nil {
		return fmt.Errorf("handlers: tell: %w", err)
	}
	return rm.send(ctx, roomSink{}, []*member{to}, func(*member) string { return text })
}

// Remove takes the participant at address uri out of the room: the others are told
// (RoomTexts.Left, unless Silent) and EventLeave goes through the chain with bot.EndByBot.
func (rm *Room) Remove(ctx context.Context, uri string) error {
	m, err := rm.memberAt(uri)
	if err != nil {
		return fmt.Errorf("handlers: remove: %w", err)
	}
	rm.leave(ctx, roomSink{}, m, bot.EndByBot)
	return nil
}

// Close ends the room: every participant is told (RoomTexts.Closed, unless Silent) and leaves
// (EventLeave with bot.EndByBot), and the Store forgets the room.
func (rm *Room) Close(ctx context.Context) error {
	r := rm.rs
	r.mu.Lock()
	if rm.closed {
		r.mu.Unlock()
		return ErrRoomClosed
	}
	rm.closed = true
	ms := slices.Clone(rm.members)
	r.mu.Unlock()
	if !rm.opts.Silent {
		guests := slices.DeleteFunc(slices.Clone(ms), func(m *member) bool { return m.Managed })
		_ = rm.send(ctx, roomSink{}, guests, func(*member) string { return r.texts.Closed })
	}
	r.mu.Lock()
	for _, m := range ms {
		rm.remove(m)
	}
	delete(r.rooms, rm.id)
	r.mu.Unlock()
	r.save(ctx, rm)
	r.log.Info("room closed", "room", rm.id)
	for _, m := range ms {
		if !m.Managed {
			r.post(ctx, rm, m, bot.EventLeave, bot.EndByBot)
		}
	}
	return nil
}

// leave takes m out of the room for reason; the room closes when m was the last one.
func (rm *Room) leave(ctx context.Context, s roomSink, m *member, reason bot.EndReason) {
	r := rm.rs
	r.mu.Lock()
	if m.gone {
		r.mu.Unlock()
		return
	}
	rm.remove(m)
	dropped := m.outbox
	m.outbox = nil
	last := len(rm.members) == 0
	if last {
		rm.closed = true
		delete(r.rooms, rm.id)
	}
	conv := m.conv
	r.mu.Unlock()
	r.save(ctx, rm)
	r.forget(ctx, rm, dropped)
	r.log.Info("room: left", "room", rm.id, "participant", m.URI, "reason", string(reason), "closed", last)
	if reason == bot.EndLeft {
		if err := r.sendTo(ctx, s, m, conv, r.texts.YouLeft, RoomAnswerer); err != nil {
			r.log.Info("room: a participant who left was not told", "room", rm.id, "participant", m.URI, "err", err)
		}
	}
	if !rm.opts.Silent && !last {
		rm.broadcast(ctx, s, nil, func(*member) string { return r.fill(r.texts.Left, m.Name, "") })
	}
	r.post(ctx, rm, m, bot.EventLeave, reason)
}

// post sends EventJoin or EventLeave of m through the chain, as an event of m's
// conversation (a page-mode one made for it when it has none).
func (r *Rooms) post(ctx context.Context, rm *Room, m *member, kind bot.EventKind, reason bot.EndReason) {
	r.mu.Lock()
	c := m.conv
	r.mu.Unlock()
	if c == nil {
		c = &roomConv{r: r, room: rm.id, p: m.Participant}
	}
	ev := &bot.Event{Kind: kind, Session: c, Time: time.Now(), Room: rm.id, Reason: reason}
	if err := r.cfg.Bot.Post(context.WithoutCancel(ctx), ev); err != nil {
		r.log.Warn("room: event not handled", "room", rm.id, "participant", m.URI, "event", kind.String(), "err", err)
	}
}

// fill replaces the placeholders of a room text.
func (r *Rooms) fill(text, name, line string, extra ...string) string {
	rp := []string{"{name}", name, "{text}", line, "{leave}", r.cfg.LeaveCommand}
	return strings.NewReplacer(append(rp, extra...)...).Replace(text)
}

// roomConv is the conversation of a participant the bot has none with: it reaches a verified
// participant in page mode.
type roomConv struct {
	r    *Rooms
	room string
	p    Participant
}

func (c *roomConv) ID() string { return "room " + c.room + " " + c.p.URI }

func (c *roomConv) Key() string {
	if c.p.Key != "" {
		return c.p.Key
	}
	return c.r.cfg.Bot.URI() + " " + c.p.URI
}

func (c *roomConv) Mode() bot.Mode { return bot.ModePage }

func (c *roomConv) Peer() bot.Peer {
	a, _ := parseAddr(c.p.URI)
	host := a.host
	return bot.Peer{URI: c.p.URI, User: a.user, Domain: host, DisplayName: c.p.Name, Verified: c.p.Verified}
}

func (c *roomConv) Started() time.Time { return c.p.Joined }

func (c *roomConv) Turns() int { return 0 }

func (c *roomConv) Send(ctx context.Context, text string) error {
	if !c.p.Verified {
		return bot.ErrSessionEnded // never to an address it only claims
	}
	_, err := c.r.cfg.Bot.Send(ctx, c.p.URI, text)
	return err
}

func (c *roomConv) Done() <-chan struct{} { return c.r.never }

// InviteInto brings the person at address to into the conversation of ev: into the room the
// event's peer takes part in, or else into a new room of the peer and the invitee. It is
// what a rule's `invite:` does (pass it as rules.Options.Invite). When the invitation fails,
// a room made for it is closed again without a word to the peer.
func (r *Rooms) InviteInto(ctx context.Context, ev *bot.Event, to string) error {
	if ev == nil || ev.Session == nil {
		return errors.New("handlers: invite: the event has no conversation")
	}
	c := ev.Session
	by := c.Peer().Name()
	if rm := r.Of(c); rm != nil {
		return rm.Invite(ctx, to, InviteOptions{By: by})
	}
	rm, err := r.Create(ctx, RoomOptions{})
	if err != nil {
		return err
	}
	if err := rm.Join(ctx, c, ""); err != nil {
		_ = rm.Close(ctx)
		return err
	}
	if err := rm.Invite(ctx, to, InviteOptions{By: by}); err != nil {
		_ = rm.Remove(ctx, c.Peer().URI) // the last one: the room closes
		return err
	}
	return nil
}
