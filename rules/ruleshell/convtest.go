package ruleshell

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/rules"
	"github.com/imbot-dev/imbot/store"
)

// TestResult is the result of one conversation test.
type TestResult struct {
	// File is the test file and Name the test's name.
	File, Name string
	// Line is where the test starts.
	Line int
	// Failures say what went wrong, each with its file:line; empty when the test passed.
	Failures []string
	// Skipped is true for a test with `skip: true`.
	Skipped bool
	// Elapsed is how long the test took.
	Elapsed time.Duration
}

// Passed reports whether the test passed (or was skipped).
func (r TestResult) Passed() bool { return len(r.Failures) == 0 }

// RunTestFiles runs the conversation tests of each file (the format is described in package
// rules, ParseTestFile): what `imbot test` and rulestest.Run do. opts supplies Go functions
// and handlers the rules need (stubs in the file override functions of the same name); its
// FS, if set, is where test and rule files are read; its Now, if set, gives the time of the
// tests that set none (neither the test nor its file has `now`). The error reports test or
// rule files that do not load (a rules.ErrorList with positions); tests of the other files
// still run.
//
// Each event goes through the engine's Middleware, as `imbot run` handles it, with a
// bottest.Recorder as the Responder: the replies and typing checked are those the rules and
// the Go handlers they name sent, the state and variables those the engine stored.
func RunTestFiles(opts rules.Options, files ...string) ([]TestResult, error) {
	var results []TestResult
	var all rules.ErrorList
	for _, f := range files {
		res, err := runTestFile(opts, f)
		results = append(results, res...)
		for _, x := range rules.Errors(err) {
			if e, ok := x.(*rules.Error); ok {
				all = append(all, e)
			} else {
				all = append(all, &rules.Error{File: f, Msg: x.Error()})
			}
		}
	}
	if len(all) > 0 {
		return results, all
	}
	return results, nil
}

// testKey is the conversation key and session ID of conversation tests.
const testKey = "test"

// testRun runs the tests of one file through the engine's Middleware.
type testRun struct {
	e     *rules.Engine
	h     bot.Handler
	now   func() time.Time // the --now of imbot test, if any
	clock time.Time        // the time of the test's events
	rng   *rand.Rand       // the test's choice of replies
	last  *rules.Outcome   // the outcome of the event being handled, if the rules ran
}

func runTestFile(opts rules.Options, name string) ([]TestResult, error) {
	tf, err := rules.ParseTestFile(opts.FS, name)
	if err != nil {
		return nil, err
	}
	o := tf.Options(opts)
	run := &testRun{now: opts.Now}
	o.Now = func() time.Time { return run.clock }
	o.Rand = func(n int) int { return run.rng.IntN(n) }
	o.Store = &store.Memory{}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler) // imbot check reports the warnings
	}
	run.e, err = rules.New(o, tf.Rules...)
	if err != nil {
		return nil, err
	}
	run.h = run.e.Middleware()(nil)
	var out []TestResult
	for _, t := range tf.Tests {
		out = append(out, run.test(tf, t))
	}
	return out, nil
}

func (run *testRun) test(tf *rules.TestFile, t *rules.TestCase) TestResult {
	start := time.Now()
	res := TestResult{File: tf.Path, Name: t.Name, Line: t.Line, Skipped: t.Skip}
	if t.Skip {
		return res
	}
	now := t.Now
	if now.IsZero() {
		now = tf.Now
	}
	if now.IsZero() && run.now != nil {
		now = run.now() // imbot test --now
	}
	if now.IsZero() {
		now = time.Date(2025, 3, 3, 10, 0, 0, 0, time.UTC) // a Monday morning
	}
	run.clock = now
	run.rng = rand.New(rand.NewPCG(1, uint64(t.Line)))
	fail := func(line int, format string, args ...any) {
		res.Failures = append(res.Failures, fmt.Sprintf("%s:%d: %s", tf.Path, line, fmt.Sprintf(format, args...)))
	}
	ctx := rules.WithOutcome(context.Background(), func(out *rules.Outcome) { run.last = out })
	st := run.e.Store()
	if err := st.Save(ctx, testKey, t.Conversation()); err != nil {
		fail(t.Line, "%v", err)
		return res
	}
	session := func() *conversation {
		c := bottest.NewConversation(bottest.WithKey(testKey), bottest.WithID(testKey), bottest.WithMode(t.Mode), bottest.WithStarted(run.clock))
		return &conversation{Conversation: c, peer: t.Sender}
	}
	conv := session()
	for i, step := range t.Steps {
		run.clock = run.clock.Add(step.Wait)
		label := step.Label(i)
		ev := conv.Event(step.Event, step.Text)
		ev.Session, ev.Time = conv, run.clock
		rec := bottest.NewRecorder()
		run.last = nil
		if err := run.h.Handle(ctx, rec, ev); err != nil {
			fail(step.Line, "%s: %v", label, err)
			break
		}
		r := rules.StepResult{Pass: true, End: rec.Ended()}
		if ev.Kind != bot.EventSessionEnd { // nothing reaches a peer that hung up
			for _, m := range rec.Messages() {
				r.Replies = append(r.Replies, rules.Message{Text: m.Text, Typing: m.Typing})
			}
		}
		if out := run.last; out != nil {
			r.Rule, r.Pass = out.Rule(), out.Pass
		}
		var err error
		if r.Conversation, err = st.Load(ctx, testKey); err != nil {
			fail(step.Line, "%s: loading the conversation: %v", label, err)
			break
		}
		for _, f := range step.Check(r) {
			fail(step.Line, "%s: %s", label, f)
		}
		if r.End || ev.Kind == bot.EventSessionEnd || ev.Kind == bot.EventIdle {
			conv = session()
		}
	}
	res.Elapsed = time.Since(start)
	return res
}

// WriteResults prints results in the style of `go test` (with verbose, like `go test -v`)
// and reports whether every test passed.
func WriteResults(w io.Writer, results []TestResult, verbose bool) bool {
	ok := true
	byFile := map[string][]TestResult{}
	var files []string
	for _, r := range results {
		if _, seen := byFile[r.File]; !seen {
			files = append(files, r.File)
		}
		byFile[r.File] = append(byFile[r.File], r)
	}
	for _, f := range files {
		fileOK := true
		var total time.Duration
		for _, r := range byFile[f] {
			total += r.Elapsed
			name := f + "/" + strings.ReplaceAll(r.Name, " ", "_")
			switch {
			case r.Skipped:
				if verbose {
					fmt.Fprintf(w, "=== RUN   %s\n--- SKIP: %s (0.00s)\n", name, name)
				}
			case r.Passed():
				if verbose {
					fmt.Fprintf(w, "=== RUN   %s\n--- PASS: %s (%.2fs)\n", name, name, r.Elapsed.Seconds())
				}
			default:
				fileOK, ok = false, false
				if verbose {
					fmt.Fprintf(w, "=== RUN   %s\n", name)
				}
				fmt.Fprintf(w, "--- FAIL: %s (%.2fs)\n", name, r.Elapsed.Seconds())
				for _, msg := range r.Failures {
					fmt.Fprintf(w, "    %s\n", msg)
				}
			}
		}
		if fileOK {
			fmt.Fprintf(w, "ok  \t%s\t%.3fs\n", f, total.Seconds())
		} else {
			fmt.Fprintf(w, "FAIL\t%s\t%.3fs\n", f, total.Seconds())
		}
	}
	if !ok {
		fmt.Fprintln(w, "FAIL")
	}
	return ok
}
