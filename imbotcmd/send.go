package imbotcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/imbot-dev/imbot/bot"
)

// Exit statuses of imbot send.
const (
	exitDelivered = 0 // the peer answered 200
	exitFailed    = 1 // refused, unreachable or a bad argument
	exitAccepted  = 3 // a server answered 202: stored for later delivery
)

// cmdSend sends one page-mode message with the identity and proxy of the config file and
// returns the exit status.
func (c *cli) cmdSend(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// The bot logs to stderr from its own goroutines (its start, a warning) while the command
	// writes its result there.
	stderr = &lockedWriter{w: stderr}
	fs := flag.NewFlagSet("imbot send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (identity, outbound proxy, credentials); default: the embedded default")
	to := fs.String("to", "", "the recipient's SIP address, such as sip:alice@example.com (required)")
	from := fs.String("from", "", "the sender's SIP address; default: the config's identity, else sip:$USER@<listen host>:<port>")
	timeout := fs.Duration("timeout", 40*time.Second, "give up after this long")
	wait := fs.Duration("wait", 0, "after sending, print the replies that arrive within this long (\"bot> text\")")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: imbot send --to SIP-ADDRESS [flags] TEXT...

Sends TEXT as one SIP MESSAGE (page mode) with the outbound proxy and credentials of the
config file, from a free port of its listen host, so that a reply can come back: with
--wait 5s the replies that arrive in the next 5 seconds are printed. Exit status:
0 delivered (200), 3 accepted for later delivery (202), 1 refused or failed (the SIP status
and reason are printed).

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
	text := strings.Join(fs.Args(), " ")
	if *to == "" || strings.TrimSpace(text) == "" {
		fmt.Fprintln(stderr, "imbot send: give --to and the text to send")
		fs.Usage()
		return 2
	}
	fc, err := c.loadConfig(*configPath)
	if err != nil {
		fmt.Fprintln(stderr, "imbot send:", err)
		return exitFailed
	}
	log, err := newLogger(stderr, "warn", fc.Log.Format)
	if err != nil {
		fmt.Fprintln(stderr, "imbot send:", err)
		return exitFailed
	}
	cfg, err := fc.botConfig()
	if err != nil {
		fmt.Fprintln(stderr, "imbot send:", err)
		return exitFailed
	}
	// Another imbot may be serving the configured ports: send from a free one on the same
	// hosts, known before the bot starts so that the default identity can name it.
	port, err := freePort(cfg.Listen)
	if err != nil {
		fmt.Fprintln(stderr, "imbot send:", err)
		return exitFailed
	}
	cfg.Listen = onPort(cfg.Listen, port)
	// The config's display name belongs to its identity, not to another sender.
	switch {
	case *from != "":
		cfg.Identity, cfg.DisplayName = *from, ""
	case fc.Identity == "":
		cfg.Identity, cfg.DisplayName = fmt.Sprintf("sip:%s@%s", defaultUser(), net.JoinHostPort(listenHost(cfg.Listen), port)), ""
	}
	cfg.Registration.Registrar = "" // one message needs no binding
	cfg.Typing.Off = true           // nothing to show while a reply is printed
	cfg.Logger = log
	b, err := bot.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "imbot send:", err)
		return exitFailed
	}
	// Replies are printed with --wait, after the line that says how the message went.
	stdout = &lockedWriter{w: stdout}
	printed := make(chan struct{})
	b.Handle(bot.HandlerFunc(func(ctx context.Context, _ bot.Responder, ev *bot.Event) error {
		if ev.Kind != bot.EventMessage || *wait <= 0 {
			return nil
		}
		select {
		case <-printed:
			fmt.Fprintln(stdout, replyLine(ev.Text))
		case <-ctx.Done():
		}
		return nil
	}))
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- b.Run(runCtx) }()
	defer func() { stop(); <-done }()
	<-b.Ready()
	d, err := b.Send(ctx, *to, text)
	var se *bot.SendError
	status := exitDelivered
	switch {
	case errors.As(err, &se):
		fmt.Fprintf(stderr, "imbot send: refused: %d %s\n", se.Code, se.Reason)
		return exitFailed
	case err != nil:
		fmt.Fprintln(stderr, "imbot send:", err)
		return exitFailed
	case d == bot.Accepted:
		fmt.Fprintln(stdout, "accepted for later delivery (202)")
		status = exitAccepted
	default:
		fmt.Fprintln(stdout, "delivered (200)")
	}
	close(printed)
	if *wait > 0 {
		// The handler above prints what comes back meanwhile.
		t := time.NewTimer(*wait)
		select {
		case <-t.C:
		case <-parent.Done():
		}
		t.Stop()
	}
	return status
}

// onPort turns listen URLs into the same hosts and transports on port.
func onPort(listen []string, port string) []string {
	if len(listen) == 0 {
		listen = []string{"udp://127.0.0.1:5060", "tcp://127.0.0.1:5060"}
	}
	out := make([]string, 0, len(listen))
	for _, l := range listen {
		u, err := url.Parse(l)
		if err != nil {
			out = append(out, l)
			continue
		}
		host := u.Hostname()
		u.Host = net.JoinHostPort(host, port)
		out = append(out, u.String())
	}
	return out
}

// listenHost returns the host of the first listen URL, 127.0.0.1 when there is none.
func listenHost(listen []string) string {
	if len(listen) > 0 {
		if u, err := url.Parse(listen[0]); err == nil && u.Hostname() != "" {
			return u.Hostname()
		}
	}
	return "127.0.0.1"
}

// freePort finds a port that is free for UDP and TCP on every host of the listen URLs.
func freePort(listen []string) (string, error) {
	hosts := map[string]bool{}
	for _, l := range onPort(listen, "0") {
		if u, err := url.Parse(l); err == nil {
			hosts[u.Hostname()] = true
		}
	}
	first := listenHost(onPort(listen, "0"))
	var lastErr error
	for range 10 {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(first, "0"))
		if err != nil {
			return "", fmt.Errorf("finding a free port: %w", err)
		}
		_, port, _ := net.SplitHostPort(pc.LocalAddr().String())
		var held []io.Closer
		ok := true
		for h := range hosts {
			if h != first {
				c, err := net.ListenPacket("udp", net.JoinHostPort(h, port))
				if err != nil {
					ok, lastErr = false, err
					break
				}
				held = append(held, c)
			}
			ln, err := net.Listen("tcp", net.JoinHostPort(h, port))
			if err != nil {
				ok, lastErr = false, err
				break
			}
			held = append(held, ln)
		}
		for _, c := range held {
			c.Close()
		}
		pc.Close()
		if ok {
			return port, nil
		}
	}
	return "", fmt.Errorf("finding a free port: %w", lastErr)
}

// lockedWriter serializes the writes to w, for a writer (such as a bytes.Buffer) that is not
// safe for concurrent use.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
