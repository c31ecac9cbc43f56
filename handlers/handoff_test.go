package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/store"
)

// fakeDialer records what the bot sends outside a Responder: with Send, and through the
// conversations of a hoRig (rigConv).
type fakeDialer struct {
	mu      sync.Mutex
	sent    map[string][]string // by address, dialed or sent through a conversation
	dialed  map[string]int      // how many of sent went through Send
	down    map[string]bool     // addresses that cannot be reached
	changed chan struct{}
}

func newFakeDialer() *fakeDialer {
	return &fakeDialer{sent: map[string][]string{}, dialed: map[string]int{}, down: map[string]bool{}, changed: make(chan struct{})}
}

func (d *fakeDialer) Send(_ context.Context, to, text string) (bot.Delivery, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down[to] {
		return 0, &bot.SendError{Code: 480, Reason: "Temporarily Unavailable"}
	}
	d.dialed[to]++
	d.recordLocked(to, text)
	return bot.Delivered, nil
}

func (d *fakeDialer) record(to, text string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.recordLocked(to, text)
}

func (d *fakeDialer) recordLocked(to, text string) {
	d.sent[to] = append(d.sent[to], text)
	close(d.changed)
	d.changed = make(chan struct{})
}

func (d *fakeDialer) dialCount(to string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dialed[to]
}

func (d *fakeDialer) texts(to string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.sent[to])
}

// wait waits until to was sent a text containing every part, and returns it.
func (d *fakeDialer) wait(t *testing.T, ctx context.Context, to string, parts ...string) string {
	t.Helper()
	for {
		d.mu.Lock()
		ch := d.changed
		for _, s := range d.sent[to] {
			if containsAll(s, parts...) {
				d.mu.Unlock()
				return s
			}
		}
		d.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("waiting for a text to %s with %q: %v; sent: %q", to, parts, ctx.Err(), d.texts(to))
		}
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// rigConv is a conversation of a hoRig: what is sent through it is recorded by the rig's
// fakeDialer, under the peer's address.
type rigConv struct {
	*bottest.Conversation
	d *fakeDialer
}

func (c *rigConv) Send(ctx context.Context, text string) error {
	if err := c.Conversation.Send(ctx, text); err != nil {
		return err
	}
	c.d.record(c.Peer().URI, text)
	return nil
}

// hoRig drives a Handoff with fake conversations. Each address has one conversation for
// all its events. The agents are verified, as they are behind a trusted proxy; users are
// not, unless verify made them so.
type hoRig struct {
	t    *testing.T
	h    *Handoff
	d    *fakeDialer
	mem  *watchedStore
	next bot.Handler
	logs *syncBuffer

	mu       sync.Mutex
	verified map[string]bool
	convs    map[string]*rigConv
}

const (
	agent1 = "sip:agent1@x"
	agent2 = "sip:agent2@x"
)

func newRig(t *testing.T, cfg HandoffConfig) *hoRig {
	t.Helper()
	r := &hoRig{t: t, d: newFakeDialer(), mem: &watchedStore{}, logs: &syncBuffer{},
		verified: map[string]bool{}, convs: map[string]*rigConv{}}
	if cfg.Agents == nil {
		cfg.Agents = []Agent{{URI: agent1, Name: "Ann"}, {URI: agent2, Name: "Bob"}}
	}
	for _, a := range cfg.Agents {
		r.verified[a.URI] = true
	}
	r.build(cfg)
	return r
}

// build makes the rig's Handoff from cfg, with the rig's dialer and stores.
func (r *hoRig) build(cfg HandoffConfig) {
	r.t.Helper()
	if cfg.Agents == nil {
		cfg.Agents = []Agent{{URI: agent1, Name: "Ann"}, {URI: agent2, Name: "Bob"}}
	}
	cfg.Dialer = r.d
	cfg.Tickets = r.mem
	cfg.Transcript = r.mem
	cfg.Logger = slog.New(slog.NewJSONHandler(r.logs, nil))
	if cfg.AnswerTimeout == 0 {
		cfg.AnswerTimeout = time.Hour
	}
	h, err := NewHandoff(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(h.Close)
	r.h = h
	// In the order cmd/imbot chains them.
	r.next = Transcript(r.mem)(h.Middleware()(LogUnmatched(r.mem)(echo)))
}

// verify makes the user uri verified, from its next event on.
func (r *hoRig) verify(uri string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.verified[uri] = true
	delete(r.convs, uri)
}

// conv returns the conversation of uri.
func (r *hoRig) conv(uri string) *rigConv {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.convs[uri]
	if c == nil {
		opts := []bottest.ConversationOption{bottest.WithPeer(uri), bottest.WithKey("sip:bot@test " + uri)}
		if r.verified[uri] {
			opts = append(opts, bottest.Verified())
		}
		c = &rigConv{Conversation: bottest.NewConversation(opts...), d: r.d}
		r.convs[uri] = c
	}
	return c
}

// say handles a message from uri and returns the replies it got through its Responder.
func (r *hoRig) say(from, text string) []string {
	r.t.Helper()
	return r.event(from, msg(text))
}

// event handles ev in the conversation of from and returns the replies it got through its
// Responder.
func (r *hoRig) event(from string, ev *bot.Event) []string {
	r.t.Helper()
	ev.Session = r.conv(from)
	return r.handle(ev)
}

// forge handles a message of an unverified sender that claims the address from, in a
// conversation of its own (as the bot keys it when it can verify identities), and returns
// the replies it got through its Responder.
func (r *hoRig) forge(from, text string) []string {
	r.t.Helper()
	ev := msg(text)
	ev.Session = &rigConv{d: r.d, Conversation: bottest.NewConversation(
		bottest.WithPeer(from), bottest.WithKey("sip:bot@test "+from+" unverified"))}
	return r.handle(ev)
}

func (r *hoRig) handle(ev *bot.Event) []string {
	r.t.Helper()
	w := bottest.NewRecorder()
	if err := r.next.Handle(context.Background(), w, ev); err != nil {
		r.t.Fatalf("%s %q: %v", ev.Session.Peer().URI, ev.Text, err)
	}
	return w.Replies()
}

func expect(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %q, want %d texts containing %q", what, got, len(want), want)
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Fatalf("%s: text %d is %q, want it to contain %q (all: %q)", what, i, got[i], want[i], got)
		}
	}
}

func TestHandoffFlow(t *testing.T) {
	r := newRig(t, HandoffConfig{})
	const alice = "sip:alice@x"
	expect(t, "before", r.say(alice, "hi"), "echo: hi")
	expect(t, "trigger", r.say(alice, "I want a human please"), "find a person")
	offer := r.d.wait(t, testCtx(t), agent1, "#1 alice", "/accept 1")
	if !strings.Contains(offer, "alice: hi") || !strings.Contains(offer, "bot: echo: hi") {
		t.Errorf("offer lacks the transcript: %q", offer)
	}
	// While waiting, the user's words are kept for the agent, and the bot is silent.
	expect(t, "waiting", r.say(alice, "it is urgent"))
	expect(t, "accept", r.say(agent1, "/accept"), "You are now talking with alice (#1)", "#1 alice: it is urgent")
	expect(t, "user told", r.d.texts(alice), "Ann is now with you")
	// Relays both ways; the bot says nothing to the user itself.
	expect(t, "user writes", r.say(alice, "my vpn is down"))
	r.d.wait(t, testCtx(t), agent1, "#1 alice: my vpn is down")
	expect(t, "agent writes", r.say(agent1, "restart it"))
	r.d.wait(t, testCtx(t), alice, "Ann: restart it")
	expect(t, "user typing", r.event(alice, &bot.Event{Kind: bot.EventTyping, Typing: true}))
	expect(t, "list", r.say(agent1, "/list"), "#1 alice (current)")
	if l := r.h.List(); len(l) != 1 || !l[0].Accepted || l[0].Agent != agent1 || l[0].User != alice {
		t.Errorf("List = %+v", l)
	}
	expect(t, "done", r.say(agent1, "/done"), "Conversation #1 with alice ended")
	r.d.wait(t, testCtx(t), alice, "Ann has left the conversation")
	expect(t, "bot is back", r.say(alice, "thanks"), "echo: thanks")
	expect(t, "agent is free", r.say(agent1, "hello bot"), "echo: hello bot")
	if l := r.h.List(); len(l) != 0 {
		t.Errorf("List after done = %+v", l)
	}
	// The relayed message of the agent is in the user's transcript, marked as the agent's.
	tr, _ := r.mem.Transcript(context.Background(), "sip:bot@test "+alice, 0)
	var found bool
	for _, e := range tr {
		if e.Text == "Ann: restart it" && e.Direction == store.Out && e.Answerer == "agent:Ann" {
			found = true
		}
	}
	if !found {
		t.Errorf("relayed agent message not in the transcript: %+v", tr)
	}
}

func TestHandoffFirstTextAccepts(t *testing.T) {
	r := newRig(t, HandoffConfig{})
	r.say("sip:alice@x", "agent")
	r.d.wait(t, testCtx(t), agent1, "#1")
	expect(t, "agent", r.say(agent1, "Hi, Ann here"), "You are now talking with alice")
	r.d.wait(t, testCtx(t), "sip:alice@x", "Ann: Hi, Ann here")
}

// TestHandoffTimeout: nobody accepts in time; the user is told and a ticket is opened, whose
// Peer is the user's address only when the user is verified.
func TestHandoffTimeout(t *testing.T) {
	const alice = "sip:alice@x"
	tests := []struct {
		name      string
		verified  bool
		wantPeer  string
		wantNotes string
	}{
		{"verified user", true, alice, "Opened by the bot"},
		{"unverified user", false, "", "The user was not verified; it claimed to be sip:alice@x."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, HandoffConfig{AnswerTimeout: 50 * time.Millisecond, Agents: []Agent{{URI: agent1}}})
			if tt.verified {
				r.verify(alice)
			}
			r.say(alice, "can I talk to an agent?")
			r.d.wait(t, testCtx(t), agent1, "#1")
			text := r.d.wait(t, testCtx(t), alice, "nobody is available", "ticket #1001")
			r.d.wait(t, testCtx(t), agent1, "#1 alice is no longer waiting")
			tk, err := r.mem.Ticket(context.Background(), 1001)
			if err != nil {
				t.Fatal(err)
			}
			if tk.Peer != tt.wantPeer || !strings.HasPrefix(tk.Notes, tt.wantNotes) ||
				!strings.Contains(tk.Summary, "can I talk to an agent?") || tk.Status != store.StatusOpen {
				t.Errorf("ticket = %+v (user told %q)", tk, text)
			}
			// The agent's late answer goes nowhere, and the user talks to the bot again.
			expect(t, "late accept", r.say(agent1, "/accept"), "no conversation waiting")
			expect(t, "bot back", r.say(alice, "ok"), "echo: ok")
		})
	}
}

func TestHandoffPassAndUnreachable(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(r *hoRig)
		act    func(r *hoRig)
		second string // who gets the offer next; "" for nobody
	}{
		{"pass goes to the next agent", nil, func(r *hoRig) {
			r.d.wait(r.t, testCtx(r.t), agent1, "#1")
			expect(r.t, "pass", r.say(agent1, "/pass"), "Passed #1")
		}, agent2},
		{"unreachable agent is skipped", func(r *hoRig) { r.d.down[agent1] = true }, nil, agent2},
		{"everyone passes", nil, func(r *hoRig) {
			r.d.wait(r.t, testCtx(r.t), agent1, "#1")
			r.say(agent1, "/pass 1")
			r.d.wait(r.t, testCtx(r.t), agent2, "#1")
			r.say(agent2, "/pass")
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, HandoffConfig{})
			if tt.setup != nil {
				tt.setup(r)
			}
			r.say("sip:alice@x", "human")
			if tt.act != nil {
				tt.act(r)
			}
			if tt.second != "" {
				r.d.wait(t, testCtx(t), tt.second, "#1 alice")
				return
			}
			r.d.wait(t, testCtx(t), "sip:alice@x", "nobody is available", "ticket #1001")
		})
	}
}

// TestHandoffQueue: an agent holds Max conversations; the next user waits in line and gets
// the agent when one ends.
func TestHandoffQueue(t *testing.T) {
	r := newRig(t, HandoffConfig{Agents: []Agent{{URI: agent1, Name: "Ann", Max: 2}}})
	for _, u := range []string{"u1", "u2", "u3"} {
		r.say("sip:"+u+"@x", "agent")
	}
	ctx := testCtx(t)
	r.d.wait(t, ctx, agent1, "#1 u1")
	r.d.wait(t, ctx, agent1, "#2 u2")
	if got := r.d.texts(agent1); len(got) != 2 {
		t.Fatalf("agent got %d offers, want 2 (Max): %q", len(got), got)
	}
	r.say(agent1, "/accept 2")
	r.say(agent1, "/accept 1")
	// Addressed messages go to the right user; plain text to the current one.
	r.say(agent1, "#2 for u2")
	r.say(agent1, "also for u2")
	r.say(agent1, "#1 for u1")
	r.d.wait(t, ctx, "sip:u2@x", "Ann: for u2")
	r.d.wait(t, ctx, "sip:u2@x", "Ann: also for u2")
	r.d.wait(t, ctx, "sip:u1@x", "Ann: for u1")
	if slices.ContainsFunc(r.d.texts("sip:u1@x"), func(s string) bool { return strings.Contains(s, "for u2") }) {
		t.Error("a message for u2 reached u1")
	}
	expect(t, "done 2", r.say(agent1, "/done 2"), "Conversation #2 with u2 ended")
	r.d.wait(t, ctx, agent1, "#3 u3") // u3 gets the free slot
	expect(t, "u3 still waits", r.say("sip:u3@x", "agent?"), "still looking")
}

func TestHandoffNoMatchLimit(t *testing.T) {
	r := newRig(t, HandoffConfig{NoMatchLimit: 2, Triggers: []string{}})
	const u = "sip:alice@x"
	expect(t, "1st", r.say(u, "???"), "Sorry?")
	expect(t, "matched resets", r.say(u, "hello"), "echo: hello")
	expect(t, "1st again", r.say(u, "???"), "Sorry?")
	expect(t, "2nd", r.say(u, "???"), "Sorry?", "find a person")
	r.d.wait(t, testCtx(t), agent1, "#1 alice")
	// With no triggers, "agent" is an ordinary message.
	r2 := newRig(t, HandoffConfig{Triggers: []string{}})
	expect(t, "no triggers", r2.say(u, "agent"), "echo: agent")
}

func TestHandoffUserLeaves(t *testing.T) {
	r := newRig(t, HandoffConfig{})
	r.say("sip:alice@x", "agent")
	r.say(agent1, "/accept")
	r.event("sip:alice@x", &bot.Event{Kind: bot.EventSessionEnd, Reason: bot.EndByPeer})
	r.d.wait(t, testCtx(t), agent1, "#1 alice left the conversation")
	if l := r.h.List(); len(l) != 0 {
		t.Errorf("handoff still open: %+v", l)
	}
}

// An idle or shut-down user session does not end the handoff: the user is in page mode and
// the agent still talks to them.
func TestHandoffUserIdleKeeps(t *testing.T) {
	r := newRig(t, HandoffConfig{})
	r.say("sip:alice@x", "agent")
	r.say(agent1, "/accept")
	expect(t, "idle is silent", r.event("sip:alice@x", &bot.Event{Kind: bot.EventIdle}))
	r.event("sip:alice@x", &bot.Event{Kind: bot.EventSessionEnd, Reason: bot.EndIdle})
	if l := r.h.List(); len(l) != 1 {
		t.Errorf("handoff ended on idle: %+v", l)
	}
}

func TestHandoffAgentCommandsWhenIdle(t *testing.T) {
	r := newRig(t, HandoffConfig{})
	tests := []struct{ text, want string }{
		{"/done", "no open conversation"},
		{"/accept", "no conversation waiting"},
		{"/pass 3", "no conversation waiting for you with number #3"},
		{"/list", "no conversations"},
		{"/whatever", "echo: /whatever"}, // not busy: the bot answers
		{"hello", "echo: hello"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			expect(t, tt.text, r.say(agent1, tt.text), tt.want)
		})
	}
	r.say("sip:alice@x", "agent")
	r.say(agent1, "/accept")
	expect(t, "unknown command while busy", r.say(agent1, "/whatever"), "Commands:")
}

func TestHandoffHandler(t *testing.T) {
	r := newRig(t, HandoffConfig{Triggers: []string{}})
	w := bottest.NewRecorder()
	ctx := context.Background()
	ev := msg("please escalate")
	ev.Session = r.conv("sip:alice@x")
	if err := r.h.Handler().Handle(ctx, w, ev); err != nil {
		t.Fatal(err)
	}
	expect(t, "handler", w.Replies(), "find a person")
	r.d.wait(t, testCtx(t), agent1, "#1 alice", "please escalate")
	if a := w.Answerers(); !slices.Equal(a, []string{"handoff"}) {
		t.Errorf("answerer = %q", a)
	}
	// The handler is a no-op for agents.
	w2 := bottest.NewRecorder()
	ev = msg("x")
	ev.Session = r.conv(agent2)
	if err := r.h.Handler().Handle(context.Background(), w2, ev); err != nil || w2.Replied() != 0 {
		t.Errorf("handler for an agent: %v %q", err, w2.Replies())
	}
}

func TestHandoffTriggers(t *testing.T) {
	h, err := NewHandoff(HandoffConfig{Dialer: newFakeDialer(), Agents: []Agent{{URI: agent1}},
		Triggers: []string{"agent", "talk to a person"}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	tests := map[string]bool{
		"agent":                      true,
		"AGENT!":                     true,
		"I need an agent, please":    true,
		"Can I talk to a person?":    true,
		"talk to a  PERSON":          true,
		"agents":                     false,
		"user-agent string":          true, // "user agent": two words
		"reagent":                    false,
		"talk to a":                  false,
		"I'd like to talk, a person": false,
	}
	for text, want := range tests {
		t.Run(text, func(t *testing.T) {
			if got := h.triggered(text); got != want {
				t.Errorf("triggered(%q) = %v, want %v", text, got, want)
			}
		})
	}
}

func TestNewHandoffErrors(t *testing.T) {
	tests := map[string]HandoffConfig{
		"no dialer":    {Agents: []Agent{{URI: agent1}}},
		"no agents":    {Dialer: newFakeDialer()},
		"bad agent":    {Dialer: newFakeDialer(), Agents: []Agent{{URI: "not an address"}}},
		"domain agent": {Dialer: newFakeDialer(), Agents: []Agent{{URI: "example.com"}}},
		"agent twice":  {Dialer: newFakeDialer(), Agents: []Agent{{URI: agent1}, {URI: "sip:agent1@X"}}},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			if h, err := NewHandoff(cfg); err == nil {
				h.Close()
				t.Error("NewHandoff succeeded")
			}
		})
	}
}

// TestHandoffConcurrent: many users ask at once; every one gets an agent or a ticket, and no
// agent ever holds more than Max.
func TestHandoffConcurrent(t *testing.T) {
	r := newRig(t, HandoffConfig{Agents: []Agent{{URI: agent1, Max: 3}, {URI: agent2, Max: 2}}})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.say(fmt.Sprintf("sip:u%d@x", i), "agent")
		}()
	}
	wg.Wait()
	r.h.mu.Lock()
	for _, a := range r.h.agents {
		if a.load() > a.Max {
			t.Errorf("%s holds %d > %d", a.URI, a.load(), a.Max)
		}
	}
	queued := len(r.h.queue)
	r.h.mu.Unlock()
	if queued != 15 {
		t.Errorf("%d users in line, want 15", queued)
	}
	if n := len(r.h.List()); n != 20 {
		t.Errorf("%d handoffs open, want 20", n)
	}
}

// TestHandoffUnverifiedAgent: a sender that claims an agent's address without being verified
// gets one answer saying so, and nothing of the agent's powers: no pending text of the user,
// no command takes effect, nothing is relayed to the user, and its words are not kept as an
// unmatched question. The real agent is unaffected.
func TestHandoffUnverifiedAgent(t *testing.T) {
	const (
		alice  = "sip:alice@x"
		secret = "my password is hunter2"
		refuse = "I cannot verify that you are Ann: agents must write through the trusted proxy or sign in."
	)
	commands := []string{"/list", "/accept", "/accept 1", "/pass", "/pass 1", "/done", "/done 1",
		"/invite sip:carol@x", "hello alice", "#1 hello alice", "???"}
	for _, accepted := range []bool{false, true} {
		for _, cmd := range commands {
			t.Run(fmt.Sprintf("accepted=%v/%s", accepted, cmd), func(t *testing.T) {
				ctx := testCtx(t)
				r := newRig(t, HandoffConfig{})
				r.say(alice, "agent")
				r.d.wait(t, ctx, agent1, "#1 alice")
				r.say(alice, secret)
				if accepted {
					expect(t, "accept", r.say(agent1, "/accept"), "You are now talking with alice", "#1 alice: "+secret)
				}
				toAlice, toAnn, toBob := r.d.texts(alice), r.d.texts(agent1), r.d.texts(agent2)

				expect(t, "impostor", r.forge(agent1, cmd), refuse)

				if got := r.d.texts(alice); !slices.Equal(got, toAlice) {
					t.Errorf("the user got %q after the impostor wrote", got[len(toAlice):])
				}
				if got := r.d.texts(agent1); !slices.Equal(got, toAnn) {
					t.Errorf("the agent got %q after the impostor wrote", got[len(toAnn):])
				}
				if got := r.d.texts(agent2); !slices.Equal(got, toBob) {
					t.Errorf("the other agent got %q after the impostor wrote", got[len(toBob):])
				}
				if l := r.h.List(); len(l) != 1 || l[0].Agent != agent1 || l[0].Accepted != accepted {
					t.Errorf("handoffs after the impostor wrote: %+v", l)
				}
				if u, _ := r.mem.Unmatched(context.Background(), 0); len(u) != 0 {
					t.Errorf("the impostor's words were kept as unmatched: %+v", u)
				}
				warned := slices.ContainsFunc(r.logs.lines(), func(l map[string]any) bool {
					return l["level"] == "WARN" && strings.Contains(fmt.Sprint(l["msg"]), "unverified sender claims an agent's address") &&
						l["agent"] == agent1
				})
				if !warned {
					t.Errorf("no warning logged: %+v", r.logs.lines())
				}

				// The real agent goes on.
				if accepted {
					r.say(agent1, "still there?")
					r.d.wait(t, ctx, alice, "Ann: still there?")
				} else {
					expect(t, "real accept", r.say(agent1, "/accept"), "You are now talking with alice", "#1 alice: "+secret)
				}
			})
		}
	}
}

// TestHandoffUnverifiedAgentOtherEvents: the impostor's other events get no answer and go no
// further.
func TestHandoffUnverifiedAgentOtherEvents(t *testing.T) {
	r := newRig(t, HandoffConfig{})
	for _, kind := range []bot.EventKind{bot.EventSessionStart, bot.EventTyping, bot.EventIdle, bot.EventSessionEnd} {
		c := &rigConv{d: r.d, Conversation: bottest.NewConversation(bottest.WithPeer(agent1))}
		if got := r.handle(c.Event(kind, "")); len(got) != 0 {
			t.Errorf("%v: replies %q", kind, got)
		}
	}
}

// TestHandoffUserVerification: the agent sees whether the user is verified, and what it
// writes reaches the user inside the conversation the user wrote from (an IM session stays
// one); once that conversation has ended, a verified user gets it at its address, an
// unverified one not at all.
func TestHandoffUserVerification(t *testing.T) {
	const alice = "sip:alice@x"
	tests := []struct {
		name     string
		verified bool
		ended    bool   // the user's conversation ends before the agent writes
		offer    string // what the offer must say
		dialed   bool   // the agent's words go to the user's address
		inConv   bool   // the agent's words go through the user's conversation
	}{
		{"verified", true, false, "#1 alice (sip:alice@x) is waiting", false, true},
		{"unverified", false, false, "#1 alice (sip:alice@x, not verified) is waiting", false, true},
		{"verified, conversation ended", true, true, "#1 alice (sip:alice@x) is waiting", true, false},
		{"unverified, conversation ended", false, true, "#1 alice (sip:alice@x, not verified) is waiting", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			r := newRig(t, HandoffConfig{})
			if tt.verified {
				r.verify(alice)
			}
			r.say(alice, "agent")
			r.d.wait(t, ctx, agent1, tt.offer)
			r.say(agent1, "/accept")
			if tt.ended {
				r.conv(alice).End()
			}
			r.say(agent1, "hello from Ann")
			if tt.dialed || tt.inConv {
				r.d.wait(t, ctx, alice, "Ann: hello from Ann")
			}
			if got := r.d.dialCount(alice) > 0; got != tt.dialed {
				t.Errorf("messages dialed to the user's address: %v, want %v", got, tt.dialed)
			}
			if sent := r.conv(alice).Sent(); tt.inConv != slices.Contains(sent, "Ann: hello from Ann") {
				t.Errorf("sent through the user's conversation: %q", sent)
			}
		})
	}
}
