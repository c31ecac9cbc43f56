package rules

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	"github.com/imbot-dev/imbot/bot"
)

// Function is a Go function that rule files can use: in expressions ({{ weather(match.city) }},
// when: is_vip(sender.uri)) and in a rule's `call:` (whose result the rule's replies and `set`
// see as `result`). Functions get the context of the event, which carries an *Info
// (InfoFrom), and must be safe for concurrent use. An error fails the event: the bot logs it
// and apologises to the user.
//
// Build one with Func0 to Func3 for typed arguments that are checked when the rules load, or
// fill it by hand for a variadic function.
type Function struct {
	// Call runs the function with the arguments the expression passed.
	Call func(ctx context.Context, args ...any) (any, error)
	// Signature optionally declares the argument and result types, as a pointer to a nil
	// function value without the context, such as new(func(string, int) bool). With it, a call
	// with the wrong number or types of arguments is a load error; without it, Call receives
	// whatever the rule passed.
	Signature any
}

// Funcs maps names to functions. A name is a word or dotted words (accounts.reset); rules
// call it by that name.
type Funcs map[string]Function

// Handlers maps names to Go handlers a rule can hand the event to with `handler: name`. The
// handler runs after the rule's own replies, with the rule's Info in its context; ev.Session
// is nil when the rules run without SIP (imbot test, imbot chat).
type Handlers map[string]bot.Handler

// Func0 adapts a typed function with no argument.
func Func0[R any](f func(context.Context) (R, error)) Function {
	return Function{
		Call:      func(ctx context.Context, _ ...any) (any, error) { return f(ctx) },
		Signature: new(func() R),
	}
}

// Func1 adapts a typed function with one argument.
func Func1[A, R any](f func(context.Context, A) (R, error)) Function {
	return Function{
		Call: func(ctx context.Context, args ...any) (any, error) {
			a, err := arg[A](args, 0)
			if err != nil {
				return nil, err
			}
			return f(ctx, a)
		},
		Signature: new(func(A) R),
	}
}

// Func2 adapts a typed function with two arguments.
func Func2[A, B, R any](f func(context.Context, A, B) (R, error)) Function {
	return Function{
		Call: func(ctx context.Context, args ...any) (any, error) {
			a, err := arg[A](args, 0)
			if err != nil {
				return nil, err
			}
			b, err := arg[B](args, 1)
			if err != nil {
				return nil, err
			}
			return f(ctx, a, b)
		},
		Signature: new(func(A, B) R),
	}
}

// Func3 adapts a typed function with three arguments.
func Func3[A, B, C, R any](f func(context.Context, A, B, C) (R, error)) Function {
	return Function{
		Call: func(ctx context.Context, args ...any) (any, error) {
			a, err := arg[A](args, 0)
			if err != nil {
				return nil, err
			}
			b, err := arg[B](args, 1)
			if err != nil {
				return nil, err
			}
			c, err := arg[C](args, 2)
			if err != nil {
				return nil, err
			}
			return f(ctx, a, b, c)
		},
		Signature: new(func(A, B, C) R),
	}
}

func arg[T any](args []any, i int) (T, error) {
	var zero T
	if i >= len(args) {
		return zero, fmt.Errorf("missing argument %d", i+1)
	}
	if args[i] == nil {
		return zero, nil
	}
	if v, ok := args[i].(T); ok {
		return v, nil
	}
	// Numbers from the store come back as float64 and from literals as int.
	rv := reflect.ValueOf(args[i])
	want := reflect.TypeOf(zero)
	if want != nil && rv.CanConvert(want) && isNumber(rv.Kind()) && isNumber(want.Kind()) {
		return rv.Convert(want).Interface().(T), nil
	}
	return zero, fmt.Errorf("argument %d is %T, want %v", i+1, args[i], want)
}

func isNumber(k reflect.Kind) bool {
	return k >= reflect.Int && k <= reflect.Float64
}

// validFuncName reports whether name is a word or dotted words.
func validFuncName(name string) bool {
	for _, p := range strings.Split(name, ".") {
		if !isIdent(p) {
			return false
		}
	}
	return true
}

// exprTypes returns the signature for expr, with the context argument added.
func (f Function) exprTypes() ([]any, error) {
	if f.Signature == nil {
		return nil, nil
	}
	t := reflect.TypeOf(f.Signature)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Func {
		return nil, fmt.Errorf("Signature is %v, want a function type such as new(func(string) bool)", t)
	}
	in := []reflect.Type{ctxType}
	for i := 0; i < t.NumIn(); i++ {
		in = append(in, t.In(i))
	}
	out := []reflect.Type{}
	for i := 0; i < t.NumOut(); i++ {
		out = append(out, t.Out(i))
	}
	if len(out) == 0 {
		out = []reflect.Type{anyType}
	}
	ft := reflect.FuncOf(in, out, t.IsVariadic())
	return []any{reflect.New(ft).Interface()}, nil
}

var (
	ctxType = reflect.TypeOf((*context.Context)(nil)).Elem()
	anyType = reflect.TypeOf((*any)(nil)).Elem()
)
