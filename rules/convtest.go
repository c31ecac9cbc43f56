package rules

import (
	"context"
	"fmt"
	fsys "io/fs"
	"maps"
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

// TestCase is one conversation test of a TestFile.
type TestCase struct {
	// Name is the test's name and Line the line it starts at.
	Name string
	Line int
	// Sender is who writes (sender:); not Verified unless the test says so.
	Sender bot.Peer
	// Mode is the conversation's mode (mode:), bot.ModePage unless the test says so.
	Mode bot.Mode
	// Now is the time of the test's first event (now:), zero when the test sets none.
	Now time.Time
	// Steps are the events of the test and what to check after each, in order.
	Steps []*TestStep
	// Skip is set by `skip: true`.
	Skip bool

	state string         // the state the test starts in, as stored
	vars  map[string]any // the variables it starts with
}

// Conversation returns the conversation the test starts with: its state: and vars:.
func (t *TestCase) Conversation() store.ConversationState {
	return store.ConversationState{State: t.state, Vars: maps.Clone(t.vars)}
}

// TestStep is one step of a TestCase: an event, then checks of what the bot did.
type TestStep struct {
	// Line is the step's line in the test file.
	Line int
	// Event is the kind of event: bot.EventMessage for `user: text`, or the `event:`.
	Event bot.EventKind
	// Text is the message of `user: text`.
	Text string
	// Wait is how long passes before the event (wait:).
	Wait time.Duration

	bot    []expectMsg
	botSet bool
	typing *yaml.Node
	state  *string
	vars   map[string]any
	rule   *string
	end    *bool
	pass   *bool
}

// Label names the step in failures: "step 2 (user: \"hi\")" or "step 1 (session.start)"; i
// counts from 0.
func (st *TestStep) Label(i int) string {
	if st.Event == bot.EventMessage {
		return fmt.Sprintf("step %d (user: %q)", i+1, st.Text)
	}
	return fmt.Sprintf("step %d (%s)", i+1, st.Event)
}

// StepResult is what the bot did for one step, as a test runner saw it.
type StepResult struct {
	// Replies are the messages sent, in order, with the typing shown before each.
	Replies []Message
	// Conversation is the conversation after the event, as stored.
	Conversation store.ConversationState
	// Rule is the first rule that answered, "" when none did.
	Rule string
	// End reports that the session was ended.
	End bool
	// Pass reports that the event went on to the next handler.
	Pass bool
}

type expectMsg struct {
	kind string // exact, match, regex, contains, one_of
	text string
	alts []string
	pat  []flatPattern
	re   *regexp.Regexp
}

// TestFile is a parsed conversation test file (see ParseTestFile).
type TestFile struct {
	// Path is the file's name, as given to ParseTestFile.
	Path string
	// Rules are the rule files under test, relative to the working directory (or to the
	// root of Options.FS).
	Rules []string
	// Now is the file's now:, the time of the tests that set none; zero when not set.
	Now time.Time
	// Tests are the file's tests, in order.
	Tests []*TestCase

	stubs map[string]any
}

// CheckTestFile checks a conversation test file without running its tests: its keys and
// values, and the rule files it names, loaded as its tests run them (with its stubs, and
// knowing the variables its tests start with). It returns every problem found, one error
// each, warnings included (an *Error with Warning set), or nil. It is what `imbot check`
// runs on a test file.
func CheckTestFile(opts Options, name string) []error {
	tf, err := ParseTestFile(opts.FS, name)
	if err != nil {
		return Errors(err)
	}
	rs, err := Load(tf.Options(opts), tf.Rules...)
	if err != nil {
		return Errors(err)
	}
	return rs.Warnings()
}

// ParseTestFile reads and checks a conversation test file, from fsFS when it is not nil. The
// error is an ErrorList with positions.
func ParseTestFile(fsFS fsys.FS, name string) (*TestFile, error) {
	tf, err := parseTestFile(fsFS, name)
	if err != nil {
		return nil, err
	}
	if len(tf.Rules) == 0 {
		return nil, ErrorList{{File: name, Line: 1, Col: 1, Msg: "the test file names no rule files: add 'rules: [your-rules.yaml]'"}}
	}
	return tf, nil
}

// Options returns opts as the file's rules load with: with the file's stubs in place of the
// functions of the same name, and knowing the variables its tests start with (a rule may
// read them although nothing in the rule files sets them).
func (tf *TestFile) Options(opts Options) Options {
	o := opts
	o.Funcs = Funcs{}
	maps.Copy(o.Funcs, opts.Funcs)
	for k, v := range tf.stubs {
		o.Funcs[k] = Stub(v)
	}
	o.testVars = slices.Clone(opts.testVars)
	for _, t := range tf.Tests {
		for k := range t.vars {
			o.testVars = append(o.testVars, k)
		}
	}
	return o
}

// Stub returns a function that ignores its arguments and returns v: what a test file's
// `stubs:` and `imbot check --stub` and `imbot chat --stub` put in place of Go functions.
func Stub(v any) Function {
	return Function{Call: func(context.Context, ...any) (any, error) { return v, nil }}
}

// Check compares what the bot did with what the step expects and returns what differs, one
// sentence each; none when the step passed.
func (st *TestStep) Check(r StepResult) []string {
	msgs := r.Replies
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
		if got := stateName(r.Conversation.State); got != *st.state {
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
		got, ok := r.Conversation.Vars[k]
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
		got := r.Rule
		if got == "" {
			got = "none"
		}
		if got != *st.rule {
			f = append(f, fmt.Sprintf("rule '%s' answered; want '%s'", got, *st.rule))
		}
	}
	if st.end != nil && r.End != *st.end {
		f = append(f, fmt.Sprintf("end is %v; want %v", r.End, *st.end))
	}
	if st.pass != nil && r.Pass != *st.pass {
		if r.Pass {
			f = append(f, "the event went on to the Go handlers; want a rule to answer")
		} else {
			f = append(f, fmt.Sprintf("rule '%s' answered; want the event to go on to the Go handlers", r.Rule))
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
func parseTestFile(fsFS fsys.FS, name string) (*TestFile, error) {
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
	s := &src{name: name, text: string(data), e: e}
	tf := &TestFile{Path: name}
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
			tf.Rules = append(tf.Rules, p)
		}
	}
	if v, ok := fields["now"]; ok {
		tf.Now = s.timestamp(v.v)
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
					if l, dup := names[t.Name]; dup {
						s.errf(tn, "test name '%s' is already used at line %d", t.Name, l)
					}
					names[t.Name] = t.Line
					tf.Tests = append(tf.Tests, t)
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

func (s *src) convTest(tn *yaml.Node) *TestCase {
	tn = s.resolve(tn)
	if tn == nil {
		return nil
	}
	f := s.mapping(tn, "a test", testKeys)
	if f == nil {
		return nil
	}
	t := &TestCase{Line: tn.Line, Mode: bot.ModePage, Sender: bot.Peer{URI: "sip:tester@example.com", User: "tester", Domain: "example.com"}}
	if v, ok := f["name"]; ok {
		t.Name, _ = s.str(v.v, "'name'")
	} else {
		s.errf(tn, "the test has no 'name'")
	}
	if v, ok := f["skip"]; ok {
		t.Skip, _ = s.boolean(v.v, "'skip'")
	}
	if v, ok := f["sender"]; ok {
		sf := s.mapping(v.v, "'sender'", []string{"uri", "user", "domain", "name", "verified"})
		for k, x := range sf {
			if k == "verified" {
				t.Sender.Verified, _ = s.boolean(x.v, "'verified'")
				continue
			}
			val, _ := s.str(x.v, "'"+k+"'")
			switch k {
			case "uri":
				t.Sender.URI = val
				if u, d, ok := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(val, "sips:"), "sip:"), "@"); ok {
					t.Sender.User, t.Sender.Domain = u, d
				}
			case "user":
				t.Sender.User = val
			case "domain":
				t.Sender.Domain = val
			case "name":
				t.Sender.DisplayName = val
			}
		}
		if _, ok := sf["uri"]; !ok {
			t.Sender.URI = "sip:" + t.Sender.User + "@" + t.Sender.Domain
		}
	}
	if v, ok := f["mode"]; ok {
		m, _ := s.str(v.v, "'mode'")
		switch m {
		case "page":
			t.Mode = bot.ModePage
		case "session":
			t.Mode = bot.ModeSession
		default:
			s.errf(v.v, "'mode' must be page or session, not %q", m)
		}
	}
	if v, ok := f["now"]; ok {
		t.Now = s.timestamp(v.v)
	}
	if v, ok := f["state"]; ok {
		name, _ := s.str(v.v, "'state'")
		t.state = storedState(name)
	}
	if v, ok := f["vars"]; ok {
		val, _ := s.value(v.v, 0)
		t.vars, _ = val.(map[string]any)
	}
	v, ok := f["steps"]
	if !ok {
		s.errf(tn, "test '%s' has no 'steps'", t.Name)
		return t
	}
	n := s.resolve(v.v)
	if n == nil || n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		s.errf(v.v, "'steps' must be a list of steps, each with 'user: text' or 'event: name'")
		return t
	}
	for _, sn := range n.Content {
		if st := s.step(sn); st != nil {
			t.Steps = append(t.Steps, st)
		}
	}
	return t
}

func (s *src) step(sn *yaml.Node) *TestStep {
	sn = s.resolve(sn)
	if sn == nil {
		return nil
	}
	f := s.mapping(sn, "a step", stepKeys)
	if f == nil {
		return nil
	}
	st := &TestStep{Line: sn.Line, Event: bot.EventMessage}
	u, hasUser := f["user"]
	ev, hasEvent := f["event"]
	switch {
	case hasUser && hasEvent:
		s.errf(ev.k, "a step has either 'user' or 'event', not both")
	case hasUser:
		if text, ok := s.str(u.v, "'user'"); ok {
			st.Text = text
		}
	case hasEvent:
		name, _ := s.str(ev.v, "'event'")
		k, ok := eventKind(name)
		if !ok || k == bot.EventMessage {
			s.errf(ev.v, "unknown event '%s'%s (for a message, write 'user: text')", name, keyHint(name, eventNames[1:]))
		}
		st.Event = k
	default:
		s.errf(sn, "the step has neither 'user: text' nor 'event: name'")
	}
	if v, ok := f["wait"]; ok {
		w, _ := s.str(v.v, "'wait'")
		d, err := time.ParseDuration(w)
		if err != nil || d < 0 {
			s.errf(v.v, "'wait' must be a duration such as 10m")
		}
		st.Wait = d
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
