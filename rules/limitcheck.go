package rules

import (
	"fmt"
	"math"
	"reflect"

	"github.com/expr-lang/expr/ast"
)

// Load-time limit checks: what is sure to go over the Limits whatever the event is refused
// when the rules load, with its position; what is likely to is a warning.

// staticLimits checks a compiled expression (its tree as it runs: guarded, optimized) for
//
//   - repeat() with a constant count that builds more text than an evaluation may (or than
//     a reply may hold, when the repeat is all of a reply's {{ }});
//   - a range with constant bounds over expr's memory budget;
//   - a reduce whose accumulator is copied more than once into the next one (#acc + #acc):
//     its text grows exponentially. An error when the number of steps is known and too
//     many; a warning when it depends on the event.
func staticLimits(src string, tree ast.Node, lim Limits, reply bool) []*exprError {
	var probs []*exprError
	root := tree
	v := &visitor{fn: func(n ast.Node) {
		switch x := n.(type) {
		case *ast.CallNode:
			if calls(x, "repeat") && len(x.Arguments) == 3 {
				if p := repeatLimit(src, x, lim, reply && n == root); p != nil {
					probs = append(probs, p)
				}
			}
		case *ast.BinaryNode:
			if x.Operator != ".." {
				return
			}
			lo, ok1 := constInt(x.Left)
			hi, ok2 := constInt(x.Right)
			if ok1 && ok2 && hi >= lo && uint64(hi)-uint64(lo) >= exprMemBudget-1 {
				probs = append(probs, locErr(src, x.Left, fmt.Sprintf(
					"the range %d..%d has %d elements; an evaluation may hold %d list elements (the memory budget of expressions)",
					lo, hi, uint64(hi)-uint64(lo)+1, exprMemBudget-1)))
			}
		case *ast.BuiltinNode:
			if x.Name == "reduce" {
				if p := reduceGrowth(src, x, lim); p != nil {
					probs = append(probs, p)
				}
			}
		}
	}}
	ast.Walk(&tree, v)
	return probs
}

// repeatLimit checks repeat(ctx, s, n) with a constant n.
func repeatLimit(src string, c *ast.CallNode, lim Limits, whole bool) *exprError {
	n, ok := constInt(c.Arguments[2])
	if !ok || n <= 0 {
		return nil
	}
	limit := lim.TextBytes
	which := fmt.Sprintf("an evaluation may build %d bytes of text (Limits.TextBytes)", limit)
	if whole && lim.ReplyBytes < limit {
		limit = lim.ReplyBytes
		which = fmt.Sprintf("the replies to an event may hold %d bytes (Limits.ReplyBytes)", limit)
	}
	if s, ok := c.Arguments[1].(*ast.StringNode); ok {
		size := mulSize(len(s.Value), n)
		if size >= 0 && size <= limit {
			return nil
		}
		return locErr(src, c, fmt.Sprintf("repeat() builds %s bytes of text here; %s", sizeText(float64(len(s.Value))*float64(n)), which))
	}
	if n <= limit {
		return nil
	}
	return locErr(src, c, fmt.Sprintf("repeat() makes %d copies: %d bytes or more of any text that is not empty; %s", n, n, which))
}

// reduceGrowth checks a reduce whose accumulator is copied more than once into the next.
func reduceGrowth(src string, b *ast.BuiltinNode, lim Limits) *exprError {
	if len(b.Arguments) != 3 {
		return nil // starts from the first element: a number for a range
	}
	pred, ok := b.Arguments[1].(*ast.PredicateNode)
	if !ok {
		return nil
	}
	copies := accCopies(pred.Node)
	if copies < 2 {
		return nil
	}
	init := b.Arguments[2]
	if t := init.Type(); t != nil && t.Kind() != reflect.String && t.Kind() != reflect.Interface {
		return nil // numbers (or lists, which + does not join) take no more room
	}
	start, known := 1.0, false
	if s, ok := init.(*ast.StringNode); ok && s.Value != "" {
		start, known = float64(len(s.Value)), true
	}
	limit := float64(lim.TextBytes)
	from := "a text of 1 byte"
	if known {
		from = fmt.Sprintf("its start of %d bytes", int(start))
	}
	steps, ok := collectionLen(b.Arguments[0])
	if !ok {
		k := 0
		for size := start; size <= limit; size *= float64(copies) {
			k++
		}
		w := locErr(src, b, fmt.Sprintf(
			"the accumulator of reduce grows %d-fold at each step (#acc is %d times in the next one): after %d steps, %s is over the %d bytes of text an evaluation may build (Limits.TextBytes), so it fails on longer lists; build the text with join() or repeat()",
			copies, copies, k, from, lim.TextBytes))
		w.warn = true
		return w
	}
	size := start * math.Pow(float64(copies), float64(steps))
	if size <= limit {
		return nil
	}
	if !known {
		from = "any text that is not empty"
	}
	return locErr(src, b, fmt.Sprintf(
		"the accumulator of reduce grows %d-fold at each of its %d steps (#acc is %d times in the next one): %s grows to %s bytes or more, over the %d bytes of text an evaluation may build (Limits.TextBytes); build the text with join() or repeat()",
		copies, steps, copies, from, sizeText(size), lim.TextBytes))
}

// accCopies returns how many copies of #acc the value of a reduce body holds, through +
// and repeat().
func accCopies(n ast.Node) int {
	switch x := n.(type) {
	case *ast.PointerNode:
		if x.Name == "acc" {
			return 1
		}
	case *ast.SequenceNode:
		return accCopies(x.Nodes[len(x.Nodes)-1])
	case *ast.ConditionalNode:
		return max(accCopies(x.Exp1), accCopies(x.Exp2))
	case *ast.BinaryNode:
		if x.Operator == "+" {
			return accCopies(x.Left) + accCopies(x.Right)
		}
	case *ast.CallNode:
		switch {
		case calls(x, "$add"), calls(x, "$concat"):
			return accCopies(x.Arguments[1]) + accCopies(x.Arguments[2])
		case calls(x, "repeat"):
			if k, ok := constInt(x.Arguments[2]); ok && k > 0 && k < math.MaxInt32 {
				return accCopies(x.Arguments[1]) * int(k)
			}
		}
	}
	return 0
}

// collectionLen returns the length of a list whose length is constant: a range with
// constant bounds, or a list written out.
func collectionLen(n ast.Node) (int, bool) {
	switch x := n.(type) {
	case *ast.BinaryNode:
		if x.Operator != ".." {
			return 0, false
		}
		lo, ok1 := constInt(x.Left)
		hi, ok2 := constInt(x.Right)
		if !ok1 || !ok2 {
			return 0, false
		}
		if hi < lo {
			return 0, true
		}
		if uint64(hi)-uint64(lo) >= math.MaxInt32 {
			return math.MaxInt32, true
		}
		return hi - lo + 1, true
	case *ast.ArrayNode:
		return len(x.Nodes), true
	}
	return 0, false
}

// constInt returns the value of an integer constant.
func constInt(n ast.Node) (int, bool) {
	switch x := n.(type) {
	case *ast.IntegerNode:
		return x.Value, true
	case *ast.FloatNode:
		if x.Value == math.Trunc(x.Value) && math.Abs(x.Value) < 1<<53 {
			return int(x.Value), true
		}
	}
	return 0, false
}

// sizeText writes a size in bytes that may not fit an int.
func sizeText(f float64) string {
	if f < 1e15 {
		return fmt.Sprintf("%.0f", f)
	}
	return fmt.Sprintf("%.3g", f)
}

// replyLimits refuses a rule whose replies are always over Limits.Replies or
// Limits.ReplyBytes: more messages in a row than an event may send, or more literal text
// than the replies to an event may hold.
func (cc *compiling) replyLimits(r *rule, ra *ruleAST, what ruleWhat) {
	lim := cc.opts.Limits.withDefaults()
	k := ra.has.at("messages").k
	if k == nil {
		k = ra.has.at("reply").k
	}
	if len(r.msgs) > lim.Replies {
		cc.cur.errf(k, "%s sends %d messages in a row; the rules may send %d for an event (Limits.Replies)", what, len(r.msgs), lim.Replies)
		return
	}
	total := 0
	for _, alts := range r.msgs {
		least := -1
		for _, t := range alts {
			if n := t.literalLen(); least < 0 || n < least {
				least = n
			}
		}
		total += max(least, 0)
	}
	if total > lim.ReplyBytes {
		cc.cur.errf(k, "the replies of %s hold at least %d bytes of text; the replies to an event may hold %d (Limits.ReplyBytes)", what, total, lim.ReplyBytes)
	}
}
