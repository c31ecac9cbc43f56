package bottest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/bot"
)

// The addresses of a Conversation built with no options.
const (
	defaultBot  = "sip:bot@example.com"
	defaultPeer = "sip:alice@example.com"
)

// Conversation is a bot.Conversation for unit tests of handlers, with no SIP and no bot: the
// conversation of events built with NewEvent or Conversation.Event. It records what is sent
// with Send. Build it with NewConversation; it is safe for concurrent use.
type Conversation struct {
	// Err, when set, is returned by Send, which then records nothing: a message that failed
	// to go out. Set it before the handler runs.
	Err error

	id, key  string
	mode     bot.Mode
	peer     bot.Peer
	verified bool
	guest    bool
	started  time.Time

	mu    sync.Mutex
	turns int
	sent  []string
	ended bool
	done  chan struct{}
}

var _ bot.Conversation = (*Conversation)(nil)

// A ConversationOption sets a property of the conversation NewConversation or NewEvent
// builds.
type ConversationOption func(*Conversation)

// WithPeer sets the peer's address: "sip:alice@example.com", optionally with a display name
// (`"Alice" <sip:alice@example.com>`); "alice@example.com" means the sip: address. It
// panics when addr is not a SIP address, as httptest.NewRequest panics on a bad target.
func WithPeer(addr string) ConversationOption {
	p, err := parsePeer(addr)
	if err != nil {
		panic("bottest: WithPeer: " + err.Error())
	}
	return func(c *Conversation) { c.peer = p }
}

// Verified makes the conversation's peer Verified (bot.Peer.Verified), as the bot does when
// a trusted proxy asserted the peer's identity or the peer passed the bot's digest challenge
// (see bot.TrustConfig). Without it the peer is unverified: its address is only what its From
// header claims, and handlers must grant nothing on it (an agent's commands, a user's own
// tickets, an allow list). It combines with WithPeer in any order.
func Verified() ConversationOption {
	return func(c *Conversation) { c.verified = true }
}

// Guest makes the conversation's peer a web visitor (bot.Peer.Guest), reached over its own
// connection only. It combines with WithPeer and Verified in any order.
func Guest() ConversationOption {
	return func(c *Conversation) { c.guest = true }
}

// WithMode sets the conversation's mode (bot.ModePage when not set).
func WithMode(m bot.Mode) ConversationOption {
	return func(c *Conversation) { c.mode = m }
}

// WithID sets the conversation's ID. When not set it is the key in page mode and
// "dialog " + key in session mode.
func WithID(id string) ConversationOption {
	return func(c *Conversation) { c.id = id }
}

// WithKey sets the conversation key. When not set it is "sip:bot@example.com <peer URI>",
// in the format of the bot's keys.
func WithKey(key string) ConversationOption {
	return func(c *Conversation) { c.key = key }
}

// WithStarted sets when the conversation started (when NewConversation ran, if not set).
func WithStarted(t time.Time) ConversationOption {
	return func(c *Conversation) { c.started = t }
}

// WithTurns sets how many messages the peer sent before the conversation's first event
// (0 when not set).
func WithTurns(n int) ConversationOption {
	return func(c *Conversation) { c.turns = n }
}

// NewConversation returns a conversation for unit tests. Without options it is a page-mode
// conversation with sip:alice@example.com, not Verified, that started now.
func NewConversation(opts ...ConversationOption) *Conversation {
	c := &Conversation{mode: bot.ModePage}
	for _, opt := range opts {
		opt(c)
	}
	if c.peer.URI == "" {
		c.peer, _ = parsePeer(defaultPeer)
	}
	c.peer.Verified = c.verified
	c.peer.Guest = c.guest
	if c.key == "" {
		c.key = defaultBot + " " + c.peer.URI
	}
	if c.id == "" {
		c.id = c.key
		if c.mode == bot.ModeSession {
			c.id = "dialog " + c.key
		}
	}
	if c.started.IsZero() {
		c.started = time.Now()
	}
	return c
}

// NewEvent returns an event of kind, with text as its Text, in a new conversation built with
// opts (see NewConversation and Conversation.Event). Its SIP request is nil: SIPRequest
// returns nil, as for events the bot makes itself.
func NewEvent(kind bot.EventKind, text string, opts ...ConversationOption) *bot.Event {
	return NewConversation(opts...).Event(kind, text)
}

// Event returns a new event of kind in c, timed now, as the bot would deliver it: a message
// counts one more turn before it is returned, and EventSessionEnd ends c first, with
// bot.EndByPeer as its Reason. text is the event's Text (for EventMessage; "" for other
// kinds). The event's other fields are zero: set them on the result.
func (c *Conversation) Event(kind bot.EventKind, text string) *bot.Event {
	ev := &bot.Event{Kind: kind, Session: c, Time: time.Now(), Text: text}
	switch kind {
	case bot.EventMessage:
		c.mu.Lock()
		c.turns++
		c.mu.Unlock()
	case bot.EventSessionEnd:
		c.End()
		ev.Reason = bot.EndByPeer
	}
	return ev
}

// ID implements bot.Conversation.
func (c *Conversation) ID() string { return c.id }

// Key implements bot.Conversation.
func (c *Conversation) Key() string { return c.key }

// Mode implements bot.Conversation.
func (c *Conversation) Mode() bot.Mode { return c.mode }

// Peer implements bot.Conversation.
func (c *Conversation) Peer() bot.Peer { return c.peer }

// Started implements bot.Conversation.
func (c *Conversation) Started() time.Time { return c.started }

// Turns implements bot.Conversation: the turns set with WithTurns, plus one for every
// message event built with Event.
func (c *Conversation) Turns() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.turns
}

// Send implements bot.Conversation: it records text, or returns Err when set, or
// bot.ErrSessionEnded once the conversation has ended.
func (c *Conversation) Send(ctx context.Context, text string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.Err != nil {
		return c.Err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return bot.ErrSessionEnded
	}
	c.sent = append(c.sent, text)
	return nil
}

// Done implements bot.Conversation.
func (c *Conversation) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.doneLocked()
}

func (c *Conversation) doneLocked() chan struct{} {
	if c.done == nil {
		c.done = make(chan struct{})
	}
	return c.done
}

// End ends the conversation, as a BYE would: Done is closed and Send returns
// bot.ErrSessionEnded. Ending it again does nothing.
func (c *Conversation) End() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ended {
		c.ended = true
		close(c.doneLocked())
	}
}

// Sent returns the texts sent with Send, in order.
func (c *Conversation) Sent() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sent)
}

// parsePeer reads a SIP address into a bot.Peer, as the bot reads a From header.
func parsePeer(addr string) (bot.Peer, error) {
	if !strings.Contains(addr, ":") {
		addr = "sip:" + addr
	}
	var u sip.Uri
	name, err := sip.ParseAddressValue(addr, &u, nil)
	if err != nil || u.User == "" || u.Host == "" {
		return bot.Peer{}, fmt.Errorf("%q is not a SIP address such as sip:alice@example.com", addr)
	}
	aor := sip.Uri{Scheme: u.Scheme, User: u.User, Host: u.Host, Port: u.Port}
	return bot.Peer{URI: aor.String(), User: u.User, Domain: u.Host, DisplayName: strings.TrimSpace(name)}, nil
}

// Recorder is a bot.Responder that records what a handler does with it, for unit tests with
// no SIP, as httptest.ResponseRecorder does for net/http: the replies with their options,
// the Typing calls and End, and who answered (bot.AnswerRecorder, read with Answerers and
// NoMatch). The zero value is ready to use; it is safe for concurrent use.
type Recorder struct {
	bot.Answers

	// Err, when set, is returned by Reply, which then records nothing: a reply that failed
	// to go out. Set it before the handler runs.
	Err error

	mu       sync.Mutex
	messages []Message
	typed    int
	ended    bool
}

var (
	_ bot.Responder      = (*Recorder)(nil)
	_ bot.AnswerRecorder = (*Recorder)(nil)
)

// Message is one reply a Recorder recorded.
type Message struct {
	// Text is the reply.
	Text string
	// Typing is how long the handler asked typing to be shown first (bot.WithTyping).
	Typing time.Duration
}

// NewRecorder returns a Recorder that has recorded nothing.
func NewRecorder() *Recorder { return &Recorder{} }

// Reply implements bot.Responder: it records text with its options, at once (it does not
// wait for the typing a reply asks for). It returns ctx's error when ctx is done, and Err
// when set.
func (r *Recorder) Reply(ctx context.Context, text string, opts ...bot.ReplyOption) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.Err != nil {
		return r.Err
	}
	m := Message{Text: text, Typing: bot.ReadReplyOptions(opts...).Typing}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.messages = append(r.messages, m)
	return nil
}

// Typing implements bot.Responder: it counts the call.
func (r *Recorder) Typing(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.typed++
	return nil
}

// Replied implements bot.Responder: the number of replies recorded.
func (r *Recorder) Replied() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.messages)
}

// End implements bot.Responder: it records that the handler asked to end the conversation.
func (r *Recorder) End() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = true
}

// Replies returns the texts replied, in order.
func (r *Recorder) Replies() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var texts []string
	for _, m := range r.messages {
		texts = append(texts, m.Text)
	}
	return texts
}

// Messages returns the replies with their options, in order.
func (r *Recorder) Messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.messages)
}

// Typed returns how many times Typing was called. Typing asked for with bot.WithTyping is in
// Messages, not counted here.
func (r *Recorder) Typed() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.typed
}

// Ended reports whether End was called.
func (r *Recorder) Ended() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ended
}
