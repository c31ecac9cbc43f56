package imbotcmd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/bot"
)

// echoBot is a bot on 127.0.0.1 (UDP and TCP, a free port) that shows typing, then echoes
// every message as "echo: TEXT"; ends receives the reason of every conversation's end.
type echoBot struct {
	addr string
	ends chan bot.EndReason
}

func startEchoBot(t *testing.T, trust bot.TrustConfig) *echoBot {
	t.Helper()
	b, err := bot.New(bot.Config{
		Listen: []string{"udp://127.0.0.1:0", "tcp://127.0.0.1:0"},
		Trust:  trust,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &echoBot{addr: b.Addr("udp"), ends: make(chan bot.EndReason, 16)}
	b.Handle(bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		switch ev.Kind {
		case bot.EventMessage:
			_ = w.Typing(ctx)
			if ev.Text == "goodbye" {
				w.End()
			}
			return w.Reply(ctx, "echo: "+ev.Text)
		case bot.EventSessionEnd:
			e.ends <- ev.Reason
		}
		return nil
	}))
	runBot(t, b)
	return e
}

// runBot runs b until the test ends, and returns once it serves.
func runBot(t *testing.T, b *bot.Bot) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("bot: %v", err)
		}
	})
	<-b.Ready()
}

// uri is the bot's address, with ;transport=tcp for tcp.
func (e *echoBot) uri(transport string) string {
	u := "sip:imbot@" + e.addr
	if transport == "tcp" {
		u += ";transport=tcp"
	}
	return u
}

// waitBuffer is an output that a test can wait on.
type waitBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newWaitBuffer() *waitBuffer { return &waitBuffer{changed: make(chan struct{})} }

func (b *waitBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.changed)
	b.changed = make(chan struct{})
	return b.buf.Write(p)
}

func (b *waitBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until the output contains s.
func (b *waitBuffer) waitFor(ctx context.Context, s string) error {
	for {
		b.mu.Lock()
		has, changed := strings.Contains(b.buf.String(), s), b.changed
		b.mu.Unlock()
		if has {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("no %q in the output: %w", s, ctx.Err())
		}
	}
}

// chatRun is imbot chat running with input written by the test.
type chatRun struct {
	in       *io.PipeWriter
	out, err *waitBuffer
	exit     chan int
}

func startChat(ctx context.Context, args ...string) *chatRun {
	inR, inW := io.Pipe()
	r := &chatRun{in: inW, out: newWaitBuffer(), err: newWaitBuffer(), exit: make(chan int, 1)}
	go func() {
		r.exit <- cmdSIPChat(ctx, args, inR, r.out, r.err)
		inR.Close()
	}()
	return r
}

func (r *chatRun) say(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(r.in, line+"\n"); err != nil {
		t.Fatalf("writing %q: %v (stderr %q)", line, err, r.err.String())
	}
}

func (r *chatRun) wait(ctx context.Context, t *testing.T) int {
	t.Helper()
	select {
	case code := <-r.exit:
		return code
	case <-ctx.Done():
		t.Fatalf("imbot chat did not end; output %q, stderr %q", r.out.String(), r.err.String())
		return -1
	}
}

func TestSIPChatPageMode(t *testing.T) {
	for _, tp := range []string{"udp", "tcp"} {
		t.Run(tp, func(t *testing.T) {
			e := startEchoBot(t, bot.TrustConfig{})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			r := startChat(ctx, "--to", e.uri(tp))
			r.say(t, "/help")
			r.say(t, "hello there")
			for _, want := range []string{"bot is typing...", "bot> echo: hello there", "/quit"} {
				if err := r.out.waitFor(ctx, want); err != nil {
					t.Fatalf("%v; stderr %q", err, r.err.String())
				}
			}
			r.say(t, "second")
			if err := r.out.waitFor(ctx, "bot> echo: second"); err != nil {
				t.Fatal(err)
			}
			r.in.Close() // Ctrl-D
			if code := r.wait(ctx, t); code != 0 {
				t.Errorf("exit %d; stderr %q", code, r.err.String())
			}
			out := r.out.String()
			if !strings.Contains(out, "as sip:") || !strings.Contains(out, "@127.0.0.1:") {
				t.Errorf("the banner does not show the client's own address with its port: %q", out)
			}
		})
	}
}

func TestSIPChatSession(t *testing.T) {
	cases := []struct {
		name   string
		end    func(r *chatRun, cancel context.CancelFunc) // how the session ends
		note   string                                      // printed at the end
		reason bot.EndReason                               // as the bot sees it
	}{
		{"quit", func(r *chatRun, _ context.CancelFunc) { io.WriteString(r.in, "/quit\n") }, "* session ended", bot.EndByPeer},
		{"end of input", func(r *chatRun, _ context.CancelFunc) { r.in.Close() }, "* session ended", bot.EndByPeer},
		{"interrupt", func(_ *chatRun, cancel context.CancelFunc) { cancel() }, "* session ended", bot.EndByPeer},
		{"the bot ends it", func(r *chatRun, _ context.CancelFunc) { io.WriteString(r.in, "goodbye\n") }, "* the bot ended the session", bot.EndByBot},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := startEchoBot(t, bot.TrustConfig{})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			chatCtx, interrupt := context.WithCancel(ctx)
			defer interrupt()
			r := startChat(chatCtx, "--to", e.uri("udp"), "--session")
			if err := r.out.waitFor(ctx, "(IM session)"); err != nil {
				t.Fatalf("%v; stderr %q", err, r.err.String())
			}
			r.say(t, "in a session")
			if err := r.out.waitFor(ctx, "bot> echo: in a session"); err != nil {
				t.Fatalf("%v; stderr %q", err, r.err.String())
			}
			c.end(r, interrupt)
			if code := r.wait(ctx, t); code != 0 {
				t.Errorf("exit %d; stderr %q", code, r.err.String())
			}
			if !strings.Contains(r.out.String(), c.note) {
				t.Errorf("no %q in %q", c.note, r.out.String())
			}
			select {
			case reason := <-e.ends:
				if reason != c.reason {
					t.Errorf("the session ended with %q, want %q", reason, c.reason)
				}
			case <-ctx.Done():
				t.Fatal("the bot did not see the session end")
			}
		})
	}
}

func TestSIPChatDigest(t *testing.T) {
	trust := bot.TrustConfig{Users: []bot.DigestUser{{Username: "alice", Password: "s3cret", URI: "sip:alice@example.com"}}}
	t.Setenv("IMBOT_TEST_PASSWORD", "s3cret")
	t.Setenv("IMBOT_TEST_WRONG", "guess")
	cases := []struct {
		name    string
		args    []string
		session bool
		exit    int
		want    string // in stdout, or in stderr when exit is not 0
	}{
		{"page with credentials", []string{"--from", "sip:alice@example.com", "--user", "alice", "--password-env", "IMBOT_TEST_PASSWORD"}, false, 0, "bot> echo: hi"},
		{"session with credentials", []string{"--from", "sip:alice@example.com", "--user", "alice", "--password-env", "IMBOT_TEST_PASSWORD", "--session"}, true, 0, "bot> echo: hi"},
		{"page without credentials", nil, false, 1, "the bot asks for credentials: use --user"},
		{"session without credentials", []string{"--session"}, true, 1, "the bot asks for credentials: use --user"},
		{"wrong password", []string{"--from", "sip:alice@example.com", "--user", "alice", "--password-env", "IMBOT_TEST_WRONG"}, false, 1, "wrong username or password"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := startEchoBot(t, trust)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			r := startChat(ctx, append([]string{"--to", e.uri("udp")}, c.args...)...)
			if !c.session || c.exit == 0 {
				r.say(t, "hi") // a refused session ends the command before any input
			}
			if c.exit == 0 {
				if err := r.out.waitFor(ctx, c.want); err != nil {
					t.Fatalf("%v; stderr %q", err, r.err.String())
				}
				r.say(t, "/quit")
			} else if !c.session {
				if err := r.err.waitFor(ctx, c.want); err != nil {
					t.Fatal(err)
				}
				r.in.Close()
			}
			if code := r.wait(ctx, t); code != c.exit {
				t.Errorf("exit %d, want %d; stderr %q", code, c.exit, r.err.String())
			}
			if c.exit != 0 && !strings.Contains(r.err.String(), c.want) {
				t.Errorf("stderr %q, want %q", r.err.String(), c.want)
			}
		})
	}
}

func TestSIPChatArguments(t *testing.T) {
	cases := []struct {
		name string
		args []string
		exit int
		want string
	}{
		{"extra argument", []string{"--to", "sip:imbot@127.0.0.1:5060", "hello"}, 2, "give --to"},
		{"user without password", []string{"--to", "sip:imbot@127.0.0.1:5060", "--user", "alice"}, 2, "--password-env"},
		{"unset password variable", []string{"--to", "sip:imbot@127.0.0.1:5060", "--user", "alice", "--password-env", "IMBOT_TEST_UNSET_VARIABLE"}, 2, "is not set"},
		{"bad listen address", []string{"--to", "sip:imbot@127.0.0.1:5060", "--listen", "nowhere"}, 1, "want an IP address"},
		{"nobody there", []string{"--to", "sip:imbot@127.0.0.1:9", "--timeout", "1s"}, 1, "no answer: is a bot running"},
		{"registrar on another transport", []string{"--to", "sip:imbot@127.0.0.1:9", "--registrar", "sip:127.0.0.1:9;transport=tcp"}, 1, "use the same"},
		{"bad transport", []string{"--to", "sip:imbot@127.0.0.1:5060;transport=sctp"}, 1, "only udp and tcp"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := cmdSIPChat(context.Background(), c.args, strings.NewReader("hello\n"), &out, &errOut); code != c.exit {
				t.Errorf("exit %d, want %d (stderr %q)", code, c.exit, errOut.String())
			}
			if !strings.Contains(errOut.String(), c.want) {
				t.Errorf("stderr %q, want %q", errOut.String(), c.want)
			}
		})
	}
}

func TestWantsSIPChat(t *testing.T) {
	cases := []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"-r", "rules.yaml"}, false},
		{[]string{"--to", "sip:imbot@127.0.0.1"}, true},
		{[]string{"-to=sip:imbot@127.0.0.1"}, true},
		{[]string{"--", "--to"}, false},
	}
	for _, c := range cases {
		if got := wantsSIPChat(c.args); got != c.want {
			t.Errorf("wantsSIPChat(%q) = %v, want %v", c.args, got, c.want)
		}
	}
}

// startRegistrar serves REGISTER on UDP 127.0.0.1 with code and reason and sends the Expires of
// every REGISTER to expires.
func startRegistrar(t *testing.T, code int, reason string) (addr string, expires <-chan string) {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgentHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 16)
	srv.OnRegister(func(req *sip.Request, tx sip.ServerTransaction) {
		if h := req.GetHeader("Expires"); h != nil {
			got <- h.Value()
		}
		_ = tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeUDP(pc) }()
	t.Cleanup(func() { pc.Close(); <-done; ua.Close() })
	return pc.LocalAddr().String(), got
}

func TestSIPChatRegistrar(t *testing.T) {
	e := startEchoBot(t, bot.TrustConfig{})
	t.Run("registered", func(t *testing.T) {
		reg, expires := startRegistrar(t, 200, "OK")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		r := startChat(ctx, "--to", e.uri("udp"), "--registrar", "sip:"+reg)
		r.say(t, "hi")
		for _, want := range []string{"* registered sip:", "bot> echo: hi"} {
			if err := r.out.waitFor(ctx, want); err != nil {
				t.Fatalf("%v; stderr %q", err, r.err.String())
			}
		}
		r.say(t, "/quit")
		if code := r.wait(ctx, t); code != 0 {
			t.Errorf("exit %d; stderr %q", code, r.err.String())
		}
		for _, want := range []string{"3600", "0"} {
			select {
			case got := <-expires:
				if got != want {
					t.Errorf("REGISTER with Expires %s, want %s", got, want)
				}
			case <-ctx.Done():
				t.Fatalf("no REGISTER with Expires %s", want)
			}
		}
	})
	t.Run("refused", func(t *testing.T) {
		reg, _ := startRegistrar(t, 403, "Forbidden")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		r := startChat(ctx, "--to", e.uri("udp"), "--registrar", "sip:"+reg)
		if code := r.wait(ctx, t); code != 1 {
			t.Errorf("exit %d, want 1; stderr %q", code, r.err.String())
		}
		if want := "REGISTER: refused: 403 Forbidden"; !strings.Contains(r.err.String(), want) {
			t.Errorf("stderr %q, want %q", r.err.String(), want)
		}
	})
}

// TestSIPChatPipedInput: input that ends right after a message (a pipe: echo hello | imbot
// chat --to ...) still shows the answer before the chat ends, in page mode and in a session.
func TestSIPChatPipedInput(t *testing.T) {
	for _, args := range [][]string{nil, {"--session"}} {
		t.Run(fmt.Sprint(args), func(t *testing.T) {
			e := startEchoBot(t, bot.TrustConfig{})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var out, errOut bytes.Buffer
			code := cmdSIPChat(ctx, append([]string{"--to", e.uri("udp")}, args...), strings.NewReader("piped\n"), &out, &errOut)
			if code != 0 || !strings.Contains(out.String(), "bot> echo: piped") {
				t.Errorf("exit %d, output %q (stderr %q): want the echo of the piped line", code, out.String(), errOut.String())
			}
		})
	}
}
