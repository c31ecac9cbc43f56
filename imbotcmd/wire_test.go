package imbotcmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/store"
	"github.com/imbot-dev/imbot/store/postgres"
	"github.com/imbot-dev/imbot/store/postgres/pgtest"
)

// TestReadyzDuringShutdown checks that /readyz stops saying ready as soon as a shutdown
// starts (a load balancer must send no more traffic), while the bot still finishes the work
// it accepted.
func TestReadyzDuringShutdown(t *testing.T) {
	fc, err := parseConfig("test.yaml", []byte(`
listen: ["udp://127.0.0.1:0"]
identity: sip:imbot@127.0.0.1
store: {driver: memory}
http: {listen: "127.0.0.1:0"}
log: {level: error}
`))
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	handled := make(chan string, 1)
	slow := bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		if ev.Kind == bot.EventMessage {
			close(entered)
			<-release
			handled <- ev.Text
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	a, err := assemble(ctx, fc, slog.New(slog.NewTextHandler(io.Discard, nil)), func(*app) (bot.Handler, []bot.Middleware, error) {
		return slow, nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.run(runCtx) }()
	<-a.bot.Ready()
	readyz := "http://" + a.httpLn.Addr().String() + "/readyz"
	if code, body := get(t, readyz); code != 200 {
		t.Fatalf("/readyz before the shutdown: %d %s", code, body)
	}
	p := bottest.NewPeer(t, bottest.Options{Bot: a.bot.Addr("udp"), BotURI: a.bot.URI()})
	if res, err := p.SendPage(ctx, "in flight"); err != nil || res.StatusCode != 200 {
		t.Fatalf("MESSAGE answered %v, %v", res, err)
	}
	<-entered
	stop()
	// Wait (on the probe itself) for it to say the bot is going away.
	for {
		code, body := get(t, readyz)
		if code == http.StatusServiceUnavailable && strings.Contains(body, "shutting down") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("/readyz still %d %q during the shutdown", code, body)
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	close(release)
	if got := <-handled; got != "in flight" {
		t.Errorf("handled %q", got)
	}
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// startApp assembles and runs the app of a config with a handler that answers nothing, and
// stops it at cleanup.
func startApp(t *testing.T, yaml string) *app {
	t.Helper()
	fc, err := parseConfig("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := assemble(ctx, fc, slog.New(slog.NewTextHandler(io.Discard, nil)), func(*app) (bot.Handler, []bot.Middleware, error) {
		return bot.HandlerFunc(func(context.Context, bot.Responder, *bot.Event) error { return nil }), nil, nil
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case <-a.bot.Ready():
	case <-time.After(15 * time.Second):
		t.Fatal("bot not ready")
	}
	return a
}

// keepAliveGet sends GET /healthz on c, a keep-alive connection, and returns the status.
func keepAliveGet(c net.Conn, br *bufio.Reader) (int, error) {
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: imbot\r\n\r\n"); err != nil {
		return 0, err
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	_, err = io.Copy(io.Discard, res.Body)
	return res.StatusCode, err
}

// closedWithin reads from c until it is closed (EOF or a reset), for at most wait.
func closedWithin(c net.Conn, wait time.Duration) error {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 512)
	for {
		_, err := c.Read(buf)
		var ne net.Error
		switch {
		case err == nil:
		case errors.As(err, &ne) && ne.Timeout():
			return fmt.Errorf("still open after %v", wait)
		default:
			return nil
		}
	}
}

// TestHTTPConnectionGuards checks the bounds of the metrics server: an idle keep-alive
// connection is closed after http.idle_timeout, and connections past http.max_connections
// are closed at once while those within it are served.
func TestHTTPConnectionGuards(t *testing.T) {
	const base = "listen: [\"udp://127.0.0.1:0\"]\nidentity: sip:imbot@127.0.0.1\nstore: {driver: memory}\nlog: {level: error}\n"
	dial := func(t *testing.T, a *app) (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.DialTimeout("tcp", a.httpLn.Addr().String(), 15*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	t.Run("idle keep-alive connection", func(t *testing.T) {
		a := startApp(t, base+"http: {listen: \"127.0.0.1:0\", idle_timeout: 300ms}\n")
		c, br := dial(t, a)
		if code, err := keepAliveGet(c, br); code != 200 {
			t.Fatalf("GET /healthz: %d, %v", code, err)
		}
		if err := closedWithin(c, 5*time.Second); err != nil {
			t.Fatalf("the idle keep-alive connection: %v", err)
		}
	})
	t.Run("connection limit", func(t *testing.T) {
		a := startApp(t, base+"http: {listen: \"127.0.0.1:0\", max_connections: 2}\n")
		c1, br1 := dial(t, a)
		c2, br2 := dial(t, a)
		for _, c := range []struct {
			c  net.Conn
			br *bufio.Reader
		}{{c1, br1}, {c2, br2}} {
			if code, err := keepAliveGet(c.c, c.br); code != 200 {
				t.Fatalf("GET /healthz within the limit: %d, %v", code, err)
			}
		}
		over, err := net.DialTimeout("tcp", a.httpLn.Addr().String(), 15*time.Second)
		if err == nil {
			defer over.Close()
			// At once: well before ReadHeaderTimeout would close it (10 s).
			if err := closedWithin(over, 5*time.Second); err != nil {
				t.Fatalf("a connection past the limit: %v", err)
			}
		} else if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatal(err)
		}
		if code, err := keepAliveGet(c1, br1); code != 200 {
			t.Fatalf("GET /healthz again within the limit: %d, %v", code, err)
		}
	})
}

// TestReadyzStoreFile checks that /readyz follows the SQLite file: a deleted file is
// restored and the bot stays ready (the restoration is counted in the metrics); a file
// replaced by another makes /readyz answer 503 with the reason.
func TestReadyzStoreFile(t *testing.T) {
	tests := []struct {
		name     string
		lose     func(t *testing.T, path string)
		code     int
		body     string // in /readyz's answer
		restores string // imbot_store_file_restores_total
	}{
		{"deleted", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, http.StatusOK, "ready", "1"},
		{"replaced", func(t *testing.T, path string) {
			other := path + ".new"
			if err := os.WriteFile(other, []byte("not a database"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(other, path); err != nil {
				t.Fatal(err)
			}
		}, http.StatusServiceUnavailable, "is now another file", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "helpdesk.db")
			a := startApp(t, fmt.Sprintf(`listen: ["udp://127.0.0.1:0"]
identity: sip:imbot@127.0.0.1
store: {driver: sqlite, path: %q}
http: {listen: "127.0.0.1:0"}
log: {level: error}
`, path))
			base := "http://" + a.httpLn.Addr().String()
			if code, body := get(t, base+"/readyz"); code != http.StatusOK {
				t.Fatalf("/readyz before: %d %s", code, body)
			}
			tt.lose(t, path)
			code, body := get(t, base+"/readyz")
			if code != tt.code || !strings.Contains(body, tt.body) {
				t.Errorf("/readyz = %d %q, want %d and %q", code, body, tt.code, tt.body)
			}
			if code == http.StatusServiceUnavailable && !strings.Contains(body, path) {
				t.Errorf("/readyz does not name the file: %q", body)
			}
			if _, body := get(t, base+"/metrics"); !strings.Contains(body, "imbot_store_file_restores_total "+tt.restores+"\n") {
				t.Errorf("/metrics does not count %s restorations:\n%s", tt.restores, body)
			}
		})
	}
}

// TestReadyzRegistrationRefused: with a registrar that refuses the bot (403), /readyz says
// not ready with the registrar's answer, and /metrics shows imbot_registered 0 and the error,
// as soon as the first attempt failed.
func TestReadyzRegistrationRefused(t *testing.T) {
	addr := bottest.StartRegistrar(t, 403)
	a := startApp(t, fmt.Sprintf(`
listen: ["udp://127.0.0.1:0"]
identity: sip:imbot@127.0.0.1
registration: {registrar: "sip:%s"}
store: {driver: memory}
http: {listen: "127.0.0.1:0"}
log: {level: error}
`, addr))
	base := "http://" + a.httpLn.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		st, changed := a.bot.Registration()
		if st.State == bot.RegFailed {
			break
		}
		if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz while %v: %d %q", st.State, code, body)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("registration %v (%s), want failed", st.State, st.Reason)
		}
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "403") {
		t.Errorf("/readyz = %d %q, want 503 with the registrar's 403", code, body)
	}
	_, body := get(t, base+"/metrics")
	for _, want := range []string{"imbot_registered 0\n", `imbot_registration_info{error="403: the registrar does not accept this identity",state="failed"} 1`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}

// TestReadyzPostgres: store.driver postgres opens the database named by the environment
// variable of store.dsn_env, writes there, and /readyz follows the server: 503 naming it once
// it stopped answering.
func TestReadyzPostgres(t *testing.T) {
	srv := pgtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn := srv.Database(t)
	t.Setenv("IMBOT_TEST_PG_DSN", dsn)
	a := startApp(t, `listen: ["udp://127.0.0.1:0"]
identity: sip:imbot@127.0.0.1
store: {driver: postgres, dsn_env: IMBOT_TEST_PG_DSN}
http: {listen: "127.0.0.1:0"}
log: {level: error}
`)
	if _, ok := a.store.(*postgres.DB); !ok {
		t.Fatalf("store is %T, want *postgres.DB", a.store)
	}
	if _, err := a.store.CreateTicket(ctx, store.Ticket{Key: "k", Summary: "through the app"}); err != nil {
		t.Fatal(err)
	}
	other, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if tk, err := other.Ticket(ctx, 1001); err != nil || tk.Summary != "through the app" {
		t.Errorf("ticket in the database: %+v, %v", tk, err)
	}
	other.Close()
	base := "http://" + a.httpLn.Addr().String()
	if code, body := get(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	srv.Stop()
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "does not answer") {
		t.Errorf("/readyz with the server stopped = %d %q, want 503 saying it does not answer", code, body)
	}
}
