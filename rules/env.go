package rules

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	exprcompiler "github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/vm"

	"github.com/imbot-dev/imbot/bot"
)

// exprEnv is what expressions see. Field names are the language's names.
type exprEnv struct {
	Text    string            `expr:"text"`
	Sender  senderEnv         `expr:"sender"`
	Session sessionEnv        `expr:"session"`
	State   string            `expr:"state"`
	Vars    map[string]any    `expr:"vars"`
	Match   map[string]string `expr:"match"`
	Now     time.Time         `expr:"now"`
	Event   string            `expr:"event"`
	Typing  bool              `expr:"typing"`
	Result  any               `expr:"result"`
	Ctx     context.Context   `expr:"ctx"`
	// Step is a loop step (guardPatch): budget.step, panicking with its error.
	Step func() bool `expr:"$step"`

	budget *budget // the event's; also in Ctx, for guarded functions
}

type senderEnv struct {
	URI    string `expr:"uri"`
	User   string `expr:"user"`
	Domain string `expr:"domain"`
	Name   string `expr:"name"`
	// Verified is bot.Peer.Verified: the bot knows the sender is who uri says.
	Verified bool `expr:"verified"`
}

// senderOf is what expressions see of a peer.
func senderOf(p bot.Peer) senderEnv {
	return senderEnv{URI: p.URI, User: p.User, Domain: p.Domain, Name: p.Name(), Verified: p.Verified}
}

type sessionEnv struct {
	ID      string    `expr:"id"`
	Mode    string    `expr:"mode"`
	Turns   int       `expr:"turns"`
	Started time.Time `expr:"started"`
}

// Expression limits.
const (
	maxExprNodes  = 1000
	maxExprLen    = 4096
	exprMemBudget = 1_000_000
)

// compiler compiles the expressions of one rule set.
type compiler struct {
	opts  []expr.Option
	funcs map[string]bool // every function that takes the context
	names []string        // function names, for suggestions
	// done keeps the programs compiled so far by source: rules repeat expressions
	// ({{ sender.name }}, when: conditions), and a compilation costs far more than a lookup.
	// Rules are compiled on several goroutines (compileRules): mu guards it.
	mu   sync.Mutex
	done map[compiled]*vm.Program
	// regexes keeps the regexes compiled so far by source, with their literals (mu guards
	// it too): a rule set repeats its order-number and e-mail regexes across states.
	regexes map[string]compiledRegex
	// programs and regexCount count the expressions and regexes compiled (mu guards them):
	// a source compiles once, or once on each goroutine that meets it at the same time.
	programs, regexCount int
	// confs are the expr configurations not in use, for values and for conditions (AsBool)
	// (mu guards them): expr.Compile builds one from the options for every expression, which
	// cost more than the compilation itself. A configuration keeps a cache of types, so one
	// goroutine uses it at a time.
	confs [2][]*conf.Config
	// facts keeps what the checks read of each compiled expression's tree (mu guards it).
	facts map[ast.Node]*exprFacts
	// limits are the Limits of the rule set, defaults filled in, for staticLimits.
	limits Limits
}

type compiledRegex struct {
	re   *lazyRegex
	lits []string
}

// regex checks a `regex:` (compileRegexLits), once for each source. A lazyRegex is safe for
// concurrent use, so rules share it; lits are only read.
func (c *compiler) regex(src string) (*lazyRegex, []string, error) {
	c.mu.Lock()
	x, ok := c.regexes[src]
	c.mu.Unlock()
	if ok {
		return x.re, x.lits, nil
	}
	re, lits, err := compileRegexLits(src)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	c.regexes[src] = compiledRegex{re, lits}
	c.regexCount++
	c.mu.Unlock()
	return re, lits, nil
}

type compiled struct {
	src    string
	asBool bool
}

// callPatch rewrites dotted calls (accounts.reset(x)) to the registered function and passes
// the context to functions that take it.
type callPatch struct{ funcs map[string]bool }

func (p callPatch) Visit(n *ast.Node) {
	c, ok := (*n).(*ast.CallNode)
	if !ok {
		return
	}
	name, ok := dottedName(c.Callee)
	if !ok || !p.funcs[name] {
		return
	}
	if len(c.Arguments) > 0 {
		if id, ok := c.Arguments[0].(*ast.IdentifierNode); ok && id.Value == "ctx" {
			return // patched already
		}
	}
	callee := &ast.IdentifierNode{Value: name}
	callee.SetLocation(c.Callee.Location())
	nc := &ast.CallNode{Callee: callee, Arguments: append([]ast.Node{&ast.IdentifierNode{Value: "ctx"}}, c.Arguments...)}
	ast.Patch(n, nc)
}

// dottedName returns "a.b.c" for the callee a.b.c.
func dottedName(n ast.Node) (string, bool) {
	switch x := n.(type) {
	case *ast.IdentifierNode:
		return x.Value, true
	case *ast.MemberNode:
		s, ok := x.Property.(*ast.StringNode)
		if !ok || x.Optional {
			return "", false
		}
		base, ok := dottedName(x.Node)
		if !ok {
			return "", false
		}
		return base + "." + s.Value, true
	}
	return "", false
}

func newCompiler(user Funcs, builtins Funcs) (*compiler, error) {
	c := &compiler{funcs: map[string]bool{}, done: map[compiled]*vm.Program{}, regexes: map[string]compiledRegex{}}
	c.opts = []expr.Option{
		expr.Env(exprEnv{}),
		expr.DisableBuiltin("now"),
		expr.MaxNodes(maxExprNodes),
	}
	guards, guardNames := guardOptions()
	c.opts = append(c.opts, guards...)
	for _, name := range guardNames {
		c.funcs[name] = true
	}
	add := func(name string, f Function) error {
		if !validFuncName(name) {
			return fmt.Errorf("rules: function name %q: use words of letters, digits and _, joined by dots", name)
		}
		if f.Call == nil {
			return fmt.Errorf("rules: function %q has no Call", name)
		}
		types, err := f.exprTypes()
		if err != nil {
			return fmt.Errorf("rules: function %q: %w", name, err)
		}
		call := f.Call
		fn := func(params ...any) (any, error) {
			ctx, _ := params[0].(context.Context)
			if ctx == nil {
				ctx = context.Background()
			}
			return call(ctx, params[1:]...)
		}
		c.opts = append(c.opts, expr.Function(name, fn, types...))
		c.funcs[name] = true
		c.names = append(c.names, name)
		return nil
	}
	for name, f := range builtins {
		if err := add(name, f); err != nil {
			return nil, err
		}
	}
	for name, f := range user {
		if _, ok := builtins[name]; ok {
			return nil, fmt.Errorf("rules: function %q is built in; pick another name", name)
		}
		if err := add(name, f); err != nil {
			return nil, err
		}
	}
	// callPatch first: guardPatch needs the types of calls that take the context.
	c.opts = append(c.opts, expr.Patch(callPatch{c.funcs}), expr.Patch(guardPatch{}))
	return c, nil
}

// exprError is an expression error at a line (1-based) and rune column (0-based) of its
// source, or a warning: a problem that does not stop the rules from loading.
type exprError struct {
	line, col int
	msg       string
	warn      bool
}

func (e *exprError) Error() string { return e.msg }

// compileIn is compile; a, when not nil, keeps the programs this goroutine has asked for,
// so that it asks again without locking.
func (c *compiler) compileIn(src string, asBool bool, a *compileArena) (*vm.Program, ast.Node, error) {
	if a == nil {
		return c.compile(src, asBool)
	}
	if p, ok := a.progs[compiled{src, asBool}]; ok {
		return p, p.Node(), nil
	}
	p, tree, err := c.compile(src, asBool)
	if err == nil {
		if a.progs == nil {
			a.progs = map[compiled]*vm.Program{}
		}
		a.progs[compiled{src, asBool}] = p
	}
	return p, tree, err
}

func (c *compiler) compile(src string, asBool bool) (*vm.Program, ast.Node, error) {
	if len(src) > maxExprLen {
		return nil, nil, &exprError{line: 1, col: 0, msg: fmt.Sprintf("expression is %d bytes long; the limit is %d", len(src), maxExprLen)}
	}
	c.mu.Lock()
	p, ok := c.done[compiled{src, asBool}]
	c.mu.Unlock()
	if ok {
		return p, p.Node(), nil
	}
	p, err := c.exprCompile(src, asBool)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, nil, &exprError{line: fe.Line, col: fe.Column, msg: c.explain(fe.Message)}
		}
		return nil, nil, &exprError{line: 1, col: 0, msg: err.Error()}
	}
	c.mu.Lock()
	c.done[compiled{src, asBool}] = p
	c.programs++
	c.mu.Unlock()
	return p, p.Node(), nil
}

// exprCompile is expr.Compile(src, c.opts...) (with expr.AsBool() when asBool), with a
// configuration made once for many expressions.
func (c *compiler) exprCompile(src string, asBool bool) (*vm.Program, error) {
	k := 0
	if asBool {
		k = 1
	}
	c.mu.Lock()
	var config *conf.Config
	if n := len(c.confs[k]); n > 0 {
		config = c.confs[k][n-1]
		c.confs[k] = c.confs[k][:n-1]
	}
	c.mu.Unlock()
	if config == nil {
		// What expr.Compile does before it parses.
		config = conf.CreateNew()
		for _, op := range c.opts {
			op(config)
		}
		if asBool {
			expr.AsBool()(config)
		}
		for name := range config.Disabled {
			delete(config.Builtins, name)
		}
		config.Check()
	}
	defer func() {
		c.mu.Lock()
		c.confs[k] = append(c.confs[k], config)
		c.mu.Unlock()
	}()
	// What expr.Compile does next.
	tree, err := checker.ParseCheck(src, config)
	if err != nil {
		return nil, err
	}
	if config.Optimize {
		if err := optimizer.Optimize(&tree.Node, config); err != nil {
			var fileError *file.Error
			if errors.As(err, &fileError) {
				return nil, fileError.Bind(tree.Source)
			}
			return nil, err
		}
	}
	return exprcompiler.Compile(tree, config)
}

var vmPool = sync.Pool{New: func() any { return new(vm.VM) }}

// run evaluates a program: one evaluation, with a fresh count of the text it builds and of
// the time it loops.
func run(p *vm.Program, env *exprEnv) (any, error) {
	env.budget.reset()
	return exec(p, env)
}

// exec runs a program within the current evaluation.
func exec(p *vm.Program, env *exprEnv) (out any, err error) {
	v := vmPool.Get().(*vm.VM)
	v.MemoryBudget = exprMemBudget
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("expression panicked: %v", r)
		}
		vmPool.Put(v)
	}()
	out, err = v.Run(p, env)
	var fe *file.Error
	if err != nil && errors.As(err, &fe) && fe.Prev == nil && fe.Message == "memory budget exceeded" {
		fe.Wrap(errMemory) // so that errors.Is(err, ErrLimit)
	}
	return out, err
}

// format renders a value in a reply.
func format(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'f', -1, 32)
	case int:
		return strconv.Itoa(x)
	case bool:
		return strconv.FormatBool(x)
	case time.Time:
		return x.Format("2006-01-02 15:04")
	case time.Duration:
		return x.String()
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v)
}

// The names expressions know, for messages about unknown ones.
var (
	envNames   = []string{"text", "sender", "session", "state", "vars", "match", "now", "event", "typing", "result"}
	envStructs = map[string]struct {
		name   string
		fields []string
	}{
		"senderEnv":  {"sender", []string{"uri", "user", "domain", "name", "verified"}},
		"sessionEnv": {"session", []string{"id", "mode", "turns", "started"}},
	}
	noFieldRe     = regexp.MustCompile(`^type rules\.(\w+) has no field (\w+)$`)
	unknownNameRe = regexp.MustCompile(`^unknown name (\w+)$`)
	unknownFuncRe = regexp.MustCompile(`^unknown func(?:tion)? (\w+)`)
)

// explain rewrites expr's messages in the language's own terms.
func (c *compiler) explain(msg string) string {
	if m := noFieldRe.FindStringSubmatch(msg); m != nil {
		if st, ok := envStructs[m[1]]; ok {
			return fmt.Sprintf("%s has no field '%s'%s (it has %s)", st.name, m[2], suggest(m[2], st.fields), strings.Join(st.fields, ", "))
		}
	}
	if m := unknownNameRe.FindStringSubmatch(msg); m != nil {
		h := suggest(m[1], append(envNames, c.names...))
		if h == "" {
			h = "; expressions know " + oneOf(envNames) + ", and functions"
		}
		return fmt.Sprintf("unknown name '%s'%s", m[1], h)
	}
	if m := unknownFuncRe.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("unknown function '%s'%s", m[1], suggest(m[1], c.names))
	}
	return strings.ReplaceAll(msg, "rules.", "")
}
