package imbotcmd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
)

// describe renders queued input for comparison: "line TEXT", "typing true|false", "end".
func describe(items []chatInput) []string {
	var out []string
	for _, in := range items {
		switch in.kind {
		case chatLine:
			out = append(out, "line "+in.line)
		case chatTyping:
			out = append(out, fmt.Sprintf("typing %v", in.active))
		case chatEnd:
			s := "end"
			if in.err != nil {
				s += " " + in.err.Error()
			}
			out = append(out, s)
		}
	}
	return out
}

// editorRun feeds keys to a line editor (typing reported) and returns what it queued and
// what it wrote to the terminal.
func editorRun(keys string) ([]string, string) {
	q := newInputQueue()
	var screen bytes.Buffer
	e := &lineEditor{out: &screen, compose: newComposer(func(active bool) {
		q.put(chatInput{kind: chatTyping, active: active})
	})}
	e.run(strings.NewReader(keys), q)
	e.compose.sent() // stops the idle timer
	return describe(q.take()), screen.String()
}

func TestLineEditor(t *testing.T) {
	cases := []struct {
		name string
		keys string
		want []string
	}{
		{"enter sends, the message implies idle", "hi\r", []string{"typing true", "line hi", "end"}},
		{"one active for many keys", "hello there\r", []string{"typing true", "line hello there", "end"}},
		{"backspace", "hex\x7fy\r", []string{"typing true", "line hey", "end"}},
		{"ctrl-h is backspace", "hex\x08y\r", []string{"typing true", "line hey", "end"}},
		{"backspace to empty is idle", "ab\x7f\x7f\x7f", []string{"typing true", "typing false", "end"}},
		{"ctrl-u clears and is idle", "abc\x15d\r", []string{"typing true", "typing false", "typing true", "line d", "end"}},
		{"ctrl-u on an empty line", "\x15ok\r", []string{"typing true", "line ok", "end"}},
		{"ctrl-d ends", "\x04more\r", []string{"end"}},
		{"ctrl-d drops the partial line", "ab\x04", []string{"typing true", "typing false", "end"}},
		{"ctrl-c ends", "one\rtwo\x03", []string{"typing true", "line one", "typing true", "typing false", "end"}},
		{"crlf is one enter", "a\r\nb\n", []string{"typing true", "line a", "typing true", "line b", "end"}},
		{"empty enter", "\r", []string{"line ", "end"}},
		{"arrow keys with no history, left and right ignored", "\x1b[Aok\x1b[D\r", []string{"typing true", "line ok", "end"}},
		{"up recalls the last line sent", "one\r\x1b[A\r", []string{"typing true", "line one", "typing true", "line one", "end"}},
		{"up then down is the line being typed", "a\rb\x1b[A\x1b[B\r", []string{"typing true", "line a", "typing true", "line b", "end"}},
		{"up stops at the oldest line", "x\ry\r\x1b[A\x1b[A\x1b[A\r", []string{"typing true", "line x", "typing true", "line y", "typing true", "line x", "end"}},
		{"down past the newest is the empty draft", "x\r\x1b[A\x1b[B\r", []string{"typing true", "line x", "typing true", "typing false", "line ", "end"}},
		{"other control keys ignored", "o\x01\x02k\r", []string{"typing true", "line ok", "end"}},
		{"unicode", "héllo wörld\x7f\r", []string{"typing true", "line héllo wörl", "end"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, screen := editorRun(c.keys)
			if strings.Join(got, "|") != strings.Join(c.want, "|") {
				t.Errorf("keys %q: got %q, want %q (screen %q)", c.keys, got, c.want, screen)
			}
		})
	}
}

func TestLineEditorEcho(t *testing.T) {
	_, screen := editorRun("ab\x7fc\rx\x15")
	want := "you> ab\r\x1b[K" + "you> a" + "c\r\n" + "you> " + "x" + "\r\x1b[K" + "you> " + "\r\x1b[K"
	if screen != want {
		t.Errorf("screen %q, want %q", screen, want)
	}
}

// TestAboveWriter: output is printed above the line being typed, which is drawn again; a
// line without its end waits for it.
func TestAboveWriter(t *testing.T) {
	var screen bytes.Buffer
	e := &lineEditor{out: &screen, line: []rune("hel")}
	w := e.above(&screen)
	steps := []struct {
		write, want string
	}{
		{"bot is typing...\n", "\r\x1b[Kbot is typing...\r\nyou> hel"},
		{"bot> two", ""},
		{"\n     lines\n", "\r\x1b[Kbot> two\r\n     lines\r\nyou> hel"},
		{"crlf\r\n", "\r\x1b[Kcrlf\r\nyou> hel"},
	}
	for _, s := range steps {
		screen.Reset()
		if _, err := io.WriteString(w, s.write); err != nil {
			t.Fatal(err)
		}
		if screen.String() != s.want {
			t.Errorf("writing %q: screen %q, want %q", s.write, screen.String(), s.want)
		}
	}
	e.close()
	screen.Reset()
	io.WriteString(w, "* session ended\n")
	if want := "\r\x1b[K* session ended\r\n"; screen.String() != want {
		t.Errorf("after close: screen %q, want %q", screen.String(), want)
	}
}

// TestComposerIdle: no keystroke for the idle time sends idle; typing again sends active.
func TestComposerIdle(t *testing.T) {
	states := make(chan bool, 8)
	c := newComposer(func(active bool) { states <- active })
	c.idle = 20 * time.Millisecond
	defer c.sent()
	next := func() bool {
		t.Helper()
		select {
		case s := <-states:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("no typing state sent")
			return false
		}
	}
	c.keystroke()
	if !next() {
		t.Fatal("first keystroke: want active")
	}
	if next() {
		t.Fatal("after the idle time: want idle")
	}
	c.keystroke()
	if !next() {
		t.Fatal("typing again: want active")
	}
}

// TestComposerRefresh: active is sent again while typing goes on past the refresh time,
// not on every keystroke.
func TestComposerRefresh(t *testing.T) {
	var sent []bool
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	c := newComposer(func(active bool) { sent = append(sent, active) })
	c.now = func() time.Time { return now }
	defer c.sent()
	for _, step := range []time.Duration{0, 5 * time.Second, 10 * time.Second, 10 * time.Second, 10 * time.Second, 10 * time.Second, 10 * time.Second} {
		now = now.Add(step)
		c.keystroke()
	}
	// Keystrokes at 0, 5, 15, 25, 35, 45, 55 s: active at 0 and again at 55 (>= 50 s).
	if fmt.Sprint(sent) != "[true true]" {
		t.Errorf("sent %v, want [true true]", sent)
	}
}

// TestSIPChatTerminalTyping drives imbot chat through a terminal (keystrokes written by the
// test) against a bot in this process: the bot sees the user's typing once, then the
// message, and idle when the line is cleared; the reply is printed above the prompt;
// Ctrl-D or Ctrl-C ends the chat, with a BYE in a session.
func TestSIPChatTerminalTyping(t *testing.T) {
	cases := []struct {
		mode string // page or session
		end  string // the key that ends the chat
	}{
		{"page", "\x04"},
		{"session", "\x04"},
		{"session", "\x03"},
	}
	for _, c := range cases {
		mode := c.mode
		t.Run(fmt.Sprintf("%s end %q", c.mode, c.end), func(t *testing.T) {
			b, err := bot.New(bot.Config{
				Listen: []string{"udp://127.0.0.1:0"},
				Logger: slog.New(slog.DiscardHandler),
			})
			if err != nil {
				t.Fatal(err)
			}
			events := make(chan string, 64)
			b.Handle(bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
				switch ev.Kind {
				case bot.EventTyping:
					events <- fmt.Sprintf("typing %v", ev.Typing)
				case bot.EventMessage:
					events <- "message " + ev.Text
					return w.Reply(ctx, "echo: "+ev.Text)
				case bot.EventSessionEnd:
					events <- "end " + string(ev.Reason)
				}
				return nil
			}))
			runBot(t, b)

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			keysR, keys := io.Pipe()
			defer keys.Close()
			screen, stderr := newWaitBuffer(), newWaitBuffer()
			open := func(io.Reader, io.Writer) (*chatTerminal, error) {
				return &chatTerminal{in: keysR, out: screen, restore: func() {}}, nil
			}
			args := []string{"--to", "sip:imbot@" + b.Addr("udp")}
			if mode == "session" {
				args = append(args, "--session")
			}
			exit := make(chan int, 1)
			go func() { exit <- runSIPChat(ctx, args, nil, screen, stderr, open) }()

			expect := func(want string) {
				t.Helper()
				select {
				case got := <-events:
					if got != want {
						t.Fatalf("the bot saw %q, want %q; stderr %q", got, want, stderr.String())
					}
				case <-ctx.Done():
					t.Fatalf("the bot did not see %q; stderr %q", want, stderr.String())
				}
			}
			press := func(s string) {
				t.Helper()
				if _, err := io.WriteString(keys, s); err != nil {
					t.Fatal(err)
				}
			}
			if err := screen.waitFor(ctx, "you> "); err != nil {
				t.Fatalf("%v; stderr %q", err, stderr.String())
			}
			for _, k := range "hello" {
				press(string(k))
			}
			press("\r")
			expect("typing true")
			expect("message hello")
			if err := screen.waitFor(ctx, "\r\x1b[Kbot> echo: hello\r\nyou> "); err != nil {
				t.Fatal(err)
			}
			press("abc")
			expect("typing true")
			press("\x15")
			expect("typing false")
			press(c.end)
			select {
			case code := <-exit:
				if code != 0 {
					t.Errorf("exit %d; stderr %q", code, stderr.String())
				}
			case <-ctx.Done():
				t.Fatalf("imbot chat did not end; screen %q", screen.String())
			}
			if mode == "session" {
				expect("end " + string(bot.EndByPeer))
				if !strings.Contains(screen.String(), "* session ended\r\n") {
					t.Errorf("no session end in %q", screen.String())
				}
			}
			select {
			case ev := <-events:
				t.Errorf("the bot saw more: %q", ev)
			default:
			}
		})
	}
}

// TestOpenTerminalNotATerminal: input from a pipe or a reader is read line by line, without
// raw mode.
func TestOpenTerminalNotATerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	cases := []struct {
		name   string
		stdin  io.Reader
		stdout io.Writer
	}{
		{"reader", strings.NewReader("hi\n"), io.Discard},
		{"pipe", r, w},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tty, err := openTerminal(c.stdin, c.stdout)
			if tty != nil || err != nil {
				t.Errorf("openTerminal: %v, %v; want no terminal", tty, err)
			}
		})
	}
}
