package rules

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/store"
)

// Limits on the files a rule set is made of.
const (
	// MaxFileSize is the largest rule or test file read, in bytes.
	MaxFileSize  = 8 << 20
	maxTotalSize = 32 << 20
	maxFiles     = 256
	maxInclude   = 16 // include depth
)

// Options configure loading and the engine. The zero value is usable: files come from the
// operating system, conversations live in a store.Memory, and time is the local time.
type Options struct {
	// FS, when set, is where rule files (and their includes) are read from, with slash
	// paths; otherwise they are read from the operating system. Loading reads several files
	// at once, so FS must be safe for concurrent use (os.DirFS, embed.FS and fstest.MapFS
	// are).
	FS fs.FS
	// Funcs are the Go functions rules may call.
	Funcs Funcs
	// Vars replace the values of constants the rule files declare in `vars`, by name, for
	// one deployment (office hours, a portal's address) or to try an example at any hour. A
	// name no file declares is an error.
	Vars map[string]any
	// Handlers are the Go handlers rules may hand an event to.
	Handlers Handlers
	// Invite brings the address to of a rule's `invite:` into the conversation of ev (after
	// the rule's replies): handlers.Rooms.InviteInto makes it a room. nil: a rule that
	// invites fails when it fires.
	Invite func(ctx context.Context, ev *bot.Event, to string) error
	// Store keeps conversation state and variables, by bot.Conversation.Key.
	Store store.StateStore
	// Logger receives reload errors and rule failures; nil means slog.Default().
	Logger *slog.Logger
	// Location is the timezone of `now` and of business_hours without a timezone; nil means
	// time.Local.
	Location *time.Location
	// Now returns the current time; nil means time.Now. Tests fix it.
	Now func() time.Time
	// Rand returns a number in [0, n) to pick a reply; nil means math/rand/v2.
	Rand func(n int) int
	// OnRule, when set, is called with the name of every rule that answers an event. The
	// engine records the name on the event's Responder itself (bot.SetAnswerer), where the
	// logging, transcript and metrics middleware read it: the hook is for anything else.
	OnRule func(ctx context.Context, rule string)
	// OnNoMatch, when set, is called for a message that only a fallback rule answered in the
	// start state. The engine records it on the event's Responder itself (bot.SetNoMatch),
	// where it is counted and logged as unmatched: the hook is for anything else. A fallback
	// that answers inside a flow (any other state) is not a no-match: it answers what the
	// flow asked.
	OnNoMatch func(ctx context.Context)
	// Limits bound what one event may cost; the zero value has the defaults.
	Limits Limits
	// AutoTypingMax is the most typing a rule's `typing: auto` shows for one answer, all its
	// messages together: each message gets 25ms a character (at least 400ms) until this is
	// spent, the rest none. Zero means DefaultAutoTypingMax (1.5s). Fixed delays (typing:
	// 800ms) are not capped by it.
	AutoTypingMax time.Duration

	// noStaticLimits loads what the load-time limit checks refuse, so that tests can drive
	// the run-time budgets with the expressions that the checks keep out.
	noStaticLimits bool
	// testVars are the variables conversation tests start with (tests[].vars): a rule may
	// read them although nothing in the rule files sets them.
	testVars []string
	// loadWorkers, when above zero, is how many goroutines parse files and compile rules
	// instead of GOMAXPROCS; tests compare the outcome of one with that of several.
	loadWorkers int
}

// workers returns how many goroutines parse files and compile rules.
func (o *Options) workers() int {
	if o.loadWorkers > 0 {
		return o.loadWorkers
	}
	return runtime.GOMAXPROCS(0)
}

// clock returns the time by Now, or the time.
func (o *Options) clock() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o *Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

// loader reads the files of one rule set.
type loader struct {
	opts   *Options
	e      *errs
	files  []*fileAST
	seen   map[string]bool
	stack  []string
	total  int
	read   []string
	broken bool // a file could not be read or parsed

	// ahead holds the files being read and parsed ahead of the walk, by clean name, on up to
	// GOMAXPROCS goroutines (slots); aheadBytes counts what they read, within maxTotalSize.
	ahead      map[string]*parsed
	slots      chan struct{}
	aheadBytes int64
	aheadMu    sync.Mutex
	aheadWG    sync.WaitGroup
}

// parsed is a file read, parsed and walked ahead of the loader, with the problems found in
// it, which the loader reports when its walk reaches the file: in the order, and with the
// outcome, of parsing it there.
type parsed struct {
	done chan struct{}
	data []byte // nil: not read ahead (an error, or over the budget); the walk reads it
	e    errs
	root *yaml.Node
	s    *src
	f    *fileAST
}

// Load reads, validates and compiles the rule files (and what they include) into a rule
// set. Every problem found is reported: the error is then an ErrorList with file:line:col
// positions.
func Load(opts Options, files ...string) (*RuleSet, error) {
	l := &loader{opts: &opts, e: &errs{}, seen: map[string]bool{}, ahead: map[string]*parsed{},
		slots: make(chan struct{}, opts.workers())}
	if len(files) == 0 {
		return nil, errors.New("rules: no rule file given")
	}
	defer l.aheadWG.Wait()
	l.readAhead(files)
	for _, f := range files {
		l.file(f, pos{}, 0)
	}
	if l.broken {
		// A file that does not parse hides its rules: checking the others against it
		// would only add confusing errors.
		return nil, l.e.err()
	}
	return compileSet(&opts, l.files, l.read, l.e)
}

// Check loads the rule files and returns every problem found, one error each, or nil. It is
// what `imbot check` runs. Warnings are among them, as an *Error with Warning set: they do
// not stop the rules from loading.
func Check(opts Options, files ...string) []error {
	rs, err := Load(opts, files...)
	if err != nil {
		return Errors(err)
	}
	return rs.Warnings()
}

func (l *loader) clean(p string) string {
	if l.opts.FS != nil {
		return path.Clean(filepath.ToSlash(p))
	}
	return filepath.Clean(p)
}

func (l *loader) file(name string, from pos, depth int) {
	name = l.clean(name)
	for _, s := range l.stack {
		if s == name {
			l.e.add(from, "include cycle: %s includes itself (through %s)", name, strings.Join(append(l.stack, name), " -> "))
			return
		}
	}
	if l.seen[name] {
		return
	}
	l.seen[name] = true
	if depth > maxInclude {
		l.e.add(from, "includes nest more than %d deep", maxInclude)
		return
	}
	if len(l.seen) > maxFiles {
		l.e.add(from, "more than %d files included", maxFiles)
		return
	}
	ahead := l.ahead[name]
	if ahead != nil {
		<-ahead.done
	}
	var data []byte
	if ahead != nil && ahead.data != nil {
		data = ahead.data
	} else {
		var err error
		data, err = l.readFile(name)
		if err != nil {
			l.e.add(orFile(from, name), "%v", err)
			l.broken = true
			return
		}
		ahead = nil
	}
	l.read = append(l.read, name)
	l.total += len(data)
	if l.total > maxTotalSize {
		l.e.add(pos{file: name}, "rule files add up to more than %d MiB", maxTotalSize>>20)
		return
	}
	var root *yaml.Node
	var s *src
	var f *fileAST
	if ahead != nil {
		// Report what parsing found, as if it had been parsed here.
		for _, x := range ahead.e.list {
			l.e.put(x)
		}
		root, s, f = ahead.root, ahead.s, ahead.f
		if s != nil {
			s.e = l.e
		}
	} else {
		text := string(data)
		var fast bool
		root, fast = parseYAMLFast(name, data, text, l.e)
		if root != nil {
			s = newSrc(name, text, l.e)
			s.noAlias = fast
			f = decodeFile(s, root)
		}
	}
	if root == nil || f == nil {
		l.broken = true
		return
	}
	l.stack = append(l.stack, name)
	targets := make([]string, len(f.includes))
	for i, inc := range f.includes {
		target := inc.Value
		if l.opts.FS != nil {
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(name), target)
			}
		} else if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(name), target)
		}
		targets[i] = target
	}
	l.readAhead(targets)
	for i, inc := range f.includes {
		l.file(targets[i], s.pos(inc), depth+1)
	}
	l.stack = l.stack[:len(l.stack)-1]
	l.files = append(l.files, f)
}

// newSrc returns the src of a file's text.
func newSrc(name, text string, e *errs) *src {
	return &src{name: name, text: text, e: e}
}

// readAhead starts reading, parsing and walking the files that the loader is about to visit,
// on up to GOMAXPROCS goroutines: parsing YAML is most of the cost of loading, and the files
// are independent. Each file's problems are kept apart until the walk reaches it (file);
// files the walk never reaches (an include cycle, a limit) were parsed for nothing. A file
// is read ahead only while what was read ahead stays within maxTotalSize.
func (l *loader) readAhead(names []string) {
	if cap(l.slots) < 2 || len(names) < 2 && len(l.ahead) == 0 {
		return // nothing to overlap
	}
	for _, name := range names {
		name = l.clean(name)
		if l.seen[name] || l.ahead[name] != nil || len(l.ahead) >= maxFiles {
			continue
		}
		p := &parsed{done: make(chan struct{})}
		l.ahead[name] = p
		l.aheadWG.Add(1)
		go func() {
			defer l.aheadWG.Done()
			defer close(p.done)
			l.slots <- struct{}{}
			defer func() { <-l.slots }()
			data, err := l.readFile(name)
			if err != nil {
				return // the walk reads it again and reports the error in its place
			}
			l.aheadMu.Lock()
			l.aheadBytes += int64(len(data))
			over := l.aheadBytes > maxTotalSize
			l.aheadMu.Unlock()
			if over {
				return
			}
			p.data = data
			text := string(data)
			var fast bool
			p.root, fast = parseYAMLFast(name, data, text, &p.e)
			if p.root == nil {
				return
			}
			p.s = newSrc(name, text, &p.e)
			p.s.noAlias = fast
			p.f = decodeFile(p.s, p.root)
		}()
	}
}

func orFile(p pos, name string) pos {
	if p.file == "" {
		return pos{file: name}
	}
	return p
}

// readFile reads a file within the size limit.
func (l *loader) readFile(name string) ([]byte, error) {
	return readLimited(l.opts.FS, name)
}

func readLimited(fsys fs.FS, name string) ([]byte, error) {
	var f fs.File
	var err error
	if fsys != nil {
		f, err = fsys.Open(name)
	} else {
		f, err = os.Open(name)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("file %s does not exist", name)
		}
		return nil, err
	}
	defer f.Close()
	var buf []byte
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() <= MaxFileSize {
		buf = make([]byte, 0, fi.Size()+512) // room to see the end of the file without growing
	}
	data, err := readAll(io.LimitReader(f, MaxFileSize+1), buf)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("file %s is larger than %d MiB", name, MaxFileSize>>20)
	}
	return data, nil
}

// readAll is io.ReadAll into buf.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	if buf == nil {
		return io.ReadAll(r)
	}
	for {
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow
		}
	}
}

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML parses one YAML document into a node tree, reporting syntax errors.
func parseYAML(name string, data []byte, e *errs) (root *yaml.Node) {
	return parseYAMLText(name, data, string(data), e)
}

// parseYAMLText is parseYAML with the data as text too: the loader keeps the text (src),
// which the tree fastYAML makes shares.
func parseYAMLText(name string, data []byte, text string, e *errs) (root *yaml.Node) {
	root, _ = parseYAMLFast(name, data, text, e)
	return root
}

// parseYAMLFast is parseYAMLText, and reports whether fastYAML made the tree (which then
// holds no alias).
func parseYAMLFast(name string, data []byte, text string, e *errs) (root *yaml.Node, fast bool) {
	if bytes.IndexByte(data, 0) >= 0 || !isUTF8(data) {
		line, col := firstInvalidUTF8(data)
		if i := bytes.IndexByte(data, 0); i >= 0 {
			line, col = lineColBytes(data, i)
			e.add(pos{file: name, line: line, col: col}, "the file contains a NUL byte: is it a text file?")
			return nil, false
		}
		e.add(pos{file: name, line: line, col: col}, "the file is not valid UTF-8: save it as UTF-8")
		return nil, false
	}
	if len(bytes.TrimSpace(data)) == 0 {
		e.add(pos{file: name, line: 1, col: 1}, "file is empty: a rule file starts with 'version: 1' and has a 'rules:' list")
		return nil, false
	}
	if n := fastYAML(text); n != nil {
		return n, true // the common forms, read as yaml.v3 reads them
	}
	defer func() {
		if r := recover(); r != nil {
			e.add(pos{file: name, line: 1, col: 1}, "the YAML parser failed: %v", r)
			root, fast = nil, false
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var n yaml.Node
	if err := dec.Decode(&n); err != nil {
		if errors.Is(err, io.EOF) {
			e.add(pos{file: name, line: 1, col: 1}, "file is empty: a rule file starts with 'version: 1' and has a 'rules:' list")
			return nil, false
		}
		yamlErr(name, data, err, e)
		return nil, false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		e.add(pos{file: name, line: extra.Line, col: extra.Column}, "the file holds several YAML documents (---): keep one document per file")
		return nil, false
	} else if !errors.Is(err, io.EOF) {
		yamlErr(name, data, err, e)
		return nil, false
	}
	return &n, false
}

// yamlErr reports a YAML syntax error. yaml.v3 names the line where the construct it was
// parsing started (a mapping, a quoted string), which may be lines before the problem, and no
// column; yamlProblem finds the line and, for common mistakes, the column.
func yamlErr(name string, data []byte, err error, e *errs) {
	msg := err.Error()
	for _, line := range strings.Split(msg, "\n") {
		line = strings.TrimSpace(line)
		if m := yamlLineRe.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			l, c := yamlProblem(data, n, m[2])
			e.add(pos{file: name, line: l, col: c}, "%s", yamlHint(m[2]))
			return
		}
	}
	what := cleanYAMLErr(err)
	l, c := yamlProblem(data, 1, what)
	e.add(pos{file: name, line: l, col: c}, "%s", yamlHint(what))
}

// maxYAMLReparse bounds the bytes yamlProblem parses again to place an error.
const maxYAMLReparse = 4 << 20

// yamlProblem places a YAML syntax error that yaml.v3 reports at line from: on the first
// line from which the file up to any later line fails to parse too (so that a string left
// open on line 27 and closed by the quote of a later line is reported on line 27, not at the
// start of the mapping it is in), and, for the common mistakes, at a column (0 when
// unknown). It keeps from when the file is too large to parse again.
func yamlProblem(data []byte, from int, msg string) (line, col int) {
	lines := bytes.SplitAfter(data, []byte("\n"))
	start := max(from-1, 1) // yaml.v3 names some lines 0-based
	line = from
	budget := maxYAMLReparse
	ends := make([]int, len(lines)+1)
	for i, l := range lines {
		ends[i+1] = ends[i] + len(l)
	}
	for k := start; k < len(lines); k++ {
		budget -= ends[k]
		if budget < 0 {
			return from, 0
		}
	}
	lastOK := 0
	for k := start - 1; k <= len(lines); k++ {
		if k == 0 || yamlParses(data[:ends[k]]) {
			lastOK = k
		}
	}
	if lastOK >= start-1 && lastOK < len(lines) {
		line = lastOK + 1
	}
	if line-1 < len(lines) {
		col = yamlColumn(string(lines[line-1]), msg)
	}
	return line, col
}

// yamlParses reports whether data is YAML that parses.
func yamlParses(data []byte) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	var n yaml.Node
	return yaml.Unmarshal(data, &n) == nil
}

// yamlColumn finds the column (1-based, 0 when unknown) of the common mistakes in a line: a
// tab in the indentation, a quote that is never closed, a second ': ' in a plain value.
func yamlColumn(line, msg string) int {
	switch {
	case strings.Contains(msg, "cannot start any token"):
		if i := strings.IndexByte(line, '\t'); i >= 0 {
			return 1 + len([]rune(line[:i]))
		}
	case strings.Contains(msg, "mapping values are not allowed"):
		if i := strings.Index(line, ": "); i >= 0 {
			if j := strings.Index(line[i+2:], ": "); j >= 0 {
				return 1 + len([]rune(line[:i+2+j]))
			}
		}
	default:
		// A quoted value opened on this line and not closed on it.
		i := strings.Index(line, ": ")
		if i < 0 {
			i = strings.Index(line, "- ")
		}
		if i < 0 {
			return 0
		}
		v := strings.TrimLeft(line[i+2:], " ")
		at := len(line) - len(v)
		if v == "" || (v[0] != '"' && v[0] != '\'') {
			return 0
		}
		rest := strings.TrimRight(v[1:], "\r\n")
		closed := strings.IndexByte(rest, v[0]) >= 0
		if v[0] == '"' {
			closed = strings.Contains(strings.ReplaceAll(rest, `\\`, ""), `"`) && !strings.HasSuffix(strings.ReplaceAll(rest, `\\`, ""), `\"`)
		}
		if !closed {
			return 1 + len([]rune(line[:at]))
		}
	}
	return 0
}

// yamlHint adds advice to the YAML parser's common messages.
func yamlHint(msg string) string {
	switch {
	case strings.Contains(msg, "found character that cannot start any token"):
		return msg + " (tabs are not allowed for indentation in YAML; use spaces)"
	case strings.Contains(msg, "mapping values are not allowed"):
		return msg + " (a value containing ': ' must be quoted)"
	case strings.Contains(msg, "did not find expected key"), strings.Contains(msg, "did not find expected '-' indicator"):
		return msg + " (check the indentation of this line and the one before)"
	}
	return msg
}

func isUTF8(b []byte) bool { return validUTF8(b) }

func lineColBytes(b []byte, off int) (int, int) {
	line := 1 + bytes.Count(b[:off], []byte("\n"))
	col := off - bytes.LastIndexByte(b[:off], '\n')
	return line, col
}
