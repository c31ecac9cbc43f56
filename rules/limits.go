package rules

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"
)

// Limits bound what one event may cost: the text its expressions build, the time they take,
// and the messages the rules send. An event that goes over a limit fails with an error that
// wraps ErrLimit, like any other failing rule: nothing is sent or saved, the bot logs the
// error and apologises, and the engine goes on with the next event. Replies over a limit are
// refused, not cut. Load refuses what it can tell is always over a limit (a constant
// repeat() or range that is too large, a rule with too many messages). A zero field takes
// its default.
type Limits struct {
	// TextBytes is how many bytes of text one evaluation may build: a `when`, a `call`, a
	// reply or a `set` value (all its {{ }} together). The message, variables and the results
	// of Go functions are not counted; what expressions make of them is: concatenation with
	// +, repeat, replace, join, upper, lower, split, splitAfter, string, toJSON, toBase64,
	// fromJSON, and the text of a value written into a reply. A value stored by `set` may not
	// take more than TextBytes as text either. Default 256 KiB.
	TextBytes int
	// Time is the wall-clock time one evaluation may spend in loops (all, map, filter,
	// reduce, ... and the Go functions they call). Code without loops is bounded by the size
	// of the expression. Default 100ms.
	Time time.Duration
	// Replies is the most messages the rules may send for one event. Default 10.
	Replies int
	// ReplyBytes is the most text those messages may hold together. Default 16 KiB.
	ReplyBytes int
}

// Default limits.
const (
	DefaultTextBytes  = 256 << 10
	DefaultTime       = 100 * time.Millisecond
	DefaultReplies    = 10
	DefaultReplyBytes = 16 << 10
)

// withDefaults returns l with its zero (or negative) fields set to the defaults.
func (l Limits) withDefaults() Limits {
	if l.TextBytes <= 0 {
		l.TextBytes = DefaultTextBytes
	}
	if l.Time <= 0 {
		l.Time = DefaultTime
	}
	if l.Replies <= 0 {
		l.Replies = DefaultReplies
	}
	if l.ReplyBytes <= 0 {
		l.ReplyBytes = DefaultReplyBytes
	}
	return l
}

// ErrLimit is wrapped by the error of an event that went over one of the Limits, or over
// the memory budget of expressions: errors.Is(err, ErrLimit) tells it from other failures.
var ErrLimit = errors.New("rules: over a limit")

// LimitError is an event going over one of the Limits. It matches ErrLimit.
type LimitError struct {
	// Limit names what was exceeded: "TextBytes", "Time", "Replies", "ReplyBytes" or
	// "memory".
	Limit string
	// Msg says what happened.
	Msg string
}

// Error returns the message.
func (e *LimitError) Error() string { return e.Msg }

// Is reports whether target is ErrLimit.
func (e *LimitError) Is(target error) bool { return target == ErrLimit }

// errMemory is expr's memory budget (exprMemBudget) running out: big ranges and lists.
var errMemory = &LimitError{Limit: "memory", Msg: fmt.Sprintf("over the memory budget of expressions (%d list elements per evaluation)", exprMemBudget-1)}

// budget is what the evaluations of one event may spend. The engine makes one per event and
// puts it in the event's Info, where guarded functions (guard.go) find it through their
// context; each evaluation starts with a clean count.
type budget struct {
	lim   Limits          // with defaults
	ctx   context.Context // the event's: an evaluation stops when it is done
	text  int             // bytes of text built by the current evaluation
	steps int             // loop steps of the current evaluation
	start time.Time       // when its first loop step ran
}

// clockEvery is how many loop steps go between two looks at the clock, which costs more
// than a step of a simple loop.
const clockEvery = 16

func newBudget(ctx context.Context, lim Limits) *budget {
	return &budget{lim: lim.withDefaults(), ctx: ctx}
}

// reset starts an evaluation.
func (b *budget) reset() {
	if b != nil {
		b.text, b.steps = 0, 0
	}
}

// textLimit returns the TextBytes limit; a nil budget has the default.
func (b *budget) textLimit() int {
	if b == nil {
		return DefaultTextBytes
	}
	return b.lim.TextBytes
}

// charge counts n bytes of text that what is about to build, and fails when the evaluation
// would go over its TextBytes. A nil budget (an evaluation outside the engine) checks n alone.
func (b *budget) charge(n int, what string) error {
	limit, used := b.textLimit(), 0
	if b != nil {
		used = b.text
	}
	if n < 0 || n > limit-used {
		return &LimitError{Limit: "TextBytes", Msg: textOver(what, n, used, limit)}
	}
	if b != nil {
		b.text += n
	}
	return nil
}

func textOver(what string, n, used, limit int) string {
	size := "too much text"
	if n >= 0 {
		size = fmt.Sprintf("%d bytes of text", n)
	}
	if used > 0 {
		return fmt.Sprintf("%s would build %s more, after %d; an evaluation may build %d (Limits.TextBytes)", what, size, used, limit)
	}
	return fmt.Sprintf("%s would build %s; an evaluation may build %d (Limits.TextBytes)", what, size, limit)
}

// step is one turn of a loop: it fails once the evaluation has looped for longer than its
// Time, or when the event's context is done. It looks at the clock every clockEvery steps.
func (b *budget) step() error {
	if b == nil {
		return nil
	}
	b.steps++
	if b.steps == 1 {
		b.start = time.Now()
		return nil
	}
	if b.steps%clockEvery != 0 {
		return nil
	}
	if d := time.Since(b.start); d > b.lim.Time {
		return &LimitError{Limit: "Time", Msg: fmt.Sprintf("the expression looped for more than %v (Limits.Time)", b.lim.Time)}
	}
	if b.ctx != nil {
		if err := b.ctx.Err(); err != nil {
			return fmt.Errorf("the expression was stopped: %w", err)
		}
	}
	return nil
}

// stepOrPanic is step for the environment's $step: a typed function without an error, so
// that the VM calls it directly; the VM turns the panic into the evaluation's error.
func (b *budget) stepOrPanic() bool {
	if err := b.step(); err != nil {
		panic(err)
	}
	return true
}

// budgetFrom returns the budget of the event ctx belongs to, or nil.
func budgetFrom(ctx context.Context) *budget {
	if i, ok := InfoFrom(ctx); ok {
		return i.budget
	}
	return nil
}

// textSize estimates, generously, how many bytes v takes as text: as fmt prints it, or as
// JSON (indented, escaped) when json is set. It stops counting once past max, so measuring a
// huge value costs no more than max; a value nested deeper than maxValueDepth counts as
// over max.
func textSize(v any, max int, json bool) int {
	s := sizer{max: max, json: json}
	s.add(v, 0)
	return s.n
}

type sizer struct {
	n, max int
	json   bool
}

func (s *sizer) over() bool { return s.n > s.max }

func (s *sizer) str(x string) {
	s.n += len(x) + 2
	if !s.json {
		return
	}
	for i := 0; i < len(x) && !s.over(); i++ {
		switch c := x[i]; {
		case c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&':
			s.n += 5 // \u00XX
		case c >= 0x80:
			s.n += 2 // \u2028, or an invalid byte written as U+FFFD
		}
	}
}

// open counts the brackets of a list or map at depth, and the indentation of the closing
// one.
func (s *sizer) open(depth int) { s.n += 3 + 2*depth }

// item counts the separator, line break and indentation of an element of a list or map at
// depth.
func (s *sizer) item(depth int) { s.n += 4 + 2*depth }

func (s *sizer) add(v any, depth int) {
	if s.over() {
		return
	}
	if depth > maxValueDepth {
		s.n = s.max + 1
		return
	}
	switch x := v.(type) {
	case nil:
		s.n += 5
	case string:
		s.str(x)
	case bool:
		s.n += 5
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, uintptr, float32, float64, time.Duration:
		s.n += 24
	case time.Time:
		s.n += 40
	case []any:
		s.open(depth)
		for _, e := range x {
			if s.over() {
				return
			}
			s.item(depth)
			s.add(e, depth+1)
		}
	case []int:
		s.open(depth)
		s.n += len(x) * (24 + 4 + 2*depth)
	case []float64:
		s.open(depth)
		s.n += len(x) * (24 + 4 + 2*depth)
	case map[string]any:
		s.open(depth)
		for k, e := range x {
			if s.over() {
				return
			}
			s.item(depth)
			s.str(k)
			s.n += 2
			s.add(e, depth+1)
		}
	default:
		s.value(reflect.ValueOf(v), depth)
	}
}

var (
	stringerType  = reflect.TypeFor[fmt.Stringer]()
	errorType     = reflect.TypeFor[error]()
	marshalerType = reflect.TypeFor[interface{ MarshalJSON() ([]byte, error) }]()
)

// value is add for the other types, through reflection.
func (s *sizer) value(rv reflect.Value, depth int) {
	if s.over() {
		return
	}
	if depth > maxValueDepth {
		s.n = s.max + 1
		return
	}
	if rv.IsValid() {
		if t := rv.Type(); t.Implements(stringerType) || t.Implements(errorType) || t.Implements(marshalerType) {
			s.n += 64 // written by its own method: a guess
			return
		}
	}
	switch rv.Kind() {
	case reflect.Invalid:
		s.n += 5
	case reflect.String:
		s.str(rv.String())
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			s.n += 5
			return
		}
		s.value(rv.Elem(), depth+1)
	case reflect.Slice, reflect.Array:
		s.open(depth)
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			s.n += 4 * rv.Len() // fmt writes bytes as numbers, JSON as base64
			return
		}
		for i := 0; i < rv.Len() && !s.over(); i++ {
			s.item(depth)
			s.value(rv.Index(i), depth+1)
		}
	case reflect.Map:
		s.open(depth)
		it := rv.MapRange()
		for it.Next() && !s.over() {
			s.item(depth)
			s.value(it.Key(), depth+1)
			s.n += 2
			s.value(it.Value(), depth+1)
		}
	case reflect.Struct:
		s.open(depth)
		t := rv.Type()
		for i := 0; i < rv.NumField() && !s.over(); i++ {
			s.item(depth)
			s.n += len(t.Field(i).Name) + 4
			s.value(rv.Field(i), depth+1)
		}
	default:
		s.n += 24
	}
}
