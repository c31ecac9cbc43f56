package rules

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Limits on what a YAML file may contain, so that no input can hang or exhaust the loader.
const (
	maxAliasExpansions = 10_000 // alias nodes followed per file
	maxValueDepth      = 32     // nesting of vars and set values
	maxStringLen       = 64 << 10
)

// src is one file being walked: its name, lines (for block-scalar columns) and budgets.
type src struct {
	name     string
	text     string // the file, for the lines of block scalars (see at)
	aliases  int
	aliasErr bool // the alias budget was exceeded and reported
	e        *errs
	// noAlias: the tree was made by fastYAML, which reads no alias.
	noAlias bool
}

func (s *src) pos(n *yaml.Node) pos {
	if n == nil {
		return pos{file: s.name}
	}
	return pos{file: s.name, line: n.Line, col: n.Column}
}

func (s *src) errf(n *yaml.Node, format string, args ...any) {
	s.e.add(s.pos(n), format, args...)
}

// resolve follows aliases within the budget; it returns nil when the budget is spent.
func (s *src) resolve(n *yaml.Node) *yaml.Node {
	for depth := 0; n != nil && n.Kind == yaml.AliasNode; depth++ {
		s.aliases++
		if s.aliases > maxAliasExpansions || depth > 100 {
			if !s.aliasErr {
				s.aliasErr = true
				s.errf(n, "too many aliases (*name): the file expands more than %d of them", maxAliasExpansions)
			}
			return nil
		}
		n = n.Alias
	}
	return n
}

// kindName names a node's kind for messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "empty"
		case "!!bool":
			return "a boolean"
		case "!!int":
			return "a number"
		case "!!float":
			return "a number"
		}
		return "a string"
	}
	return "an alias"
}

// field is one key of a mapping.
type field struct {
	key   string
	k, v  *yaml.Node
	valid bool
}

// mapping checks that n is a mapping with only known keys, and returns its fields by key.
// what names the mapping in messages ("rule 'greet'", "the file").
func (s *src) mapping(n *yaml.Node, what string, known []string) map[string]field {
	fs := s.fields(n, what, known)
	if fs == nil {
		return nil
	}
	out := make(map[string]field, len(fs))
	for _, f := range fs {
		out[f.key] = f
	}
	return out
}

// fields are the fields of a mapping, in order: what mapping returns by key, for the
// mappings read most (rules), which have few keys, without a map to build.
type fields []field

// get returns the field of a key.
func (fs fields) get(key string) (field, bool) {
	for _, f := range fs {
		if f.key == key {
			return f, true
		}
	}
	return field{}, false
}

// at returns the field of a key, or the zero field.
func (fs fields) at(key string) field {
	f, _ := fs.get(key)
	return f
}

// fields is mapping, returning the fields in order (not nil when n is a mapping).
func (s *src) fields(n *yaml.Node, what any, known []string) fields {
	n = s.resolve(n)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		s.errf(n, "%s must be a mapping of keys (key: value), not %s", what, kindName(n))
		return nil
	}
	out := make(fields, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := s.resolve(n.Content[i]), n.Content[i+1]
		if k == nil {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			s.errf(k, "keys of %s must be plain words, not %s", what, kindName(k))
			continue
		}
		if k.Value == "<<" {
			s.errf(k, "merge keys (<<) are not supported in %s: write the keys out", what)
			continue
		}
		if prev, dup := out.get(k.Value); dup {
			s.errf(k, "key '%s' appears twice in %s (first at line %d)", k.Value, what, prev.k.Line)
			continue
		}
		ok := false
		for _, kn := range known {
			if kn == k.Value {
				ok = true
				break
			}
		}
		if !ok {
			s.errf(k, "unknown key '%s' in %s%s", k.Value, what, keyHint(k.Value, known))
			continue
		}
		out = append(out, field{key: k.Value, k: k, v: v, valid: true})
	}
	return out
}

func keyHint(k string, known []string) string {
	if h := suggest(k, known); h != "" {
		return h
	}
	return "; known keys are " + oneOf(known)
}

// str reads a scalar as a string. Numbers and booleans are accepted as their text.
func (s *src) str(n *yaml.Node, what string) (string, bool) {
	n = s.resolve(n)
	if n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		s.errf(n, "%s must be a string, not %s", what, kindName(n))
		return "", false
	}
	if len(n.Value) > maxStringLen {
		s.errf(n, "%s is %d bytes long; the limit is %d", what, len(n.Value), maxStringLen)
		return "", false
	}
	return n.Value, true
}

// strs reads a string or a list of strings.
func (s *src) strs(n *yaml.Node, what string) []*yaml.Node {
	n = s.resolve(n)
	if n == nil {
		return nil
	}
	items := n.Content
	if n.Kind == yaml.SequenceNode {
		if len(items) == 0 {
			s.errf(n, "%s is an empty list: give at least one, or remove the key", what)
		}
	} else {
		if _, ok := s.str(n, what); ok {
			return []*yaml.Node{n}
		}
		return nil
	}
	var out []*yaml.Node
	if len(items) > 0 {
		out = make([]*yaml.Node, 0, len(items))
	}
	for _, c := range items {
		c = s.resolve(c)
		if c == nil {
			continue
		}
		if _, ok := s.str(c, what); ok {
			out = append(out, c)
		}
	}
	return out
}

func (s *src) boolean(n *yaml.Node, what string) (bool, bool) {
	n = s.resolve(n)
	if n == nil {
		return false, false
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		b, err := strconv.ParseBool(strings.ToLower(n.Value))
		if err == nil {
			return b, true
		}
	}
	s.errf(n, "%s must be true or false, not %s", what, describe(n))
	return false, false
}

func (s *src) integer(n *yaml.Node, what string, lo, hi int) (int, bool) {
	n = s.resolve(n)
	if n == nil {
		return 0, false
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if err == nil && v >= int64(lo) && v <= int64(hi) {
			return int(v), true
		}
		s.errf(n, "%s must be between %d and %d", what, lo, hi)
		return 0, false
	}
	s.errf(n, "%s must be a whole number such as 10, not %s", what, describe(n))
	return 0, false
}

func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		v := n.Value
		if len(v) > 40 {
			v = v[:37] + "..."
		}
		return fmt.Sprintf("%s %q", kindName(n), v)
	}
	return kindName(n)
}

// value converts a YAML value to a Go value fit for a Store (JSON-like).
func (s *src) value(n *yaml.Node, depth int) (any, bool) {
	n = s.resolve(n)
	if n == nil {
		return nil, false
	}
	if depth > maxValueDepth {
		s.errf(n, "value nests more than %d levels deep", maxValueDepth)
		return nil, false
	}
	switch n.Kind {
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			s.errf(n, "bad value: %v", cleanYAMLErr(err))
			return nil, false
		}
		switch x := v.(type) {
		case time.Time:
			return n.Value, true
		case uint64:
			return float64(x), true
		}
		return v, true
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		ok := true
		for _, c := range n.Content {
			v, good := s.value(c, depth+1)
			ok = ok && good
			out = append(out, v)
		}
		return out, ok
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		ok := true
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := s.resolve(n.Content[i])
			if k == nil || k.Kind != yaml.ScalarNode {
				s.errf(n.Content[i], "keys must be strings")
				ok = false
				continue
			}
			v, good := s.value(n.Content[i+1], depth+1)
			ok = ok && good
			out[k.Value] = v
		}
		return out, ok
	}
	return nil, false
}

// at returns the position of the rune at offset off (line, 0-based rune column) inside a
// scalar's value, as close as YAML lets us know.
func (s *src) at(n *yaml.Node, line, col int) pos {
	p := s.pos(n)
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		l := n.Line + line // content starts on the line after the indicator
		p.line = l
		p.col = 1 + col
		// The block's indentation is that of its first non-empty line.
		lines := strings.SplitN(s.text, "\n", n.Line+1001)
		for i := n.Line; i < len(lines) && i < n.Line+1000; i++ {
			if src := lines[i]; strings.TrimSpace(src) != "" {
				p.col = 1 + len(src) - len(strings.TrimLeft(src, " ")) + col
				break
			}
		}
		return p
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if line <= 1 {
			p.col += 1 + col
			return p
		}
	default:
		if line <= 1 {
			p.col += col
			return p
		}
	}
	p.line += line - 1
	p.col = 0
	return p
}

// cleanYAMLErr strips the "yaml: " prefix.
func cleanYAMLErr(err error) string {
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

// firstInvalidUTF8 returns the line and column of the first byte that is not UTF-8.
func firstInvalidUTF8(b []byte) (line, col int) {
	line, col = 1, 1
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size <= 1 {
			return line, col
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		b = b[size:]
	}
	return line, col
}

func validUTF8(b []byte) bool { return utf8.Valid(b) }
