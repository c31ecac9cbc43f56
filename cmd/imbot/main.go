// Command imbot runs a SIP IM chatbot.
//
// Usage:
//
//	imbot run [flags]    serve SIP IM on 127.0.0.1 (UDP and TCP) until interrupted
//	imbot check FILE...  validate a config file and rule files
//	imbot test [FILE...] run YAML conversation tests with no network
//	imbot chat [-r FILE] chat with the rules in the terminal
//	imbot chat --to ADDR [--session]  chat with a running bot over SIP
//	imbot send --to ADDR [--wait D] TEXT  send one message (exit 0 delivered, 3 accepted, 1 refused)
//	imbot config         print the default configuration, every key commented
//	imbot version        print the version
//
// Run "imbot run -h" for the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/emiago/sipgo/sip"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// sipgo's package-level logger, set once before sipgo is used: see sipLog.
	sl := newSIPLog(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sip.SetDefaultLogger(slog.New(sl.handler()))
	os.Exit(runWith(ctx, sl, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one imbot command and returns the process exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runWith(ctx, nil, args, stdout, stderr)
}

// runWith is run with the sipLog main installed in sipgo (nil: none), which imbot run
// points at its logger.
func runWith(ctx context.Context, sl *sipLog, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "run":
		if err := cmdRun(ctx, sl, args[1:], stdout, stderr); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			fmt.Fprintln(stderr, "imbot run:", err)
			return 1
		}
		return 0
	case "check":
		return cmdCheck(ctx, args[1:], stdout, stderr)
	case "test":
		return cmdTest(ctx, args[1:], stdout, stderr)
	case "chat":
		if wantsSIPChat(args[1:]) {
			return cmdSIPChat(ctx, args[1:], os.Stdin, stdout, stderr)
		}
		return cmdChat(ctx, args[1:], os.Stdin, stdout, stderr)
	case "send":
		return cmdSend(ctx, args[1:], stdout, stderr)
	case "config":
		// The embedded default, every key commented: the start of an imbot.yaml.
		if _, err := stdout.Write(defaultConfig); err != nil {
			return 1
		}
		return 0
	case "version":
		fmt.Fprintln(stdout, "imbot", version)
		return 0
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "imbot: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `imbot: a chatbot for SIP instant messaging

Usage:
  imbot run [flags]   serve SIP IM until interrupted (see imbot run -h)
  imbot check [--config FILE] [FILE...]
                      validate a config file and rule files (errors as file:line:col)
  imbot test [-v] [TESTFILE...]
                      run YAML conversation tests, no network (default: the demo's)
  imbot chat [-r RULES]...
                      chat with the rules in the terminal, no SIP: /why /state /vars /reset
  imbot chat --to SIP-ADDRESS [--session] [--user NAME --password-env VAR]
                      chat with a running bot over SIP, e.g. --to sip:imbot@127.0.0.1:5060:
                      replies as "bot> ...", typing, /help, /quit (see imbot chat --to x -h)
  imbot send --to SIP-ADDRESS [--wait 5s] TEXT...
                      send one message; --wait prints the replies that come back meanwhile;
                      exit 0 delivered, 3 accepted for later, 1 refused
  imbot config        print the default configuration, every key commented:
                      imbot config > imbot.yaml, then imbot run --config imbot.yaml
  imbot version       print the version
`)
}
