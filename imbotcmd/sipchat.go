package imbotcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// wantsSIPChat reports whether the arguments of imbot chat name a bot to chat with over SIP
// (--to), rather than rules to run in-process.
func wantsSIPChat(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "to" {
			return true
		}
	}
	return false
}

const sipChatHelp = `Commands: /help this help, /quit end (also Ctrl-D or Ctrl-C). Anything else is sent to the bot.
On a terminal, Backspace deletes, Ctrl-U clears the line, Up and Down go through the lines
you sent, and your typing is shown to the bot.
`

// cmdSIPChat chats with a running bot over SIP from the terminal: it reads lines from stdin
// and sends each as a message, and prints the bot's replies ("bot> ...") and typing as they
// arrive. It returns the exit status: 0, or 1 when the bot could not be reached or refused a
// message.
func cmdSIPChat(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runSIPChat(ctx, args, stdin, stdout, stderr, openTerminal)
}

// runSIPChat is cmdSIPChat with the way to open the terminal: open returns nil when stdin
// is not one. On a terminal, the user's keystrokes are read in raw mode with a line editor,
// and the user's typing is sent to the bot.
func runSIPChat(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer,
	open func(stdin io.Reader, stdout io.Writer) (*chatTerminal, error)) int {
	rawStdout := stdout
	stdout = &lockedWriter{w: stdout}
	fs := flag.NewFlagSet("imbot chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	to := fs.String("to", "", "the bot's SIP address, such as sip:imbot@127.0.0.1:5060 (;transport=tcp for TCP)")
	from := fs.String("from", "", "your SIP address (default sip:$USER@<listen host>:<port>, so that replies come back here)")
	listen := fs.String("listen", "127.0.0.1:0", "the host[:port] to listen on, UDP and TCP (port 0: a free port)")
	session := fs.Bool("session", false, "open an IM session (INVITE, Microsoft dialect) instead of page mode")
	user := fs.String("user", "", "username for the bot's digest challenges")
	passwordEnv := fs.String("password-env", "", "the environment variable holding the digest password")
	timeout := fs.Duration("timeout", 40*time.Second, "give up on one request after this long")
	linger := fs.Duration("linger", 15*time.Second, "when the input ends (or /quit) before the bot answered the last message, wait at most this long for the answer")
	registrar := fs.String("registrar", "", "register --from at this registrar first, such as sip:127.0.0.1:5080 (with --user and --password-env when it challenges)")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: imbot chat --to SIP-ADDRESS [flags]

Chats with a running bot over SIP: each line you type is sent as a message (page mode, or in
an IM session with --session), and the bot's replies and typing are printed as they arrive.
On a terminal, your own typing is sent to the bot (idle after 15 s without a key).
`+sipChatHelp+`Without --to, imbot chat runs the rules in-process (see imbot chat -h).

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *to == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "imbot chat: give --to and no other arguments")
		fs.Usage()
		return 2
	}
	password, err := lookupPassword(*user, *passwordEnv)
	if err != nil {
		fmt.Fprintln(stderr, "imbot chat:", err)
		return 2
	}

	v := &chatView{w: stdout, activity: make(chan struct{}, 1)}
	c, err := startIMClient(imClientConfig{To: *to, From: *from, Listen: *listen,
		Username: *user, Password: password, OnEvent: v.show,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		fmt.Fprintln(stderr, "imbot chat:", err)
		return 1
	}
	defer c.Close()

	if *registrar != "" {
		rctx, cancel := context.WithTimeout(ctx, *timeout)
		err := c.Register(rctx, *registrar, time.Hour)
		cancel()
		if err != nil {
			fmt.Fprintln(stderr, "imbot chat: REGISTER:", explain(err, password != ""))
			return 1
		}
		fmt.Fprintf(stdout, "* registered %s at %s\n", c.From(), *registrar)
		defer func() {
			// The binding is removed even when ctx ended (SIGINT).
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := c.Register(uctx, *registrar, 0); err != nil {
				fmt.Fprintln(stderr, "imbot chat: removing the registration:", explain(err, password != ""))
			}
		}()
	}
	mode := "page mode"
	if *session {
		mode = "IM session"
	}
	fmt.Fprintf(stdout, "chatting with %s as %s (%s); /help for commands, /quit or Ctrl-D to end\n", *to, c.From(), mode)
	if *session {
		octx, cancel := context.WithTimeout(ctx, *timeout)
		err := c.Open(octx)
		cancel()
		if err != nil {
			fmt.Fprintln(stderr, "imbot chat:", explain(err, password != ""))
			return 1
		}
	}

	q := newInputQueue()
	tty, err := open(stdin, rawStdout)
	if err != nil {
		fmt.Fprintln(stderr, "imbot chat:", err)
	}
	sendTyping := c.SendTypingPage
	if *session {
		sendTyping = c.SendTypingInSession
	}
	if tty != nil {
		defer tty.restore()
		ed := &lineEditor{out: tty.out, compose: newComposer(func(active bool) {
			q.put(chatInput{kind: chatTyping, active: active})
		})}
		stdout, stderr = ed.above(tty.out), ed.above(stderr)
		v.redirect(stdout)
		defer ed.close()
		go ed.run(tty.in, q)
	} else {
		go readLines(stdin, q)
	}

	status := 0
	typingRefused := false
	end := func() int {
		if ctx.Err() == nil {
			v.settle(ctx, *linger)
		}
		if *session {
			// The BYE goes out even when ctx ended (SIGINT).
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := c.Bye(bctx); err != nil {
				fmt.Fprintln(stderr, "imbot chat:", err)
				return 1
			}
			fmt.Fprintln(stdout, "* session ended")
		}
		return status
	}
	// handle acts on one input; done reports that the chat ends.
	handle := func(in chatInput) (done bool) {
		switch in.kind {
		case chatEnd:
			if in.err != nil {
				fmt.Fprintln(stderr, "imbot chat: reading input:", in.err)
			}
			return true
		case chatTyping:
			tctx, cancel := context.WithTimeout(ctx, *timeout)
			err := sendTyping(tctx, in.active)
			cancel()
			if err != nil && ctx.Err() == nil && !typingRefused {
				typingRefused = true // said once: the chat goes on without
				fmt.Fprintln(stderr, "imbot chat: sending your typing:", explain(err, password != ""))
			}
			return false
		}
		line := in.line
		text := strings.TrimSpace(line)
		switch {
		case text == "":
			return false
		case text == "/quit":
			return true
		case text == "/help":
			fmt.Fprint(stdout, sipChatHelp)
			return false
		case strings.HasPrefix(text, "/") && !strings.Contains(text, " "):
			fmt.Fprintf(stdout, "* unknown command %s; /help lists them\n", text)
			return false
		}
		refused := v.sending()
		sctx, cancel := context.WithTimeout(ctx, *timeout) // ends the wait for an answer
		var err error
		if *session {
			err = c.SendInSession(sctx, line)
		} else {
			_, err = c.SendPage(sctx, line)
		}
		cancel()
		if err != nil && ctx.Err() != nil {
			// Interrupted while waiting for the answer: the interrupt ends the chat, not
			// this message (which may well have arrived).
			return true
		}
		if err != nil {
			refused()
			fmt.Fprintln(stderr, "imbot chat:", explain(err, password != ""))
			status = 1
		}
		return false
	}
	for {
		select {
		case <-ctx.Done():
			return end()
		case <-c.Ended():
			fmt.Fprintln(stdout, "* the bot ended the session")
			return status
		case <-q.signal:
			for _, in := range q.take() {
				if handle(in) {
					return end()
				}
			}
		}
	}
}

// lookupPassword returns the digest password held by the environment variable env.
func lookupPassword(user, env string) (string, error) {
	if env == "" {
		if user != "" {
			return "", errors.New("--user needs --password-env, the variable holding the password")
		}
		return "", nil
	}
	if user == "" {
		return "", errors.New("--password-env needs --user")
	}
	pw, ok := os.LookupEnv(env)
	if !ok || pw == "" {
		return "", fmt.Errorf("the environment variable %s (--password-env) is not set", env)
	}
	return pw, nil
}

// explain turns the error of a request into a line for the user, with a hint for the
// answers a newcomer meets.
func explain(err error, haveCredentials bool) string {
	var se *statusError
	if !errors.As(err, &se) {
		if errors.Is(err, context.DeadlineExceeded) {
			return "no answer: is a bot running at that address? (" + err.Error() + ")"
		}
		return err.Error()
	}
	switch {
	case (se.Code == 401 || se.Code == 407) && !haveCredentials:
		return fmt.Sprintf("%d %s: the bot asks for credentials: use --user NAME --password-env VAR", se.Code, se.Reason)
	case se.Code == 401 || se.Code == 407:
		return fmt.Sprintf("%d %s: the bot did not accept the credentials", se.Code, se.Reason)
	case se.Code == 403 && se.Warning != "":
		return fmt.Sprintf("refused: %d %s: %s", se.Code, se.Reason, se.Warning)
	case se.Code == 404 || se.Code == 480:
		return fmt.Sprintf("refused: %d %s: is --to the bot's address?", se.Code, se.Reason)
	}
	return "refused: " + strings.TrimPrefix(se.Error(), string(se.Method)+" answered ")
}

// chatView prints what the bot sends: "bot> text" for a message, one "bot is typing..." line
// when it starts typing (not repeated while it goes on).
type chatView struct {
	w        io.Writer
	mu       sync.Mutex
	typing   bool
	sent     time.Time     // when the user's last message went out
	heard    time.Time     // when the bot last showed anything
	activity chan struct{} // a signal per event shown
}

// sending notes that the user's message goes out now, and returns how to take that back
// if the bot refuses it (then no answer is to be waited for).
func (v *chatView) sending() (refused func()) {
	v.mu.Lock()
	defer v.mu.Unlock()
	prev := v.sent
	v.sent = time.Now()
	return func() {
		v.mu.Lock()
		v.sent = prev
		v.mu.Unlock()
	}
}

// settle waits, when the bot has not answered the user's last message yet or is typing,
// until it shows something and then stays quiet for a second (or max passes): input that
// ends right after a message (a pipe, /quit) still shows the answer.
func (v *chatView) settle(ctx context.Context, max time.Duration) {
	limit := time.NewTimer(max)
	defer limit.Stop()
	for {
		v.mu.Lock()
		waiting := v.typing || (!v.sent.IsZero() && v.heard.Before(v.sent))
		v.mu.Unlock()
		quiet := time.NewTimer(time.Second)
		select {
		case <-v.activity:
			quiet.Stop()
			continue
		case <-quiet.C:
			if !waiting {
				return
			}
		case <-limit.C:
			quiet.Stop()
			return
		case <-ctx.Done():
			quiet.Stop()
			return
		}
	}
}

// redirect sends what is shown from now on to w.
func (v *chatView) redirect(w io.Writer) {
	v.mu.Lock()
	v.w = w
	v.mu.Unlock()
}

func (v *chatView) show(ev imEvent) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.heard = time.Now()
	select {
	case v.activity <- struct{}{}:
	default:
	}
	switch ev.Kind {
	case imTyping:
		if ev.Active && !v.typing {
			fmt.Fprintln(v.w, "bot is typing...")
		}
		v.typing = ev.Active
	case imText:
		v.typing = false
		fmt.Fprintln(v.w, replyLine(ev.Text))
	}
}

// replyLine formats a message of the bot as "bot> text", the lines after the first indented
// under it.
func replyLine(text string) string {
	return "bot> " + strings.ReplaceAll(strings.TrimRight(text, "\r\n"), "\n", "\n     ")
}
