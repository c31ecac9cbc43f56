package imbotcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/handlers"
	"github.com/imbot-dev/imbot/rules"
	"github.com/imbot-dev/imbot/rules/ruleshell"
	"github.com/imbot-dev/imbot/store"
)

// ruleOptions are the rules options shared by run, check, test and chat: the functions and
// handlers built into imbot, and those of plugins (see Plugin).
func ruleOptions(st store.StateStore, log *slog.Logger, extra rules.Handlers, funcs rules.Funcs) rules.Options {
	// The engine records rule hits and no-matches on the Responder, where the logs, metrics,
	// unmatched list and handoff read them.
	opts := rules.Options{Store: st, Logger: log, Handlers: rules.Handlers{}, Funcs: rules.Funcs{}}
	for name, h := range extra {
		opts.Handlers[name] = h
	}
	for name, f := range funcs {
		opts.Funcs[name] = f
	}
	maps.Copy(opts.Funcs, handlers.RuleFuncs())
	return opts
}

// newEngine loads the configured rule files, or the embedded demo rules when there are none.
func newEngine(fc *fileConfig, opts rules.Options) (*rules.Engine, error) {
	opts.Vars = fc.Vars
	if len(fc.Rules) == 0 {
		opts.FS = rules.Demo
		return rules.New(opts, rules.DemoFile)
	}
	return rules.New(opts, fc.Rules...)
}

// The kinds of YAML file imbot check tells apart.
const (
	configFile = iota
	ruleFile
	testFile
)

// fileKind tells a conversation test file (it has "version" and "tests" at the top) from a
// rule file (it has "version" and "rules", and no "tests") and from a config file.
func fileKind(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return ruleFile // let the rules loader report it
	}
	var top map[string]yaml.Node
	if yaml.Unmarshal(data, &top) != nil {
		return ruleFile
	}
	_, v := top["version"]
	_, r := top["rules"]
	_, tests := top["tests"]
	switch {
	case v && tests:
		return testFile
	case v && r:
		return ruleFile
	}
	return configFile
}

// prefixErrors puts the file name before each of the errors err joins, at any depth.
func prefixErrors(file string, err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var errs []error
		for _, e := range j.Unwrap() {
			errs = append(errs, prefixErrors(file, e))
		}
		return errors.Join(errs...)
	}
	return fmt.Errorf("%s: %w", file, err)
}

// cmdCheck validates config, rule and test files and prints every error as file:line:col.
func (c *cli) cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("imbot check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "a config file to validate, with the rule files it names")
	stubs := stubFlags{}
	fs.Var(stubs, "stub", "`name[=value]`: a stand-in for a function the rules call that Go registers elsewhere (repeatable)")
	verbose := fs.Bool("v", false, "also print what a message costs: the rules indexed, those tried on every message, the regexes no literal anchors")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: imbot check [--config imbot.yaml] [--stub name[=value]]... [-v] [FILE...]\n\nValidates a config file, rule files and conversation test files, printing every error as\nfile:line:column. A FILE may be a rule file, a test file (top-level tests:, checked with the\nrule files it names, without running it) or a config file. Exit status 1 when anything is wrong;\nwarnings (what is likely to fail at run time) are printed but do not fail the check.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var configs, ruleFiles, testFiles []string
	if *configPath != "" {
		configs = append(configs, *configPath)
	}
	for _, f := range fs.Args() {
		switch fileKind(f) {
		case ruleFile:
			ruleFiles = append(ruleFiles, f)
		case testFile:
			testFiles = append(testFiles, f)
		default:
			configs = append(configs, f)
		}
	}
	if len(configs) == 0 && len(ruleFiles) == 0 && len(testFiles) == 0 {
		fmt.Fprintln(stderr, "imbot check: name the files to check")
		fs.Usage()
		return 2
	}
	failed, unregistered := false, false
	var vars map[string]any // the configs' overrides of the rule files' vars
	report := func(err error) {
		failed = true
		for _, e := range rules.Errors(err) {
			unregistered = unregistered || isUnregistered(e)
			for _, line := range strings.Split(e.Error(), "\n") {
				fmt.Fprintln(stderr, line)
			}
		}
	}
	for _, cf := range configs {
		fc, err := c.loadConfig(cf)
		if err != nil {
			report(err)
			continue
		}
		ruleFiles = append(ruleFiles, fc.Rules...)
		for k, v := range fc.Vars {
			if vars == nil {
				vars = map[string]any{}
			}
			vars[k] = v
		}
		// What `imbot run` checks next: the environment (passwords, the store's DSN), the TLS
		// files and the bot's own validation of the result, without opening any socket.
		cfg, err := fc.botConfig()
		_, dsnErr := fc.postgresDSN()
		if err = errors.Join(err, cfg.Validate(), dsnErr); err != nil {
			report(prefixErrors(cf, err))
			continue
		}
		fmt.Fprintf(stdout, "%s: config ok\n", cf)
	}
	if len(ruleFiles) == 0 && len(testFiles) == 0 {
		if failed {
			return 1
		}
		return 0
	}
	funcs, hs, err := c.plugins.all(nil)
	if err != nil {
		fmt.Fprintln(stderr, "imbot check:", err)
		return 1
	}
	opts := ruleOptions(nil, nil, withBuiltinHandlers(hs), funcs)
	stubs.apply(opts.Funcs)
	// result prints the problems of what, and "what: ok" (with the warnings counted) when
	// none is an error.
	result := func(what, ok string, problems []error) {
		good, warnings := true, 0
		for _, err := range problems {
			if re := (*rules.Error)(nil); errors.As(err, &re) && re.Warning {
				fmt.Fprintln(stderr, err)
				warnings++
				continue
			}
			report(err)
			good = false
		}
		switch {
		case good && warnings > 0:
			fmt.Fprintf(stdout, "%s: %s, with %d warning(s)\n", what, ok, warnings)
		case good:
			fmt.Fprintf(stdout, "%s: %s\n", what, ok)
		}
	}
	if len(ruleFiles) > 0 {
		o := opts
		o.Vars = vars
		result(strings.Join(ruleFiles, ", "), "rules ok", rules.Check(o, ruleFiles...))
		if *verbose && !failed {
			if rs, err := rules.Load(o, ruleFiles...); err == nil {
				st := rs.IndexStats()
				fmt.Fprintf(stdout, "%s: %d rules: %d indexed (tried only when a word or literal of theirs is in the message), "+
					"%d tried on every message of their states (%d in every state); %d regexes: %d anchored by a literal of 1-2 bytes, %d by none\n",
					strings.Join(ruleFiles, ", "), st.Rules, st.Indexed, st.Always, st.AlwaysAnyState, st.Regexes, st.WeakRegexes, st.UnindexedRegexes)
			}
		}
	}
	// A test file is checked with the rules it names, as imbot test loads them.
	for _, f := range testFiles {
		result(f, "tests ok", rules.CheckTestFile(opts, f))
	}
	if unregistered {
		fmt.Fprintln(stderr, stubHint("check"))
	}
	if failed {
		return 1
	}
	return 0
}

// builtinRuleHandlers are the Go handlers every rule file may name with `handler:`, so that
// check and test accept them even when no bot runs.
func builtinRuleHandlers() rules.Handlers {
	idle := bot.HandlerFunc(func(context.Context, bot.Responder, *bot.Event) error { return nil })
	return rules.Handlers{"handoff": idle, "rating": idle}
}

// withBuiltinHandlers adds builtinRuleHandlers to the handlers of plugins.
func withBuiltinHandlers(plugin rules.Handlers) rules.Handlers {
	hs := builtinRuleHandlers()
	maps.Copy(hs, plugin)
	return hs
}

// cmdTest runs conversation tests and prints go test-style results.
func (c *cli) cmdTest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("imbot test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("v", false, "print every test, not only failures")
	var now time.Time
	fs.Func("now", "the time of the tests that set none (`2026-12-01T10:00+01:00`); default Monday 2025-03-03 10:00 UTC", nowFlag(&now))
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: imbot test [-v] [--now time] [TESTFILE...]\n\nRuns YAML conversation tests against their rules, with no network.\nWith no file, runs the tests of the embedded demo rules. Exit status 1 on failure.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	funcs, hs, err := c.plugins.all(nil)
	if err != nil {
		fmt.Fprintln(stderr, "imbot test:", err)
		return 1
	}
	opts := ruleOptions(nil, nil, withBuiltinHandlers(hs), funcs)
	if !now.IsZero() {
		opts.Now = func() time.Time { return now }
	}
	files := fs.Args()
	if len(files) == 0 {
		opts.FS = rules.Demo
		files = []string{rules.DemoTestFile}
	}
	start := time.Now()
	results, err := ruleshell.RunTestFiles(opts, files...)
	if err != nil {
		for _, e := range rules.Errors(err) {
			fmt.Fprintln(stderr, e)
		}
	}
	ok := ruleshell.WriteResults(stdout, results, *verbose)
	if err != nil || !ok {
		fmt.Fprintf(stdout, "FAIL\t%s\t%.3fs\n", strings.Join(files, " "), time.Since(start).Seconds())
		return 1
	}
	fmt.Fprintf(stdout, "ok\t%s\t%.3fs\n", strings.Join(files, " "), time.Since(start).Seconds())
	return 0
}

// cmdChat runs an interactive shell against the rules, with no SIP.
func (c *cli) cmdChat(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("imbot chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var ruleFiles multiFlag
	fs.Var(&ruleFiles, "r", "a rule file (repeatable); default: the embedded demo rules")
	as := fs.String("as", "sip:you@example.com", "who you are in the conversation")
	name := fs.String("name", "You", "your display name")
	pace := fs.Bool("pace", false, "wait the rules' typing delays before printing replies")
	stubs := stubFlags{}
	fs.Var(stubs, "stub", "`name[=value]`: a stand-in for a function the rules call, returning value (repeatable)")
	var now time.Time
	fs.Func("now", "the time to start the clock at (`2026-12-01T10:00+01:00`), to try rules that depend on the hour; default: the time", nowFlag(&now))
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: imbot chat [-r rules.yaml]... [--stub name[=value]]... [--now time]\n\nChats with the rules in the terminal, with no SIP: replies, typing (…), and the commands\n/why, /state, /vars, /reset. End with Ctrl-D.\n\nimbot chat --to sip:imbot@127.0.0.1:5060 chats with a running bot over SIP instead\n(imbot chat --to x -h for its flags).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	mem := &store.Memory{} // conversations, and the tickets plugins open
	funcs, hs, err := c.plugins.all(mem)
	if err != nil {
		fmt.Fprintln(stderr, "imbot chat:", err)
		return 1
	}
	opts := ruleOptions(mem, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), withBuiltinHandlers(hs), funcs)
	stubs.apply(opts.Funcs)
	if !now.IsZero() {
		// The clock starts at --now and runs on, so that waits (idle) still count.
		start := time.Now()
		opts.Now = func() time.Time { return now.Add(time.Since(start)) }
	}
	fc := &fileConfig{Rules: ruleFiles}
	e, err := newEngine(fc, opts)
	if err != nil {
		unregistered := false
		for _, e := range rules.Errors(err) {
			fmt.Fprintln(stderr, e)
			unregistered = unregistered || isUnregistered(e)
		}
		if unregistered {
			fmt.Fprintln(stderr, stubHint("chat"))
		}
		return 1
	}
	ch := ruleshell.NewChat(e, stdin, stdout)
	user, domain, _ := strings.Cut(strings.TrimPrefix(*as, "sip:"), "@")
	// Verified: the user of a local terminal is whoever -as says, nobody else can write in
	// this conversation, and the rules' verified-only answers (sender.verified, the
	// plugins' "only your own" tickets) are what there is to try.
	ch.Peer = bot.Peer{URI: *as, User: user, Domain: domain, DisplayName: *name, Verified: true}
	ch.Pace = *pace
	if err := ch.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "imbot chat:", err)
		return 1
	}
	return 0
}

// stubFlags is the repeatable --stub name[=value] flag of check and chat: a stand-in for a
// function the rules call that Go registers elsewhere (an application's own), as the
// `stubs:` of a test file. The stub ignores its arguments and returns value read as YAML (12
// is a number, true a boolean, {a: 1} a mapping, other text is text); without =value it
// returns nothing (null, empty in a reply). A stub replaces a function of the same name.
type stubFlags map[string]any

func (s stubFlags) String() string { return strings.Join(slices.Sorted(maps.Keys(s)), ",") }

func (s stubFlags) Set(v string) error {
	name, val, hasVal := strings.Cut(v, "=")
	name = strings.TrimSpace(name)
	if name == "" {
		return errors.New("name the function: --stub name or --stub name=value")
	}
	var x any
	if hasVal {
		x = val
		var parsed any
		if val != "" && yaml.Unmarshal([]byte(val), &parsed) == nil {
			x = parsed
		}
	}
	s[name] = x
	return nil
}

// apply puts the stubs among funcs.
func (s stubFlags) apply(funcs rules.Funcs) {
	for name, v := range s {
		funcs[name] = rules.Stub(v)
	}
}

// isUnregistered reports whether err is about a rule calling a function that is not
// registered, which a --stub stands in for.
func isUnregistered(err error) bool {
	return strings.Contains(err.Error(), "which is not a registered function")
}

// stubHint is printed after errors about functions that are not registered.
func stubHint(cmd string) string {
	return fmt.Sprintf("hint: a function that your Go code registers can be stood in for: imbot %s --stub name=value", cmd)
}

// nowLayouts are the forms --now accepts: RFC 3339, with or without seconds and offset (the
// local time without one).
var nowLayouts = []string{time.RFC3339, "2006-01-02T15:04Z07:00", "2006-01-02T15:04:05", "2006-01-02T15:04"}

// nowFlag returns the parser of a --now flag, which sets *t.
func nowFlag(t *time.Time) func(string) error {
	return func(v string) error {
		for _, layout := range nowLayouts {
			if x, err := time.ParseInLocation(layout, strings.TrimSpace(v), time.Local); err == nil {
				*t = x
				return nil
			}
		}
		return errors.New("want a time such as 2026-12-01T10:00+01:00 (RFC 3339; the seconds and the offset may be left out)")
	}
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// ruleChain returns the rules engine for `imbot run`, with the Go handlers rules may name
// (handoff, rating) and the functions and handlers of the plugins the config enables.
func (c *cli) ruleChain(ctx context.Context, a *app, fc *fileConfig, log *slog.Logger) (*rules.Engine, error) {
	funcs, hs, err := c.plugins.build(fc.Plugins, a.store)
	if err != nil {
		return nil, err
	}
	if a.handoff != nil {
		hs["handoff"] = a.handoff.Handler()
	}
	var ratings handlers.RatingStore = a.store
	if a.metrics != nil {
		ratings = a.metrics.Ratings(a.store) // ratings_total{score}
	}
	hs["rating"] = handlers.Rating(ratings, 5, "Thank you for your rating!")
	opts := ruleOptions(a.store, log, hs, funcs)
	opts.AutoTypingMax = fc.Typing.AutoMax
	if a.rooms != nil {
		opts.Invite = a.rooms.InviteInto // a rule's `invite:`
		if ld := a.leader; ld != nil {
			opts.Invite = func(ctx context.Context, ev *bot.Event, to string) error {
				if done, err := ld.Delegate(ctx, ev, "invite "+to); done {
					return err // the leader hosts the rooms
				}
				return a.rooms.InviteInto(ctx, ev, to)
			}
		}
	}
	e, err := newEngine(fc, opts)
	if err != nil {
		return nil, err
	}
	return e, nil
}
