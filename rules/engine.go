package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/store"
)

// Engine runs a rule set: it matches events against the rules and says what to answer. It
// plugs into the bot chain with Middleware, which carries out what the rules decide; without
// SIP, the chat shell and conversation tests (package ruleshell) call that same Middleware
// with a bottest.Recorder, and Process says what the rules decide without carrying it out. An Engine is safe for concurrent use; Reload swaps its rule set
// atomically while events are being handled.
type Engine struct {
	opts  Options
	files []string
	rs    atomic.Pointer[RuleSet]
	log   *slog.Logger
	store store.StateStore

	reloadMu sync.Mutex
	stats    struct {
		reloads, reloadErrors, events, noMatch atomic.Uint64
		lastErr                                atomic.Pointer[error]
		loaded                                 atomic.Int64
	}
	stamps []fileStamp // guarded by reloadMu
}

// New loads the rule files and returns an engine serving them. The error is an ErrorList
// when the files have problems.
func New(opts Options, files ...string) (*Engine, error) {
	rs, err := Load(opts, files...)
	if err != nil {
		return nil, err
	}
	e := &Engine{opts: opts, files: slices.Clone(files), log: opts.logger(), store: opts.Store}
	if e.store == nil {
		e.store = &store.Memory{}
	}
	e.rs.Store(rs)
	e.stats.loaded.Store(time.Now().UnixNano())
	e.stamps = stampFiles(opts.FS, rs.files)
	e.logWarnings(rs)
	return e, nil
}

// Rules returns the rule set in use.
func (e *Engine) Rules() *RuleSet { return e.rs.Load() }

// Now returns the time by the engine's clock: Options.Now, or the time. The chat shell times
// its events with it.
func (e *Engine) Now() time.Time { return e.opts.clock() }

// Store returns the store conversations are kept in.
func (e *Engine) Store() store.StateStore { return e.store }

// Input is one event as the engine sees it, without SIP: what Middleware builds from a
// bot.Event, and what callers of Process build by hand.
type Input struct {
	// Kind is the kind of event; zero means bot.EventMessage.
	Kind bot.EventKind
	// Text is the message text.
	Text string
	// Typing is the peer's typing state (bot.EventTyping).
	Typing bool
	// Key is the conversation key under which state and variables are stored.
	Key string
	// SessionID identifies the session (session.id in expressions).
	SessionID string
	// Mode is the conversation's dialect.
	Mode bot.Mode
	// Peer is who wrote.
	Peer bot.Peer
	// Turns is how many messages the peer has sent, this one included.
	Turns int
	// Started is when the session started.
	Started time.Time
	// Time is when the event happened; zero means now.
	Time time.Time
}

// Message is one reply to send.
type Message struct {
	// Text is the message.
	Text string
	// Typing is how long to show typing before sending it (0: send at once).
	Typing time.Duration
}

// Step is what one matching rule does, in order: its messages, then its Go handler.
type Step struct {
	// Rule is the name of the rule.
	Rule string
	// Messages are its replies, in order.
	Messages []Message
	// Handler names the Go handler to hand the event to after the messages, if any.
	Handler string
	// Invite is the address the rule brings into the conversation (`invite:`) after the
	// messages, through Options.Invite; "" for none.
	Invite string
	// Fallback reports a `fallback: true` rule: it answered because nothing else did.
	Fallback bool
	// Info is what the rule saw; it goes into the handler's context.
	Info *Info
}

// Outcome is what the engine decided for one event.
type Outcome struct {
	// Steps are the rules that fired, in order. A rule with `continue: true` lets the next
	// matching rule fire too.
	Steps []Step
	why   []whyEntry
	ev    bot.EventKind
	st    string
	// Conversation is the conversation after the event.
	Conversation store.ConversationState
	// Changed reports whether the conversation must be saved.
	Changed bool
	// End asks to close the session after replying.
	End bool
	// Pass says that no rule answered (or the last one had `continue: true`): the event goes
	// on to the next handler.
	Pass bool
}

// whyEntry records one rule the engine considered.
type whyEntry struct {
	r     *rule
	how   string // pattern source, regex source, or "" for other triggers
	regex bool
	when  bool // 'when' was evaluated and true
	no    bool // the trigger matched but 'when' was false
}

// Why explains the decision, one line per rule considered, for /why and logs.
func (o *Outcome) Why() []string {
	var out []string
	for _, w := range o.why {
		r := w.r
		var how string
		switch {
		case w.how != "" && w.regex:
			how = fmt.Sprintf("regex %q", w.how)
		case w.how != "":
			how = fmt.Sprintf("pattern %q", w.how)
		}
		switch {
		case w.no:
			how += " matched, but 'when' was false"
		case w.when && how != "":
			how += " and 'when'"
		case w.when:
			how = "'when'"
		case how != "":
		case r.fallback:
			how = "fallback"
		case r.kind != bot.EventMessage:
			how = "on: " + r.kind.String()
		default:
			how = "any message in this state"
		}
		out = append(out, fmt.Sprintf("rule '%s' (%s): %s", r.name, r.pos.short(), how))
	}
	if len(o.Steps) == 0 {
		out = append(out, fmt.Sprintf("no rule answered this %s in state '%s'", o.ev, stateName(o.st)))
	}
	if o.ev == bot.EventIdle && o.st != "" {
		out = append(out, "idle: state reset to 'start'")
	}
	return out
}

// Replies returns every message of the outcome, in order.
func (o *Outcome) Replies() []Message {
	var out []Message
	for _, s := range o.Steps {
		out = append(out, s.Messages...)
	}
	return out
}

// Rule returns the name of the first rule that fired, or "".
func (o *Outcome) Rule() string {
	if len(o.Steps) == 0 {
		return ""
	}
	return o.Steps[0].Rule
}

// Process matches one event against the rules and returns what to do, given the
// conversation as it was before the event. It runs `call:` functions, but sends nothing,
// saves nothing and runs no handler: Middleware carries outcomes out.
func (e *Engine) Process(ctx context.Context, in Input, conv store.ConversationState) (*Outcome, error) {
	return e.rs.Load().process(ctx, &e.opts, in, conv)
}

// pickKey is where pick: cycle keeps its counters in a conversation's variables.
const pickKey = "_pick"

type scratch struct {
	toks  []token
	cands []int32
	canon []byte // the message in canonical case, for the regex literals
}

var scratchPool = sync.Pool{New: func() any { return &scratch{toks: make([]token, 0, 32), cands: make([]int32, 0, 64)} }}

func (rs *RuleSet) process(ctx context.Context, opts *Options, in Input, conv store.ConversationState) (*Outcome, error) {
	if in.Kind == 0 {
		in.Kind = bot.EventMessage
	}
	now := in.Time
	if now.IsZero() {
		if opts.Now != nil {
			now = opts.Now()
		} else {
			now = time.Now()
		}
	}
	if opts.Location != nil {
		now = now.In(opts.Location)
	}
	out := &Outcome{Conversation: conv, Pass: true, ev: in.Kind, st: conv.State}
	p := &proc{rs: rs, opts: opts, in: &in, out: out, now: now, ctx: ctx, state: conv.State, lim: opts.Limits.withDefaults()}

	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	stopped := false
	if in.Kind == bot.EventMessage {
		sc.toks = tokenize(in.Text, sc.toks[:0])
		p.toks = sc.toks
		sc.cands, sc.canon = rs.candidates(in.Text, sc.toks, sc.cands[:0], sc.canon[:0])
		var err error
		stopped, err = p.try(sc.cands, rs.alwaysIn(conv.State), inState)
		if err != nil {
			return nil, err
		}
		if !stopped {
			// Fallbacks of the current state first, then global ones.
			if stopped, err = p.try(rs.fallback, nil, namedState); err != nil {
				return nil, err
			}
			if !stopped {
				if stopped, err = p.try(rs.fallback, nil, everyState); err != nil {
					return nil, err
				}
			}
		}
	} else {
		var err error
		if stopped, err = p.try(rs.byKind[in.Kind], nil, inState); err != nil {
			return nil, err
		}
	}
	out.Pass = !stopped
	if in.Kind == bot.EventIdle && out.Conversation.State != "" {
		// An idle timeout ends whatever flow was going on.
		out.Conversation.State = ""
		out.Changed = true
	}
	if out.Changed {
		// The state was loaded with the time of its last save: this save is now.
		out.Conversation.Updated = now
	}
	return out, nil
}

// candidates returns the ranks of the indexed rules the message may match, sorted: those
// with a pattern anchored on one of its words, and those with a regex one of whose literals
// it contains. canon is a buffer for the message in canonical case.
func (rs *RuleSet) candidates(text string, toks []token, buf []int32, canon []byte) ([]int32, []byte) {
	for _, t := range toks {
		buf = append(buf, rs.index[t.norm]...)
	}
	if rs.lits != nil {
		canon = canonText(canon, text)
		buf = rs.lits.find(canon, buf)
	}
	if len(buf) > 1 {
		slices.Sort(buf)
		buf = slices.Compact(buf)
	}
	return buf, canon
}

// proc is the work on one event.
type proc struct {
	rs     *RuleSet
	opts   *Options
	in     *Input
	out    *Outcome
	now    time.Time
	ctx    context.Context
	state  string // state before the event
	toks   []token
	env    *exprEnv
	info   *Info
	merged map[string]any // constants and variables, nil until needed or after a set
	own    bool           // out.Conversation.Vars is our copy

	lim        Limits        // with defaults
	replies    int           // messages of the steps so far
	replyBytes int           // and their text
	autoTyped  time.Duration // typing: auto given to the messages so far
}

// typingFor is how long typing shows before text: the rule's fixed delay, or for typing: auto
// the pace of the text, capped so that the automatic typing of one answer, all its messages
// together, lasts at most Options.AutoTypingMax.
func (p *proc) typingFor(t *typingSpec, text string) time.Duration {
	d := t.delay(text)
	if t == nil || !t.auto {
		return d
	}
	limit := p.opts.AutoTypingMax
	if limit <= 0 {
		limit = DefaultAutoTypingMax
	}
	d = max(min(d, limit-p.autoTyped), 0)
	p.autoTyped += d
	return d
}

// Which rules of a list apply, by their states.
const (
	inState    = iota // rules that apply in the current state
	namedState        // rules that name the current state (not '*')
	everyState        // rules with state '*'
)

// try runs the rules of two sorted rank lists, merged, until one stops.
func (p *proc) try(a, b []int32, which int) (bool, error) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var rank int32
		switch {
		case j >= len(b) || i < len(a) && a[i] < b[j]:
			rank = a[i]
			i++
		case i >= len(a) || b[j] < a[i]:
			rank = b[j]
			j++
		default:
			rank = a[i]
			i++
			j++
		}
		r := p.rs.rules[rank]
		switch which {
		case inState:
			if !r.anyState && !slices.Contains(r.states, p.state) {
				continue
			}
		case namedState:
			if r.anyState || !slices.Contains(r.states, p.state) {
				continue
			}
		case everyState:
			if !r.anyState {
				continue
			}
		}
		fired, err := p.rule(r)
		if err != nil {
			return false, fmt.Errorf("rule '%s' (%s): %w", r.name, r.pos.short(), err)
		}
		if fired && !r.cont {
			return true, nil
		}
	}
	return false, nil
}

// rule tries one rule and fires it when it matches. Each pattern (then each regex) that
// matches is checked against 'when' with its own captures, until one passes.
func (p *proc) rule(r *rule) (bool, error) {
	if !r.trigger {
		return p.attempt(r, nil, whyEntry{r: r})
	}
	var at [maxPatternElems + 1]int32
	for i := range r.pats {
		pt := &r.pats[i]
		if !pt.flat.match(p.toks, at[:]) {
			continue
		}
		var caps map[string]string
		if len(pt.flat.caps) > 0 {
			caps = make(map[string]string, len(pt.flat.caps))
			pt.flat.captures(p.in.Text, p.toks, at[:], caps)
		}
		if ok, err := p.attempt(r, caps, whyEntry{r: r, how: pt.src}); ok || err != nil {
			return ok, err
		}
	}
	for _, re := range r.res {
		m := re.get().FindStringSubmatchIndex(p.in.Text)
		if m == nil {
			continue
		}
		caps := map[string]string{}
		for k, name := range re.names {
			if k == 0 {
				continue
			}
			if name == "" {
				name = "group" + strconv.Itoa(k)
			}
			if m[2*k] >= 0 {
				caps[name] = p.in.Text[m[2*k]:m[2*k+1]]
			} else {
				caps[name] = ""
			}
		}
		if ok, err := p.attempt(r, caps, whyEntry{r: r, how: re.full[4:], regex: true}); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

// attempt checks a matched rule's condition and fires it.
func (p *proc) attempt(r *rule, caps map[string]string, w whyEntry) (bool, error) {
	var env *exprEnv
	if r.when != nil {
		env = p.environment(r, caps)
		v, err := run(r.when, env)
		if err != nil {
			return false, fmt.Errorf("when: %w", err)
		}
		if b, _ := v.(bool); !b {
			if w.how != "" {
				w.no = true
				p.out.why = append(p.out.why, w)
			}
			return false, nil
		}
		w.when = true
	}
	p.out.why = append(p.out.why, w)
	if env == nil && r.needsEnv {
		env = p.environment(r, caps)
	}
	return true, p.fire(r, env, caps)
}

// environment prepares what expressions see for rule r.
func (p *proc) environment(r *rule, caps map[string]string) *exprEnv {
	if p.env == nil {
		in := p.in
		p.env = &exprEnv{
			Text:    in.Text,
			Sender:  senderOf(in.Peer),
			Session: sessionEnv{ID: in.SessionID, Mode: in.Mode.String(), Turns: in.Turns, Started: in.Started},
			State:   stateName(p.state),
			Now:     p.now,
			Event:   in.Kind.String(),
			Typing:  in.Typing,
		}
		if p.env.Session.Mode == "unknown" {
			p.env.Session.Mode = ""
		}
		b := &budget{lim: p.lim, ctx: p.ctx}
		p.info = &Info{Event: in.Kind, Text: in.Text, State: stateName(p.state), Sender: in.Peer, Key: in.Key, Now: p.now, budget: b}
		p.env.Ctx = context.WithValue(p.ctx, infoKey{}, p.info)
		p.env.budget = b
		p.env.Step = b.stepOrPanic
	}
	p.env.Match = caps
	p.env.Result = nil
	if p.merged == nil {
		p.merged = p.mergedVars()
	}
	p.env.Vars = p.merged
	p.info.Rule, p.info.Match, p.info.Vars = r.name, caps, p.out.Conversation.Vars
	return p.env
}

// mergedVars returns the file's constants overlaid with the conversation's variables.
func (p *proc) mergedVars() map[string]any {
	cv := p.out.Conversation.Vars
	if len(p.rs.consts) == 0 {
		if cv == nil {
			return map[string]any{}
		}
		return cv
	}
	if len(cv) == 0 {
		return p.rs.consts
	}
	m := maps.Clone(p.rs.consts)
	maps.Copy(m, cv)
	return m
}

// fire runs a matching rule's actions: call, set, goto, replies, handler, end.
func (p *proc) fire(r *rule, env *exprEnv, caps map[string]string) error {
	if r.call != nil {
		res, err := run(r.call, env)
		if err != nil {
			return fmt.Errorf("call: %w", err)
		}
		env.Result = res
	}
	conv := &p.out.Conversation
	if len(r.set) > 0 {
		vals := make([]any, len(r.set))
		for i, s := range r.set {
			switch {
			case s.del:
			case s.isLit:
				vals[i] = s.lit
			default:
				v, err := s.tmpl.value(env)
				if err != nil {
					return fmt.Errorf("set %s: %w", s.name, err)
				}
				vals[i] = storable(v)
			}
		}
		p.writable()
		for i, s := range r.set {
			if s.del {
				delete(conv.Vars, s.name)
			} else {
				conv.Vars[s.name] = vals[i]
			}
		}
		p.out.Changed = true
		p.merged = p.mergedVars()
		env.Vars = p.merged
		p.info.Vars = conv.Vars
	}
	if r.hasGoto {
		if conv.State != r.goTo {
			conv.State = r.goTo
			p.out.Changed = true
		}
		if env != nil {
			env.State = stateName(r.goTo)
		}
	}
	step := Step{Rule: r.name, Handler: r.handler, Fallback: r.fallback}
	if r.handler != "" {
		if p.info == nil {
			p.environment(r, caps)
		}
		info := *p.info
		step.Info = &info
	}
	for mi, alts := range r.msgs {
		if len(alts) == 0 {
			continue
		}
		t := alts[0]
		if len(alts) > 1 {
			t = alts[p.pick(r, mi, len(alts))]
		}
		text, err := t.render(env)
		if err != nil {
			return fmt.Errorf("reply: %w", err)
		}
		if err := p.countReply(text); err != nil {
			return fmt.Errorf("reply: %w", err)
		}
		step.Messages = append(step.Messages, Message{Text: text, Typing: p.typingFor(r.typing, text)})
	}
	if r.invite != nil {
		to, err := r.invite.render(env)
		if err != nil {
			return fmt.Errorf("invite: %w", err)
		}
		step.Invite = strings.TrimSpace(to)
	}
	p.out.Steps = append(p.out.Steps, step)
	if r.end {
		p.out.End = true
	}
	return nil
}

// countReply counts a message against Limits.Replies and Limits.ReplyBytes: over either,
// the event fails and nothing is sent, rather than a flood of messages or a cut answer.
func (p *proc) countReply(text string) error {
	p.replies++
	p.replyBytes += len(text)
	if p.replies > p.lim.Replies {
		return &LimitError{Limit: "Replies", Msg: fmt.Sprintf("the rules would send more than %d messages for this event (Limits.Replies)", p.lim.Replies)}
	}
	if p.replyBytes > p.lim.ReplyBytes {
		return &LimitError{Limit: "ReplyBytes", Msg: fmt.Sprintf("the replies to this event would hold %d bytes of text; the limit is %d (Limits.ReplyBytes)", p.replyBytes, p.lim.ReplyBytes)}
	}
	return nil
}

// writable makes the conversation's variables our own copy.
func (p *proc) writable() {
	if !p.own {
		p.out.Conversation.Vars = maps.Clone(p.out.Conversation.Vars)
		if p.out.Conversation.Vars == nil {
			p.out.Conversation.Vars = map[string]any{}
		}
		p.own = true
	}
}

// pick chooses among n alternatives of message mi of rule r.
func (p *proc) pick(r *rule, mi, n int) int {
	if r.pick == pickRandom {
		if p.opts.Rand != nil {
			return p.opts.Rand(n) % n
		}
		return rand.IntN(n)
	}
	key := fmt.Sprintf("%s#%d", r.name, mi)
	p.writable()
	counters, _ := p.out.Conversation.Vars[pickKey].(map[string]any)
	counters = maps.Clone(counters)
	if counters == nil {
		counters = map[string]any{}
	}
	i := toInt(counters[key])
	counters[key] = (i + 1) % n
	p.out.Conversation.Vars[pickKey] = counters
	p.out.Changed = true
	return i % n
}

func toInt(v any) int {
	switch x := v.(type) {
	case int:
		return x
	case int64:
		return int(x)
	case float64:
		return int(x)
	}
	return 0
}

// storable keeps values a Store can encode; others become their text.
func storable(v any) any {
	switch x := v.(type) {
	case nil, string, bool, int, int64, float64, []any, map[string]any:
		return v
	case int32:
		return int(x)
	case float32:
		return float64(x)
	case uint, uint64, uint32:
		return fmt.Sprint(x)
	}
	return format(v)
}

// ErrNoRules is returned by Reload when the engine was not created from files.
var ErrNoRules = errors.New("rules: no rule files to reload")
