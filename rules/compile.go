package rules

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
	"go.yaml.in/yaml/v3"

	"github.com/imbot-dev/imbot/bot"
	typo "github.com/imbot-dev/imbot/internal/suggest"
)

// Regex limits: RE2 is linear in the input, but a huge program is slow to build and to run.
const (
	maxRegexLen   = 1000
	maxRegexInsts = 5000
)

// RuleSet is a loaded, validated and compiled set of rules. It is immutable and safe for
// concurrent use; an Engine swaps whole rule sets on reload.
type RuleSet struct {
	files  []string
	rules  []*rule // by rank: priority first, then file order
	consts map[string]any

	index    map[string][]int32 // folded word -> ranks of message rules anchored on it
	lits     *litIndex          // literals of the regexes -> ranks of their rules
	always   map[string][]int32 // stored state -> message rules tried on every message in it
	alwaysAt []int32            // message rules tried on every message, in any other state
	idx      IndexStats
	byKind   [bot.EventIdle + 1][]int32
	fallback []int32
	states   []string
	help     string
	hasState map[string]bool
	warnings ErrorList
	// compiled counts the expressions and regexes compiled to load the set (tests).
	compiled struct{ programs, regexes int }
}

// rule is one compiled rule.
type rule struct {
	// What matching reads of every candidate rule comes first, close together.
	kind     bot.EventKind
	anyState bool
	cont     bool
	fallback bool
	trigger  bool // has match or regex
	hidden   bool
	hasGoto  bool
	end      bool
	pick     pickMode
	// needsEnv: the rule's actions evaluate expressions.
	needsEnv bool
	// broken: an error was reported in the rule, so it does not load; the analyses that
	// depend on what it does (shadowing) leave it out rather than add follow-on errors.
	broken bool
	// badTrigger: a pattern or regex of the rule failed to parse, so its captures are not
	// known.
	badTrigger bool
	states     []string // stored names ("" for start)
	pats       []pattern
	res        []*lazyRegex
	when       *vm.Program

	name     string
	doc      *ruleDoc // nil: no description and no examples
	pos      pos
	rank     int32
	order    int32 // file order
	priority int32

	capNames []string

	msgs    [][]*template
	typing  *typingSpec
	set     []setter
	goTo    string // stored name
	call    *vm.Program
	handler string
	invite  *template // the address `invite:` brings into the conversation
}

// ruleDoc is what a rule says of itself, for the help and tools.
type ruleDoc struct {
	description string
	examples    []string
}

// description returns the rule's description, or "".
func (r *rule) description() string {
	if r.doc == nil {
		return ""
	}
	return r.doc.description
}

// examples returns the rule's examples.
func (r *rule) examples() []string {
	if r.doc == nil {
		return nil
	}
	return r.doc.examples
}

type pattern struct {
	src  string
	flat flatPattern
	node *yaml.Node // where it is written, until the rule set is compiled
}

type setter struct {
	name  string
	lit   any
	del   bool
	tmpl  *template
	isLit bool
}

// Files returns every file the rule set was read from, includes too, in load order.
func (rs *RuleSet) Files() []string { return slices.Clone(rs.files) }

// Warnings returns the warnings found while loading: constructs that are likely to fail at
// run time, such as a reduce whose accumulator doubles at each step. Each is an *Error with
// Warning set.
func (rs *RuleSet) Warnings() []error {
	if len(rs.warnings) == 0 {
		return nil
	}
	return rs.warnings.Unwrap()
}

// Len returns the number of rules (the built-in help rule included).
func (rs *RuleSet) Len() int { return len(rs.rules) }

// Help returns the generated help: one line per rule with a description, with its first
// example.
func (rs *RuleSet) Help() string { return rs.help }

// States returns the conversation states the rules use, sorted.
func (rs *RuleSet) States() []string { return slices.Clone(rs.states) }

// RuleInfo describes one rule for tools.
type RuleInfo struct {
	Name        string
	Description string
	Examples    []string
	Event       bot.EventKind
	States      []string // "*" for every state
	Priority    int
	Fallback    bool
	File        string
	Line        int
}

// Rules describes the rules in the order they are tried.
func (rs *RuleSet) Rules() []RuleInfo {
	out := make([]RuleInfo, len(rs.rules))
	for i, r := range rs.rules {
		st := make([]string, len(r.states))
		for j, s := range r.states {
			st[j] = stateName(s)
		}
		if r.anyState {
			st = []string{AnyState}
		}
		out[i] = RuleInfo{Name: r.name, Description: r.description(), Examples: slices.Clone(r.examples()),
			Event: r.kind, States: st, Priority: int(r.priority), Fallback: r.fallback, File: r.pos.file, Line: r.pos.line}
	}
	return out
}

func stateName(stored string) string {
	if stored == "" {
		return StartState
	}
	return stored
}

func storedState(name string) string {
	if name == StartState {
		return ""
	}
	return name
}

// compiling holds what compileSet needs while it works.
type compiling struct {
	e     *errs
	c     *compiler
	opts  *Options
	rs    *RuleSet
	funcs []string
	cur   *src // file of the rule being compiled
	// srcs, when set, are this goroutine's copies of the files' srcs, whose problems go to e
	// (see compileRules).
	srcs map[*src]*src
	// setVars are the variables something can set: a rule's `set:`, and the variables
	// conversation tests start with (Options.testVars).
	setVars map[string]bool
	// pats gives the rules compiled on this goroutine and the slices of their patterns.
	pats *compileArena
}

func compileSet(opts *Options, files []*fileAST, read []string, e *errs) (*RuleSet, error) {
	rs := &RuleSet{files: read, consts: map[string]any{}, index: map[string][]int32{}, hasState: map[string]bool{}}
	builtins := Funcs{
		"business_hours": {Call: businessHours, Signature: new(func(string, ...string) bool)},
		"help":           {Call: func(context.Context, ...any) (any, error) { return rs.help, nil }, Signature: new(func() string)},
	}
	c, err := newCompiler(opts.Funcs, builtins)
	if err != nil {
		return nil, err
	}
	c.limits = opts.Limits.withDefaults()
	cc := &compiling{e: e, c: c, opts: opts, rs: rs}
	for name := range opts.Funcs {
		cc.funcs = append(cc.funcs, name)
	}
	sort.Strings(cc.funcs)

	constPos := map[string]pos{}
	help := true
	for _, f := range files {
		for k, v := range f.vars {
			if p, dup := constPos[k]; dup {
				e.add(f.varPos[k], "constant '%s' is already defined at %s", k, p.short())
				continue
			}
			rs.consts[k] = v
			constPos[k] = f.varPos[k]
		}
		if f.help != nil && !*f.help {
			help = false
		}
	}
	if len(opts.Vars) > 0 {
		declared := slices.Sorted(maps.Keys(constPos))
		for _, k := range slices.Sorted(maps.Keys(opts.Vars)) {
			if _, ok := constPos[k]; !ok {
				e.add(pos{file: "vars override"}, "'%s' is not a constant of the rule files%s (they declare: %s)",
					k, suggest(k, declared), strings.Join(declared, ", "))
				continue
			}
			rs.consts[k] = opts.Vars[k]
		}
	}

	// Names, states and gotos across all files.
	var asts []*ruleAST
	var fileOf []*fileAST
	nrules := 0
	for _, f := range files {
		nrules += len(f.rules)
	}
	asts = make([]*ruleAST, 0, nrules)
	fileOf = make([]*fileAST, 0, nrules)
	byName := make(map[string]*ruleAST, nrules)
	statePos := map[string]pos{}
	gotos := map[string]bool{}
	for _, f := range files {
		for _, r := range f.rules {
			if r.nameNode != nil {
				if prev, dup := byName[r.name]; dup {
					f.src.errf(r.nameNode, "rule name '%s' is already used at %s: names must be unique", r.name, prev.src.pos(prev.nameNode).short())
				} else {
					byName[r.name] = r
				}
			}
			asts = append(asts, r)
			fileOf = append(fileOf, f)
			for _, sn := range r.states {
				if sn.Value != AnyState && sn.Value != StartState {
					if _, ok := statePos[sn.Value]; !ok {
						statePos[sn.Value] = f.src.pos(sn)
					}
				}
			}
			if r.goTo != nil {
				gotos[r.goTo.Value] = true
			}
		}
	}
	cc.setVars = map[string]bool{}
	for _, ra := range asts {
		for _, st := range ra.set {
			cc.setVars[st.name] = true
		}
	}
	for _, v := range opts.testVars {
		cc.setVars[v] = true
	}
	for st := range statePos {
		rs.states = append(rs.states, st)
		rs.hasState[st] = true
	}
	sort.Strings(rs.states)
	for _, st := range rs.states {
		if !gotos[st] {
			e.add(statePos[st], "state '%s' is never entered: no rule has 'goto: %s'%s", st, st, suggestState(st, gotos))
		}
	}

	rs.rules = cc.compileRules(asts, fileOf)
	for i, r := range rs.rules {
		r.order = int32(i)
	}
	if _, ok := byName["help"]; !ok && help {
		rs.rules = append(rs.rules, cc.helpRule(len(rs.rules)))
	}
	sort.SliceStable(rs.rules, func(i, j int) bool { return rs.rules[i].priority > rs.rules[j].priority })
	for i, r := range rs.rules {
		r.rank = int32(i)
	}
	// The index and the help do not depend on what shadowing finds: when nothing failed so
	// far, build them meanwhile (and drop them if shadowing finds an error).
	var indexed sync.WaitGroup
	early := e.errors() == 0 && opts.workers() > 1
	if early {
		indexed.Go(rs.buildIndex)
		indexed.Go(func() { rs.help = rs.makeHelp() })
	}
	cc.shadowing()
	indexed.Wait()
	if err := e.err(); err != nil {
		return nil, err
	}
	for _, r := range rs.rules {
		for i := range r.pats {
			r.pats[i].node = nil // only shadowing needs it: let the YAML tree go
		}
	}
	rs.warnings = e.warnings()
	rs.compiled.programs, rs.compiled.regexes = c.programs, c.regexCount
	if !early {
		rs.indexAndHelp()
	}
	return rs, nil
}

// indexAndHelp builds the index and the help.
func (rs *RuleSet) indexAndHelp() {
	rs.buildIndex()
	rs.help = rs.makeHelp()
}

func suggestState(st string, gotos map[string]bool) string {
	var c []string
	for g := range gotos {
		c = append(c, g)
	}
	sort.Strings(c)
	if g := typo.Closest(st, c); g != "" {
		return " (a goto names '" + g + "': a typo?)"
	}
	return ""
}

// rulesPerChunk is how many consecutive rules one goroutine of compileRules compiles at a
// time.
const rulesPerChunk = 1000

// compileRules compiles the rules, in file order. Many rules are compiled in chunks of
// consecutive rules on up to GOMAXPROCS goroutines, each chunk with its own list of problems;
// the lists are then reported chunk after chunk, rule after rule, which is the order and the
// outcome (rule.broken) of compiling the rules one after the other. A file with aliases
// (*name) counts the aliases it resolves, up to a limit: its rules stay in one chunk, in order.
func (cc *compiling) compileRules(asts []*ruleAST, fileOf []*fileAST) []*rule {
	out := make([]*rule, len(asts))
	workers := cc.opts.workers()
	if workers < 2 || len(asts) < 2*rulesPerChunk {
		cc.pats = &compileArena{}
		for i, ra := range asts {
			out[i] = cc.rule(ra, fileOf[i].typing)
		}
		return out
	}
	type chunk struct {
		from, to int
		e        *errs
		ends     []int // ends[i]: the problems of rule from+i are e.list[ends[i-1]:ends[i]]
	}
	var chunks []*chunk
	for from := 0; from < len(asts); {
		to := min(from+rulesPerChunk, len(asts))
		for to < len(asts) && fileOf[to].aliased && fileOf[to] == fileOf[to-1] {
			to++
		}
		chunks = append(chunks, &chunk{from: from, to: to, e: &errs{}})
		from = to
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, len(chunks)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			arena := &compileArena{} // for every chunk of this goroutine
			for {
				k := int(next.Add(1)) - 1
				if k >= len(chunks) {
					return
				}
				ch := chunks[k]
				w := *cc
				w.e, w.srcs, w.pats = ch.e, map[*src]*src{}, arena
				for i := ch.from; i < ch.to; i++ {
					out[i] = w.rule(asts[i], fileOf[i].typing)
					ch.ends = append(ch.ends, len(ch.e.list))
				}
			}
		}()
	}
	wg.Wait()
	for _, ch := range chunks {
		start := 0
		for i, end := range ch.ends {
			broken := false
			for _, x := range ch.e.list[start:end] {
				if cc.e.put(x) && !x.Warning {
					broken = true
				}
			}
			out[ch.from+i].broken = broken
			start = end
		}
	}
	return out
}

// srcOf returns the src through which a rule of s reports problems: s, or this goroutine's
// copy of it (compileRules).
func (cc *compiling) srcOf(s *src) *src {
	if cc.srcs == nil {
		return s
	}
	c, ok := cc.srcs[s]
	if !ok {
		cp := *s
		cp.e = cc.e
		c = &cp
		cc.srcs[s] = c
	}
	return c
}

// rule compiles one rule, reporting problems.
func (cc *compiling) rule(ra *ruleAST, fileTyping *typingSpec) (r *rule) {
	s := cc.srcOf(ra.src)
	cc.cur = s
	before := cc.e.errors()
	defer func() { r.broken = cc.e.errors() > before }()
	r = cc.pats.newRule()
	*r = rule{
		name: ra.name, hidden: ra.hidden,
		pos: s.pos(ra.node), priority: int32(ra.priority), kind: ra.on, fallback: ra.fallback,
		pick: ra.pick, typing: ra.typing, end: ra.end, cont: ra.cont,
	}
	if r.typing == nil {
		r.typing = fileTyping
	}
	if ra.description != "" || ra.examples != nil {
		r.doc = &ruleDoc{description: ra.description, examples: ra.examples}
	}
	what := ruleWhat(ra.name)
	onName := r.kind.String()

	// Triggers.
	if r.kind != bot.EventMessage && (len(ra.match) > 0 || len(ra.regex) > 0) {
		k := ra.has.at("match").k
		if k == nil {
			k = ra.has.at("regex").k
		}
		s.errf(k, "%s is 'on: %s': 'match' and 'regex' apply to messages only; remove them or the 'on'", what, onName)
	}
	if r.fallback && r.kind != bot.EventMessage {
		s.errf(ra.fallbackN, "%s is 'on: %s': fallbacks answer messages that nothing else matched; remove 'fallback' or 'on'", what, onName)
	}
	if r.fallback && (len(ra.match) > 0 || len(ra.regex) > 0) {
		s.errf(ra.fallbackN, "%s has 'fallback: true' and a 'match' or 'regex': a fallback answers when nothing matched, so remove one of them", what)
	}
	if len(ra.regex) > 0 {
		r.res = make([]*lazyRegex, 0, len(ra.regex))
	}
	for _, n := range ra.match {
		flats, err := parsePatternIn(n.Value, cc.pats)
		if err != nil {
			pe := err.(*patternError)
			s.e.add(s.at(n, 1, pe.col), "bad pattern in %s: %s", what, pe.msg)
			r.badTrigger = true
			continue
		}
		if r.pats == nil {
			r.pats = cc.pats.newPats(len(flats) * len(ra.match))
		}
		if r.capNames == nil {
			n := 0
			for _, fp := range flats {
				n += len(fp.caps)
			}
			if n > 0 {
				r.capNames = cc.pats.newStrs(n*len(ra.match) + len(ra.regex))
			}
		}
		for _, fp := range flats {
			r.pats = append(r.pats, pattern{src: n.Value, flat: fp, node: n})
			for _, c := range fp.caps {
				r.capNames = append(r.capNames, c.name)
			}
		}
	}
	for _, n := range ra.regex {
		re, _, err := cc.c.regex(n.Value)
		if err != nil {
			at := s.pos(n)
			if se := (*syntax.Error)(nil); errors.As(err, &se) {
				at = s.at(n, 1, regexCol(n.Value, se.Expr))
			}
			s.e.add(at, "bad regex in %s: %s", what, regexMsg(err))
			r.badTrigger = true
			continue
		}
		r.res = append(r.res, re)
		for i, name := range re.names {
			if i == 0 {
				continue
			}
			if name == "" {
				name = "group" + strconv.Itoa(i)
			}
			r.capNames = append(r.capNames, name)
		}
	}
	r.trigger = len(ra.match)+len(ra.regex) > 0
	sort.Strings(r.capNames)
	r.capNames = slices.Clip(slices.Compact(r.capNames))

	// States.
	if len(ra.states) == 0 {
		if r.fallback || r.kind != bot.EventMessage {
			// A fallback without a state is global; so are rules on other events.
			r.anyState = true
		} else {
			r.states = append(cc.pats.newStrs(1), "")
		}
	}
	for _, n := range ra.states {
		switch n.Value {
		case AnyState:
			if len(ra.states) > 1 {
				s.errf(n, "'*' already means every state: list no other state with it")
			}
			r.anyState = true
		case "":
			s.errf(n, "empty state name: the initial state is called '%s'", StartState)
		default:
			r.states = append(r.states, storedState(n.Value))
		}
	}

	check := cc.checker(r, what, false)
	if ra.when != nil {
		p, probs := cc.compileExpr(ra.when.Value, true, check)
		if len(probs) > 0 {
			cc.report(ra.when, probs, "in 'when' of %s", what)
		}
		r.when = p
	}

	// Actions.
	if r.kind == bot.EventSessionEnd && len(ra.msgs) > 0 {
		k := ra.has.at("reply").k
		if k == nil {
			k = ra.has.at("messages").k
		}
		s.errf(k, "%s is 'on: session.end': the conversation is over and cannot be answered; say goodbye in a rule 'on: idle' instead", what)
	}
	replyCheck := cc.checker(r, what, true)
	if len(ra.msgs) > 0 {
		r.msgs = cc.pats.newMsgs(len(ra.msgs))
	}
	for _, alts := range ra.msgs {
		ts := cc.pats.newTmplPtrs(len(alts))
		for _, n := range alts {
			t, probs := cc.c.compileTemplate(n.Value, false, replyCheck, cc.pats)
			if len(probs) > 0 {
				cc.report(n, probs, "in the reply of %s", what)
			}
			if t != nil {
				ts = append(ts, t)
			}
		}
		r.msgs = append(r.msgs, ts)
	}
	if !cc.opts.noStaticLimits {
		cc.replyLimits(r, ra, what)
	}
	for _, st := range ra.set {
		if _, isConst := cc.rs.consts[st.name]; isConst {
			s.errf(st.k, "'%s' is a constant from the file's 'vars': %s cannot set it; pick another name", st.name, what)
			continue
		}
		v := s.resolve(st.v)
		if v == nil {
			continue
		}
		set := setter{name: st.name}
		switch {
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
			set.del = true
		case v.Kind == yaml.ScalarNode && v.Tag == "!!str":
			t, probs := cc.c.compileTemplate(v.Value, true, check, cc.pats)
			if len(probs) > 0 {
				cc.report(v, probs, "in 'set: %s' of %s", st.name, what)
			}
			if t == nil {
				continue
			}
			set.tmpl = t
		default:
			val, ok := s.value(v, 0)
			if !ok {
				continue
			}
			set.lit, set.isLit = val, true
		}
		r.set = append(r.set, set)
	}
	if ra.goTo != nil {
		g := ra.goTo.Value
		switch {
		case g == AnyState:
			s.errf(ra.goTo, "'goto: *' is not a state: name the state to go to, or '%s' for the beginning", StartState)
		case g == StartState:
			r.hasGoto, r.goTo = true, ""
		case !cc.rs.hasState[g]:
			s.errf(ra.goTo, "'goto: %s' in %s goes to no state: no rule has 'state: %s'%s", g, what, g, suggest(g, append(cc.rs.States(), StartState)))
		default:
			r.hasGoto, r.goTo = true, g
		}
	}
	if ra.call != nil {
		r.call = cc.callExpr(ra.call, what, check)
	}
	if ra.handler != nil {
		name := ra.handler.Value
		if _, ok := cc.opts.Handlers[name]; !ok {
			var names []string
			for n := range cc.opts.Handlers {
				names = append(names, n)
			}
			sort.Strings(names)
			hint := suggest(name, names)
			if hint == "" {
				hint = "; handlers are registered in Go with rules.Options.Handlers"
				if len(names) > 0 {
					hint += " (registered: " + strings.Join(names, ", ") + ")"
				}
			}
			s.errf(ra.handler, "%s hands the event to handler '%s', which is not registered%s", what, name, hint)
		}
		r.handler = name
	}
	if ra.invite != nil {
		t, probs := cc.c.compileTemplate(ra.invite.Value, false, check, cc.pats)
		if len(probs) > 0 {
			cc.report(ra.invite, probs, "in 'invite' of %s", what)
		}
		r.invite = t
	}
	r.needsEnv = r.call != nil || len(r.set) > 0 || r.invite != nil && !r.invite.plain
	for _, alts := range r.msgs {
		for _, t := range alts {
			r.needsEnv = r.needsEnv || !t.plain
		}
	}
	acts := 0
	for _, k := range []string{"reply", "messages", "set", "goto", "call", "handler", "invite", "end"} {
		if _, ok := ra.has.get(k); ok {
			acts++
		}
	}
	if acts == 0 {
		s.errf(ra.node, "%s does nothing: give it a 'reply', 'messages', 'set', 'goto', 'call', 'handler', 'invite' or 'end'", what)
	}
	return r
}

// ruleWhat names a rule in messages: "rule 'name'".
type ruleWhat string

func (w ruleWhat) String() string { return "rule '" + string(w) + "'" }

// callExpr compiles `call: name` or `call: name(args)`.
func (cc *compiling) callExpr(n *yaml.Node, what ruleWhat, check func(string, ast.Node) []*exprError) *vm.Program {
	src := strings.TrimSpace(n.Value)
	name := src
	if i := strings.IndexByte(src, '('); i >= 0 {
		name = strings.TrimSpace(src[:i])
		if !strings.HasSuffix(src, ")") {
			cc.e.add(cc.cur.at(n, 1, len([]rune(src))), "'call' in %s: the argument list is not closed: write %s(...)", what, name)
			return nil
		}
	} else {
		src += "()"
	}
	if !validFuncName(name) {
		cc.cur.errf(n, "'call' in %s must name a function, such as 'accounts.reset' or 'accounts.reset(match.user)', not %q", what, n.Value)
		return nil
	}
	if _, ok := cc.opts.Funcs[name]; !ok {
		hint := suggest(name, cc.funcs)
		if hint == "" {
			hint = "; functions are registered in Go with rules.Options.Funcs"
			if len(cc.funcs) > 0 {
				hint += " (registered: " + strings.Join(cc.funcs, ", ") + ")"
			}
		}
		cc.cur.errf(n, "%s calls '%s', which is not a registered function%s", what, name, hint)
		return nil
	}
	p, probs := cc.compileExpr(src, false, check)
	if cc.report(n, probs, "in 'call' of %s", what) {
		return nil
	}
	return p
}

// compileExpr compiles an expression and runs the extra checks on it. It returns the
// problems found, warnings included.
func (cc *compiling) compileExpr(src string, asBool bool, check func(string, ast.Node) []*exprError) (*vm.Program, []*exprError) {
	p, tree, err := cc.c.compileIn(src, asBool, cc.pats)
	if err != nil {
		return nil, []*exprError{err.(*exprError)}
	}
	return p, check(src, tree)
}

// report adds the problems of the expression (or template) of node n, each message after
// the prefix format makes. It reports whether one of them is an error.
func (cc *compiling) report(n *yaml.Node, probs []*exprError, format string, args ...any) (failed bool) {
	if len(probs) == 0 {
		return false
	}
	prefix := fmt.Sprintf(format, args...)
	for _, pr := range probs {
		at := cc.cur.at(n, pr.line, pr.col)
		if pr.warn {
			cc.e.warn(at, "%s: %s", prefix, pr.msg)
			continue
		}
		cc.e.add(at, "%s: %s", prefix, pr.msg)
		failed = true
	}
	return failed
}

// checker returns the extra checks of the expressions of r: captures that exist, variables
// that something sets (a warning otherwise), business hours that parse, and what is sure to
// go over the Limits (staticLimits; reply is set for the {{ }} of replies).
func (cc *compiling) checker(r *rule, what ruleWhat, reply bool) func(string, ast.Node) []*exprError {
	return func(src string, tree ast.Node) []*exprError {
		facts := cc.c.factsOf(src, tree, cc.pats)
		var found *exprError
		var unset []*exprError
		for _, f := range facts.events {
			if f.err != nil {
				found = f.err
				break
			}
			x := f.member
			if f.vars {
				if w := cc.unsetVar(src, x, f.prop); w != nil {
					unset = append(unset, w)
				}
				continue
			}
			if r.badTrigger {
				continue // with a bad pattern or regex, the capture may be in it
			}
			if slices.Contains(r.capNames, f.prop) {
				continue
			}
			var msg string
			switch {
			case !r.trigger:
				msg = fmt.Sprintf("match.%s is always empty: %s has no 'match' or 'regex'", f.prop, what)
			case len(r.capNames) == 0:
				msg = fmt.Sprintf("match.%s is always empty: the patterns of %s capture nothing (use {name} or *)", f.prop, what)
			default:
				msg = fmt.Sprintf("match.%s is always empty: %s captures %s%s", f.prop, what, oneOf(r.capNames), suggest(f.prop, r.capNames))
			}
			found = locErr(src, x, msg)
			break
		}
		var probs []*exprError
		if found != nil {
			probs = append(probs, found)
		}
		probs = append(probs, unset...)
		if !cc.opts.noStaticLimits {
			probs = append(probs, facts.limitsOf(reply)...)
		}
		return probs
	}
}

// exprFacts is what the checks of checker read of an expression's tree, in the order of a
// walk: the same for every rule that has the expression, so found once.
type exprFacts struct {
	// events are the members vars.x and match.x, and the first problem with the arguments of
	// business_hours; the walk stops at that problem.
	events []exprFact
	// limits are what staticLimits finds, for other expressions and for replies.
	limits [2][]*exprError
}

// exprFact is one event of exprFacts: a member vars.prop (vars) or match.prop, or err.
type exprFact struct {
	member *ast.MemberNode
	prop   string
	vars   bool
	err    *exprError
}

// factsOf returns the facts of an expression's tree, found once for each tree (compiled
// expressions are shared: see compile).
// a, when not nil, keeps the facts this goroutine has asked for, so that it asks again
// without locking.
func (c *compiler) factsOf(src string, tree ast.Node, a *compileArena) *exprFacts {
	if a != nil {
		if f, ok := a.facts[tree]; ok {
			return f
		}
	}
	c.mu.Lock()
	f, ok := c.facts[tree]
	c.mu.Unlock()
	if !ok {
		f = c.findFacts(src, tree)
	}
	if a != nil {
		if a.facts == nil {
			a.facts = map[ast.Node]*exprFacts{}
		}
		a.facts[tree] = f
	}
	return f
}

// findFacts finds the facts of an expression's tree (factsOf).
func (c *compiler) findFacts(src string, tree ast.Node) *exprFacts {
	f := &exprFacts{}
	stop := false
	v := &visitor{fn: func(n ast.Node) {
		if stop {
			return
		}
		switch x := n.(type) {
		case *ast.MemberNode:
			id, ok := x.Node.(*ast.IdentifierNode)
			prop, ok2 := x.Property.(*ast.StringNode)
			if !ok || !ok2 || id.Value != "vars" && id.Value != "match" {
				return
			}
			f.events = append(f.events, exprFact{member: x, prop: prop.Value, vars: id.Value == "vars"})
		case *ast.CallNode:
			id, ok := x.Callee.(*ast.IdentifierNode)
			if !ok || id.Value != "business_hours" {
				return
			}
			args := x.Arguments[1:] // [0] is the context
			var found *exprError
			if len(args) >= 1 {
				if sn, ok := args[0].(*ast.StringNode); ok {
					if _, err := parseHours(sn.Value); err != nil {
						found = locErr(src, sn, err.Error())
					}
				}
			}
			if found == nil && len(args) >= 2 {
				if sn, ok := args[1].(*ast.StringNode); ok {
					if _, err := cachedZone(sn.Value); err != nil {
						found = locErr(src, sn, err.Error())
					}
				}
			}
			if found != nil {
				f.events = append(f.events, exprFact{err: found})
				stop = true
			}
		}
	}}
	ast.Walk(&tree, v)
	f.limits[0] = staticLimits(src, tree, c.limits, false)
	f.limits[1] = staticLimits(src, tree, c.limits, true)
	c.mu.Lock()
	if c.facts == nil {
		c.facts = map[ast.Node]*exprFacts{}
	}
	if prev, ok := c.facts[tree]; ok {
		f = prev
	} else {
		c.facts[tree] = f
	}
	c.mu.Unlock()
	return f
}

// limitsOf returns what staticLimits finds in the expression, for the {{ }} of a reply or
// not.
func (f *exprFacts) limitsOf(reply bool) []*exprError {
	if reply {
		return f.limits[1]
	}
	return f.limits[0]
}

// unsetVar returns a warning for vars.name when nothing can ever give the variable a value:
// no file declares it in `vars:`, no rule's `set:` sets it, and no conversation test starts
// with it. It is empty at run time, which is most likely a typo.
func (cc *compiling) unsetVar(src string, n ast.Node, name string) *exprError {
	if _, ok := cc.rs.consts[name]; ok || cc.setVars[name] || strings.HasPrefix(name, "_") {
		return nil
	}
	known := slices.Collect(maps.Keys(cc.setVars))
	known = append(known, slices.Collect(maps.Keys(cc.rs.consts))...)
	slices.Sort(known)
	w := locErr(src, n, fmt.Sprintf("vars.%s is never set: no 'vars:' declares it and no rule sets it, so it is always empty%s",
		name, suggest(name, known)))
	w.warn = true
	return w
}

type visitor struct{ fn func(ast.Node) }

func (v *visitor) Visit(n *ast.Node) { v.fn(*n) }

// locErr places msg at node n of an expression.
func locErr(src string, n ast.Node, msg string) *exprError {
	from := n.Location().From
	line, col := 1, 0
	i := 0
	for _, r := range src {
		if i >= from {
			break
		}
		i++
		if r == '\n' {
			line, col = line+1, 0
		} else {
			col++
		}
	}
	return &exprError{line: line, col: col, msg: msg}
}

func compileRegex(src string) (*lazyRegex, error) {
	re, _, err := compileRegexLits(src)
	return re, err
}

// compileRegexLits compiles a `regex:` (case-insensitive unless it says otherwise) and
// returns the literals one of which its matches contain, in canonical case (requiredLits).
func compileRegexLits(src string) (*lazyRegex, []string, error) {
	if len(src) > maxRegexLen {
		return nil, nil, fmt.Errorf("it is %d bytes long; the limit is %d", len(src), maxRegexLen)
	}
	full := "(?i)" + src
	re, err := syntax.Parse(full, syntax.Perl)
	if err != nil {
		var se *syntax.Error
		if errors.As(err, &se) {
			return nil, nil, &syntax.Error{Code: se.Code, Expr: strings.TrimPrefix(se.Expr, "(?i)")}
		}
		return nil, nil, err
	}
	simple := re.Simplify()
	if instBound(simple) > maxRegexInsts {
		// Maybe over the limit: count exactly.
		prog, err := syntax.Compile(simple)
		if err != nil {
			return nil, nil, err
		}
		if len(prog.Inst) > maxRegexInsts {
			return nil, nil, fmt.Errorf("it compiles to %d instructions; the limit is %d: simplify the repetitions", len(prog.Inst), maxRegexInsts)
		}
	}
	lits := requiredLits(simple)
	return &lazyRegex{full: full, names: re.CapNames(), lits: lits}, lits, nil
}

// lazyRegex is a `regex:` checked when the rules load (it parses, within the limits) and
// compiled by package regexp the first time a message needs it: the literal prefilter runs
// few of the regexes of a large rule set, and compiling them all was a tenth of loading
// 100,000 rules. It is safe for concurrent use.
type lazyRegex struct {
	full  string   // the source, with its (?i)
	names []string // the names of its groups, as regexp.Regexp.SubexpNames
	lits  []string // literals one of which its matches contain (nil: none), read only
	re    atomic.Pointer[regexp.Regexp]
}

// get returns the compiled regex.
func (l *lazyRegex) get() *regexp.Regexp {
	if re := l.re.Load(); re != nil {
		return re
	}
	// The source parsed with the same flags when the rules loaded: it compiles.
	l.re.CompareAndSwap(nil, regexp.MustCompile(l.full))
	return l.re.Load()
}

// instBound returns at least the number of instructions syntax.Compile makes of re, a
// simplified regexp, without compiling it: a node makes one instruction per rune of a
// literal, at most two otherwise (a capture, a star), and an alternation one per branch;
// Compile adds two (fail and match).
func instBound(re *syntax.Regexp) int {
	var walk func(re *syntax.Regexp) int
	walk = func(re *syntax.Regexp) int {
		n := 2 + len(re.Rune) + len(re.Sub)
		for _, sub := range re.Sub {
			n += walk(sub)
		}
		return n
	}
	return 2 + walk(re)
}

// regexMsg is a regex error without Go's "error parsing regexp: ".
func regexMsg(err error) string {
	return strings.TrimPrefix(err.Error(), "error parsing regexp: ")
}

// regexCol returns the rune column (0-based) of the fragment a regex error names in src, or
// 0 when it is not there.
func regexCol(src, fragment string) int {
	i := strings.Index(src, fragment)
	if i < 0 {
		return 0
	}
	return len([]rune(src[:i]))
}

// helpRule is the built-in `help` rule, added when the files define none.
func (cc *compiling) helpRule(order int) *rule {
	r := &rule{name: "help", anyState: true, kind: bot.EventMessage, trigger: true, order: int32(order), hidden: true,
		pos: pos{file: "(built-in)"}}
	for _, p := range []string{"help", "[show] [the] (commands|menu)", "what can you do"} {
		flats, _ := parsePattern(p)
		for _, fp := range flats {
			r.pats = append(r.pats, pattern{src: p, flat: fp})
		}
	}
	prog, _, _ := cc.c.compile("help()", false)
	r.msgs = [][]*template{{{parts: []tmplPart{{prog: prog}}}}}
	r.needsEnv = true
	return r
}

// shadowing reports patterns that can never match because an earlier rule, with no
// condition, matches exactly the same messages in the same states.
func (cc *compiling) shadowing() {
	// The patterns are filed by the hash of their key (flatPattern.key), and compared by
	// key when the hashes are equal.
	type owner struct {
		r *rule
		p *pattern
	}
	npats := 0
	for _, r := range cc.rs.rules {
		npats += len(r.pats)
	}
	first := make(map[uint64][]owner, npats)
	// A pattern written with ( ) or [ ] has several expansions: it is dead only when every
	// one of them is.
	type verdict struct {
		p     *pattern
		dead  int
		total int
		by    *rule
	}
	var byNode []verdict  // of a rule's patterns
	var keys []uint64     // of a rule's patterns
	var key, other []byte // keys of patterns
	for _, r := range cc.rs.rules {
		if r.kind != bot.EventMessage || r.fallback {
			continue
		}
		byNode, keys = byNode[:0], keys[:0]
		for i := range r.pats {
			p := &r.pats[i]
			v := slices.IndexFunc(byNode, func(v verdict) bool { return v.p.node == p.node && v.p.src == p.src })
			if v < 0 {
				byNode = append(byNode, verdict{p: p})
				v = len(byNode) - 1
			}
			byNode[v].total++
			key = p.flat.appendKey(key[:0])
			k := fnv64(key)
			keys = append(keys, k)
			for _, o := range first[k] {
				if other = o.p.flat.appendKey(other[:0]); !bytes.Equal(other, key) {
					continue // another key with the same hash
				}
				if o.r != r && covers(o.r, r) {
					byNode[v].dead++
					byNode[v].by = o.r
					break
				}
			}
		}
		for _, v := range byNode {
			if v.dead == v.total && v.p.node != nil {
				cc.e.add(pos{file: r.pos.file, line: v.p.node.Line, col: v.p.node.Column},
					"pattern %q of rule '%s' can never match: rule '%s' (%s) comes first and matches the same messages; give rule '%s' a higher priority, a 'when', or remove the pattern",
					v.p.src, r.name, v.by.name, v.by.pos.short(), r.name)
			}
		}
		if r.when == nil && !r.cont && !r.broken {
			for i, k := range keys {
				first[k] = append(first[k], owner{r, &r.pats[i]})
			}
		}
	}
}

// fnv64 returns the FNV-1a hash of b.
func fnv64(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return h
}

// covers reports whether a applies in every state b applies in.
func covers(a, b *rule) bool {
	if a.anyState {
		return true
	}
	if b.anyState {
		return false
	}
	for _, s := range b.states {
		if !slices.Contains(a.states, s) {
			return false
		}
	}
	return true
}

// IndexStats says how the message rules are found: most through the words of their
// patterns or the literals of their regexes, the others tried on every message of their
// states.
type IndexStats struct {
	// Rules counts the message rules, fallbacks aside.
	Rules int
	// Indexed counts the rules tried only when a word of a pattern or a literal of a regex
	// is in the message.
	Indexed int
	// Always counts the rules tried on every message of their states: rules with no
	// trigger (only `when:`, or none), and rules with a pattern or regex nothing anchors.
	Always int
	// AlwaysAnyState counts those of Always that apply in every state (`state: '*'`).
	AlwaysAnyState int
	// Regexes counts the regexes; WeakRegexes those indexed by a literal of one or two bytes
	// (tried on many messages), UnindexedRegexes those with no literal every match contains
	// (such as `\d{5}`): each of those makes its rule one of Always.
	Regexes, WeakRegexes, UnindexedRegexes int
	// IndexBytes is the size of the word and literal indexes.
	IndexBytes int
}

// IndexStats says how the rules are indexed.
func (rs *RuleSet) IndexStats() IndexStats { return rs.idx }

// buildIndex fills the indexes. Each pattern is filed under its rarest literal word, each
// regex under the literals one of which its matches contain; a message only tries the rules
// whose words or literals it contains, and the rules nothing anchors that apply in its
// state.
func (rs *RuleSet) buildIndex() {
	words := 0 // words of the patterns, at most as many distinct ones
	for _, r := range rs.rules {
		if r.kind != bot.EventMessage || r.fallback {
			continue
		}
		for _, p := range r.pats {
			for _, e := range p.flat.elems {
				if e.kind == elWord {
					words++
				}
			}
		}
	}
	// Number the words, count them, and keep the number of each word of each pattern in
	// order (seq), so that choosing the anchors needs no map.
	ids := make(map[string]int32, words)
	names := make([]string, 0, words)
	freq := make([]int32, 0, words)
	seq := make([]int32, 0, words)
	for _, r := range rs.rules {
		if r.kind != bot.EventMessage || r.fallback {
			continue
		}
		for _, p := range r.pats {
			for _, e := range p.flat.elems {
				if e.kind == elWord {
					id, ok := ids[e.word]
					if !ok {
						id = int32(len(names))
						ids[e.word] = id
						names = append(names, e.word)
						freq = append(freq, 0)
					}
					freq[id]++
					seq = append(seq, id)
				}
			}
		}
	}
	byWord := make([][]int32, len(names)) // by word number: the ranks of the rules it anchors
	var lits []litEntry
	var always []*rule
	var anchors []int32 // of a rule's patterns: a word number, or -1
	st := &rs.idx
	next := 0 // in seq
	for _, r := range rs.rules {
		rank := r.rank
		switch {
		case r.fallback:
			rs.fallback = append(rs.fallback, rank)
			continue
		case r.kind != bot.EventMessage:
			rs.byKind[r.kind] = append(rs.byKind[r.kind], rank)
			continue
		}
		st.Rules++
		st.Regexes += len(r.res)
		anchored := r.trigger
		for _, re := range r.res {
			switch l := re.lits; {
			case l == nil:
				st.UnindexedRegexes++
				anchored = false
			case slices.ContainsFunc(l, func(s string) bool { return len(s) < 3 }):
				st.WeakRegexes++
			}
		}
		anchors = anchors[:0]
		for _, p := range r.pats {
			best, bestN := int32(-1), int32(0)
			for _, e := range p.flat.elems {
				if e.kind != elWord {
					continue
				}
				id := seq[next]
				next++
				if n := freq[id]; best < 0 || n < bestN {
					best, bestN = id, n
				}
			}
			if best < 0 {
				anchored = false
			}
			anchors = append(anchors, best)
		}
		if !anchored {
			always = append(always, r)
			continue
		}
		st.Indexed++
		for _, w := range anchors {
			l := byWord[w]
			if len(l) == 0 || l[len(l)-1] != rank {
				byWord[w] = append(l, rank)
			}
		}
		for _, re := range r.res {
			for _, lit := range re.lits {
				lits = append(lits, litEntry{lit: lit, rank: rank})
			}
		}
	}
	// The literal index, meanwhile.
	var litsDone sync.WaitGroup
	litsDone.Go(func() { rs.lits = newLitIndex(lits) })
	n := 0
	for _, l := range byWord {
		if l != nil {
			n++
		}
	}
	rs.index = make(map[string][]int32, n)
	st.IndexBytes = 0
	for w, l := range byWord {
		if l != nil {
			rs.index[names[w]] = l
			st.IndexBytes += len(names[w]) + 16 + 4*cap(l) + 24
		}
	}
	// Rules nothing anchors, by state: a rule of state 'x' costs only messages in 'x'.
	rs.always = map[string][]int32{}
	for _, r := range always {
		st.Always++
		if r.anyState {
			st.AlwaysAnyState++
			rs.alwaysAt = append(rs.alwaysAt, r.rank)
		}
	}
	for _, r := range always {
		if r.anyState {
			continue
		}
		for _, s := range r.states {
			if _, ok := rs.always[s]; !ok {
				rs.always[s] = slices.Clone(rs.alwaysAt)
			}
			rs.always[s] = append(rs.always[s], r.rank)
		}
	}
	for s, l := range rs.always {
		slices.Sort(l)
		rs.always[s] = slices.Compact(l)
	}
	litsDone.Wait()
	st.IndexBytes += rs.lits.size()
}

// alwaysIn returns the rules tried on every message in a state, by rank.
func (rs *RuleSet) alwaysIn(state string) []int32 {
	if l, ok := rs.always[state]; ok {
		return l
	}
	return rs.alwaysAt
}

// makeHelp builds the generated help text.
func (rs *RuleSet) makeHelp() string {
	byOrder := slices.Clone(rs.rules)
	if !slices.IsSortedFunc(byOrder, func(a, b *rule) int { return cmp.Compare(a.order, b.order) }) {
		sort.SliceStable(byOrder, func(i, j int) bool { return byOrder[i].order < byOrder[j].order })
	}
	var b strings.Builder
	for _, r := range byOrder {
		if r.hidden || r.description() == "" {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("Here is what I can help with:")
		}
		b.WriteString("\n- ")
		b.WriteString(r.description())
		if ex := r.examples(); len(ex) > 0 {
			fmt.Fprintf(&b, " (try \"%s\")", ex[0])
		}
	}
	if b.Len() == 0 {
		return "I have no topics to list yet."
	}
	return b.String()
}
