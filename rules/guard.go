package rules

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/vm/runtime"
)

// Guarded evaluation. expr's memory budget counts list elements, not bytes of text, and expr
// has no clock, so the compiler rewrites what can build text or loop without bound:
//
//   - the builtins that build text or lists of it (repeat, replace, join, upper, lower,
//     split, splitAfter, string, toJSON, toBase64, fromJSON) are replaced by functions of
//     the same name that charge what they are about to build to the evaluation's budget,
//     then call the builtin;
//   - `a + b` on text becomes $concat(ctx, a, b) (or $add when a side's type is only known
//     at run time), which charges the result before building it;
//   - `a matches b` with a pattern built at run time becomes $matches(ctx, a, b), which holds
//     the pattern to the limits of `regex:`;
//   - the body of every loop (all, map, filter, reduce, ...) starts with $step(), which
//     stops the evaluation once it has looped for longer than Limits.Time.
//
// The functions find the event's budget in their context (budgetFrom); $step is a field of
// the environment, bound to the budget, so that a loop step costs no lookup.

// guardCost returns how many bytes of text a guarded builtin is about to build from its
// arguments (the context left out), or -1 when the size does not fit an int. It stops
// counting past limit. Arguments the builtin itself rejects cost 0: the builtin reports them.
type guardCost func(args []any, limit int) int

// guarded are the builtins that build text or lists of it, with what each costs.
var guarded = map[string]guardCost{
	"repeat": func(args []any, _ int) int {
		s, _ := args[0].(string)
		n := runtime.ToInt(args[1])
		if n < 0 {
			return 0
		}
		return mulSize(len(s), n)
	},
	"replace": func(args []any, _ int) int {
		s, _ := args[0].(string)
		old, _ := args[1].(string)
		repl, _ := args[2].(string)
		n := pieces(s, old) - 1
		if len(args) == 4 {
			if m := runtime.ToInt(args[3]); m >= 0 && m < n {
				n = m
			}
		}
		if len(repl) <= len(old) {
			return len(s)
		}
		grow := mulSize(n, len(repl)-len(old))
		if grow < 0 || grow > math.MaxInt-len(s) {
			return -1
		}
		return len(s) + grow
	},
	"join": func(args []any, limit int) int {
		glue := ""
		if len(args) == 2 {
			glue, _ = args[1].(string)
		}
		total, n := 0, 0
		add := func(s string) {
			if n > 0 {
				total += len(glue)
			}
			total += len(s)
			n++
		}
		switch a := args[0].(type) {
		case []string:
			for _, s := range a {
				if add(s); total > limit {
					break
				}
			}
		case []any:
			for _, e := range a {
				s, _ := e.(string)
				if add(s); total > limit {
					break
				}
			}
		}
		return total
	},
	"upper":      func(args []any, _ int) int { s, _ := args[0].(string); return len(s) },
	"lower":      func(args []any, _ int) int { s, _ := args[0].(string); return len(s) },
	"toBase64":   func(args []any, _ int) int { s, _ := args[0].(string); return base64.StdEncoding.EncodedLen(len(s)) },
	"string":     func(args []any, limit int) int { return textSize(args[0], limit, false) },
	"toJSON":     func(args []any, limit int) int { return textSize(args[0], limit, true) },
	"fromJSON":   func(args []any, _ int) int { s, _ := args[0].(string); return mulSize(len(s), jsonGrowth) },
	"split":      splitCost,
	"splitAfter": splitCost,
}

// jsonGrowth bounds how many bytes a byte of JSON takes once parsed: "[0,0,...]" makes
// a list of numbers, 24 bytes for every 2.
const jsonGrowth = 12

// listItemBytes is what a piece of a list of text costs besides its text, which split
// shares with the string it splits.
const listItemBytes = 16

func splitCost(args []any, _ int) int {
	s, _ := args[0].(string)
	sep, _ := args[1].(string)
	n := pieces(s, sep)
	if len(args) == 3 {
		if m := runtime.ToInt(args[2]); m >= 0 && m < n {
			n = m
		}
	}
	return mulSize(n, listItemBytes)
}

// pieces returns how many pieces sep cuts s into, as strings.Split does.
func pieces(s, sep string) int {
	if sep == "" {
		return utf8.RuneCountInString(s) + 1
	}
	return strings.Count(s, sep) + 1
}

// mulSize returns a*b for sizes, or -1 when it does not fit an int.
func mulSize(a, b int) int {
	if a < 0 || b < 0 {
		return -1
	}
	if a != 0 && b > math.MaxInt/a {
		return -1
	}
	return a * b
}

// guardOptions returns the functions of guarded evaluation: the guarded builtins and the
// functions the rewritten code calls. names are the builtins, which callPatch must give the
// context to. The rewriting itself is guardPatch, to run after callPatch.
func guardOptions() (opts []expr.Option, names []string) {
	for name, cost := range guarded {
		b := builtin.Builtins[builtin.Index[name]]
		call := builtinCall(b)
		what := name + "()"
		fn := func(params ...any) (any, error) {
			bud := budgetFrom(ctxArg(params))
			args := params[1:]
			if err := bud.charge(cost(args, bud.textLimit()), what); err != nil {
				return nil, err
			}
			out, err := call(args...)
			if err != nil {
				return nil, err
			}
			if name == "upper" || name == "lower" {
				// A few letters take more bytes in the other case.
				if s, _ := out.(string); len(s) > len(args[0].(string)) {
					if err := bud.charge(len(s)-len(args[0].(string)), what); err != nil {
						return nil, err
					}
				}
			}
			return out, nil
		}
		types := make([]any, len(b.Types))
		for i, t := range b.Types {
			types[i] = withCtx(t)
		}
		opts = append(opts, expr.Function(name, fn, types...))
		names = append(names, name)
	}
	opts = append(opts,
		expr.Function("$concat", concatFn, new(func(context.Context, string, string) string)),
		expr.Function("$add", addFn, new(func(context.Context, any, any) any)),
		expr.Function("$matches", matchesFn, new(func(context.Context, any, any) bool)),
	)
	return opts, names
}

// builtinCall returns a builtin's implementation as one kind of function.
func builtinCall(b *builtin.Function) func(args ...any) (any, error) {
	switch {
	case b.Fast != nil:
		return func(args ...any) (any, error) { return b.Fast(args[0]), nil }
	case b.Safe != nil:
		return func(args ...any) (any, error) {
			out, _, err := b.Safe(args...)
			return out, err
		}
	}
	return b.Func
}

// withCtx returns a pointer to a nil function of type t with a context.Context first.
func withCtx(t reflect.Type) any {
	in := []reflect.Type{ctxType}
	for i := 0; i < t.NumIn(); i++ {
		in = append(in, t.In(i))
	}
	out := make([]reflect.Type, t.NumOut())
	for i := range out {
		out[i] = t.Out(i)
	}
	return reflect.New(reflect.FuncOf(in, out, t.IsVariadic())).Interface()
}

func ctxArg(params []any) context.Context {
	if ctx, ok := params[0].(context.Context); ok {
		return ctx
	}
	return context.Background()
}

func concatFn(params ...any) (any, error) {
	a, b := params[1].(string), params[2].(string)
	if err := budgetFrom(ctxArg(params)).charge(len(a)+len(b), "+"); err != nil {
		return nil, err
	}
	return a + b, nil
}

func addFn(params ...any) (any, error) {
	_, aok := params[1].(string)
	_, bok := params[2].(string)
	if aok && bok {
		return concatFn(params...)
	}
	return runtime.Add(params[1], params[2]), nil
}

func matchesFn(params ...any) (any, error) {
	if runtime.IsNil(params[1]) || runtime.IsNil(params[2]) {
		return false, nil
	}
	pattern, ok := params[2].(string)
	if !ok {
		return nil, fmt.Errorf("matches: the pattern is %T, not a string", params[2])
	}
	re, err := runtimeRegexp(pattern)
	if err != nil {
		return nil, err
	}
	switch s := params[1].(type) {
	case string:
		return re.MatchString(s), nil
	case []byte:
		return re.Match(s), nil
	}
	return nil, fmt.Errorf("matches: the text is %T, not a string", params[1])
}

// guardPatch rewrites + on text, matches with a pattern built at run time, and loop bodies.
// It runs after type checking, so nodes know their types; the calls it makes keep the type
// of the node they replace, for the nodes around them.
type guardPatch struct{}

func (guardPatch) Visit(n *ast.Node) {
	switch x := (*n).(type) {
	case *ast.BinaryNode:
		switch x.Operator {
		case "+":
			if !textual(x.Left.Type()) || !textual(x.Right.Type()) {
				return // numbers, times, or a type error for the checker to report
			}
			if isConst(x.Left) && isConst(x.Right) {
				return // folded when compiled: its size is that of the source
			}
			name := "$add"
			if x.Type() == stringType {
				name = "$concat"
			}
			patchCall(n, name, x.Type(), x.Left, x.Right)
		case "matches":
			if _, ok := x.Right.(*ast.StringNode); ok {
				return // compiled when the rules load
			}
			if textual(x.Left.Type()) && textual(x.Right.Type()) {
				patchCall(n, "$matches", boolType, x.Left, x.Right)
			}
		}
	case *ast.PredicateNode:
		if seq, ok := x.Node.(*ast.SequenceNode); ok && len(seq.Nodes) == 2 && calls(seq.Nodes[0], "$step") {
			return
		}
		step := &ast.CallNode{Callee: &ast.IdentifierNode{Value: "$step"}}
		seq := &ast.SequenceNode{Nodes: []ast.Node{step, x.Node}}
		loc := x.Node.Location()
		step.SetLocation(loc)
		step.Callee.SetLocation(loc)
		seq.SetLocation(loc)
		seq.SetType(x.Node.Type())
		x.Node = seq
	}
}

var (
	stringType = reflect.TypeFor[string]()
	boolType   = reflect.TypeFor[bool]()
)

// textual reports whether a value of type t may be text: a string, or a type only known at
// run time.
func textual(t reflect.Type) bool {
	return t == nil || t.Kind() == reflect.Interface || t == stringType
}

func isConst(n ast.Node) bool {
	_, ok := n.(*ast.StringNode)
	return ok
}

// newCall returns the call name(ctx, args...) typed t.
func newCall(name string, t reflect.Type, args ...ast.Node) *ast.CallNode {
	c := &ast.CallNode{Callee: &ast.IdentifierNode{Value: name}, Arguments: append([]ast.Node{&ast.IdentifierNode{Value: "ctx"}}, args...)}
	if t != nil {
		c.SetType(t)
	}
	return c
}

// patchCall replaces *n by name(ctx, args...), where *n was; t is the type of *n, kept so
// that the nodes around it are rewritten as they would have been.
func patchCall(n *ast.Node, name string, t reflect.Type, args ...ast.Node) {
	c := newCall(name, t, args...)
	loc := (*n).Location()
	c.Callee.SetLocation(loc)
	c.Arguments[0].SetLocation(loc)
	ast.Patch(n, c)
	if t != nil {
		c.SetType(t)
	}
}

// calls reports whether n is a call of the function name.
func calls(n ast.Node, name string) bool {
	c, ok := n.(*ast.CallNode)
	if !ok {
		return false
	}
	id, ok := c.Callee.(*ast.IdentifierNode)
	return ok && id.Value == name
}

// runtimeRegexp compiles a pattern built at run time, held to the limits of `regex:`.
func runtimeRegexp(pattern string) (*regexp.Regexp, error) {
	if len(pattern) > maxRegexLen {
		return nil, &LimitError{Limit: "regex", Msg: fmt.Sprintf("matches: the pattern is %d bytes long; the limit is %d", len(pattern), maxRegexLen)}
	}
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("matches: %w", err)
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, fmt.Errorf("matches: %w", err)
	}
	if len(prog.Inst) > maxRegexInsts {
		return nil, &LimitError{Limit: "regex", Msg: fmt.Sprintf("matches: the pattern compiles to %d instructions; the limit is %d", len(prog.Inst), maxRegexInsts)}
	}
	return regexp.Compile(pattern)
}
