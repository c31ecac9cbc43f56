// Package imbotcmd is the imbot command line as a library: a program of a few lines builds
// an imbot binary with its own Go plugins, the functions and handlers its rules call, next
// to (or instead of) the ones imbot ships.
//
//	package main
//
//	import (
//		"github.com/imbot-dev/imbot/imbotcmd"
//		"github.com/imbot-dev/imbot/plugins/helpdesk"
//
//		"example.com/pizzabot/pizza"
//	)
//
//	func main() { imbotcmd.Main(helpdesk.Plugin(), pizza.Plugin()) }
//
// The binary has every command of imbot:
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
// `run` builds the plugins a config file enables (`plugins: [helpdesk, pizza]`) on the bot's
// store; `check`, `test` and `chat` build every plugin of the binary on a memory store, so
// that rule files calling their functions validate and run anywhere. The plugins are the
// Program's own: nothing is registered in a package-level variable.
package imbotcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/emiago/sipgo/sip"
)

// Main runs the imbot command line with these plugins and exits: Program{Plugins:
// plugins}.Main().
func Main(plugins ...Plugin) {
	Program{Plugins: plugins}.Main()
}

// Program is an imbot command line: the plugins compiled into it and its version.
type Program struct {
	// Plugins are the Go plugins of this imbot. Their names must be distinct.
	Plugins []Plugin
	// Version is what `imbot version` and `imbot run` print; when empty, the version of
	// the main module as Go built it, or "dev".
	Version string
}

// Main runs the command that os.Args names, until it ends or SIGINT or SIGTERM arrives, and
// exits with its status. It installs sipgo's package-level logger first (see sipLog), so
// it is meant to be called once, from main.
func (p Program) Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// sipgo's package-level logger, set once before sipgo is used: see sipLog.
	sl := newSIPLog(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sip.SetDefaultLogger(slog.New(sl.handler()))
	code := p.run(ctx, sl, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Run executes one command (args without the program name, such as "check", "rules.yaml")
// and returns the process exit status: 0 success, 1 failure, 2 bad usage. chat reads
// stdin (nil: nothing). Run leaves sipgo's package-level logger as it is.
func (p Program) Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return p.run(ctx, nil, args, stdin, stdout, stderr)
}

func (p Program) run(ctx context.Context, sl *sipLog, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c, err := p.cli(sl)
	if err != nil {
		fmt.Fprintln(stderr, "imbot:", err)
		return 2
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	return c.run(ctx, args, stdin, stdout, stderr)
}

// cli is a Program ready to run commands.
type cli struct {
	version string
	plugins pluginSet
	sl      *sipLog // installed in sipgo by Main (nil: none); imbot run points it at its logger
}

func (p Program) cli(sl *sipLog) (*cli, error) {
	ps, err := newPluginSet(p.Plugins)
	if err != nil {
		return nil, err
	}
	return &cli{version: p.version(), plugins: ps, sl: sl}, nil
}

func (p Program) version() string {
	if p.Version != "" {
		return p.Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// run executes one command and returns the process exit status.
func (c *cli) run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "run":
		if err := c.cmdRun(ctx, args[1:], stdout, stderr); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			fmt.Fprintln(stderr, "imbot run:", err)
			return 1
		}
		return 0
	case "check":
		return c.cmdCheck(ctx, args[1:], stdout, stderr)
	case "test":
		return c.cmdTest(ctx, args[1:], stdout, stderr)
	case "chat":
		if wantsSIPChat(args[1:]) {
			return cmdSIPChat(ctx, args[1:], stdin, stdout, stderr)
		}
		return c.cmdChat(ctx, args[1:], stdin, stdout, stderr)
	case "send":
		return c.cmdSend(ctx, args[1:], stdout, stderr)
	case "config":
		// The embedded default, every key commented: the start of an imbot.yaml.
		if _, err := stdout.Write(defaultConfig); err != nil {
			return 1
		}
		return 0
	case "version":
		fmt.Fprintln(stdout, "imbot", c.version)
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
