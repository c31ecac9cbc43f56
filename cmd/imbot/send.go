package main

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
func cmdSend(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// The bot logs to stderr from its own goroutines (its start, a warning) while the command
	// writes its result there.
	stderr = &lockedWriter{w: stderr}
	fs := flag.NewFlagSet("imbot send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (identity, outbound proxy, credentials); default: the embedded default")
	to := fs.String("to", "", "the recipient's SIP address, such as sip:alice@example.com (required)")
	timeout := fs.Duration("timeout", 40*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: imbot send --to SIP-ADDRESS [flags] TEXT...

Sends TEXT as one SIP MESSAGE (page mode) with the identity, outbound proxy and credentials
of the config file. Exit status: 0 delivered (200), 3 accepted for later delivery (202),
1 refused or failed (the SIP status and reason are printed).

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
	fc, err := loadConfig(*configPath)
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
	// Another imbot may be serving the configured ports: send from free ones on the same hosts.
	cfg.Listen = ephemeral(cfg.Listen)
	cfg.Registration.Registrar = "" // one message needs no binding
	cfg.Logger = log
	b, err := bot.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "imbot send:", err)
		return exitFailed
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- b.Run(runCtx) }()
	defer func() { stop(); <-done }()
	<-b.Ready()
	d, err := b.Send(ctx, *to, text)
	var se *bot.SendError
	switch {
	case errors.As(err, &se):
		fmt.Fprintf(stderr, "imbot send: refused: %d %s\n", se.Code, se.Reason)
		return exitFailed
	case err != nil:
		fmt.Fprintln(stderr, "imbot send:", err)
		return exitFailed
	case d == bot.Accepted:
		fmt.Fprintln(stdout, "accepted for later delivery (202)")
		return exitAccepted
	}
	fmt.Fprintln(stdout, "delivered (200)")
	return exitDelivered
}

// ephemeral turns listen URLs into the same hosts and transports on port 0.
func ephemeral(listen []string) []string {
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
		u.Host = net.JoinHostPort(host, "0")
		out = append(out, u.String())
	}
	return out
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
