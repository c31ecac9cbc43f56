package bot_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

// registrar is a small in-process SIP registrar with digest authentication.
type registrar struct {
	t         *testing.T
	addr      string
	algorithm string
	user      string
	password  string
	grant     int // expiry granted, seconds
	refuse    int // answer every REGISTER with this status when non-zero

	mu         sync.Mutex
	expires    []int // Expires of each authenticated REGISTER, in order
	bound      bool
	keepAlives int // CRLF keep-alives read (RFC 5626 §4.4.1)
	notify     chan struct{}
	listener   net.Listener
	stop       func()
}

func startRegistrar(t *testing.T, algorithm string) *registrar {
	return startRegistrarAt(t, algorithm, "127.0.0.1:0")
}

// startRegistrarAt starts a registrar on addr; its stop closes it and its connections.
func startRegistrarAt(t *testing.T, algorithm, addr string) *registrar {
	t.Helper()
	r := &registrar{t: t, algorithm: algorithm, user: "bot", password: "s3cret", grant: 60, notify: make(chan struct{}, 64)}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("test-registrar"),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerReadFilter(r.countKeepAlives)))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	srv.OnRegister(r.onRegister)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r.listener = ln
	r.addr = ln.Addr().String()
	go func() { _ = srv.ServeTCP(ln) }()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			ln.Close()
			ua.Close()
		})
	}
	t.Cleanup(r.stop)
	return r
}

func (r *registrar) onRegister(req *sip.Request, tx sip.ServerTransaction) {
	if r.refuse != 0 {
		_ = tx.Respond(sip.NewResponseFromRequest(req, r.refuse, "Forbidden", nil))
		return
	}
	chal := &digest.Challenge{Realm: "test", Nonce: "n0nce", Algorithm: r.algorithm, QOP: []string{"auth"}}
	h := req.GetHeader("Authorization")
	if h == nil {
		res := sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
		res.AppendHeader(sip.NewHeader("WWW-Authenticate", chal.String()))
		_ = tx.Respond(res)
		return
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad Authorization", nil))
		return
	}
	want, err := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: cred.URI, Username: r.user,
		Password: r.password, Cnonce: cred.Cnonce, Count: cred.Nc})
	if err != nil || cred.Username != r.user || cred.Response != want.Response {
		res := sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
		res.AppendHeader(sip.NewHeader("WWW-Authenticate", chal.String()))
		_ = tx.Respond(res)
		return
	}
	exp := 3600
	if e := req.GetHeader("Expires"); e != nil {
		exp, _ = strconv.Atoi(e.Value())
	}
	r.mu.Lock()
	r.expires = append(r.expires, exp)
	r.bound = exp > 0
	r.mu.Unlock()
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	if exp > 0 {
		c := req.Contact()
		cc := sip.ContactHeader{Address: c.Address}
		cc.Params = sip.NewParams()
		cc.Params.Add("expires", strconv.Itoa(min(exp, r.grant)))
		res.AppendHeader(&cc)
	}
	_ = tx.Respond(res)
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// countKeepAlives is a transport read filter: it counts the CRLF keep-alives the bot writes
// and passes every read on unchanged, so sipgo still answers them.
func (r *registrar) countKeepAlives(_ sip.TransportReadProps, data []byte) ([]byte, error) {
	if len(data) > 0 && len(bytes.Trim(data, "\r\n")) == 0 {
		r.mu.Lock()
		r.keepAlives += max(1, bytes.Count(data, []byte("\r\n\r\n")))
		r.mu.Unlock()
		select {
		case r.notify <- struct{}{}:
		default:
		}
	}
	return data, nil
}

// counts returns how many authenticated REGISTERs and keep-alives arrived.
func (r *registrar) counts() (registers, keepAlives int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.expires), r.keepAlives
}

// waitKeepAlives waits until n keep-alives arrived, failing at once if the bot registers
// more than once meanwhile: a keep-alive on a live connection must not register again.
func (r *registrar) waitKeepAlives(ctx context.Context, n int) {
	r.t.Helper()
	for {
		regs, kas := r.counts()
		if regs > 1 {
			r.t.Fatalf("%d REGISTERs after %d keep-alives; want 1: the bot registered again on a live connection", regs, kas)
		}
		if kas >= n {
			return
		}
		select {
		case <-r.notify:
		case <-ctx.Done():
			r.t.Fatalf("want %d keep-alives, got %d (REGISTERs: %d)", n, kas, regs)
		}
	}
}

func (r *registrar) registers() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.expires...)
}

// waitRegisters waits until n authenticated REGISTERs arrived.
func (r *registrar) waitRegisters(ctx context.Context, n int) []int {
	r.t.Helper()
	for {
		if got := r.registers(); len(got) >= n {
			return got
		}
		select {
		case <-r.notify:
		case <-ctx.Done():
			r.t.Fatalf("want %d REGISTERs, got %v", n, r.registers())
		}
	}
}

// waitState waits until the bot's registration is in state s.
func waitState(t *testing.T, ctx context.Context, b *bot.Bot, s bot.RegState) bot.Registration {
	t.Helper()
	for {
		st, changed := b.Registration()
		if st.State == s {
			return st
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("registration %v (%s), want %v", st.State, st.Reason, s)
		}
	}
}

func TestRegistration(t *testing.T) {
	for _, alg := range []string{"MD5", "SHA-256"} {
		t.Run(alg, func(t *testing.T) {
			reg := startRegistrar(t, alg)
			reg.grant = 2 // refresh after about one second
			r := startBot(t, bot.Config{
				Identity:     "sip:bot@127.0.0.1",
				Registration: bot.RegistrationConfig{Registrar: "sip:" + reg.addr + ";transport=tcp", Password: "s3cret"},
			}, newRecorder())
			ctx := testCtx(t)
			st := waitState(t, ctx, r.Bot, bot.RegRegistered)
			if d := time.Until(st.Expires); d <= 0 || d > 2*time.Second {
				t.Errorf("binding expires in %v; the registrar granted 2s", d)
			}
			if st.Next.After(st.Expires) {
				t.Errorf("refresh planned at %v, after the binding lapses at %v", st.Next, st.Expires)
			}
			reg.waitRegisters(ctx, 2) // the refresh
			if err := r.stop(t); err != nil {
				t.Fatal(err)
			}
			got := reg.registers()
			if got[0] != 3600 || got[len(got)-1] != 0 {
				t.Errorf("REGISTER expiries %v: want 3600 first and 0 (unregister) last", got)
			}
			if st, _ := r.Registration(); st.State != bot.RegUnregistered {
				t.Errorf("after shutdown: %v", st.State)
			}
		})
	}
}

func TestRegistrationRefused(t *testing.T) {
	cases := []struct {
		name     string
		password string
		refuse   int
		reason   string
	}{
		{"wrong password", "nope", 0, "wrong username or password"},
		{"forbidden", "s3cret", 403, "403"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg := startRegistrar(t, "MD5")
			reg.refuse = c.refuse
			r := startBot(t, bot.Config{
				Identity: "sip:bot@127.0.0.1",
				Registration: bot.RegistrationConfig{Registrar: "sip:" + reg.addr + ";transport=tcp",
					Password: c.password, RetryRefused: time.Minute},
			}, newRecorder())
			ctx := testCtx(t)
			st := waitState(t, ctx, r.Bot, bot.RegFailed)
			if !strings.Contains(st.Reason, c.reason) {
				t.Errorf("reason %q does not say %q", st.Reason, c.reason)
			}
			if strings.Contains(st.Reason, "s3cret") || strings.Contains(st.Reason, "nope") {
				t.Errorf("reason %q shows the password", st.Reason)
			}
			// No tight loop: the next attempt is far away.
			if wait := time.Until(st.Next); wait < 30*time.Second {
				t.Errorf("next attempt in %v after a refusal", wait)
			}
		})
	}
}

func TestRegistrationRetriesUntilRegistrarIsUp(t *testing.T) {
	// A port where nothing listens yet: connections are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := startBot(t, bot.Config{
		Identity: "sip:bot@127.0.0.1",
		Registration: bot.RegistrationConfig{Registrar: "sip:" + addr + ";transport=tcp", Password: "s3cret",
			RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond},
	}, newRecorder())
	ctx := testCtx(t)
	st := waitState(t, ctx, r.Bot, bot.RegRetrying)
	if !strings.Contains(st.Reason, "unreachable") {
		t.Errorf("reason %q", st.Reason)
	}
	// Bring the registrar up on that port; the bot registers by itself.
	reg := &registrar{t: t, algorithm: "MD5", user: "bot", password: "s3cret", grant: 60, notify: make(chan struct{}, 64)}
	ua, _ := sipgo.NewUA()
	srv, _ := sipgo.NewServer(ua)
	srv.OnRegister(reg.onRegister)
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s was taken meanwhile: %v", addr, err)
	}
	go func() { _ = srv.ServeTCP(ln) }()
	defer func() { ln.Close(); ua.Close() }()
	waitState(t, ctx, r.Bot, bot.RegRegistered)
}

func TestRegistrationSurvivesConnectionLoss(t *testing.T) {
	reg := startRegistrar(t, "MD5")
	r := startBot(t, bot.Config{
		Identity: "sip:bot@127.0.0.1",
		Registration: bot.RegistrationConfig{Registrar: "sip:" + reg.addr + ";transport=tcp", Password: "s3cret",
			KeepAlive: 20 * time.Millisecond, RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond},
	}, newRecorder())
	ctx := testCtx(t)
	waitState(t, ctx, r.Bot, bot.RegRegistered)
	// The registrar restarts: its connections drop. The keep-alive notices and the bot
	// registers with the new one, long before the binding would need a refresh.
	reg.stop()
	st := waitState(t, ctx, r.Bot, bot.RegRetrying)
	if st.Reason == "" {
		t.Error("no reason given for retrying")
	}
	again := startRegistrarAt(t, "MD5", reg.addr)
	again.waitRegisters(ctx, 1)
	waitState(t, ctx, r.Bot, bot.RegRegistered)
}

func TestRegistrationKeepAlive(t *testing.T) {
	cases := []struct {
		name      string
		registrar func(addr string) string // the registrar as configured, from its IP:port
	}{
		{"by IP address", func(addr string) string { return "sip:" + addr + ";transport=tcp" }},
		// sipgo pools connections by IP:port; a keep-alive looked up by "localhost:port"
		// found nothing and registered again every period.
		{"by host name", func(addr string) string {
			_, port, _ := net.SplitHostPort(addr)
			return "sip:localhost:" + port + ";transport=tcp"
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg := startRegistrar(t, "MD5")
			r := startBot(t, bot.Config{
				Identity: "sip:bot@127.0.0.1",
				Registration: bot.RegistrationConfig{Registrar: c.registrar(reg.addr), Password: "s3cret",
					KeepAlive: 50 * time.Millisecond, RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond},
			}, newRecorder())
			ctx := testCtx(t)
			waitState(t, ctx, r.Bot, bot.RegRegistered)
			reg.waitKeepAlives(ctx, 5)
			if st, _ := r.Registration(); st.State != bot.RegRegistered {
				t.Errorf("after 5 keep-alives: %v (%s), want registered", st.State, st.Reason)
			}
			if got := reg.registers(); len(got) != 1 {
				t.Errorf("REGISTER expiries %v; want exactly one REGISTER", got)
			}
		})
	}
}

func TestRegistrationKeepAliveReleasesConnection(t *testing.T) {
	reg := startRegistrar(t, "MD5")
	r := startBot(t, bot.Config{
		Identity: "sip:bot@127.0.0.1",
		Registration: bot.RegistrationConfig{Registrar: "sip:" + reg.addr + ";transport=tcp", Password: "s3cret",
			KeepAlive: 20 * time.Millisecond},
	}, newRecorder())
	ctx := testCtx(t)
	waitState(t, ctx, r.Bot, bot.RegRegistered)
	// refs reads the reference count of the bot's connection to the registrar, not counting
	// the reference the lookup itself takes.
	refs := func() int {
		t.Helper()
		conn, err := r.TransportLayerForTest().GetConnection("tcp", reg.addr)
		if err != nil {
			t.Fatalf("no connection to the registrar: %v", err)
		}
		defer conn.TryClose()
		return conn.Ref(0) - 1
	}
	reg.waitKeepAlives(ctx, 2)
	before := refs()
	reg.waitKeepAlives(ctx, 20)
	// A keep-alive being written while refs looks holds one reference of its own; a leak
	// would add one per keep-alive, 18 here.
	if after := refs(); after > before+1 {
		t.Errorf("connection references grew from %d to %d over 18 keep-alives; each keep-alive must release the one it takes", before, after)
	}
}

func TestRegistrationRefusesUnverifiedTLS(t *testing.T) {
	serverTLS, trusting := selfSigned(t)
	reg := &registrar{t: t, algorithm: "MD5", user: "bot", password: "s3cret", grant: 60, notify: make(chan struct{}, 64)}
	ua, _ := sipgo.NewUA()
	srv, _ := sipgo.NewServer(ua)
	srv.OnRegister(reg.onRegister)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.ServeTLS(tls.NewListener(ln, serverTLS)) }()
	t.Cleanup(func() { ln.Close(); ua.Close() })

	cases := []struct {
		name      string
		clientTLS *tls.Config
		want      bot.RegState
	}{
		{"certificate not trusted", &tls.Config{ServerName: "127.0.0.1", RootCAs: x509.NewCertPool()}, bot.RegRetrying},
		{"trusted CA", trusting, bot.RegRegistered},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := startBot(t, bot.Config{
				Listen:    []string{"udp://127.0.0.1:0", "tls://127.0.0.1:0"},
				TLS:       serverTLS,
				ClientTLS: c.clientTLS,
				Identity:  "sip:bot@127.0.0.1",
				Registration: bot.RegistrationConfig{Registrar: "sip:" + ln.Addr().String() + ";transport=tls",
					Password: "s3cret", RetryMin: time.Minute},
			}, newRecorder())
			st := waitState(t, testCtx(t), r.Bot, c.want)
			if c.want == bot.RegRetrying && !strings.Contains(st.Reason, "certificate") {
				t.Errorf("reason %q does not name the certificate", st.Reason)
			}
		})
	}
}

// TestRegistrationFirstFailureIsPrompt: the first attempt's failure is known as soon as the
// registrar refuses, or after Config.RequestTimeout when it does not answer, not after SIP's
// 32 s transaction timeout. The deadline is generous and still short of 32 s.
func TestRegistrationFirstFailureIsPrompt(t *testing.T) {
	cases := []struct {
		name   string
		status int // 0: the registrar never answers
		state  bot.RegState
		reason string
	}{
		{"forbidden", 403, bot.RegFailed, "403"},
		{"not found", 404, bot.RegFailed, "404"},
		{"server error", 500, bot.RegRetrying, "500"},
		{"silent", 0, bot.RegRetrying, "unreachable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr := bottest.StartRegistrar(t, c.status)
			r := startBot(t, bot.Config{
				Identity:       "sip:bot@127.0.0.1",
				RequestTimeout: 500 * time.Millisecond,
				Registration:   bot.RegistrationConfig{Registrar: "sip:" + addr, RetryMin: time.Minute},
			}, newRecorder())
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			st := waitState(t, ctx, r.Bot, c.state)
			if !strings.Contains(st.Reason, c.reason) || st.Attempts != 1 {
				t.Errorf("after the first attempt: %v, reason %q, %d attempts; want %q and 1 attempt", st.State, st.Reason, st.Attempts, c.reason)
			}
		})
	}
}

// TestRegistrationPendingFromNew: a bot with a registrar is not taken for one without
// (RegOff) before its first REGISTER has an outcome, so a readiness probe says not ready.
func TestRegistrationPendingFromNew(t *testing.T) {
	addr := bottest.StartRegistrar(t, 0)
	b, err := bot.New(bot.Config{Listen: []string{"udp://127.0.0.1:0"}, Identity: "sip:bot@127.0.0.1",
		Registration: bot.RegistrationConfig{Registrar: "sip:" + addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if st, _ := b.Registration(); st.State != bot.RegPending {
		t.Errorf("registration before Run: %v, want %v", st.State, bot.RegPending)
	}
}
