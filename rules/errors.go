package rules

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	typo "github.com/imbot-dev/imbot/internal/suggest"
)

// Error is one problem found in a rule file or a test file: where it is and what is wrong.
// Line and Col are 1-based; Col is 0 when only the line is known.
type Error struct {
	File string
	Line int
	Col  int
	Msg  string
	// Warning marks a problem that does not stop the rules from loading: a construct that
	// is likely to fail at run time. Load succeeds with warnings; Check reports them.
	Warning bool
}

// Error returns "file:line:col: message", or "file:line:col: warning: message".
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Warning {
		b.WriteString("warning: ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// pos returns where the problem is.
func (e *Error) pos() pos { return pos{file: e.File, line: e.Line, col: e.Col} }

// ErrorList is every problem found while loading rules, in file and position order. Load and
// Reload return one as their error (with the warnings found too); use errors.As to get at the
// individual errors.
type ErrorList []*Error

// Error joins the errors, one a line.
func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap returns the individual errors, so errors.As finds an *Error.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

// Errors flattens err into its individual problems: the entries of an ErrorList, or err
// itself. It returns nil for a nil err.
func Errors(err error) []error {
	if err == nil {
		return nil
	}
	var l ErrorList
	if errors.As(err, &l) {
		return l.Unwrap()
	}
	return []error{err}
}

// errs collects errors while loading one set of files.
type errs struct {
	list ErrorList
	seen map[string]bool
	// nerr counts the entries of list that are errors (not warnings): rules ask after each
	// one whether it added an error, so the count is kept rather than recounted.
	nerr int
}

func (c *errs) add(p pos, format string, args ...any) {
	c.put(&Error{File: p.file, Line: p.line, Col: p.col, Msg: fmt.Sprintf(format, args...)})
}

// warn records a warning: it is reported, but the rules load.
func (c *errs) warn(p pos, format string, args ...any) {
	c.put(&Error{File: p.file, Line: p.line, Col: p.col, Msg: fmt.Sprintf(format, args...), Warning: true})
}

// put records a problem unless the same one (same place, same message) is recorded
// already, and reports whether it did.
func (c *errs) put(e *Error) bool {
	k := e.Error()
	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	if c.seen[k] {
		return false
	}
	c.seen[k] = true
	c.list = append(c.list, e)
	if !e.Warning {
		c.nerr++
	}
	return true
}

// errors counts the errors found so far, warnings aside.
func (c *errs) errors() int { return c.nerr }

// err returns every problem, warnings included, or nil when none is an error.
func (c *errs) err() error {
	if c.nerr == 0 {
		return nil
	}
	return c.sorted()
}

// warnings returns the warnings, in order.
func (c *errs) warnings() ErrorList {
	var l ErrorList
	for _, e := range c.sorted() {
		if e.Warning {
			l = append(l, e)
		}
	}
	return l
}

func (c *errs) sorted() ErrorList {
	l := append(ErrorList(nil), c.list...)
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if a.File != b.File {
			return false // keep file order (load order)
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return l
}

// pos is a place in a file.
type pos struct {
	file      string
	line, col int
}

func (p pos) String() string {
	return (&Error{File: p.file, Line: p.line, Col: p.col}).Error()
}

// short returns "file:line" for mentioning another place in a message.
func (p pos) short() string {
	return fmt.Sprintf("%s:%d", p.file, p.line)
}

// suggest returns "; did you mean 'x'?" when one of the candidates is close to s.
func suggest(s string, candidates []string) string {
	if best := typo.Closest(s, candidates); best != "" {
		return fmt.Sprintf("; did you mean '%s'?", best)
	}
	return ""
}

// oneOf lists candidates as "'a', 'b' or 'c'".
func oneOf(c []string) string {
	q := make([]string, len(c))
	for i, s := range c {
		q[i] = "'" + s + "'"
	}
	if len(q) <= 1 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}
