package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
)

// requiredEnv names the environment variable that turns a missing tool from a skip into a
// failure.
const requiredEnv = "IMBOT_INTEROP"

// requireTool returns the path of an external program, or skips the test when it is not
// installed (fails it when IMBOT_INTEROP=required).
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not found on PATH (install the Debian package %s: apt-get install -y %s)", name, pkg, pkg)
	if os.Getenv(requiredEnv) == "required" {
		t.Fatalf("%s; %s=required", msg, requiredEnv)
	}
	t.Skip(msg)
	return ""
}

// syncBuffer is a bytes.Buffer safe for concurrent writers (the bot logs from many
// goroutines).
type syncBuffer struct {
	mu   sync.Mutex
	b    bytes.Buffer
	wake chan struct{} // closed at the next write
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wake != nil {
		close(s.wake)
		s.wake = nil
	}
	return s.b.Write(p)
}

// waitLine waits up to timeout until the log has a line containing sub, and returns it.
func (s *syncBuffer) waitLine(timeout time.Duration, sub string) (string, int, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		text := s.b.String()
		if s.wake == nil {
			s.wake = make(chan struct{})
		}
		wake := s.wake
		s.mu.Unlock()
		if i := strings.Index(text, sub); i >= 0 {
			start := strings.LastIndexByte(text[:i], '\n') + 1
			end := strings.IndexByte(text[i:], '\n')
			if end < 0 {
				end = len(text) - i
			}
			return text[start : i+end], start, nil
		}
		select {
		case <-wake:
		case <-deadline.C:
			return "", -1, fmt.Errorf("no log line with %q within %v", sub, timeout)
		}
	}
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testBot is an echo bot running in the test process.
type testBot struct {
	*bot.Bot
	logs *syncBuffer
	// events records every event the handler saw, one line each (see eventLine).
	events *lineLog
	// stop ends Run and waits for it (unregistering first when the bot is registered). It
	// is idempotent and also runs when the test ends.
	stop func()
}

// echoText is the reply the test bot gives to text.
func echoText(text string) string { return "echo: " + text }

// eventLine renders an event for testBot.events: "<kind> <mode> <peer URI>: <text>", the
// URI followed by " (verified)" when the bot verified the peer.
func eventLine(ev *bot.Event) string {
	mode, peer := "", ""
	if ev.Session != nil {
		mode, peer = ev.Session.Mode().String(), ev.Session.Peer().URI
		if ev.Session.Peer().Verified {
			peer += " (verified)"
		}
	}
	return fmt.Sprintf("%s %s %s: %s", ev.Kind, mode, peer, ev.Text)
}

// startBot starts an echo bot on 127.0.0.1 (UDP and TCP on one free port) and stops it when
// the test ends. Its log is printed if the test failed.
func startBot(t *testing.T) *testBot {
	t.Helper()
	return startBotConfig(t, nil)
}

// startBotConfig is startBot with a configuration that configure may change (registration,
// outbound proxy...) before the bot is created. It waits until the bot serves.
func startBotConfig(t *testing.T, configure func(*bot.Config)) *testBot {
	t.Helper()
	logs := &syncBuffer{}
	cfg := bot.Config{
		Listen:   []string{"udp://127.0.0.1:0", "tcp://127.0.0.1:0"},
		Identity: "sip:bot@127.0.0.1",
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if configure != nil {
		configure(&cfg)
	}
	b, err := bot.New(cfg)
	if err != nil {
		t.Fatalf("bot.New: %v", err)
	}
	events := &lineLog{}
	b.Handle(bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		events.add(eventLine(ev))
		if ev.Kind == bot.EventMessage {
			err := w.Reply(ctx, echoText(ev.Text))
			events.add(fmt.Sprintf("replied %s %s: %s (err %v)", ev.Session.Mode(), ev.Session.Peer().URI, echoText(ev.Text), err))
			return err
		}
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	var runErr error
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		runErr = b.Run(ctx)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			start := time.Now()
			defer func() {
				if d := time.Since(start); d > 2*time.Second {
					t.Logf("the bot took %v to stop", d.Round(time.Millisecond))
				}
			}()
			cancel()
			select {
			case <-exited:
				if runErr != nil {
					t.Errorf("bot.Run: %v", runErr)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("bot.Run did not return within 30s of its context ending")
			}
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("bot log:\n%s", logs.String())
		}
	})
	select {
	case <-b.Ready():
	case <-exited:
		t.Fatalf("bot.Run returned before serving: %v", runErr)
	case <-time.After(30 * time.Second):
		t.Fatal("bot not ready within 30s")
	}
	return &testBot{Bot: b, logs: logs, events: events, stop: stop}
}

// freePort returns a port that was free on 127.0.0.1 for both UDP and TCP a moment ago.
// The sockets are released before it returns, so the caller must cope with losing a race
// for it (runSipp retries).
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen udp: %v", err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		pc.Close()
		if err != nil {
			continue // TCP side taken: try another
		}
		ln.Close()
		return port
	}
	t.Fatal("no free UDP+TCP port pair on 127.0.0.1 after 50 tries")
	return 0
}

// sippRun describes one sipp client run against the bot.
type sippRun struct {
	Scenario  string   // scenario file in testdata/
	OOC       string   // optional out-of-call scenario file in testdata/ (-oocsf)
	Transport string   // "udp" or "tcp"
	Target    string   // the bot's host:port
	Service   string   // user part of the Request-URI (-s); default "bot"
	Port      int      // local port; default a free one (retried if sipp loses it)
	Extra     []string // more sipp arguments
}

// sippResult is what a sipp run left behind.
type sippResult struct {
	ExitCode int
	Output   string // stdout and stderr
	Logs     string // <log> actions (-trace_logs)
	Errors   string // unexpected messages and failed checks (-trace_err)
	Messages string // wire trace (-trace_msg)
	Port     int    // the local port sipp used
	Elapsed  time.Duration
}

// dump logs everything a sipp run produced.
func (r sippResult) dump(t *testing.T) {
	t.Helper()
	t.Logf("sipp exit code %d after %v (local port %d)", r.ExitCode, r.Elapsed.Round(time.Millisecond), r.Port)
	t.Logf("sipp output:\n%s", r.Output)
	t.Logf("sipp <log> trace:\n%s", r.Logs)
	t.Logf("sipp error trace:\n%s", r.Errors)
	t.Logf("sipp message trace:\n%s", r.Messages)
}

// sippTimeout bounds one sipp process; sipp's own -timeout 30s should end it first.
const sippTimeout = 90 * time.Second

// runSipp runs one sipp call (-m 1) and waits for it to exit. Unless run.Port is set, it
// picks a free local port at run time and retries with another if sipp loses the race for it.
func runSipp(t *testing.T, run sippRun) sippResult {
	t.Helper()
	sipp := requireTool(t, "sipp", "sip-tester")
	dir := t.TempDir()
	for _, f := range []string{run.Scenario, run.OOC} {
		if f == "" {
			continue
		}
		data, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatalf("scenario: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	service := run.Service
	if service == "" {
		service = "bot"
	}
	ctx, cancel := context.WithTimeout(context.Background(), sippTimeout)
	defer cancel()

	var res sippResult
	for attempt := 1; ; attempt++ {
		port := run.Port
		if port == 0 {
			port = freePort(t)
		}
		args := []string{
			"-sf", run.Scenario,
			"-s", service,
			"-i", "127.0.0.1", "-p", strconv.Itoa(port),
			"-m", "1", "-nostdin",
			"-timeout", "30s", "-timeout_error",
			"-trace_logs", "-log_file", "sipp_logs.log",
			"-trace_err", "-error_file", "sipp_errors.log",
			"-trace_msg", "-message_file", "sipp_messages.log",
		}
		if run.OOC != "" {
			args = append(args, "-oocsf", run.OOC)
		}
		switch run.Transport {
		case "", "udp":
			args = append(args, "-t", "u1")
		case "tcp":
			args = append(args, "-t", "t1")
		default:
			t.Fatalf("unknown transport %q", run.Transport)
		}
		args = append(args, run.Extra...)
		args = append(args, run.Target)

		for _, f := range []string{"sipp_logs.log", "sipp_errors.log", "sipp_messages.log"} {
			os.Remove(filepath.Join(dir, f))
		}
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, sipp, args...)
		cmd.Dir = dir
		cmd.Stdout = &out
		cmd.Stderr = &out
		cmd.WaitDelay = 5 * time.Second
		start := time.Now()
		err := cmd.Run()
		res = sippResult{Output: out.String(), Port: port, Elapsed: time.Since(start)}
		var exitErr *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &exitErr):
			res.ExitCode = exitErr.ExitCode()
		default:
			t.Fatalf("running sipp: %v", err)
		}
		if ctx.Err() != nil {
			res.ExitCode = -1
			res.Output += fmt.Sprintf("\n[killed: no exit within %v]\n", sippTimeout)
		}
		res.Logs = readFile(filepath.Join(dir, "sipp_logs.log"))
		res.Errors = readFile(filepath.Join(dir, "sipp_errors.log"))
		res.Messages = readFile(filepath.Join(dir, "sipp_messages.log"))
		portLost := res.ExitCode != 0 && strings.Contains(res.Output+res.Errors, "Address already in use") && run.Port == 0
		if !portLost || attempt == 5 {
			return res
		}
		t.Logf("sipp lost local port %d to another process; retrying with another", port)
	}
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

// requireSippOK fails the test, with everything sipp wrote, unless it exited 0 and its
// <log> trace contains every one of want.
func requireSippOK(t *testing.T, res sippResult, want ...string) {
	t.Helper()
	t.Logf("sipp exited with %d after %v", res.ExitCode, res.Elapsed.Round(time.Millisecond))
	if res.ExitCode != 0 {
		res.dump(t)
		t.Fatalf("sipp exited with %d, want 0", res.ExitCode)
	}
	for _, w := range want {
		if !strings.Contains(res.Logs, w) {
			res.dump(t)
			t.Fatalf("sipp <log> trace lacks %q", w)
		}
	}
}
