package imbotcmd

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestSIPLogFollowsTheConfiguredLogger: what sipgo writes to its package-level logger (the
// sipLog main installs there) comes out of imbot run's own logger, in its format and at its
// level, also through loggers sipgo derived before the config was read. The test gives the
// sipLog to runWith and logs through it as sipgo does, without setting sipgo's global.
func TestSIPLogFollowsTheConfiguredLogger(t *testing.T) {
	t.Chdir(t.TempDir()) // the default config keeps its database in the current folder
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	// Read only once imbot run has returned.
	var fallback, stderr bytes.Buffer
	sl := newSIPLog(slog.NewTextHandler(&lockedWriter{w: &fallback}, nil))
	early := slog.New(sl.handler()).With("caller", "TransportLayer")
	outR, outW := io.Pipe()
	exit := make(chan int, 1)
	go func() {
		code := runWith(runCtx, sl, []string{"run", "-port", "0", "-log-level", "warn"}, outW, &lockedWriter{w: &stderr})
		outW.Close()
		exit <- code
	}()
	if _, err := bufio.NewReader(outR).ReadString('\n'); err != nil {
		t.Fatalf("no banner: %v", err)
	}
	go io.Copy(io.Discard, outR)
	early.Warn("TCP ref went negative", "ip", "127.0.0.1:5060", "ref", -1)
	early.Debug("TCP reference decrement", "ref", 0) // below the configured level
	stop()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("imbot run exited %d", code)
		}
	case <-ctx.Done():
		t.Fatal("imbot run did not stop on cancel")
	}
	got := stderr.String()
	want := `level=WARN msg="TCP ref went negative" component=sipgo caller=TransportLayer ip=127.0.0.1:5060 ref=-1`
	if !strings.Contains(got, want) {
		t.Errorf("imbot run's log lacks %q:\n%s", want, got)
	}
	if strings.Contains(got, "reference decrement") {
		t.Errorf("a debug line of sipgo passed the warn level:\n%s", got)
	}
	if f := fallback.String(); f != "" {
		t.Errorf("lines went to the fallback after the logger was set: %s", f)
	}
}

func TestSIPLogFallback(t *testing.T) {
	var fallback bytes.Buffer
	sl := newSIPLog(slog.NewTextHandler(&fallback, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l := slog.New(sl.handler()).WithGroup("g").With("a", 1)
	l.Info("dropped below warn")
	l.Warn("kept")
	if got := fallback.String(); !strings.Contains(got, `msg=kept g.a=1`) || strings.Contains(got, "dropped") {
		t.Errorf("fallback got %q", got)
	}
}
