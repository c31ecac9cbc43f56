package rules

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/imbot-dev/imbot/bot"
)

// The keys of a rule file, in the order the reference documents them.
var (
	fileKeys = []string{"version", "vars", "include", "typing", "help", "rules"}
	ruleKeys = []string{
		"name", "description", "examples", "hidden", "priority",
		"on", "match", "regex", "when", "state", "fallback",
		"reply", "messages", "pick", "typing", "set", "goto", "call", "handler", "invite", "end", "continue",
	}
	eventNames = []string{"message", "session.start", "session.end", "typing", "idle"}
)

// StartState is the name rule files use for the initial state of a conversation (stored as
// "" in store.ConversationState.State). A rule without `state:` applies in it; `goto: start`
// returns to it.
const StartState = "start"

// AnyState in a rule's `state:` makes it apply in every state (global commands).
const AnyState = "*"

// fileAST is one rule file as written.
type fileAST struct {
	path     string
	src      *src
	vars     map[string]any
	varPos   map[string]pos
	includes []*yaml.Node
	typing   *typingSpec
	help     *bool
	rules    []*ruleAST
	// aliased: the file has aliases (*name), which its src counts as they are resolved.
	aliased bool
}

// ruleAST is one rule as written, with the nodes kept for positions.
type ruleAST struct {
	src         *src
	node        *yaml.Node
	name        string
	nameNode    *yaml.Node
	description string
	examples    []string
	hidden      bool
	priority    int
	on          bot.EventKind
	onNode      *yaml.Node
	match       []*yaml.Node
	regex       []*yaml.Node
	when        *yaml.Node
	states      []*yaml.Node
	fallback    bool
	fallbackN   *yaml.Node
	msgs        [][]*yaml.Node // messages in a row, each a list of alternatives
	pick        pickMode
	typing      *typingSpec
	set         []setAST
	goTo        *yaml.Node
	call        *yaml.Node
	handler     *yaml.Node
	invite      *yaml.Node
	end         bool
	cont        bool
	has         fields
	// index and whatName are the place of the rule in its file and the name found first,
	// for messages (String).
	index    int
	whatName string
}

// String names the rule in messages: "rule 'name'", or "rule #n" when it has no name.
func (r *ruleAST) String() string {
	if r.whatName != "" {
		return "rule '" + r.whatName + "'"
	}
	return "rule #" + strconv.Itoa(r.index+1)
}

type setAST struct {
	name string
	k, v *yaml.Node
}

type pickMode uint8

const (
	pickRandom pickMode = iota
	pickCycle
)

// typingSpec is a rule's `typing:`: a fixed delay, or auto (per length with a cap).
type typingSpec struct {
	auto bool
	d    time.Duration
}

// Auto typing: this much per character, at least autoTypingMin per message, and at most
// Options.AutoTypingMax (default DefaultAutoTypingMax) for one answer, all its messages
// together (see proc.typingFor).
const (
	autoTypingPerChar = 25 * time.Millisecond
	autoTypingMin     = 400 * time.Millisecond
	maxTyping         = 30 * time.Second
)

// DefaultAutoTypingMax is the default of Options.AutoTypingMax: artificial typing stays
// short, so that a user rarely writes again while an answer is still held back.
const DefaultAutoTypingMax = 1500 * time.Millisecond

// delay is the typing before text: the fixed delay, or for auto the pace of the text (which
// the caller caps).
func (t *typingSpec) delay(text string) time.Duration {
	if t == nil {
		return 0
	}
	if !t.auto {
		return t.d
	}
	return max(time.Duration(len([]rune(text)))*autoTypingPerChar, autoTypingMin)
}

func (s *src) typing(n *yaml.Node) *typingSpec {
	v, ok := s.str(n, "'typing'")
	if !ok {
		return nil
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "auto":
		return &typingSpec{auto: true}
	case "off", "none", "0", "false", "no":
		return &typingSpec{}
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < 0 {
		s.errf(n, "'typing' must be a duration such as 800ms or 1.5s, or auto, or off; not %q", v)
		return nil
	}
	if d > maxTyping {
		s.errf(n, "'typing' of %v is too long; the limit is %v", d, maxTyping)
		return nil
	}
	return &typingSpec{d: d}
}

// hasAlias reports whether the tree under n holds an alias node.
func hasAlias(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode {
		return true
	}
	for _, c := range n.Content {
		if hasAlias(c) {
			return true
		}
	}
	return false
}

// decodeFile walks the root node of a rule file.
func decodeFile(s *src, root *yaml.Node) *fileAST {
	f := &fileAST{path: s.name, src: s, vars: map[string]any{}, varPos: map[string]pos{}, aliased: !s.noAlias && hasAlias(root)}
	doc := root
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			s.e.add(pos{file: s.name, line: 1, col: 1}, "file is empty: a rule file starts with 'version: 1' and has a 'rules:' list")
			return nil
		}
		doc = doc.Content[0]
	}
	if doc.Kind == yaml.ScalarNode && doc.Tag == "!!null" {
		s.e.add(pos{file: s.name, line: 1, col: 1}, "file is empty: a rule file starts with 'version: 1' and has a 'rules:' list")
		return nil
	}
	fs := s.mapping(doc, "the file", fileKeys)
	if fs == nil {
		return nil
	}
	if v, ok := fs["version"]; !ok {
		s.e.add(s.pos(doc), "the file has no 'version': add 'version: 1' at the top")
	} else if n, ok := s.integer(v.v, "'version'", 0, 1<<30); ok && n != 1 {
		s.errf(v.v, "unsupported version %d: this imbot reads 'version: 1'", n)
	}
	if v, ok := fs["vars"]; ok {
		n := s.resolve(v.v)
		if n != nil && n.Kind != yaml.MappingNode && n.Tag != "!!null" {
			s.errf(n, "'vars' must be a mapping of name: value, such as 'vars: {company: Contoso}'")
		} else if n != nil && n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := s.resolve(n.Content[i])
				if k == nil {
					continue
				}
				if !isIdent(k.Value) || strings.HasPrefix(k.Value, "_") {
					s.errf(k, "variable name %q is not a name: use letters, digits and _ (not first), such as company_name", k.Value)
					continue
				}
				if _, dup := f.vars[k.Value]; dup {
					s.errf(k, "variable '%s' is defined twice", k.Value)
					continue
				}
				val, ok := s.value(n.Content[i+1], 0)
				if ok {
					f.vars[k.Value] = val
					f.varPos[k.Value] = s.pos(k)
				}
			}
		}
	}
	if v, ok := fs["include"]; ok {
		f.includes = s.strs(v.v, "'include'")
	}
	if v, ok := fs["typing"]; ok {
		f.typing = s.typing(v.v)
	}
	if v, ok := fs["help"]; ok {
		if b, ok := s.boolean(v.v, "'help'"); ok {
			f.help = &b
		}
	}
	rv, ok := fs["rules"]
	if !ok {
		if len(f.includes) == 0 {
			s.e.add(s.pos(doc), "the file has no 'rules:' list (and includes nothing)")
		}
		return f
	}
	list := s.resolve(rv.v)
	if list == nil {
		return f
	}
	if list.Kind == yaml.ScalarNode && list.Tag == "!!null" {
		return f
	}
	if list.Kind != yaml.SequenceNode {
		s.errf(list, "'rules' must be a list of rules (each item starts with '- name: ...'), not %s", kindName(list))
		return f
	}
	asts := make([]ruleAST, len(list.Content)) // one allocation for the rules of the file
	f.rules = make([]*ruleAST, 0, len(list.Content))
	for i, rn := range list.Content {
		if r := decodeRule(s, rn, i, &asts[i]); r != nil {
			f.rules = append(f.rules, r)
		}
	}
	return f
}

func decodeRule(s *src, rn *yaml.Node, i int, r *ruleAST) *ruleAST {
	rn = s.resolve(rn)
	if rn == nil {
		return nil
	}
	*r = ruleAST{src: s, node: rn, on: bot.EventMessage, index: i}
	// Find the name first, so that every other message can mention it (what).
	if rn.Kind == yaml.MappingNode {
		for j := 0; j+1 < len(rn.Content); j += 2 {
			if rn.Content[j].Value == "name" {
				if v := s.resolve(rn.Content[j+1]); v != nil && v.Kind == yaml.ScalarNode && v.Value != "" {
					r.whatName = v.Value
				}
			}
		}
	}
	what := r
	fs := s.fields(rn, what, ruleKeys)
	if fs == nil {
		return nil
	}
	r.has = fs
	if v, ok := fs.get("name"); ok {
		if name, ok := s.str(v.v, "'name'"); ok {
			if name == "" || strings.ContainsAny(name, " \t\n") {
				s.errf(v.v, "rule name %q must be one word, such as reset-password", name)
			}
			r.name, r.nameNode = name, v.v
		}
	} else {
		s.errf(rn, "%s has no 'name': every rule needs a unique name, such as 'name: greet'", what)
		r.name = fmt.Sprintf("#%d", i+1)
	}
	if v, ok := fs.get("description"); ok {
		r.description, _ = s.str(v.v, "'description'")
	}
	if v, ok := fs.get("examples"); ok {
		for _, n := range s.strs(v.v, "'examples'") {
			r.examples = append(r.examples, n.Value)
		}
	}
	if v, ok := fs.get("hidden"); ok {
		r.hidden, _ = s.boolean(v.v, "'hidden'")
	}
	if v, ok := fs.get("priority"); ok {
		r.priority, _ = s.integer(v.v, "'priority'", -1_000_000, 1_000_000)
	}
	if v, ok := fs.get("on"); ok {
		if on, ok := s.str(v.v, "'on'"); ok {
			r.onNode = v.v
			k, found := eventKind(on)
			if !found {
				s.errf(v.v, "unknown event '%s' in 'on'%s", on, keyHint(on, eventNames))
			} else {
				r.on = k
			}
		}
	}
	if v, ok := fs.get("match"); ok {
		r.match = s.strs(v.v, "'match'")
	}
	if v, ok := fs.get("regex"); ok {
		r.regex = s.strs(v.v, "'regex'")
	}
	if v, ok := fs.get("when"); ok {
		if _, ok := s.str(v.v, "'when'"); ok {
			r.when = s.resolve(v.v)
		}
	}
	if v, ok := fs.get("state"); ok {
		r.states = s.strs(v.v, "'state'")
	}
	if v, ok := fs.get("fallback"); ok {
		r.fallback, _ = s.boolean(v.v, "'fallback'")
		r.fallbackN = v.v
	}
	_, hasReply := fs.get("reply")
	_, hasMsgs := fs.get("messages")
	if hasReply && hasMsgs {
		s.errf(fs.at("messages").k, "%s has both 'reply' and 'messages': use 'messages' alone to send several messages in a row", what)
	} else if hasReply {
		if alts := s.alternatives(fs.at("reply").v, "'reply'"); alts != nil {
			r.msgs = [][]*yaml.Node{alts}
		}
	} else if hasMsgs {
		n := s.resolve(fs.at("messages").v)
		if n != nil && n.Kind != yaml.SequenceNode {
			s.errf(n, "'messages' must be a list of messages sent in a row; for one message use 'reply'")
		} else if n != nil {
			if len(n.Content) == 0 {
				s.errf(n, "'messages' is an empty list")
			}
			for _, m := range n.Content {
				if alts := s.alternatives(m, "each item of 'messages'"); alts != nil {
					r.msgs = append(r.msgs, alts)
				}
			}
		}
	}
	if v, ok := fs.get("pick"); ok {
		if p, ok := s.str(v.v, "'pick'"); ok {
			switch p {
			case "random":
				r.pick = pickRandom
			case "cycle":
				r.pick = pickCycle
			default:
				s.errf(v.v, "'pick' must be random or cycle, not %q%s", p, suggest(p, []string{"random", "cycle"}))
			}
		}
	}
	if v, ok := fs.get("typing"); ok {
		r.typing = s.typing(v.v)
	}
	if v, ok := fs.get("set"); ok {
		n := s.resolve(v.v)
		if n != nil && n.Kind != yaml.MappingNode {
			s.errf(n, "'set' must be a mapping of variable: value, such as 'set: {topic: billing}'")
		} else if n != nil {
			seen := map[string]bool{}
			for j := 0; j+1 < len(n.Content); j += 2 {
				k := s.resolve(n.Content[j])
				if k == nil {
					continue
				}
				if k.Kind != yaml.ScalarNode || !isIdent(k.Value) || strings.HasPrefix(k.Value, "_") {
					s.errf(k, "variable name %q is not a name: use letters, digits and _ (not first), such as user_name", k.Value)
					continue
				}
				if seen[k.Value] {
					s.errf(k, "variable '%s' is set twice in %s", k.Value, what)
					continue
				}
				seen[k.Value] = true
				r.set = append(r.set, setAST{name: k.Value, k: k, v: n.Content[j+1]})
			}
		}
	}
	for _, key := range []string{"goto", "call", "handler", "invite"} {
		v, ok := fs.get(key)
		if !ok {
			continue
		}
		if _, ok := s.str(v.v, "'"+key+"'"); !ok {
			continue
		}
		n := s.resolve(v.v)
		switch key {
		case "goto":
			r.goTo = n
		case "call":
			r.call = n
		case "handler":
			r.handler = n
		case "invite":
			r.invite = n
		}
	}
	if v, ok := fs.get("end"); ok {
		r.end, _ = s.boolean(v.v, "'end'")
	}
	if v, ok := fs.get("continue"); ok {
		r.cont, _ = s.boolean(v.v, "'continue'")
	}
	return r
}

// alternatives reads a reply: one string, or a list of strings picked from.
func (s *src) alternatives(n *yaml.Node, what string) []*yaml.Node {
	n = s.resolve(n)
	if n == nil {
		return nil
	}
	if n.Kind == yaml.SequenceNode {
		for _, c := range n.Content {
			if c = s.resolve(c); c != nil && c.Kind == yaml.SequenceNode {
				s.errf(c, "%s: a list inside a list; for several messages in a row use 'messages'", what)
				return nil
			}
		}
	}
	out := s.strs(n, what)
	if len(out) == 0 {
		return nil
	}
	return out
}

func eventKind(s string) (bot.EventKind, bool) {
	switch s {
	case "message":
		return bot.EventMessage, true
	case "session.start":
		return bot.EventSessionStart, true
	case "session.end":
		return bot.EventSessionEnd, true
	case "typing":
		return bot.EventTyping, true
	case "idle":
		return bot.EventIdle, true
	}
	return 0, false
}
