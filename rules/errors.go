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
}

// Error returns "file:line:col: message".
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
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found while loading rules, in file and position order. Load and
// Reload return one as their error; use errors.As to get at the individual errors.
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
}

func (c *errs) add(p pos, format string, args ...any) {
	e := &Error{File: p.file, Line: p.line, Col: p.col, Msg: fmt.Sprintf(format, args...)}
	k := e.Error()
	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	if c.seen[k] {
		return
	}
	c.seen[k] = true
	c.list = append(c.list, e)
}

func (c *errs) err() error {
	if len(c.list) == 0 {
		return nil
	}
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
