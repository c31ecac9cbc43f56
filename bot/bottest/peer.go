package bottest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Transport names the transport a [Peer] listens on and sends with.
type Transport string

// The transports a [Peer] supports.
const (
	UDP Transport = "udp"
	TCP Transport = "tcp"
)

// Options configures a [Peer]. Only Bot is required; the zero value of
// every other field is a useful default.
type Options struct {
	// User is the user part of the peer's address, default "alice".
	User string
	// DisplayName is put in the From header of the peer's requests.
	DisplayName string
	// Transport is "udp" (the default) or "tcp".
	Transport Transport
	// Bot is the address of the bot under test, "127.0.0.1:port". Every
	// request of the peer is sent there (required).
	Bot string
	// BotURI is the bot's address-of-record, used as Request-URI and To of
	// page-mode MESSAGEs and INVITEs. Default "sip:bot@<Bot>".
	BotURI string
	// AcceptComposing adds "Accept: text/plain,
	// application/im-iscomposing+xml" to the page-mode MESSAGEs the peer
	// sends, telling the bot that it may send RFC 3994 typing notices.
	AcceptComposing bool
	// RefuseComposing makes the peer answer 415 Unsupported Media Type
	// with "Accept: text/plain" to every RFC 3994 isComposing MESSAGE the
	// bot sends, as baresip does. KeyboardActivity INFOs are not
	// affected; use Respond for those.
	RefuseComposing bool
	// Respond, if set, is called for every request the bot sends to the
	// peer (ACK excepted) and returns the status code to answer with;
	// 0 keeps the default. It overrides RefuseComposing and the 481 for
	// unknown dialogs. A 2xx answer to an in-dialog BYE ends the session,
	// any other answer keeps it. Respond is called from several
	// goroutines at once.
	Respond func(req *sip.Request) int
	// AcceptSessions makes the peer answer an INVITE from the bot that
	// offers "m=message" with 200 and an m=message answer (other INVITEs
	// get 488); [Peer.WaitSession] returns the sessions. Without it, INVITEs
	// from the bot get 480 Temporarily Unavailable.
	AcceptSessions bool
	// AssertIdentity makes the peer play its own trusted proxy: every request
	// it sends (ACK and CANCEL aside) carries "P-Asserted-Identity: <URI>"
	// (with DisplayName, when set, before it), the header a proxy adds
	// (RFC 3325) once it has authenticated a user.
	// A bot whose bot.TrustConfig.Proxies lists 127.0.0.1, the address every
	// Peer writes from, then takes the peer as Verified; a Peer without it
	// is served as a sender the proxy vouched for, but not Verified. This is
	// how a test makes an agent or a ticket owner verified over SIP.
	AssertIdentity bool
	// From, when set, is the address the peer claims in the From header of
	// the requests it starts ("sip:ann@127.0.0.1:5072"), instead of its own:
	// a forged identity, to test that the bot grants nothing on it. URI
	// still returns the peer's own address, which AssertIdentity asserts.
	// The bot answers an unverified sender where its request came from, so
	// the peer still receives the replies.
	From string
	// Logger receives the peer's logs and those of its sipgo layers. Nil
	// discards them. (sipgo writes a few warnings, such as "TCP ref went
	// negative", to its global sip.DefaultLogger whatever this is.)
	Logger *slog.Logger
}

// Peer is an in-process SIP IM client for testing a bot. Create one with
// [NewPeer] (or [Start] outside tests). A Peer is safe for concurrent use.
type Peer struct {
	opts      Options
	log       *slog.Logger
	transport string // "UDP" or "TCP", as sipgo spells it
	network   string // "udp" or "tcp"
	addr      string // 127.0.0.1:port
	port      int
	laddr     sip.Addr
	aor       sip.Uri
	from      sip.Uri // what the From header claims: aor, or Options.From
	botURI    sip.Uri
	contact   sip.ContactHeader
	epid      string

	ua  *sipgo.UserAgent
	srv *sipgo.Server
	cli *sipgo.Client
	dua *sipgo.DialogUA

	pc        net.PacketConn
	udp       *packetConn // pc, for UDP
	ln        net.Listener
	serveDone chan struct{}

	closeOnce sync.Once
	closed    chan struct{}
	gate      sync.RWMutex // held shared while a request is sent, exclusively by Close
	closing   bool         // guarded by gate

	arrivals  arrivals
	abandoned sync.Map // Call-ID -> INVITE given up on (ctx ended before the answer)

	mu       sync.Mutex
	records  []record
	notify   chan struct{}          // closed and replaced whenever records change
	sessions map[dialogKey]*Session // open sessions
	incoming []*Session             // sessions the bot opened
	taken    int                    // incoming sessions returned by WaitSession
}

// NewPeer starts a peer configured by opts and listening on 127.0.0.1 on a
// free port. It stops the test with t.Fatal if the peer cannot start, and
// registers Close with t.Cleanup.
func NewPeer(t testing.TB, opts Options) *Peer {
	t.Helper()
	p, err := Start(opts)
	if err != nil {
		t.Fatalf("bottest: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// Start is NewPeer for code that has no testing.TB: it returns an error
// instead of failing a test, and the caller must Close the peer.
func Start(opts Options) (*Peer, error) {
	if opts.User == "" {
		opts.User = "alice"
	}
	if opts.Transport == "" {
		opts.Transport = UDP
	}
	opts.Transport = Transport(strings.ToLower(string(opts.Transport)))
	if opts.Transport != UDP && opts.Transport != TCP {
		return nil, fmt.Errorf("unsupported transport %q (want udp or tcp)", opts.Transport)
	}
	if opts.Bot == "" {
		return nil, errors.New("Options.Bot (the bot's address) is required")
	}
	if _, _, err := net.SplitHostPort(opts.Bot); err != nil {
		return nil, fmt.Errorf("Options.Bot %q: %w", opts.Bot, err)
	}
	if opts.BotURI == "" {
		opts.BotURI = "sip:bot@" + opts.Bot
	}
	if strings.ContainsAny(opts.User+opts.DisplayName, "\r\n\"<>") {
		return nil, errors.New("Options.User and DisplayName must not contain CR, LF, quotes or angle brackets")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	p := &Peer{
		opts:      opts,
		log:       log,
		network:   string(opts.Transport),
		transport: strings.ToUpper(string(opts.Transport)),
		closed:    make(chan struct{}),
		serveDone: make(chan struct{}),
		notify:    make(chan struct{}),
		sessions:  make(map[dialogKey]*Session),
	}
	p.arrivals.init(p.closed)
	var epid [5]byte
	rand.Read(epid[:])
	p.epid = hex.EncodeToString(epid[:])
	if err := sip.ParseUri(opts.BotURI, &p.botURI); err != nil {
		return nil, fmt.Errorf("Options.BotURI %q: %w", opts.BotURI, err)
	}
	if opts.From != "" {
		if err := sip.ParseUri(opts.From, &p.from); err != nil || p.from.Host == "" || strings.ContainsAny(opts.From, "\r\n") {
			return nil, fmt.Errorf("Options.From %q is not a SIP address such as sip:ann@127.0.0.1:5072", opts.From)
		}
	}

	var ready chan struct{}
	switch opts.Transport {
	case UDP:
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		p.udp = newPacketConn(pc)
		ready = p.udp.ready
		p.pc = p.udp
		p.addr = pc.LocalAddr().String()
	case TCP:
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		p.ln = ln
		p.addr = ln.Addr().String()
	}
	_, portStr, _ := net.SplitHostPort(p.addr)
	p.port, _ = strconv.Atoi(portStr)
	p.laddr = sip.Addr{IP: net.IPv4(127, 0, 0, 1), Port: p.port, Hostname: "127.0.0.1"}
	p.aor = sip.Uri{Scheme: "sip", User: opts.User, Host: "127.0.0.1", Port: p.port}
	if opts.From == "" {
		p.from = p.aor
	}
	p.contact = sip.ContactHeader{Address: sip.Uri{
		Scheme: "sip", User: opts.User, Host: "127.0.0.1", Port: p.port,
		UriParams: sip.HeaderParams{{K: "transport", V: p.network}},
	}}

	if err := p.setupUA(); err != nil {
		p.closeSockets()
		return nil, err
	}

	go func() {
		defer close(p.serveDone)
		var err error
		if p.pc != nil {
			err = p.srv.ServeUDP(p.pc)
		} else {
			err = p.srv.ServeTCP(p.ln)
		}
		if err != nil && !errors.Is(err, net.ErrClosed) {
			p.log.Error("bottest: serve", "error", err)
		}
	}()
	if ready != nil {
		// sipgo puts the UDP socket into its connection pool before it first
		// reads from it; requests that leave from the listening socket need it
		// there.
		select {
		case <-ready:
		case <-p.serveDone:
			p.Close()
			return nil, errors.New("UDP listener stopped before it started")
		}
	}
	return p, nil
}

func (p *Peer) setupUA() error {
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent(p.opts.User),
		sipgo.WithUserAgentHostname("127.0.0.1"),
		sipgo.WithUserAgentTransportLayerOptions(
			sip.WithTransportLayerLogger(p.log),
			// Refuse TCP dials once closing: see Close.
			sip.WithTransportLayerTransports(sip.TransportsConfig{TCP: &sip.TransportTCP{
				DialerCreate: func(laddr net.Addr) net.Dialer {
					return net.Dialer{Timeout: time.Minute, LocalAddr: laddr, Control: p.dialControl}
				},
			}}),
		),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(p.log),
			sip.WithTransactionLayerUnhandledResponseHandler(p.strayResponse),
		),
	)
	if err != nil {
		return err
	}
	p.ua = ua
	p.srv, err = sipgo.NewServer(ua, sipgo.WithServerLogger(p.log))
	if err != nil {
		ua.Close()
		return err
	}
	copts := []sipgo.ClientOption{
		sipgo.WithClientLogger(p.log),
		sipgo.WithClientHostname("127.0.0.1"),
		sipgo.WithClientPort(p.port),
	}
	if p.pc != nil {
		// UDP requests leave from the listening socket, so the bot's answers
		// and its own requests come back to the same address. (On TCP this
		// would try to bind a second socket to the listener's port.)
		copts = append(copts, sipgo.WithClientConnectionAddr(p.addr))
	}
	p.cli, err = sipgo.NewClient(ua, copts...)
	if err != nil {
		ua.Close()
		return err
	}
	p.dua = &sipgo.DialogUA{Client: p.cli, ContactHDR: p.contact}

	// Stamp every incoming request in the read goroutine, in wire order,
	// before sipgo hands it to a handler goroutine of its own.
	ua.TransportLayer().OnMessage(p.arrivals.stamp)

	p.srv.OnNoRoute(p.handleRequest)
	for _, m := range []sip.RequestMethod{sip.MESSAGE, sip.INFO, sip.BYE, sip.OPTIONS,
		sip.INVITE, sip.NOTIFY, sip.SUBSCRIBE, sip.REFER, sip.UPDATE, sip.PRACK, sip.PUBLISH, sip.CANCEL} {
		p.srv.OnRequest(m, p.handleRequest)
	}
	p.srv.OnAck(p.handleAck)
	return nil
}

// Addr returns the address the peer listens on, "127.0.0.1:port".
func (p *Peer) Addr() string { return p.addr }

// URI returns the peer's address-of-record, "sip:alice@127.0.0.1:port". It
// is the From of every request the peer sends, unless Options.From claims
// another.
func (p *Peer) URI() string { return p.aor.String() }

// Transport returns the transport the peer uses.
func (p *Peer) Transport() Transport { return p.opts.Transport }

// Contact returns the peer's Contact URI,
// "sip:alice@127.0.0.1:port;transport=udp".
func (p *Peer) Contact() string { return p.contact.Address.String() }

// Close stops the peer: open sessions end quietly (no BYE is sent), the
// sockets and the sipgo user agent are closed, and pending Wait calls
// return. Requests of the peer that are still waiting for a response fail.
// Close is idempotent and returns once sipgo has let go of the sockets.
func (p *Peer) Close() {
	p.closeOnce.Do(func() {
		close(p.closed)
		// No new outgoing request from here on (see enter).
		p.gate.Lock()
		p.closing = true
		p.gate.Unlock()

		p.mu.Lock()
		sessions := make([]*Session, 0, len(p.sessions))
		for _, s := range p.sessions {
			sessions = append(sessions, s)
		}
		p.mu.Unlock()
		for _, s := range sessions {
			s.end()
		}

		// sipgo handles each request in a goroutine of its own, which looks up
		// the connection to answer on. If that goroutine runs after the socket
		// is closed (and unpooled), sipgo opens a new UDP socket that nothing
		// ever closes. So: stop taking datagrams in, let the requests already
		// read reach their handlers, and only then close.
		if p.udp != nil {
			p.udp.drain()
			if !p.arrivals.waitPending(closeGrace) {
				p.log.Warn("bottest: closing with requests still on their way to a handler")
			}
		}
		p.closeSockets()
		<-p.serveDone
		p.ua.Close()
	})
}

// closeGrace bounds how long Close waits for requests already read to reach
// their handlers; it is only reached if sipgo drops a request on the way.
const closeGrace = 2 * time.Second

// enter reports whether the peer may still send; if so the caller must call
// leave once the request is on its way (sipgo has picked its connection).
// Close waits for those in progress.
func (p *Peer) enter() bool {
	p.gate.RLock()
	if p.closing {
		p.gate.RUnlock()
		return false
	}
	return true
}

func (p *Peer) leave() { p.gate.RUnlock() }

func (p *Peer) closeSockets() {
	if p.pc != nil {
		p.pc.Close()
	}
	if p.ln != nil {
		p.ln.Close()
	}
}

func (p *Peer) isClosed() bool {
	select {
	case <-p.closed:
		return true
	default:
		return false
	}
}

// errClosed is returned by operations on a closed peer.
var errClosed = errors.New("bottest: peer closed")

// prepare routes an outgoing request straight to the bot over the peer's
// transport, leaving from the listening socket on UDP, and asserts the
// peer's identity on it when Options.AssertIdentity is set.
func (p *Peer) prepare(req *sip.Request) {
	if p.opts.AssertIdentity && req.Method != sip.ACK && req.Method != sip.CANCEL &&
		req.GetHeader("P-Asserted-Identity") == nil {
		pai := "<" + p.aor.String() + ">"
		if p.opts.DisplayName != "" {
			pai = `"` + p.opts.DisplayName + `" ` + pai
		}
		req.AppendHeader(sip.NewHeader("P-Asserted-Identity", pai))
	}
	req.SetDestination(p.opts.Bot)
	req.SetTransport(p.transport)
	if p.pc != nil {
		p.laddr.Copy(&req.Laddr)
	}
}

// newFrom returns a From header for the peer's AOR (or the address
// Options.From claims) with a fresh tag.
func (p *Peer) newFrom() *sip.FromHeader {
	from := &sip.FromHeader{DisplayName: p.opts.DisplayName, Address: *p.from.Clone()}
	from.Params = sip.NewParams()
	from.Params.Add("tag", sip.GenerateTagN(16))
	return from
}

// strayResponse handles responses sipgo could not match to a transaction.
// Final responses to an INVITE the peer gave up on are ACKed, and a 2xx is
// followed by a BYE, so that the bot does not keep a half-open dialog.
func (p *Peer) strayResponse(res *sip.Response) {
	cseq, callID := res.CSeq(), res.CallID()
	if cseq == nil || callID == nil || cseq.MethodName != sip.INVITE || res.IsProvisional() {
		return
	}
	v, ok := p.abandoned.Load(callID.Value())
	if !ok {
		return
	}
	inv := v.(*sip.Request)
	if !p.enter() {
		return
	}
	defer p.leave()
	build := func(method sip.RequestMethod, seq uint32) *sip.Request {
		target := inv.Recipient
		if c := res.Contact(); c != nil && res.IsSuccess() {
			target = c.Address
		}
		req := sip.NewRequest(method, target)
		if method == sip.ACK && !res.IsSuccess() {
			// The ACK of a non-2xx belongs to the INVITE's transaction.
			req.AppendHeader(sip.HeaderClone(inv.Via()))
		} else {
			via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: p.transport,
				Host: "127.0.0.1", Port: p.port, Params: sip.NewParams()}
			via.Params.Add("branch", sip.GenerateBranch())
			req.AppendHeader(via)
		}
		mf := sip.MaxForwardsHeader(70)
		req.AppendHeader(&mf)
		req.AppendHeader(sip.HeaderClone(inv.From()))
		req.AppendHeader(sip.HeaderClone(res.To()))
		req.AppendHeader(sip.HeaderClone(inv.CallID()))
		req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: method})
		req.SetBody(nil)
		p.prepare(req)
		return req
	}
	asIs := func(*sipgo.Client, *sip.Request) error { return nil }
	seq := inv.CSeq().SeqNo
	if err := p.cli.WriteRequest(build(sip.ACK, seq), asIs); err != nil {
		p.log.Debug("bottest: ACK of an abandoned INVITE", "error", err)
	}
	if res.IsSuccess() {
		p.abandoned.Delete(callID.Value())
		if err := p.cli.WriteRequest(build(sip.BYE, seq+1), asIs); err != nil {
			p.log.Debug("bottest: BYE of an abandoned INVITE", "error", err)
		}
	}
}
