package bot

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// RegState is where the bot's sign-in stands.
type RegState int

// Registration states.
const (
	// RegOff: no registrar is configured; the bot only listens.
	RegOff RegState = iota
	// RegPending: a registrar is configured and the first REGISTER is due or on its way
	// (from New until its outcome is known).
	RegPending
	// RegRegistered: the registrar accepted the binding.
	RegRegistered
	// RegRetrying: the registrar could not be reached or failed; the bot tries again.
	RegRetrying
	// RegFailed: the registrar refused the bot (wrong credentials, 403...); the bot tries
	// again after a long pause, in case an operator fixes the account.
	RegFailed
	// RegUnregistered: the bot removed its binding at shutdown.
	RegUnregistered
)

// String returns the state's name.
func (s RegState) String() string {
	return [...]string{"off", "pending", "registered", "retrying", "failed", "unregistered"}[s]
}

// Registration is a snapshot of the bot's sign-in.
type Registration struct {
	State RegState
	// Reason explains a RegRetrying or RegFailed state, such as
	// "401 Unauthorized: wrong username or password".
	Reason string
	// Expires is when the current binding lapses (RegRegistered).
	Expires time.Time
	// Next is when the bot sends its next REGISTER (refresh or retry).
	Next time.Time
	// Attempts counts failed attempts since the last success.
	Attempts int
	// Since is when the state last changed.
	Since time.Time
}

// regStatus holds the registration state and wakes waiters on change.
type regStatus struct {
	mu      sync.Mutex
	cur     Registration
	changed chan struct{}
}

func (r *regStatus) get() (Registration, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.changed == nil {
		r.changed = make(chan struct{})
	}
	return r.cur, r.changed
}

func (r *regStatus) set(f func(*Registration)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := r.cur.State
	f(&r.cur)
	if r.cur.State != prev {
		r.cur.Since = time.Now()
	}
	if r.changed != nil {
		close(r.changed)
	}
	r.changed = make(chan struct{})
}

// Registration returns the current sign-in status and a channel that is closed at its next
// change, so callers can wait for a state without polling.
func (b *Bot) Registration() (Registration, <-chan struct{}) { return b.reg.get() }

// registrar is the parsed registration target.
type registrar struct {
	uri     sip.Uri // Request-URI of REGISTER
	addr    string  // host:port it is sent to
	network string
}

func parseRegistrar(s string) (registrar, error) {
	if !strings.HasPrefix(strings.ToLower(s), "sip:") && !strings.HasPrefix(strings.ToLower(s), "sips:") {
		s = "sip:" + s
	}
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return registrar{}, fmt.Errorf("registrar %q: %w", s, err)
	}
	network := "udp"
	if t, ok := u.UriParams.Get("transport"); ok && t != "" {
		network = strings.ToLower(t)
	}
	port := u.Port
	if port == 0 {
		port = 5060
	}
	target := sip.Uri{Scheme: u.Scheme, Host: u.Host, Port: u.Port}
	return registrar{uri: target, addr: u.Host + ":" + strconv.Itoa(port), network: network}, nil
}

// registerLoop keeps the bot registered until ctx ends, then removes the binding.
func (b *Bot) registerLoop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	r := b.registrar
	cli := b.clients[r.network]
	contact := b.contact(r.network)
	req := sip.NewRequest(sip.REGISTER, r.uri)
	from := &sip.FromHeader{DisplayName: b.cfg.DisplayName, Address: b.identity}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{DisplayName: b.cfg.DisplayName, Address: b.identity})
	callID := sip.CallIDHeader(sip.GenerateTagN(24))
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 0, MethodName: sip.REGISTER})
	req.AppendHeader(&contact)
	req.SetDestination(r.addr)
	req.SetTransport(strings.ToUpper(r.network))

	b.reg.set(func(s *Registration) { s.State = RegPending })
	registered := false
	for {
		want := b.cfg.Registration.Expires
		granted, conn, err := b.register(ctx, cli, req, want)
		now := time.Now()
		var wait time.Duration
		switch {
		case ctx.Err() != nil:
		case err == nil:
			registered = true
			wait = granted / 2
			b.reg.set(func(s *Registration) {
				s.State, s.Reason, s.Attempts = RegRegistered, "", 0
				s.Expires, s.Next = now.Add(granted), now.Add(wait)
			})
			b.log.Info("registered", "registrar", r.uri.String(), "expires", granted)
		default:
			var refused *regRefused
			state, base := RegRetrying, b.cfg.Registration.RetryMin
			if errors.As(err, &refused) {
				state, base = RegFailed, b.cfg.Registration.RetryRefused
			}
			st, _ := b.reg.get()
			wait = backoff(base, b.cfg.Registration.RetryMax, st.Attempts)
			b.reg.set(func(s *Registration) {
				s.State, s.Reason, s.Attempts = state, err.Error(), s.Attempts+1
				s.Next = now.Add(wait)
			})
			b.log.Warn("registration failed", "registrar", r.uri.String(), "err", err, "retry_in", wait.Round(time.Millisecond))
		}
		if !b.waitOrKeepAlive(ctx, wait, conn, err == nil) {
			if registered {
				b.unregister(cli, req)
			}
			return
		}
	}
}

// waitOrKeepAlive waits until the next REGISTER is due. While registered over TCP or TLS, conn
// is the IP:port of the connection the registrar accepted the binding on, and it sends a CRLF
// keep-alive (RFC 5626 §4.4.1) on that connection every Registration.KeepAlive; a
// connection that is gone or fails means a transport error, and the bot registers again at
// once. An empty conn (not registered) sends no keep-alives. It returns false when ctx ended.
func (b *Bot) waitOrKeepAlive(ctx context.Context, wait time.Duration, conn string, registered bool) bool {
	t := time.NewTimer(wait)
	defer t.Stop()
	var tick, check <-chan time.Time
	if conn != "" && (b.registrar.network == "tcp" || b.registrar.network == "tls") {
		k := time.NewTicker(b.cfg.Registration.KeepAlive)
		defer k.Stop()
		tick = k.C
	}
	if registered && b.cfg.Registration.BindingCheck > 0 {
		c := time.NewTicker(b.cfg.Registration.BindingCheck)
		defer c.Stop()
		check = c.C
	}
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-check:
			if err := b.checkBinding(ctx); err != nil {
				if ctx.Err() != nil {
					return false
				}
				b.log.Warn("the registrar no longer routes the bot's address to it; registering again",
					"registrar", b.registrar.uri.String(), "err", err)
				b.reg.set(func(s *Registration) { s.State, s.Reason = RegRetrying, "binding lost: "+err.Error() })
				return true
			}
		case <-tick:
			if err := b.keepAlive(conn); err != nil {
				b.log.Warn("registrar connection lost; registering again", "registrar", b.registrar.uri.String(), "err", err)
				b.reg.set(func(s *Registration) { s.State, s.Reason = RegRetrying, "connection lost: "+err.Error() })
				return true
			}
		}
	}
}

// checkBinding sends an OPTIONS to the bot's own address of record through the registrar
// (see RegistrationConfig.BindingCheck). The registrar relays it to the bot, which answers
// it: any answer but 404, 410 or 480 (no binding), or none at all, means the binding holds.
func (b *Bot) checkBinding(ctx context.Context) error {
	r := b.registrar
	cli := b.clients[r.network]
	req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: b.identity.Scheme, User: b.identity.User, Host: b.identity.Host, Port: b.identity.Port})
	from := &sip.FromHeader{DisplayName: b.cfg.DisplayName, Address: b.identity}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: b.identity})
	req.SetDestination(r.addr)
	req.SetTransport(strings.ToUpper(r.network))
	cctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	res, err := b.doAuth(cctx, cli, req)
	switch {
	case err != nil:
		return fmt.Errorf("no answer to OPTIONS %s: %w", req.Recipient.String(), err)
	case res.StatusCode == 404 || res.StatusCode == 410 || res.StatusCode == 480:
		return fmt.Errorf("OPTIONS %s answered %d %s", req.Recipient.String(), res.StatusCode, res.Reason)
	}
	return nil
}

// keepAlive writes a CRLF pair on the connection to the registrar at addr, the IP:port it
// answered from. sipgo pools connections by IP:port, so the configured registrar address,
// which may be a host name, would not find it.
func (b *Bot) keepAlive(addr string) error {
	conn, err := b.ua.TransportLayer().GetConnection(b.registrar.network, addr)
	if err != nil {
		return fmt.Errorf("connection to %s: %w", addr, err)
	}
	// The lookup took a reference on the connection; give it back, or sipgo counts one more
	// holder per keep-alive and the connection can never be released.
	defer func() { _, _ = conn.TryClose() }()
	tc, ok := conn.(*sip.TCPConnection)
	if !ok {
		return nil // not a connection keep-alives can be written on
	}
	_, err = tc.Conn.Write([]byte("\r\n\r\n"))
	return err
}

// backoff is base doubled per attempt, capped, with ±20% jitter.
func backoff(base, max time.Duration, attempts int) time.Duration {
	d := base
	for i := 0; i < attempts && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d - d/5 + time.Duration(rand.Int64N(int64(d/5)*2+1))
}

// regRefused is a final refusal by the registrar: retrying at once would not help.
type regRefused struct {
	code         int
	reason, hint string
}

func (e *regRefused) Error() string {
	s := strconv.Itoa(e.code)
	if e.reason != "" {
		s += " " + e.reason
	}
	if e.hint != "" {
		s += ": " + e.hint
	}
	return s
}

// register sends one REGISTER (answering a digest challenge) and returns the granted expiry
// and conn, the IP:port the registrar answered from: the connection keep-alives go on.
func (b *Bot) register(ctx context.Context, cli *sipgo.Client, req *sip.Request, want time.Duration) (granted time.Duration, conn string, err error) {
	rctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	for tries := 0; tries < 2; tries++ {
		exp := sip.ExpiresHeader(uint32(want / time.Second))
		req.RemoveHeader("Expires")
		req.AppendHeader(&exp)
		res, err := b.doAuth(rctx, cli, req)
		if err != nil {
			return 0, "", fmt.Errorf("registrar unreachable: %w", err)
		}
		switch {
		case res.StatusCode == 200:
			// The response's source is the connection's remote IP:port, resolved by sipgo,
			// which is how its connection pool knows the connection.
			conn = res.Source()
			if conn == "" {
				conn = b.registrar.addr
			}
			return grantedExpiry(res, b.contact(b.registrar.network), want), conn, nil
		case res.StatusCode == 423:
			if h := res.GetHeader("Min-Expires"); h != nil {
				if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n > 0 {
					want = time.Duration(n) * time.Second
					continue
				}
			}
		case res.StatusCode == 401 || res.StatusCode == 407:
			return 0, "", &regRefused{res.StatusCode, res.Reason, "wrong username or password (check the credentials in the environment)"}
		case res.StatusCode == 403 || res.StatusCode == 404 || res.StatusCode == 603:
			return 0, "", &regRefused{res.StatusCode, res.Reason, "the registrar does not accept this identity"}
		}
		return 0, "", fmt.Errorf("registrar answered %d %s", res.StatusCode, res.Reason)
	}
	return 0, "", errors.New("registrar keeps asking for a longer expiry")
}

// doAuth sends req and answers one 401/407 digest challenge with the configured credentials.
// A challenge without credentials is returned as it is.
func (b *Bot) doAuth(ctx context.Context, cli *sipgo.Client, req *sip.Request) (*sip.Response, error) {
	req.RemoveHeader("Via")
	req.RemoveHeader("Authorization")
	req.RemoveHeader("Proxy-Authorization")
	opts := []sipgo.ClientRequestOption{}
	if req.Method == sip.REGISTER {
		opts = append(opts, sipgo.ClientRequestRegisterBuild)
	}
	res, err := cli.Do(ctx, req, opts...)
	if err != nil {
		return nil, err
	}
	if (res.StatusCode == 401 || res.StatusCode == 407) && b.cfg.Registration.Password != "" {
		return cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{
			Username: b.authUser(), Password: b.cfg.Registration.Password,
		})
	}
	return res, nil
}

func (b *Bot) authUser() string {
	if b.cfg.Registration.Username != "" {
		return b.cfg.Registration.Username
	}
	return b.identity.User
}

// grantedExpiry reads the expiry the registrar granted: our Contact's expires parameter,
// else the Expires header, else what was asked.
func grantedExpiry(res *sip.Response, ours sip.ContactHeader, want time.Duration) time.Duration {
	for _, h := range res.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok || c.Address.Host != ours.Address.Host || c.Address.Port != ours.Address.Port || c.Address.User != ours.Address.User {
			continue
		}
		if v, ok := c.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return time.Duration(n) * time.Second
			}
		}
	}
	if h := res.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n > 0 {
			return time.Duration(n) * time.Second
		}
	}
	return want
}

// unregister removes the binding (Expires: 0), best effort within a short deadline.
func (b *Bot) unregister(cli *sipgo.Client, req *sip.Request) {
	ctx, cancel := context.WithTimeout(context.Background(), min(b.cfg.ShutdownTimeout, 5*time.Second))
	defer cancel()
	exp := sip.ExpiresHeader(0)
	req.RemoveHeader("Expires")
	req.AppendHeader(&exp)
	res, err := b.doAuth(ctx, cli, req)
	if err != nil || res.StatusCode != 200 {
		b.log.Warn("unregister failed", "err", err, "response", res)
		return
	}
	b.reg.set(func(s *Registration) { s.State, s.Reason, s.Next = RegUnregistered, "", time.Time{} })
	b.log.Info("unregistered", "registrar", b.registrar.uri.String())
}
