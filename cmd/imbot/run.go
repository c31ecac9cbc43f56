package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/imbot-dev/imbot/bot"
)

// cmdRun serves SIP IM with the built-in handler until ctx ends.
func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("imbot run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1", "IP address to listen on")
	port := fs.Int("port", 5060, "port to listen on, for UDP and TCP (0 picks a free one)")
	identity := fs.String("identity", "", "the bot's SIP address (default sip:imbot@<addr>)")
	name := fs.String("name", "imbot", "display name shown to peers")
	idle := fs.Duration("idle", 10*time.Minute, "end conversations idle for this long")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	hp := net.JoinHostPort(*addr, strconv.Itoa(*port))
	b, err := bot.New(bot.Config{
		Listen:      []string{"udp://" + hp, "tcp://" + hp},
		Identity:    *identity,
		DisplayName: *name,
		IdleTimeout: *idle,
		Logger:      log,
	})
	if err != nil {
		return err
	}
	b.Handle(builtinHandler())
	fmt.Fprintf(stdout, "imbot %s listening as %s on udp %s and tcp %s (Ctrl-C to stop)\n",
		version, b.URI(), b.Addr("udp"), b.Addr("tcp"))
	return b.Run(ctx)
}
