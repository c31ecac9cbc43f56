package imbotcmd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/term"
)

// chatInput is one thing the user did in imbot chat: a line entered, typing started or
// stopped, or the end of the input (Ctrl-D, Ctrl-C, the end of a pipe).
type chatInput struct {
	kind   chatInputKind
	line   string // chatLine
	active bool   // chatTyping
	err    error  // chatEnd: a read error, if any
}

// chatInputKind says what a chatInput is.
type chatInputKind int

const (
	chatLine   chatInputKind = iota + 1 // a line to send (or a command)
	chatTyping                          // the user started (active) or stopped typing
	chatEnd                             // the input ended
)

// inputQueue carries the user's input to the chat loop in order, without ever blocking
// the reader (the loop may be waiting for an answer while the user types on).
type inputQueue struct {
	mu     sync.Mutex
	items  []chatInput
	signal chan struct{} // holds a token while items is not empty
}

func newInputQueue() *inputQueue { return &inputQueue{signal: make(chan struct{}, 1)} }

// put appends in to the queue.
func (q *inputQueue) put(in chatInput) {
	q.mu.Lock()
	q.items = append(q.items, in)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// take removes and returns everything queued.
func (q *inputQueue) take() []chatInput {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}

// readLines queues each line of r, then the end of the input; it is the input of imbot
// chat when stdin is not a terminal (no typing is sent).
func readLines(r io.Reader, q *inputQueue) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		q.put(chatInput{kind: chatLine, line: sc.Text()})
	}
	q.put(chatInput{kind: chatEnd, err: sc.Err()})
}

// Typing timing, after RFC 3994: the user is idle after idleAfter without a keystroke, and
// an "active" indication is refreshed (on a keystroke) once refreshAfter passed since the
// last one, before the announced refresh interval (typingRefresh) runs out.
const (
	idleAfter    = 15 * time.Second
	refreshAfter = typingRefresh - 10*time.Second
)

// composer tracks whether the user is composing a message (RFC 3994) from the editor's
// keystrokes, and reports each change of state, and each refresh of "active", to send.
// Sending a message implies idle without an indication, as the RFC allows.
type composer struct {
	send      func(active bool) // called with mu held: it must not block
	idle      time.Duration     // no keystroke for this long: idle
	refresh   time.Duration     // re-announce active after this long
	now       func() time.Time
	mu        sync.Mutex
	active    bool
	announced time.Time   // when active was last sent
	timer     *time.Timer // fires idle
	gen       int         // invalidates the callbacks of stopped timers
}

func newComposer(send func(active bool)) *composer {
	return &composer{send: send, idle: idleAfter, refresh: refreshAfter, now: time.Now}
}

// keystroke notes that the user typed into a line that is now not empty.
func (c *composer) keystroke() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if !c.active || now.Sub(c.announced) >= c.refresh {
		c.active, c.announced = true, now
		c.send(true)
	}
	c.stopTimer()
	gen := c.gen
	c.timer = time.AfterFunc(c.idle, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.gen == gen {
			c.goIdle()
		}
	})
}

// cleared notes that the line was emptied without sending it: the user is idle.
func (c *composer) cleared() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopTimer()
	c.goIdle()
}

// goIdle sends idle if the user was active; c.mu is held.
func (c *composer) goIdle() {
	if c.active {
		c.active = false
		c.send(false)
	}
}

// sent notes that the line was sent: the message itself means idle, nothing is sent.
func (c *composer) sent() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopTimer()
	c.active = false
}

func (c *composer) stopTimer() {
	c.gen++
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
}

// chatPrompt starts the line the user types.
const chatPrompt = "you> "

// lineEditor is the terminal's input line in raw mode: it echoes what the user types,
// handles Backspace, Ctrl-U (clear), Enter (send), Ctrl-C and Ctrl-D (end), and keeps the
// line being typed below what is printed meanwhile (its Write).
type lineEditor struct {
	out     io.Writer // the terminal
	compose *composer // nil: typing is not reported
	mu      sync.Mutex
	line    []rune
	closed  bool // the input ended: no prompt is drawn any more
	// history holds the lines sent, oldest first (at most maxHistory); at is the entry Up
	// and Down show, len(history) for the line being typed, kept in draft meanwhile.
	history []string
	at      int
	draft   []rune
}

// maxHistory bounds the lines Up and Down go through.
const maxHistory = 500

// close ends the editing: the prompt is cleared and not drawn again, and no more typing
// is reported.
func (e *lineEditor) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.compose != nil {
		e.compose.sent()
	}
	if !e.closed {
		e.closed = true
		e.echo("\r\x1b[K")
	}
}

// above returns a writer that prints above the line being typed, to out (the terminal's
// stdout or stderr): it clears that line, prints the complete lines written (ending them
// with CR LF, as raw mode needs) and draws the prompt and the partial input again. A line
// without its end is held until it ends.
func (e *lineEditor) above(out io.Writer) io.Writer { return &aboveWriter{e: e, out: out} }

// aboveWriter is a writer of lineEditor.above.
type aboveWriter struct {
	e       *lineEditor
	out     io.Writer
	partial []byte // output written without its end of line yet; e.mu guards it
}

func (w *aboveWriter) Write(p []byte) (int, error) {
	e := w.e
	e.mu.Lock()
	defer e.mu.Unlock()
	w.partial = append(w.partial, p...)
	i := bytes.LastIndexByte(w.partial, '\n')
	if i < 0 {
		return len(p), nil
	}
	lines := w.partial[:i+1]
	b := append([]byte("\r\x1b[K"), bytes.ReplaceAll(bytes.ReplaceAll(lines, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))...)
	w.partial = append([]byte(nil), w.partial[i+1:]...)
	if _, err := w.out.Write(b); err != nil {
		return 0, fmt.Errorf("terminal: %w", err)
	}
	if !e.closed {
		e.echo(chatPrompt + string(e.line))
	}
	return len(p), nil
}

// echo writes s to the terminal with the editor locked.
func (e *lineEditor) echo(s string) {
	_, _ = io.WriteString(e.out, s)
}

// redraw draws the prompt and the line again; e.mu is held.
func (e *lineEditor) redraw() {
	e.echo("\r\x1b[K" + chatPrompt + string(e.line))
}

// Key codes the editor handles.
const (
	keyCtrlC     = 0x03
	keyCtrlD     = 0x04
	keyBackspace = 0x08 // Ctrl-H
	keyEnter     = '\r'
	keyNewline   = '\n'
	keyCtrlU     = 0x15
	keyEscape    = 0x1b
	keyDelete    = 0x7f // what Backspace sends on most terminals
)

// run reads keystrokes from in until the user ends or in does, and queues the lines and
// the end of the input on q (typing goes to e.compose).
func (e *lineEditor) run(in io.Reader, q *inputQueue) {
	r := bufio.NewReader(in)
	e.mu.Lock()
	e.echo(chatPrompt)
	e.mu.Unlock()
	var prev rune
	for {
		k, _, err := r.ReadRune()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			e.close()
			q.put(chatInput{kind: chatEnd, err: err})
			return
		}
		if k == keyEscape {
			switch skipEscape(r) {
			case 'A':
				e.browse(-1)
			case 'B':
				e.browse(+1)
			}
			prev = k
			continue
		}
		if e.key(k, prev, q) {
			return
		}
		prev = k
	}
}

// key handles one keystroke; it reports whether the input ended.
func (e *lineEditor) key(k, prev rune, q *inputQueue) (end bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case k == keyCtrlC || k == keyCtrlD:
		e.line = nil
		e.closed = true
		e.echo("\r\n")
		if e.compose != nil {
			e.compose.cleared() // what was typed is not sent
		}
		q.put(chatInput{kind: chatEnd})
		return true
	case k == keyNewline && prev == keyEnter:
		// The LF of a CR LF.
	case k == keyEnter || k == keyNewline:
		line := string(e.line)
		e.line = nil
		e.echo("\r\n")
		if e.compose != nil {
			if line == "" {
				e.compose.cleared()
			} else {
				e.compose.sent()
			}
		}
		q.put(chatInput{kind: chatLine, line: line})
		if line != "" && (len(e.history) == 0 || e.history[len(e.history)-1] != line) {
			e.history = append(e.history, line)
			if len(e.history) > maxHistory {
				e.history = e.history[len(e.history)-maxHistory:]
			}
		}
		e.at, e.draft = len(e.history), nil
		e.echo(chatPrompt)
	case k == keyBackspace || k == keyDelete:
		if len(e.line) == 0 {
			return false
		}
		e.line = e.line[:len(e.line)-1]
		e.redraw()
		if e.compose != nil {
			if len(e.line) == 0 {
				e.compose.cleared()
			} else {
				e.compose.keystroke()
			}
		}
	case k == keyCtrlU:
		if len(e.line) == 0 {
			return false
		}
		e.line = nil
		e.redraw()
		if e.compose != nil {
			e.compose.cleared()
		}
	case k == utf8.RuneError || !unicode.IsPrint(k) && k != ' ':
		// Other control keys and undecodable bytes are ignored.
	default:
		e.line = append(e.line, k)
		e.echo(string(k))
		if e.compose != nil {
			e.compose.keystroke()
		}
	}
	return false
}

// browse shows the line sent before (step -1, the Up key) or after (+1, Down) the one shown,
// back to the line being typed after the newest.
func (e *lineEditor) browse(step int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	if e.at > len(e.history) {
		e.at = len(e.history)
	}
	to := e.at + step
	if to < 0 || to > len(e.history) {
		return
	}
	if e.at == len(e.history) {
		e.draft = append([]rune(nil), e.line...)
	}
	e.at = to
	if to == len(e.history) {
		e.line = append([]rune(nil), e.draft...)
	} else {
		e.line = []rune(e.history[to])
	}
	e.redraw()
	if e.compose != nil {
		if len(e.line) == 0 {
			e.compose.cleared()
		} else {
			e.compose.keystroke()
		}
	}
}

// skipEscape consumes the rest of an escape sequence (arrow keys and the like): ESC [
// parameters and a final byte, or ESC and one more byte. It returns the final byte of a
// sequence without parameters ('A' for Up, 'B' for Down), else 0.
func skipEscape(r *bufio.Reader) byte {
	if r.Buffered() == 0 {
		return 0 // a lone Escape key
	}
	b, err := r.ReadByte()
	if err != nil || (b != '[' && b != 'O') {
		return 0
	}
	params := false
	for r.Buffered() > 0 {
		c, err := r.ReadByte()
		if err != nil {
			return 0
		}
		if c >= 0x40 && c <= 0x7e {
			if params {
				return 0
			}
			return c
		}
		params = true
	}
	return 0
}

// chatTerminal is the terminal imbot chat reads keystrokes from in raw mode.
type chatTerminal struct {
	in      io.Reader
	out     io.Writer
	restore func() // leaves raw mode
}

// openTerminal puts stdin in raw mode when it and stdout are terminals, and returns nil
// otherwise (a pipe, a file): then imbot chat reads lines and sends no typing, and its
// output has no terminal controls.
func openTerminal(stdin io.Reader, stdout io.Writer) (*chatTerminal, error) {
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) || !isTerminal(stdout) {
		return nil, nil
	}
	fd := int(f.Fd())
	st, err := term.MakeRaw(fd)
	if err != nil {
		return nil, fmt.Errorf("raw mode: %w", err)
	}
	return &chatTerminal{in: f, out: stdout, restore: func() { _ = term.Restore(fd, st) }}, nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
