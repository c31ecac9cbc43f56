package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/internal/logcap"
)

// Bot is a SIP IM chatbot: it listens for page-mode messages and IM sessions, runs every event
// through its chain of middleware and handler, and sends what they reply. Create one with
// New, add middleware with Use, set the handler with Handle, then call Run.
type Bot struct {
	cfg Config
	log *slog.Logger

	ua        *sipgo.UserAgent
	srv       *sipgo.Server
	clients   map[string]*sipgo.Client      // by network: "udp", "tcp"
	duas      map[string]*sipgo.DialogUA    // by network
	contacts  map[string]*sip.ContactHeader // the bot's Contact by network, shared by its dialogs
	listeners []boundListener
	identity  sip.Uri
	trust     *trust
	answered  answered // page-mode requests answered 200 over UDP (answered.go)
	// udpReaders are the UDP sockets as sipgo reads them; set by Run before serving.
	udpReaders []*udpReader
	lean       *leanUDP       // page mode over UDP without sipgo's transactions (leanudp.go)
	host       string         // advertised host
	ports      map[string]int // advertised port by network
	proxyAddr  string
	proxyIPs   []netip.Addr // the outbound proxy's addresses
	proxyTp    string
	registrar  registrar
	reg        regStatus

	mu         sync.Mutex
	middleware []Middleware
	handler    Handler
	running    bool
	chain      Handler

	sessions sessionTable
	runq     runQueue
	arrivals arrivals
	merges   merges         // recent out-of-dialog requests, for RFC 3261 §8.2.2.2
	pike     *sourceLimiter // Config.SourceLimit
	unacked  sync.Map       // INVITE key -> *dialog answered in the last 64·T1 (see sendOK)
	work     activity       // events accepted and not yet handled
	inflight activity       // SIP handlers running
	closing  atomic.Bool

	handlerCtx    context.Context
	cancelHandler context.CancelFunc

	// sendHook, when set (by benchmarks), replaces the network for requests the bot sends.
	sendHook func(ctx context.Context, s *Session, req *sip.Request) error

	ready chan struct{} // closed when Run serves
}

type boundListener struct {
	network string
	pc      net.PacketConn
	ln      net.Listener
}

func (l boundListener) addr() net.Addr {
	if l.pc != nil {
		return l.pc.LocalAddr()
	}
	return l.ln.Addr()
}

func (l boundListener) close() {
	if l.pc != nil {
		_ = l.pc.Close()
	}
	if l.ln != nil {
		_ = l.ln.Close()
	}
}

// udpReadBuffer is the receive buffer asked for the UDP socket: about half a second of
// requests at 10,000 a second.
const udpReadBuffer = 4 << 20

// New checks cfg, binds the listen addresses and returns a Bot ready to Run. The sockets are
// open when New returns (Addr reports them); call Close to release them if Run is never
// called.
func New(cfg Config) (*Bot, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &Bot{
		cfg:      c,
		log:      logcap.Wrap(c.Logger, logcap.Options{Uncut: []string{"stack"}}), // peers trigger most lines
		clients:  map[string]*sipgo.Client{},
		duas:     map[string]*sipgo.DialogUA{},
		contacts: map[string]*sip.ContactHeader{},
		ports:    map[string]int{},
		ready:    make(chan struct{}),
	}
	b.sessions.init()
	b.lean = newLeanUDP(b)
	var hosts []string
	for _, s := range c.Listen {
		if la, err := parseListen(s); err == nil {
			hosts = append(hosts, la.host)
		}
	}
	if b.trust, err = newTrust(c.Trust, hosts); err != nil {
		return nil, fmt.Errorf("bot config: %w", err)
	}
	b.pike = newSourceLimiter(c.SourceLimit, nil)
	b.pike.setExempt(b.trust.trustedIP) // a proxy carries everyone's requests
	b.runq.init(c.MaxWorkers, b.runSession)
	if b.proxyAddr, b.proxyTp, err = parseProxy(c.OutboundProxy); err != nil {
		return nil, fmt.Errorf("bot config: %w", err)
	}
	b.proxyIPs = resolveProxy(context.Background(), b.proxyAddr)
	if err := b.bind(); err != nil {
		return nil, err
	}
	if err := b.setupSIP(); err != nil {
		b.closeListeners()
		return nil, err
	}
	if b.trust.realm == "" {
		b.trust.realm = b.identity.Host
	}
	if c.Registration.Registrar != "" {
		if b.registrar, err = parseRegistrar(c.Registration.Registrar); err != nil {
			b.closeListeners()
			return nil, fmt.Errorf("bot config: %w", err)
		}
		if b.clients[b.registrar.network] == nil {
			b.closeListeners()
			return nil, fmt.Errorf("bot config: registrar %q uses %s but the bot does not listen on %s; add a %s:// listen address",
				c.Registration.Registrar, b.registrar.network, b.registrar.network, b.registrar.network)
		}
		// Not bound until the registrar says so: a readiness probe asked before Run's first
		// REGISTER must not take the bot for one without a registrar.
		b.reg.set(func(s *Registration) { s.State = RegPending })
	}
	return b, nil
}

// bind opens every listen address. UDP and TCP on the same host with port 0 share one port.
func (b *Bot) bind() error {
	var addrs []listenAddr
	for _, s := range b.cfg.Listen {
		la, err := parseListen(s)
		if err != nil {
			return fmt.Errorf("bot config: %w", err)
		}
		addrs = append(addrs, la)
	}
	shared := map[string]int{} // host -> port picked for port 0
	for _, la := range addrs {
		l, err := b.bindOne(la, shared)
		if err != nil {
			b.closeListeners()
			return err
		}
		b.listeners = append(b.listeners, l)
	}
	return nil
}

func (b *Bot) bindOne(la listenAddr, shared map[string]int) (boundListener, error) {
	try := func(port int) (boundListener, error) {
		addr := net.JoinHostPort(la.host, strconv.Itoa(port))
		if la.network == "udp" {
			pc, err := net.ListenPacket("udp", addr)
			if uc, ok := pc.(*net.UDPConn); ok && err == nil {
				// A burst waits in the socket instead of being dropped (a dropped request
				// costs its sender a 500 ms retransmission). Best effort: the kernel caps
				// it (net.core.rmem_max).
				_ = uc.SetReadBuffer(udpReadBuffer)
			}
			return boundListener{network: "udp", pc: pc}, err
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return boundListener{network: la.network}, err
		}
		// Connection limit, accept retries, TLS and timeouts (listener.go).
		return boundListener{network: la.network, ln: newStreamListener(ln, la.network, b.cfg)}, nil
	}
	if (la.network == "tls" || la.network == "wss") && b.cfg.TLS == nil {
		return boundListener{}, fmt.Errorf("listen on %s://%s: set Config.TLS (certificate and key)", la.network, la.host)
	}
	if la.port != 0 {
		l, err := try(la.port)
		if err != nil {
			return l, fmt.Errorf("listen on %s %s:%d: %w (is another program using that port?)", la.network, la.host, la.port, err)
		}
		return l, nil
	}
	if p, ok := shared[la.host]; ok {
		if l, err := try(p); err == nil {
			return l, nil
		}
	}
	l, err := try(0)
	if err != nil {
		return l, fmt.Errorf("listen on %s %s: %w", la.network, la.host, err)
	}
	if _, ok := shared[la.host]; !ok {
		shared[la.host] = portOf(l.addr())
	}
	return l, nil
}

func portOf(a net.Addr) int {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.Port
	case *net.TCPAddr:
		return a.Port
	}
	return 0
}

func (b *Bot) closeListeners() {
	for _, l := range b.listeners {
		l.close()
	}
}

func (b *Bot) setupSIP() error {
	first := b.listeners[0].addr()
	host, _, _ := net.SplitHostPort(first.String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	advPort, err := advertisedPort(b.cfg.Advertise)
	if err != nil {
		return err
	}
	if b.cfg.Advertise != "" {
		if h, _, err := net.SplitHostPort(b.cfg.Advertise); err == nil {
			host = h
		} else {
			host = b.cfg.Advertise
		}
	}
	b.host = host
	for _, l := range b.listeners {
		if _, ok := b.ports[l.network]; ok {
			continue
		}
		b.ports[l.network] = portOf(l.addr())
		if advPort != 0 {
			b.ports[l.network] = advPort
		}
	}

	ident := b.cfg.Identity
	if ident == "" {
		ident = "sip:imbot@" + host
	}
	if err := sip.ParseUri(ident, &b.identity); err != nil {
		return fmt.Errorf("bot config: identity %q is not a SIP URI: %w", ident, err)
	}

	uaOpts := []sipgo.UserAgentOption{
		sipgo.WithUserAgent(b.cfg.UserAgent),
		sipgo.WithUserAgentHostname(b.identity.Host),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(b.log)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(
			slog.New(unparsableHook{next: b.log.Handler(), answer: b.answerUnparsable}))),
	}
	if b.cfg.ClientTLS != nil {
		uaOpts = append(uaOpts, sipgo.WithUserAgenTLSConfig(b.cfg.ClientTLS))
	}
	ua, err := sipgo.NewUA(uaOpts...)
	if err != nil {
		return fmt.Errorf("sip user agent: %w", err)
	}
	b.ua = ua
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(b.log))
	if err != nil {
		return fmt.Errorf("sip server: %w", err)
	}
	b.srv = srv
	for _, l := range b.listeners {
		network := l.network
		if _, ok := b.clients[network]; ok {
			continue
		}
		opts := []sipgo.ClientOption{
			sipgo.WithClientHostname(host),
			sipgo.WithClientPort(b.ports[network]),
			sipgo.WithClientLogger(b.log),
		}
		if network == "udp" {
			// Requests leave from the listening socket, so peers and NATs see one address.
			opts = append(opts, sipgo.WithClientConnectionAddr(l.addr().String()))
		}
		cli, err := sipgo.NewClient(ua, opts...)
		if err != nil {
			return fmt.Errorf("sip client: %w", err)
		}
		b.clients[network] = cli
		contact := b.contact(network)
		b.contacts[network] = &contact
		b.duas[network] = &sipgo.DialogUA{
			Client:         cli,
			ContactHDR:     b.contact(network),
			RewriteContact: true,
		}
	}
	b.routes()
	// Arrival order of in-dialog requests (arrival.go): this runs in each transport's read
	// loop.
	ua.TransportLayer().OnMessage(b.onArrival)
	return nil
}

// contact is the bot's Contact for a transport.
func (b *Bot) contact(network string) sip.ContactHeader {
	u := sip.Uri{Scheme: "sip", User: b.identity.User, Host: b.host, Port: b.ports[network]}
	u.UriParams = sip.HeaderParams{{K: "transport", V: network}}
	return sip.ContactHeader{Address: u}
}

// Addr returns the local address the bot listens on for network ("udp" or "tcp"), or "" if it
// does not listen on it.
func (b *Bot) Addr(network string) string {
	for _, l := range b.listeners {
		if l.network == network {
			return l.addr().String()
		}
	}
	return ""
}

// URI returns the bot's address of record.
func (b *Bot) URI() string { return b.identity.String() }

// Use appends middleware to the bot's chain. The first middleware added is the outermost.
// Use must be called before Run.
func (b *Bot) Use(mw ...Middleware) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running {
		panic("bot: Use called after Run")
	}
	b.middleware = append(b.middleware, mw...)
}

// Handle sets the handler at the end of the chain. Handle must be called before Run.
func (b *Bot) Handle(h Handler) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running {
		panic("bot: Handle called after Run")
	}
	b.handler = h
}

// Run serves SIP until ctx ends, then shuts down gracefully: it stops accepting new
// conversations, lets handlers finish what is queued, sends BYE to every open session and
// closes the sockets. It returns nil after a clean shutdown.
func (b *Bot) Run(ctx context.Context) error {
	b.mu.Lock()
	if b.running {
		b.mu.Unlock()
		return errors.New("bot: Run called twice")
	}
	b.running = true
	b.chain = Chain(b.middleware).Then(b.handler)
	b.mu.Unlock()

	b.handlerCtx, b.cancelHandler = context.WithCancel(context.WithoutCancel(ctx))
	defer b.cancelHandler()

	serveCtx, stopServe := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServe()
	errc := make(chan error, len(b.listeners))
	var reading sync.WaitGroup // UDP sockets registered with sipgo's transport (first read)
	serving := slices.Clone(b.listeners)
	for i := range serving {
		if pc := serving[i].pc; pc != nil {
			reading.Add(1)
			u := &udpReader{PacketConn: pc, ready: reading.Done, lean: b.lean}
			serving[i].pc = u
			b.udpReaders = append(b.udpReaders, u)
			if b.lean.out.Load() == nil {
				b.lean.out.Store(u) // the first UDP listener: the one the sipgo client sends from
			}
		}
	}
	b.lean.start()
	for _, l := range serving {
		go func(l boundListener) {
			var err error
			switch l.network {
			case "udp":
				err = b.srv.ServeUDP(l.pc)
			case "tcp":
				err = b.srv.ServeTCP(l.ln)
			case "tls":
				err = b.srv.ServeTLS(l.ln)
			case "ws":
				err = b.srv.ServeWS(l.ln)
			case "wss":
				err = b.srv.ServeWSS(l.ln)
			}
			if u, ok := l.pc.(*udpReader); ok {
				u.once.Do(u.ready) // Serve failed before its first read: do not hold Ready
			}
			// A stream listener retries failed accepts (listener.go): only a broken UDP
			// socket, or a listener sipgo cannot use at all, gets here.
			if err != nil && !errors.Is(err, net.ErrClosed) && serveCtx.Err() == nil {
				errc <- fmt.Errorf("serve %s %s: %w", l.network, l.addr(), err)
			}
		}(l)
	}
	go b.sweepIdle(serveCtx)
	// Requests may leave from the UDP sockets only once sipgo serves them.
	reading.Wait()
	regCtx, stopReg := context.WithCancel(context.WithoutCancel(ctx))
	defer stopReg()
	regDone := make(chan struct{})
	if b.registrar.addr != "" {
		go b.registerLoop(regCtx, regDone)
	} else {
		close(regDone)
	}
	close(b.ready)
	b.log.Info("imbot listening", "identity", b.identity.String(), "udp", b.Addr("udp"), "tcp", b.Addr("tcp"), "trust", b.trust.mode())
	if b.trust.implicit {
		b.log.Warn("sender identities are not verified: the bot listens on loopback only and Trust is not configured; " +
			"set Trust.Proxies or Trust.Users before exposing it")
	} else if b.trust.unverified {
		b.log.Warn("sender identities are not verified (Trust.Unverified): for development only")
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		b.log.Error("listener failed, shutting down", "err", runErr)
	}
	b.shutdown()
	b.runq.close()
	stopReg() // unregisters
	<-regDone
	stopServe()
	b.closeListeners()
	b.lean.close()
	b.ua.Close()
	return runErr
}

// Ready returns a channel that is closed once Run serves requests.
func (b *Bot) Ready() <-chan struct{} { return b.ready }

// Draining reports whether the bot is shutting down: from the moment Run's context ends it
// answers new requests 503 and finishes what it had accepted. A readiness probe should fail
// from then on, so that a load balancer sends no more traffic.
func (b *Bot) Draining() bool { return b.closing.Load() }

// Close releases the sockets of a bot whose Run was never called. Use the context given to
// Run to stop a running bot.
func (b *Bot) Close() error {
	b.mu.Lock()
	running := b.running
	b.mu.Unlock()
	if running {
		return errors.New("bot: Close on a running bot: cancel Run's context instead")
	}
	b.closeListeners()
	return b.ua.Close()
}

// shutdown finishes what was accepted, ends every conversation and waits for the end
// events. New requests get 503 from the moment it starts. Every event that was answered 200
// is handled: admission (Config.MaxQueueDelay) keeps the backlog to what the workers finish
// well within Config.ShutdownTimeout. Past that deadline the handlers' context is cancelled;
// shutdown still waits a short grace for them, so that nothing the caller closes after Run
// (a store) is used by a handler after Run returned, unless a handler ignores its context.
func (b *Bot) shutdown() {
	b.closing.Store(true)
	deadline := time.Now().Add(b.cfg.ShutdownTimeout)
	dctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	// A SIP handler that passed its admission checks may still queue an event.
	_ = b.inflight.wait(dctx)
	if err := b.work.wait(dctx); err != nil {
		b.log.Warn("shutdown: events still queued or running at the deadline", "events", b.work.count())
	}
	var wg sync.WaitGroup
	for _, s := range b.sessions.all() {
		wg.Add(1)
		go func(s *Session) {
			defer wg.Done()
			s.end(dctx, EndShutdown, true)
		}(s)
	}
	wg.Wait()
	if err := b.work.wait(dctx); err != nil {
		b.log.Warn("shutdown: session end handlers still running at the deadline", "events", b.work.count())
	}
	b.cancelHandler()
	gctx, gcancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer gcancel()
	if err := b.work.wait(gctx); err != nil {
		b.log.Error("shutdown: handlers did not return after their context was cancelled; stopping anyway",
			"events", b.work.count())
	}
}

// shutdownGrace is how long shutdown waits, after cancelling the handlers' context, for them
// to return.
const shutdownGrace = 5 * time.Second

// sweepIdle ends conversations idle for longer than the idle timeout. One sweeper serves all
// sessions, so an idle session costs no timer and no goroutine.
func (b *Bot) sweepIdle(ctx context.Context) {
	period := min(b.cfg.IdleTimeout/4, 5*time.Second)
	period = max(period, 10*time.Millisecond)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			b.arrivals.sweep(2 * arrivalGuard)
			b.sweepAccepted(now)
			limit := now.Add(-b.cfg.IdleTimeout).UnixNano()
			for _, s := range b.sessions.all() {
				if s.lastActive.Load() < limit && !s.busy() {
					s.expire()
				}
				s.forgetBranches(now)
			}
		}
	}
}

// activity counts running workers and lets shutdown wait for them.
type activity struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to zero; nil while n == 0
}

func (a *activity) add() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n == 0 {
		a.idle = make(chan struct{})
	}
	a.n++
}

func (a *activity) done() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n--
	if a.n == 0 {
		close(a.idle)
		a.idle = nil
	}
}

func (a *activity) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

func (a *activity) wait(ctx context.Context) error {
	a.mu.Lock()
	ch := a.idle
	a.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
