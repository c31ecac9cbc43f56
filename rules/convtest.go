package rules

import (
	"context"
	"fmt"
	"io"
	fsys "io/fs"
	"log/slog"
	"math/rand/v2"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/store"
)

// Conversation tests are YAML files (by convention *_test.yaml next to the rules) that play
// a conversation against the rules, with no network, and check what the bot did:
//
//	version: 1
//	rules: [helpdesk.yaml]          # the rule files under test, relative to this file
//	now: "2025-03-03T10:00:00+01:00" # optional: the clock for every test (RFC 3339)
//	stubs:                          # optional: results of functions the rules call
//	  accounts.reset: ok
//	tests:
//	  - name: resets a password
//	    sender: {user: alice, name: Alice}   # also uri, domain, verified; mode: page|session
//	    steps:
//	      - event: session.start
//	        bot: "Hi Alice!*"                # wildcard pattern? no: exact unless a mapping
//	      - user: I forgot my password
//	        bot: "I can help with that. What is your username?"
//	        typing: 800ms                    # or true / false
//	        state: ask-username
//	      - user: alice
//	        bot: {match: "done *"}           # wildcard, like the rules' match
//	        vars: {username: alice}          # only the variables listed are compared
//	        rule: username
//
// A step has `user: text` or `event: session.start|session.end|idle|typing`, and checks any
// of: `bot` (a string is an exact reply; a mapping with match, regex, contains or one_of
// checks by pattern; a list checks several replies in order; [] or none checks that the bot
// said nothing), `typing` (typing shown before the first reply: true, false or the exact
// duration), `state`, `vars`, `rule` (the rule that answered; none when no rule did), `end`
// (the rule closed the session) and `pass` (the event went on to the Go handlers).

var (
	testFileKeys = []string{"version", "rules", "now", "stubs", "tests"}
	testKeys     = []string{"name", "sender", "mode", "now", "state", "vars", "steps", "skip"}
	stepKeys     = []string{"user", "event", "bot", "typing", "state", "vars", "rule", "end", "pass", "wait"}
	expectKeys   = []string{"exact", "match", "regex", "contains", "one_of"}
)

// TestResult is the result of one conversation test.
type TestResult struct {
	// File is the test file and Name the test's name.
	File, Name string
	// Line is where the test starts.
	Line int
	// Failures say what went wrong, each with its file:line; empty when the test passed.
	Failures []string
	// Skipped is true for a test with `skip: true`.
	Skipped bool
	// Elapsed is how long the test took.
	Elapsed time.Duration
}

// Passed reports whether the test passed (or was skipped).
func (r TestResult) Passed() bool { return len(r.Failures) == 0 }

// convTest is one parsed test.
type convTest struct {
	name  string
	line  int
	peer  bot.Peer
	mode  bot.Mode
	now   time.Time
	state string
	vars  map[string]any
	steps []*testStep
	skip  bool
}

type testStep struct {
	line   int
	user   *string
	event  bot.EventKind
	wait   time.Duration
	bot    []expectMsg
	botSet bool
	typing *yaml.Node
	state  *string
	vars   map[string]any
	rule   *string
	end    *bool
	pass   *bool
}

type expectMsg struct {
	kind string // exact, match, regex, contains, one_of
	text string
	alts []string
	pat  []flatPattern
	re   *regexp.Regexp
}

type testFile struct {
	path  string
	rules []string
	now   time.Time
	stubs map[string]any
	tests []*convTest
}

// RunTestFiles runs the conversation tests of each file. opts supplies Go functions and
// handlers the rules need (stubs in the file override functions of the same name); its FS,
// if set, is where test and rule files are read; its Now, if set, gives the time of the
// tests that set none (neither the test nor its file has `now`). The error reports test or rule files that
// do not load (an ErrorList with positions); tests of the other files still run.
func RunTestFiles(opts Options, files ...string) ([]TestResult, error) {
	var results []TestResult
	var all ErrorList
	for _, f := range files {
		res, err := runTestFile(opts, f)
		results = append(results, res...)
		if err != nil {
			for _, x := range Errors(err) {
				if e, ok := x.(*Error); ok {
					all = append(all, e)
				} else {
					all = append(all, &Error{File: f, Msg: x.Error()})
				}
			}
		}
	}
	if len(all) > 0 {
		return results, all
	}
	return results, nil
}

// CheckTestFile checks a conversation test file without running its tests: its keys and
// values, and the rule files it names, loaded as its tests run them (with its stubs, and
// knowing the variables its tests start with). It returns every problem found, one error
// each, warnings included (an *Error with Warning set), or nil. It is what `imbot check`
// runs on a test file.
func CheckTestFile(opts Options, name string) []error {
	tf, o, err := loadTestFile(opts, name)
	if err != nil {
		return Errors(err)
	}
	rs, err := Load(o, tf.rules...)
	if err != nil {
		return Errors(err)
	}
	return rs.Warnings()
}

// loadTestFile parses a test file; it returns the options its rules load with: opts, with
// its stubs, knowing the variables its tests start with.
func loadTestFile(opts Options, name string) (*testFile, Options, error) {
	tf, err := parseTestFile(opts.FS, name)
	if err != nil {
		return nil, opts, err
	}
	if len(tf.rules) == 0 {
		return nil, opts, ErrorList{{File: name, Line: 1, Col: 1, Msg: "the test file names no rule files: add 'rules: [your-rules.yaml]'"}}
	}
	o := opts
	o.Funcs = Funcs{}
	for k, v := range opts.Funcs {
		o.Funcs[k] = v
	}
	for k, v := range tf.stubs {
		o.Funcs[k] = Stub(v)
	}
	o.testVars = slices.Clone(opts.testVars)
	for _, t := range tf.tests {
		for k := range t.vars {
			o.testVars = append(o.testVars, k)
		}
	}
	return tf, o, nil
}

// Stub returns a function that ignores its arguments and returns v: what a test file's
// `stubs:` and `imbot check --stub` and `imbot chat --stub` put in place of Go functions.
func Stub(v any) Function {
	return Function{Call: func(context.Context, ...any) (any, error) { return v, nil }}
}

// testKey is the conversation key and session ID of conversation tests.
const testKey = "test"

// testRun runs the tests of one file through the engine's Middleware, as `imbot run` would
// handle their events, with a bottest.Recorder as the Responder.
type testRun struct {
	e     *Engine
	h     bot.Handler
	now   func() time.Time // the --now of imbot test, if any
	clock time.Time        // the time of the test's events
	rng   *rand.Rand       // the test's choice of replies
	last  *Outcome         // the outcome of the event being handled, if the rules ran
}

func runTestFile(opts Options, name string) ([]TestResult, error) {
	tf, o, err := loadTestFile(opts, name)
	if err != nil {
		return nil, err
	}
	run := &testRun{now: opts.Now}
	o.Now = func() time.Time { return run.clock }
	o.Rand = func(n int) int { return run.rng.IntN(n) }
	o.Store = &store.Memory{}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler) // Check reports the warnings
	}
	run.e, err = New(o, tf.rules...)
	if err != nil {
		return nil, err
	}
	run.h = run.e.Middleware()(nil)
	var out []TestResult
	for _, t := range tf.tests {
		out = append(out, run.test(tf, t))
	}
	return out, nil
}

// testConversation is the conversation of a test: a bottest.Conversation with the test's
// sender, exactly as the test file gives it.
type testConversation struct {
	*bottest.Conversation
	peer bot.Peer
}

// Peer implements bot.Conversation.
func (c testConversation) Peer() bot.Peer { return c.peer }

// stepResult is what one step did, as the Responder and the store saw it.
type stepResult struct {
	msgs []Message
	conv store.ConversationState
	rule string
	end  bool
	pass bool
}

func (run *testRun) test(tf *testFile, t *convTest) TestResult {
	start := time.Now()
	res := TestResult{File: tf.path, Name: t.name, Line: t.line, Skipped: t.skip}
	if t.skip {
		return res
	}
	now := t.now
	if now.IsZero() {
		now = tf.now
	}
	if now.IsZero() && run.now != nil {
		now = run.now() // imbot test --now
	}
	if now.IsZero() {
		now = time.Date(2025, 3, 3, 10, 0, 0, 0, time.UTC) // a Monday morning
	}
	run.clock = now
	run.rng = rand.New(rand.NewPCG(1, uint64(t.line)))
	fail := func(line int, format string, args ...any) {
		res.Failures = append(res.Failures, fmt.Sprintf("%s:%d: %s", tf.path, line, fmt.Sprintf(format, args...)))
	}
	ctx := WithOutcome(context.Background(), func(out *Outcome) { run.last = out })
	st := run.e.Store()
	if err := st.Save(ctx, testKey, store.ConversationState{State: storedState(t.state), Vars: cloneVars(t.vars)}); err != nil {
		fail(t.line, "%v", err)
		return res
	}
	session := func() testConversation {
		c := bottest.NewConversation(bottest.WithKey(testKey), bottest.WithID(testKey), bottest.WithMode(t.mode), bottest.WithStarted(run.clock))
		return testConversation{Conversation: c, peer: t.peer}
	}
	conv := session()
	for i, step := range t.steps {
		run.clock = run.clock.Add(step.wait)
		label := fmt.Sprintf("step %d (%s)", i+1, step.event)
		text := ""
		if step.user != nil {
			text = *step.user
			label = fmt.Sprintf("step %d (user: %q)", i+1, *step.user)
		}
		ev := conv.Event(step.event, text)
		ev.Session, ev.Time = conv, run.clock
		rec := bottest.NewRecorder()
		run.last = nil
		if err := run.h.Handle(ctx, rec, ev); err != nil {
			fail(step.line, "%s: %v", label, err)
			break
		}
		r := stepResult{pass: true, end: rec.Ended()}
		if ev.Kind != bot.EventSessionEnd {
			for _, m := range rec.Messages() {
				r.msgs = append(r.msgs, Message{Text: m.Text, Typing: m.Typing})
			}
		}
		if out := run.last; out != nil {
			r.rule, r.pass = out.Rule(), out.Pass
		}
		var err error
		if r.conv, err = st.Load(ctx, testKey); err != nil {
			fail(step.line, "%s: %v", label, err)
			break
		}
		for _, f := range step.check(r) {
			fail(step.line, "%s: %s", label, f)
		}
		if r.end || ev.Kind == bot.EventSessionEnd || ev.Kind == bot.EventIdle {
			conv = session()
		}
	}
	res.Elapsed = time.Since(start)
	return res
}

func cloneVars(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// check compares what happened with what the step expects.
func (st *testStep) check(r stepResult) []string {
	msgs := r.msgs
	var f []string
	if st.botSet {
		f = append(f, checkReplies(st.bot, msgs)...)
	}
	if st.typing != nil {
		var first time.Duration
		if len(msgs) > 0 {
			first = msgs[0].Typing
		}
		switch st.typing.Tag {
		case "!!bool":
			want := st.typing.Value == "true"
			if (first > 0) != want {
				if want {
					f = append(f, "no typing was shown before the reply")
				} else {
					f = append(f, fmt.Sprintf("typing was shown for %v before the reply; want none", first))
				}
			}
		default:
			want, _ := time.ParseDuration(st.typing.Value)
			if first != want {
				f = append(f, fmt.Sprintf("typing shown for %v; want %v", first, want))
			}
		}
	}
	if st.state != nil {
		if got := stateName(r.conv.State); got != *st.state {
			f = append(f, fmt.Sprintf("state is '%s'; want '%s'", got, *st.state))
		}
	}
	keys := make([]string, 0, len(st.vars))
	for k := range st.vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		want := st.vars[k]
		got, ok := r.conv.Vars[k]
		switch {
		case want == nil && ok && got != nil:
			f = append(f, fmt.Sprintf("vars.%s is %s; want it unset", k, show(got)))
		case want != nil && !ok:
			f = append(f, fmt.Sprintf("vars.%s is unset; want %s", k, show(want)))
		case want != nil && !sameValue(got, want):
			f = append(f, fmt.Sprintf("vars.%s is %s; want %s", k, show(got), show(want)))
		}
	}
	if st.rule != nil {
		got := r.rule
		if got == "" {
			got = "none"
		}
		if got != *st.rule {
			f = append(f, fmt.Sprintf("rule '%s' answered; want '%s'", got, *st.rule))
		}
	}
	if st.end != nil && r.end != *st.end {
		f = append(f, fmt.Sprintf("end is %v; want %v", r.end, *st.end))
	}
	if st.pass != nil && r.pass != *st.pass {
		if r.pass {
			f = append(f, "the event went on to the Go handlers; want a rule to answer")
		} else {
			f = append(f, fmt.Sprintf("rule '%s' answered; want the event to go on to the Go handlers", r.rule))
		}
	}
	return f
}

func show(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v)
}

// sameValue compares values loosely: numbers by value, whatever their Go type.
func sameValue(a, b any) bool {
	if fa, ok := number(a); ok {
		fb, ok := number(b)
		return ok && fa == fb
	}
	return reflect.DeepEqual(a, b) || fmt.Sprint(a) == fmt.Sprint(b)
}

func number(v any) (float64, bool) {
	rv := reflect.ValueOf(v)
	if !rv.IsValid() || !isNumber(rv.Kind()) {
		return 0, false
	}
	return rv.Convert(reflect.TypeOf(float64(0))).Float(), true
}

func checkReplies(want []expectMsg, got []Message) []string {
	texts := make([]string, len(got))
	for i, m := range got {
		texts[i] = m.Text
	}
	if len(want) == 0 {
		if len(got) > 0 {
			return []string{fmt.Sprintf("the bot replied %s; want no reply", quoteAll(texts))}
		}
		return nil
	}
	if len(got) != len(want) {
		return []string{fmt.Sprintf("the bot replied %d message(s) %s; want %d", len(got), quoteAll(texts), len(want))}
	}
	var f []string
	for i, w := range want {
		if !w.ok(texts[i]) {
			prefix := "the bot replied"
			if len(want) > 1 {
				prefix = fmt.Sprintf("reply %d is", i+1)
			}
			f = append(f, fmt.Sprintf("%s %q; want %s", prefix, texts[i], w))
		}
	}
	return f
}

func quoteAll(s []string) string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = fmt.Sprintf("%q", x)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func (w expectMsg) ok(s string) bool {
	switch w.kind {
	case "exact":
		return s == w.text
	case "contains":
		return strings.Contains(Fold(s), Fold(w.text)) || strings.Contains(s, w.text)
	case "regex":
		return w.re.MatchString(s)
	case "one_of":
		for _, a := range w.alts {
			if a == s {
				return true
			}
		}
		return false
	case "match":
		toks := tokenize(s, nil)
		var at [maxPatternElems + 1]int32
		for i := range w.pat {
			if w.pat[i].match(toks, at[:]) {
				return true
			}
		}
	}
	return false
}

func (w expectMsg) String() string {
	switch w.kind {
	case "exact":
		return fmt.Sprintf("%q", w.text)
	case "one_of":
		return "one of " + quoteAll(w.alts)
	}
	return fmt.Sprintf("%s %q", w.kind, w.text)
}

// parseTestFile reads and checks a conversation test file.
func parseTestFile(fsFS fsys.FS, name string) (*testFile, error) {
	var data []byte
	var err error
	fs := fsFS
	data, err = readLimited(fs, name)
	if err != nil {
		return nil, ErrorList{{File: name, Msg: err.Error()}}
	}
	e := &errs{}
	root := parseYAML(name, data, e)
	if root == nil {
		return nil, e.err()
	}
	s := &src{name: name, lines: strings.Split(string(data), "\n"), e: e}
	tf := &testFile{path: name}
	doc := root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	fields := s.mapping(doc, "the test file", testFileKeys)
	if fields == nil {
		return nil, e.err()
	}
	if v, ok := fields["version"]; !ok {
		s.e.add(s.pos(doc), "the test file has no 'version': add 'version: 1' at the top")
	} else if n, ok := s.integer(v.v, "'version'", 0, 1<<30); ok && n != 1 {
		s.errf(v.v, "unsupported version %d: this imbot reads 'version: 1'", n)
	}
	if v, ok := fields["rules"]; ok {
		for _, n := range s.strs(v.v, "'rules'") {
			p := n.Value
			if fs != nil {
				if !path.IsAbs(p) {
					p = path.Join(path.Dir(name), p)
				}
			} else if !filepath.IsAbs(p) {
				p = filepath.Join(filepath.Dir(name), p)
			}
			tf.rules = append(tf.rules, p)
		}
	}
	if v, ok := fields["now"]; ok {
		tf.now = s.timestamp(v.v)
	}
	if v, ok := fields["stubs"]; ok {
		n := s.resolve(v.v)
		if n != nil && n.Kind == yaml.MappingNode {
			tf.stubs = map[string]any{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				if !validFuncName(k.Value) {
					s.errf(k, "stub name %q is not a function name", k.Value)
					continue
				}
				val, _ := s.value(n.Content[i+1], 0)
				tf.stubs[k.Value] = val
			}
		} else if n != nil {
			s.errf(n, "'stubs' must be a mapping of function: result")
		}
	}
	if v, ok := fields["tests"]; !ok {
		s.e.add(s.pos(doc), "the test file has no 'tests:' list")
	} else if n := s.resolve(v.v); n != nil {
		if n.Kind != yaml.SequenceNode {
			s.errf(n, "'tests' must be a list of tests")
		} else {
			names := map[string]int{}
			for _, tn := range n.Content {
				if t := s.convTest(tn); t != nil {
					if l, dup := names[t.name]; dup {
						s.errf(tn, "test name '%s' is already used at line %d", t.name, l)
					}
					names[t.name] = t.line
					tf.tests = append(tf.tests, t)
				}
			}
		}
	}
	if err := e.err(); err != nil {
		return nil, err
	}
	return tf, nil
}

func (s *src) timestamp(n *yaml.Node) time.Time {
	v, ok := s.str(n, "'now'")
	if !ok {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		s.errf(n, "'now' must be a time such as 2025-03-03T10:00:00+01:00 (RFC 3339), not %q", v)
	}
	return t
}

func (s *src) convTest(tn *yaml.Node) *convTest {
	tn = s.resolve(tn)
	if tn == nil {
		return nil
	}
	f := s.mapping(tn, "a test", testKeys)
	if f == nil {
		return nil
	}
	t := &convTest{line: tn.Line, mode: bot.ModePage, peer: bot.Peer{URI: "sip:tester@example.com", User: "tester", Domain: "example.com"}}
	if v, ok := f["name"]; ok {
		t.name, _ = s.str(v.v, "'name'")
	} else {
		s.errf(tn, "the test has no 'name'")
	}
	if v, ok := f["skip"]; ok {
		t.skip, _ = s.boolean(v.v, "'skip'")
	}
	if v, ok := f["sender"]; ok {
		sf := s.mapping(v.v, "'sender'", []string{"uri", "user", "domain", "name", "verified"})
		for k, x := range sf {
			if k == "verified" {
				t.peer.Verified, _ = s.boolean(x.v, "'verified'")
				continue
			}
			val, _ := s.str(x.v, "'"+k+"'")
			switch k {
			case "uri":
				t.peer.URI = val
				if u, d, ok := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(val, "sips:"), "sip:"), "@"); ok {
					t.peer.User, t.peer.Domain = u, d
				}
			case "user":
				t.peer.User = val
			case "domain":
				t.peer.Domain = val
			case "name":
				t.peer.DisplayName = val
			}
		}
		if _, ok := sf["uri"]; !ok {
			t.peer.URI = "sip:" + t.peer.User + "@" + t.peer.Domain
		}
	}
	if v, ok := f["mode"]; ok {
		m, _ := s.str(v.v, "'mode'")
		switch m {
		case "page":
			t.mode = bot.ModePage
		case "session":
			t.mode = bot.ModeSession
		default:
			s.errf(v.v, "'mode' must be page or session, not %q", m)
		}
	}
	if v, ok := f["now"]; ok {
		t.now = s.timestamp(v.v)
	}
	if v, ok := f["state"]; ok {
		t.state, _ = s.str(v.v, "'state'")
	}
	if v, ok := f["vars"]; ok {
		val, _ := s.value(v.v, 0)
		t.vars, _ = val.(map[string]any)
	}
	v, ok := f["steps"]
	if !ok {
		s.errf(tn, "test '%s' has no 'steps'", t.name)
		return t
	}
	n := s.resolve(v.v)
	if n == nil || n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		s.errf(v.v, "'steps' must be a list of steps, each with 'user: text' or 'event: name'")
		return t
	}
	for _, sn := range n.Content {
		if st := s.step(sn); st != nil {
			t.steps = append(t.steps, st)
		}
	}
	return t
}

func (s *src) step(sn *yaml.Node) *testStep {
	sn = s.resolve(sn)
	if sn == nil {
		return nil
	}
	f := s.mapping(sn, "a step", stepKeys)
	if f == nil {
		return nil
	}
	st := &testStep{line: sn.Line, event: bot.EventMessage}
	u, hasUser := f["user"]
	ev, hasEvent := f["event"]
	switch {
	case hasUser && hasEvent:
		s.errf(ev.k, "a step has either 'user' or 'event', not both")
	case hasUser:
		if text, ok := s.str(u.v, "'user'"); ok {
			st.user = &text
		}
	case hasEvent:
		name, _ := s.str(ev.v, "'event'")
		k, ok := eventKind(name)
		if !ok || k == bot.EventMessage {
			s.errf(ev.v, "unknown event '%s'%s (for a message, write 'user: text')", name, keyHint(name, eventNames[1:]))
		}
		st.event = k
	default:
		s.errf(sn, "the step has neither 'user: text' nor 'event: name'")
	}
	if v, ok := f["wait"]; ok {
		w, _ := s.str(v.v, "'wait'")
		d, err := time.ParseDuration(w)
		if err != nil || d < 0 {
			s.errf(v.v, "'wait' must be a duration such as 10m")
		}
		st.wait = d
	}
	if v, ok := f["bot"]; ok {
		st.botSet = true
		st.bot = s.expects(v.v)
	}
	if v, ok := f["typing"]; ok {
		n := s.resolve(v.v)
		if n != nil && n.Tag != "!!bool" {
			if _, err := time.ParseDuration(n.Value); err != nil {
				s.errf(n, "'typing' must be true, false or a duration such as 800ms")
			}
		}
		st.typing = n
	}
	if v, ok := f["state"]; ok {
		if x, ok := s.str(v.v, "'state'"); ok {
			st.state = &x
		}
	}
	if v, ok := f["vars"]; ok {
		val, _ := s.value(v.v, 0)
		m, isMap := val.(map[string]any)
		if !isMap {
			s.errf(v.v, "'vars' must be a mapping of variable: value")
		}
		st.vars = m
	}
	if v, ok := f["rule"]; ok {
		if x, ok := s.str(v.v, "'rule'"); ok {
			st.rule = &x
		}
	}
	if v, ok := f["end"]; ok {
		b, _ := s.boolean(v.v, "'end'")
		st.end = &b
	}
	if v, ok := f["pass"]; ok {
		b, _ := s.boolean(v.v, "'pass'")
		st.pass = &b
	}
	return st
}

// expects reads `bot:`.
func (s *src) expects(n *yaml.Node) []expectMsg {
	n = s.resolve(n)
	if n == nil {
		return nil
	}
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!null" || n.Value == "none") {
		return []expectMsg{}
	}
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
	}
	out := []expectMsg{}
	for _, it := range items {
		it = s.resolve(it)
		if it == nil {
			continue
		}
		if it.Kind == yaml.ScalarNode {
			out = append(out, expectMsg{kind: "exact", text: it.Value})
			continue
		}
		f := s.mapping(it, "an expected reply", expectKeys)
		if len(f) != 1 {
			if f != nil {
				s.errf(it, "an expected reply has one of %s", oneOf(expectKeys))
			}
			continue
		}
		for k, v := range f {
			w := expectMsg{kind: k}
			if k == "one_of" {
				for _, a := range s.strs(v.v, "'one_of'") {
					w.alts = append(w.alts, a.Value)
				}
				out = append(out, w)
				continue
			}
			w.text, _ = s.str(v.v, "'"+k+"'")
			switch k {
			case "match":
				p, err := parsePattern(w.text)
				if err != nil {
					s.errf(v.v, "bad pattern: %v", err)
				}
				w.pat = p
			case "regex":
				re, err := regexp.Compile(w.text)
				if err != nil {
					s.errf(v.v, "bad regex: %v", err)
				}
				w.re = re
			}
			out = append(out, w)
		}
	}
	return out
}

// WriteResults prints results in the style of `go test` (with verbose, like `go test -v`)
// and reports whether every test passed.
func WriteResults(w io.Writer, results []TestResult, verbose bool) bool {
	ok := true
	byFile := map[string][]TestResult{}
	var files []string
	for _, r := range results {
		if _, seen := byFile[r.File]; !seen {
			files = append(files, r.File)
		}
		byFile[r.File] = append(byFile[r.File], r)
	}
	for _, f := range files {
		fileOK := true
		var total time.Duration
		for _, r := range byFile[f] {
			total += r.Elapsed
			name := f + "/" + strings.ReplaceAll(r.Name, " ", "_")
			switch {
			case r.Skipped:
				if verbose {
					fmt.Fprintf(w, "=== RUN   %s\n--- SKIP: %s (0.00s)\n", name, name)
				}
			case r.Passed():
				if verbose {
					fmt.Fprintf(w, "=== RUN   %s\n--- PASS: %s (%.2fs)\n", name, name, r.Elapsed.Seconds())
				}
			default:
				fileOK, ok = false, false
				if verbose {
					fmt.Fprintf(w, "=== RUN   %s\n", name)
				}
				fmt.Fprintf(w, "--- FAIL: %s (%.2fs)\n", name, r.Elapsed.Seconds())
				for _, msg := range r.Failures {
					fmt.Fprintf(w, "    %s\n", msg)
				}
			}
		}
		if fileOK {
			fmt.Fprintf(w, "ok  \t%s\t%.3fs\n", f, total.Seconds())
		} else {
			fmt.Fprintf(w, "FAIL\t%s\t%.3fs\n", f, total.Seconds())
		}
	}
	if !ok {
		fmt.Fprintln(w, "FAIL")
	}
	return ok
}
