package rules

import (
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// fastYAML parses the YAML that rule files are mostly made of into the same yaml.Node tree
// as yaml.v3, several times faster: block mappings and sequences whose scalars each fit on
// one line (plain, or quoted without escapes), flow mappings and lists of such scalars on one
// line, the common block scalars (blockScalar), comments and blank lines. For anything else
// (other block scalars, scalars over several lines, escapes, anchors and aliases, tags, document markers, tabs, numbers other than
// plain integers, and every error) it returns nil, and the file is parsed by yaml.v3: the
// tree, and every error message, stay yaml.v3's. Comments are left out of the tree (the
// loader reads none). FuzzFastYAML compares the two parsers.
func fastYAML(text string) *yaml.Node {
	p := &fastParser{text: text}
	if !p.split() || len(p.lines) == 0 {
		return nil
	}
	first := p.lines[0]
	root, ok := p.block(first.indent)
	if !ok || p.i != len(p.lines) {
		return nil
	}
	doc := p.node(yaml.DocumentNode, "", root.Line, root.Column)
	doc.Content = []*yaml.Node{root}
	return doc
}

// fastParser is the state of fastYAML.
type fastParser struct {
	text  string
	lines []fastLine // lines with content: no blank or comment-only line
	i     int        // the line being parsed
	nodes []yaml.Node
}

// fastLine is a line with content. indent is the column (0-based) where its content starts:
// the spaces before it, or for the content after "- " of a sequence item, the spaces and
// dashes before it.
type fastLine struct {
	num    int // 1-based
	start  int // offset of the line in text
	indent int
	end    int // offset of the line's end (its newline, or the end of text)
	ascii  bool
}

// content returns the line from its indentation on.
func (p *fastParser) content(l *fastLine) string { return p.text[l.start+l.indent : l.end] }

// col returns the 1-based column, in runes as yaml.v3 counts, of offset off of line l.
func (p *fastParser) col(l *fastLine, off int) int {
	if l.ascii {
		return off - l.start + 1
	}
	return 1 + utf8.RuneCountInString(p.text[l.start:off])
}

// node returns a new node; nodes are allocated many at a time.
func (p *fastParser) node(kind yaml.Kind, tag string, line, col int) *yaml.Node {
	if len(p.nodes) == 0 {
		p.nodes = make([]yaml.Node, 128)
	}
	n := &p.nodes[0]
	p.nodes = p.nodes[1:]
	n.Kind, n.Tag, n.Line, n.Column = kind, tag, line, col
	return n
}

// split finds the lines with content, and checks that the text holds only what yaml.v3
// reads as printable, with no tab, carriage return or line separator, and no document marker
// or directive.
func (p *fastParser) split() bool {
	t := p.text
	p.lines = make([]fastLine, 0, strings.Count(t, "\n")+1)
	num := 0
	for start := 0; start < len(t); {
		num++
		end := start
		ascii := true
		for end < len(t) && t[end] != '\n' {
			c := t[end]
			if c < utf8.RuneSelf {
				if c < ' ' || c == 0x7f {
					return false // tabs, carriage returns, control characters
				}
				end++
				continue
			}
			ascii = false
			r, size := utf8.DecodeRuneInString(t[end:])
			if !yamlPrintable(r) || r == 0x2028 || r == 0x2029 || r == utf8.RuneError && size == 1 {
				return false
			}
			end += size
		}
		indent := 0
		for start+indent < end && t[start+indent] == ' ' {
			indent++
		}
		if c := t[start+indent : end]; c != "" && c[0] != '#' {
			if start+indent == start && (strings.HasPrefix(c, "---") || strings.HasPrefix(c, "...") || c[0] == '%') {
				return false
			}
			p.lines = append(p.lines, fastLine{num: num, start: start, indent: indent, end: end, ascii: ascii})
		}
		start = end + 1
	}
	return true
}

// yamlPrintable reports whether yaml.v3 accepts r in a document (besides ASCII).
func yamlPrintable(r rune) bool {
	switch {
	case r == 0x85, r >= 0xA0 && r <= 0xD7FF:
		return r != 0x85 // NEL is a line break for YAML: leave it to yaml.v3
	case r >= 0xE000 && r <= 0xFFFD:
		return r != 0xFEFF
	case r >= 0x10000 && r <= utf8.MaxRune:
		return true
	}
	return false
}

// isDash reports whether content starts a sequence item.
func isDash(c string) bool { return c == "-" || strings.HasPrefix(c, "- ") }

// block parses the mapping or sequence whose first line is the current one, at indent.
func (p *fastParser) block(indent int) (*yaml.Node, bool) {
	if isDash(p.content(&p.lines[p.i])) {
		return p.sequence(indent)
	}
	return p.mapping(indent)
}

// sequence parses a block sequence of items "- " at indent.
func (p *fastParser) sequence(indent int) (*yaml.Node, bool) {
	l := &p.lines[p.i]
	seq := p.node(yaml.SequenceNode, "!!seq", l.num, p.col(l, l.start+indent))
	seq.Content = make([]*yaml.Node, 0, p.count(indent, true))
	for p.i < len(p.lines) {
		l = &p.lines[p.i]
		if l.indent != indent || !isDash(p.content(l)) {
			break
		}
		c := p.content(l)
		k := 1
		for k < len(c) && c[k] == ' ' {
			k++
		}
		if k == len(c) || c[k] == '#' || isDash(c[k:]) || c[k] == '-' && k+1 == len(c) {
			return nil, false // an item on the lines below, empty, or a list in a list
		}
		if c[k] == '|' || c[k] == '>' {
			v, ok := p.blockScalar(l, l.start+indent+k, indent)
			if !ok {
				return nil, false
			}
			seq.Content = append(seq.Content, v)
			continue
		}
		if _, _, ok := splitKey(c[k:]); ok {
			// A mapping that starts on the item's line: its keys are in the column of the first.
			l.indent += k
			m, ok := p.mapping(l.indent)
			if !ok {
				return nil, false
			}
			seq.Content = append(seq.Content, m)
			continue
		}
		v, ok := p.inline(l, l.start+indent+k)
		if !ok || !p.nextNotDeeper(indent) {
			return nil, false
		}
		seq.Content = append(seq.Content, v)
	}
	if p.i < len(p.lines) && p.lines[p.i].indent > indent {
		return nil, false
	}
	return seq, true
}

// mapping parses a block mapping whose keys are at indent.
func (p *fastParser) mapping(indent int) (*yaml.Node, bool) {
	l := &p.lines[p.i]
	m := p.node(yaml.MappingNode, "!!map", l.num, p.col(l, l.start+indent))
	m.Content = make([]*yaml.Node, 0, 2*p.count(indent, false))
	for p.i < len(p.lines) {
		l = &p.lines[p.i]
		if l.indent != indent {
			break
		}
		c := p.content(l)
		key, rest, ok := splitKey(c)
		if !ok {
			return nil, false
		}
		at := l.start + l.indent
		kn := p.node(yaml.ScalarNode, plainTag(key), l.num, p.col(l, at))
		if kn.Tag == "" {
			return nil, false
		}
		kn.Value = key
		v, ok := p.value(l, at+len(key)+1, len(rest), indent)
		if !ok {
			return nil, false
		}
		m.Content = append(m.Content, kn, v)
	}
	if p.i < len(p.lines) && p.lines[p.i].indent > indent {
		return nil, false
	}
	return m, true
}

// count returns how many lines from the current one on start an item (dash) or a key (not
// dash) at indent before a line less indented: the size of the block that starts here.
func (p *fastParser) count(indent int, dash bool) int {
	n := 1
	for j := p.i + 1; j < len(p.lines) && p.lines[j].indent >= indent; j++ {
		if l := &p.lines[j]; l.indent == indent && isDash(p.content(l)) == dash {
			n++
		}
	}
	return n
}

// value parses the value of a key at indent whose colon ends at offset at of line l, n bytes
// before the line's end: on the line, or a block below it.
func (p *fastParser) value(l *fastLine, at, n, indent int) (*yaml.Node, bool) {
	rest := p.text[at : at+n]
	trimmed := strings.TrimLeft(rest, " ")
	if trimmed != "" && (trimmed[0] == '|' || trimmed[0] == '>') && len(trimmed) < len(rest) {
		return p.blockScalar(l, at+n-len(trimmed), indent)
	}
	if trimmed != "" && (trimmed[0] != '#' || len(trimmed) == len(rest)) {
		v, ok := p.inline(l, at+n-len(trimmed))
		return v, ok && p.nextNotDeeper(indent)
	}
	// The value is the block below.
	p.i++
	if p.i == len(p.lines) {
		return nil, false // empty: null
	}
	next := &p.lines[p.i]
	switch {
	case next.indent > indent:
		c := p.content(next)
		if !isDash(c) {
			if _, _, ok := splitKey(c); !ok {
				return nil, false // a scalar on the next lines
			}
		}
		return p.block(next.indent)
	case next.indent == indent && isDash(p.content(next)):
		return p.sequence(indent)
	}
	return nil, false // empty: null
}

// blockScalar parses the literal (|) or folded (>) block scalar whose indicator is at offset
// at of line l, the value of a key at indent, in the common forms: clipped or stripped (-),
// its indentation found from its first line, no blank line before that line, no line that
// holds more spaces than the indentation and nothing else, and a line break after its last
// line. It leaves the others to yaml.v3.
func (p *fastParser) blockScalar(l *fastLine, at, indent int) (*yaml.Node, bool) {
	t := p.text
	style := yaml.LiteralStyle
	if t[at] == '>' {
		style = yaml.FoldedStyle
	}
	strip := false
	i := at + 1
	if i < l.end && t[i] == '-' {
		strip = true
		i++
	}
	if j := skipSpaces(t, i, l.end); j < l.end && (j == i || t[j] != '#') {
		return nil, false // keep (+), an indentation indicator, or text after the indicator
	}
	// The lines of the scalar, after the indicator's line.
	var b strings.Builder
	contentIndent := -1
	breaks := 0        // line breaks since the last line with text
	prevBlank := false // the last line with text was indented more
	started := false   // a line with text was read
	end := l.end
	for start := l.end + 1; start < len(t); {
		lineEnd := strings.IndexByte(t[start:], '\n')
		if lineEnd < 0 {
			return nil, false // no line break after the last line
		}
		lineEnd += start
		line := t[start:lineEnd]
		sp := 0
		for sp < len(line) && line[sp] == ' ' {
			sp++
		}
		if sp == len(line) { // an empty line, or only spaces
			if contentIndent < 0 || sp > contentIndent {
				return nil, false
			}
			breaks++
			end, start = lineEnd, lineEnd+1
			continue
		}
		if contentIndent < 0 {
			if sp <= indent {
				return nil, false // empty
			}
			contentIndent = sp
		}
		if sp < contentIndent {
			break
		}
		// A folded scalar folds the line break between two lines indented alike: into a
		// space, or into the empty lines between them; a literal one keeps them all.
		blank := sp > contentIndent
		if started {
			switch {
			case style == yaml.LiteralStyle || prevBlank || blank:
				breaks++
			case breaks == 0:
				b.WriteByte(' ')
			}
			for ; breaks > 0; breaks-- {
				b.WriteByte('\n')
			}
		}
		breaks, prevBlank, started = 0, blank, true
		b.WriteString(line[contentIndent:])
		end, start = lineEnd, lineEnd+1
	}
	if contentIndent < 0 {
		return nil, false
	}
	if !strip {
		b.WriteByte('\n')
	}
	n := p.node(yaml.ScalarNode, "!!str", l.num, p.col(l, at))
	n.Style = style
	n.Value = b.String()
	for p.i < len(p.lines) && p.lines[p.i].start <= end {
		p.i++
	}
	return n, p.i == len(p.lines) || p.lines[p.i].indent <= indent
}

// nextNotDeeper moves past the current line, which held a scalar, and checks that the next
// is not indented deeper than indent (which would continue the scalar, or be an error).
func (p *fastParser) nextNotDeeper(indent int) bool {
	p.i++
	return p.i == len(p.lines) || p.lines[p.i].indent <= indent
}

// inline parses the scalar or flow collection at offset at of line l, which must end the
// line (but for a comment).
func (p *fastParser) inline(l *fastLine, at int) (*yaml.Node, bool) {
	v, end, ok := p.scalarOrFlow(l, at)
	if !ok {
		return nil, false
	}
	rest := p.text[end:l.end]
	trimmed := strings.TrimLeft(rest, " ")
	if trimmed != "" && (trimmed[0] != '#' || len(trimmed) == len(rest)) {
		return nil, false
	}
	return v, true
}

// scalarOrFlow parses a quoted scalar, a plain scalar (up to a comment or the end of the
// line) or a flow collection at offset at, and returns the offset after it.
func (p *fastParser) scalarOrFlow(l *fastLine, at int) (*yaml.Node, int, bool) {
	t := p.text
	switch c := t[at]; c {
	case '"', '\'':
		return p.quoted(l, at)
	case '{', '[':
		return p.flowCollection(l, at)
	}
	if isIndicator(t[at]) {
		return nil, 0, false
	}
	v := t[at:l.end]
	if i := strings.Index(v, " #"); i >= 0 {
		v = v[:i]
	}
	v = strings.TrimRight(v, " ")
	if strings.Contains(v, ": ") || strings.HasSuffix(v, ":") {
		return nil, 0, false
	}
	n := p.node(yaml.ScalarNode, plainTag(v), l.num, p.col(l, at))
	if n.Tag == "" {
		return nil, 0, false
	}
	n.Value = v
	return n, at + len(v), true
}

// isIndicator reports whether a plain scalar may not start with c (or fastYAML leaves it to
// yaml.v3: '-', '?' and ':' may start one when a letter follows).
func isIndicator(c byte) bool {
	return strings.IndexByte("-?:,[]{}#&*!|>'\"%@` ", c) >= 0
}

// quoted parses a quoted scalar that ends on its line, without escapes.
func (p *fastParser) quoted(l *fastLine, at int) (*yaml.Node, int, bool) {
	t := p.text
	q := t[at]
	var value string
	end := -1
	if q == '"' {
		for i := at + 1; i < l.end; i++ {
			if t[i] == '\\' {
				return nil, 0, false
			}
			if t[i] == '"' {
				value, end = t[at+1:i], i+1
				break
			}
		}
	} else {
		doubled := false
		for i := at + 1; i < l.end; i++ {
			if t[i] != '\'' {
				continue
			}
			if i+1 < l.end && t[i+1] == '\'' {
				doubled = true
				i++
				continue
			}
			value, end = t[at+1:i], i+1
			if doubled {
				value = strings.ReplaceAll(value, "''", "'")
			}
			break
		}
	}
	if end < 0 {
		return nil, 0, false // continued on the next line
	}
	n := p.node(yaml.ScalarNode, "!!str", l.num, p.col(l, at))
	n.Value = value
	n.Style = yaml.DoubleQuotedStyle
	if q == '\'' {
		n.Style = yaml.SingleQuotedStyle
	}
	return n, end, true
}

// flowCollection parses {key: value, ...} or [item, ...] of scalars, on one line.
func (p *fastParser) flowCollection(l *fastLine, at int) (*yaml.Node, int, bool) {
	t := p.text
	open := t[at]
	closing, kind, tag := byte(']'), yaml.SequenceNode, "!!seq"
	if open == '{' {
		closing, kind, tag = '}', yaml.MappingNode, "!!map"
	}
	n := p.node(kind, tag, l.num, p.col(l, at))
	n.Style = yaml.FlowStyle
	i := skipSpaces(t, at+1, l.end)
	if i < l.end && t[i] == closing {
		return n, i + 1, true
	}
	for {
		k, end, ok := p.flowScalar(l, i)
		if !ok || kind == yaml.MappingNode && end-i > maxFastKey { // a long key: yaml.v3 refuses keys past 1024
			return nil, 0, false
		}
		n.Content = append(n.Content, k)
		i = skipSpaces(t, end, l.end)
		if kind == yaml.MappingNode {
			if i+1 >= l.end || t[i] != ':' || t[i+1] != ' ' || end != i {
				return nil, 0, false
			}
			v, end, ok := p.flowScalar(l, skipSpaces(t, i+1, l.end))
			if !ok {
				return nil, 0, false
			}
			n.Content = append(n.Content, v)
			i = skipSpaces(t, end, l.end)
		}
		if i >= l.end {
			return nil, 0, false
		}
		switch t[i] {
		case closing:
			return n, i + 1, true
		case ',':
			i = skipSpaces(t, i+1, l.end)
			if i >= l.end || t[i] == closing {
				return nil, 0, false
			}
		default:
			return nil, 0, false
		}
	}
}

// flowScalar parses a quoted or plain scalar inside a flow collection.
func (p *fastParser) flowScalar(l *fastLine, at int) (*yaml.Node, int, bool) {
	t := p.text
	if at >= l.end {
		return nil, 0, false
	}
	if t[at] == '"' || t[at] == '\'' {
		return p.quoted(l, at)
	}
	if isIndicator(t[at]) {
		return nil, 0, false
	}
	i := at
	for i < l.end && strings.IndexByte(",[]{}:#?", t[i]) < 0 { // what ends a plain scalar in a flow, for yaml.v3
		i++
	}
	if i < l.end && strings.IndexByte("[{#", t[i]) >= 0 {
		return nil, 0, false
	}
	v := strings.TrimRight(t[at:i], " ")
	n := p.node(yaml.ScalarNode, plainTag(v), l.num, p.col(l, at))
	if n.Tag == "" {
		return nil, 0, false
	}
	n.Value = v
	return n, at + len(v), true
}

func skipSpaces(t string, i, end int) int {
	for i < end && t[i] == ' ' {
		i++
	}
	return i
}

// maxFastKey is the longest key fastYAML reads: YAML limits simple keys to 1024 characters.
const maxFastKey = 256

// splitKey splits "key: rest" or "key:" into its key and the rest after the colon, for keys
// made of letters, digits, '_', '-' and '.', starting with a letter, digit or '_'.
func splitKey(c string) (key, rest string, ok bool) {
	i := 0
	for i < len(c) {
		b := c[i]
		if 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '_' || i > 0 && (b == '-' || b == '.') {
			i++
			continue
		}
		break
	}
	if i == 0 || i > maxFastKey || i == len(c) || c[i] != ':' || i+1 < len(c) && c[i+1] != ' ' {
		return "", "", false
	}
	return c[:i], c[i+1:], true
}

// plainTag returns the tag yaml.v3 resolves a plain scalar to, or "" when fastYAML leaves
// it to yaml.v3 (floats, timestamps, integers other than plain decimal ones, other scalars
// that start with a digit and have no letter that rules out a number, merge keys, empty
// values).
func plainTag(v string) string {
	switch v {
	case "":
		return ""
	case "true", "True", "TRUE", "false", "False", "FALSE":
		return "!!bool"
	case "~", "null", "Null", "NULL":
		return "!!null"
	}
	switch c := v[0]; {
	case '0' <= c && c <= '9':
		if strings.ContainsAny(v, "ghijklmnpqrsuvwyGHIJKLMNPQRSUVWY") {
			// No number or timestamp has these letters: a duration such as 30s.
			return "!!str"
		}
		if len(v) > 18 || c == '0' && len(v) > 1 {
			return ""
		}
		for i := 0; i < len(v); i++ {
			if v[i] < '0' || v[i] > '9' {
				return ""
			}
		}
		return "!!int"
	case c == '+' || c == '-' || c == '.' || c == '<':
		return ""
	}
	return "!!str"
}
