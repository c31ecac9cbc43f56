package imbotcmd

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/rules"
)

// cmdRun serves SIP IM until ctx ends. c.sl, when set, is the sipLog Main installed as
// sipgo's package-level logger: it is pointed at the configured logger.
func (c *cli) cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("imbot run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (default: the embedded default, see imbot config)")
	addr := fs.String("addr", "127.0.0.1", "IP address to listen on (overrides listen in the config)")
	port := fs.Int("port", 5060, "port to listen on, for UDP and TCP; 0 picks a free one (overrides listen)")
	logLevel := fs.String("log-level", "", "log level: debug, info, warn or error (overrides log.level)")
	webAddr := fs.String("web", "", "serve the web chat widget and its demo page on this HTTP address, such as 127.0.0.1:8080 (overrides web.listen; adds a WebSocket listen address when there is none)")
	var ruleFiles multiFlag
	fs.Var(&ruleFiles, "r", "a rule file to serve (repeatable; overrides rules in the config)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: imbot run [flags]\n\nServes SIP instant messaging until interrupted.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	fc, err := c.loadConfig(*configPath)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["addr"] || set["port"] || fc.file == "" {
		hp := net.JoinHostPort(*addr, strconv.Itoa(*port))
		fc.Listen = []string{"udp://" + hp, "tcp://" + hp}
	}
	if *logLevel != "" {
		fc.Log.Level = *logLevel
	}
	if *webAddr != "" {
		fc.Web.Listen = *webAddr
		if wsListen(fc.Listen) == "" && fc.Web.WebSocket == "" {
			host, _, err := net.SplitHostPort(*webAddr)
			if err != nil {
				return fmt.Errorf("--web %q: want host:port, such as 127.0.0.1:8080", *webAddr)
			}
			fc.Listen = append(fc.Listen, "ws://"+net.JoinHostPort(host, "0")) // a free port
		}
		if errs := fc.validate(); len(errs) > 0 {
			return fmt.Errorf("--web: %s", errs[0])
		}
	}
	log, err := newLogger(stderr, fc.Log.Level, fc.Log.Format)
	if err != nil {
		return err
	}
	if c.sl != nil {
		c.sl.set(log)
	}
	if len(ruleFiles) > 0 {
		fc.Rules = ruleFiles
	}
	var engine *rules.Engine
	a, err := assemble(ctx, fc, log, func(a *app) (bot.Handler, []bot.Middleware, error) {
		e, err := c.ruleChain(ctx, a, fc, log)
		if err != nil {
			return nil, nil, err
		}
		engine = e
		// What no rule answers ends here; the log and the unmatched list record it.
		return nil, []bot.Middleware{e.Middleware()}, nil
	})
	if err != nil {
		return err
	}
	if len(fc.Rules) > 0 {
		// A changed rule file is validated and swapped in; a bad one keeps the old set.
		go engine.Watch(ctx, 2*time.Second)
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-hup:
					// Reload logs its outcome (the rules reloaded, or why the old ones stay).
					_ = engine.Reload()
				}
			}
		}()
	}
	also := ""
	for _, n := range []string{"tls", "ws", "wss"} {
		if addr := a.bot.Addr(n); addr != "" {
			also += ", " + n + " " + addr
		}
	}
	fmt.Fprintf(stdout, "imbot %s listening as %s on udp %s and tcp %s%s (Ctrl-C to stop)\n",
		c.version, a.bot.URI(), orNone(a.bot.Addr("udp")), orNone(a.bot.Addr("tcp")), also)
	src := "the embedded demo rules"
	if len(fc.Rules) > 0 {
		src = strings.Join(fc.Rules, ", ")
	}
	fmt.Fprintf(stdout, "serving %d rules from %s\n", engine.Rules().Len(), src)
	if a.httpLn != nil {
		fmt.Fprintf(stdout, "metrics and health on http://%s/metrics /healthz /readyz\n", a.httpLn.Addr())
	}
	if a.webLn != nil {
		fmt.Fprintf(stdout, "web chat on http://%s%sdemo (the widget: %schat.js)\n", a.webLn.Addr(), webPrefix, webPrefix)
	}
	return a.run(ctx)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if level == "" {
		level = "info"
	}
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	if strings.EqualFold(format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}
