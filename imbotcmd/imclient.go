package imbotcmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/internal/imcodec"
)

// imClientConfig configures an imClient.
type imClientConfig struct {
	// To is the bot's SIP address, such as sip:imbot@127.0.0.1:5060 (";transport=tcp" picks
	// TCP).
	To string
	// From is the client's own address; default sip:<$USER or "you">@<listen host>:<port>.
	From string
	// Listen is the host or host:port the client binds on UDP and TCP; default 127.0.0.1:0.
	Listen string
	// Username and Password answer the bot's digest challenges; no password: none answered.
	Username, Password string
	// OnEvent receives what the bot sends: texts, typing, the end of the session. It is
	// called from sipgo's goroutines.
	OnEvent func(imEvent)
	// Logger receives sipgo's logs; nil discards them.
	Logger *slog.Logger
}

// imEventKind says what the bot sent.
type imEventKind int

const (
	imText   imEventKind = iota + 1 // a message
	imTyping                        // typing started (Active) or stopped
	imBye                           // the bot ended the session
)

// imEvent is one thing the bot sent.
type imEvent struct {
	Kind   imEventKind
	Text   string
	Active bool
}

// statusError is a final non-2xx answer to one of the client's requests.
type statusError struct {
	Method  sip.RequestMethod
	Code    int
	Reason  string
	Warning string // the text of the Warning header, if any
}

func (e *statusError) Error() string {
	s := fmt.Sprintf("%s answered %d %s", e.Method, e.Code, e.Reason)
	if e.Warning != "" {
		s += ": " + e.Warning
	}
	return s
}

func newStatusError(method sip.RequestMethod, res *sip.Response) *statusError {
	e := &statusError{Method: method, Code: res.StatusCode, Reason: res.Reason}
	if h := res.GetHeader("Warning"); h != nil {
		// 399 host "text": keep the text.
		v := h.Value()
		if i := strings.IndexByte(v, '"'); i >= 0 {
			v = strings.Trim(v[i:], `"`)
		}
		e.Warning = v
	}
	return e
}

// imClient is a small SIP IM user agent for the terminal: it listens on UDP and TCP, sends
// page-mode MESSAGEs or opens an IM session with one bot, answers the bot's requests and
// reports what the bot sends.
type imClient struct {
	cfg     imClientConfig
	log     *slog.Logger
	host    string
	port    int
	network string // toward the bot: "udp" or "tcp"
	from    sip.Uri
	to      sip.Uri
	dest    string // host:port the requests go to
	contact sip.ContactHeader
	epid    string

	ua  *sipgo.UserAgent
	srv *sipgo.Server
	cli *sipgo.Client
	dua *sipgo.DialogUA

	udp   *readyConn
	tcp   net.Listener
	serve sync.WaitGroup

	mu    sync.Mutex
	dlg   *sipgo.DialogClientSession // the open IM session, if any
	ended chan struct{}              // closed when the session ends
}

// defaultUser is the user part of the default From: $USER, or "you".
func defaultUser() string {
	u := os.Getenv("USER")
	if u == "" || strings.ContainsAny(u, "@:;<>\" \t\r\n") {
		return "you"
	}
	return u
}

// parseSIPAddress parses a SIP address, adding "sip:" when it is missing.
func parseSIPAddress(s string) (sip.Uri, error) {
	var u sip.Uri
	if !strings.HasPrefix(strings.ToLower(s), "sip:") && !strings.HasPrefix(strings.ToLower(s), "sips:") {
		s = "sip:" + s
	}
	if err := sip.ParseUri(s, &u); err != nil || u.Host == "" || strings.ContainsAny(s, "\r\n") {
		return u, fmt.Errorf("%q is not a SIP address such as sip:imbot@127.0.0.1:5060", s)
	}
	return u, nil
}

// startIMClient binds the sockets and starts serving the bot's requests. Close releases
// them.
func startIMClient(cfg imClientConfig) (*imClient, error) {
	c := &imClient{cfg: cfg, log: cfg.Logger, ended: make(chan struct{})}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if c.to, err = parseSIPAddress(cfg.To); err != nil {
		return nil, fmt.Errorf("--to: %w", err)
	}
	c.network = "udp"
	if t, ok := c.to.UriParams.Get("transport"); ok && t != "" {
		c.network = strings.ToLower(t)
	}
	if c.network != "udp" && c.network != "tcp" {
		return nil, fmt.Errorf("--to: transport %q: only udp and tcp are supported", c.network)
	}
	c.dest = c.to.HostPort()
	if c.to.Port == 0 {
		c.dest = net.JoinHostPort(c.to.Host, "5060")
	}

	listen := cfg.Listen
	if listen == "" {
		listen = "127.0.0.1"
	}
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		host, portStr = listen, "0"
	}
	if net.ParseIP(host) == nil {
		return nil, fmt.Errorf("--listen %q: want an IP address, optionally with :port", listen)
	}
	c.host = host
	if err := c.bind(host, portStr); err != nil {
		return nil, err
	}
	if cfg.From == "" {
		c.from = sip.Uri{Scheme: "sip", User: defaultUser(), Host: host, Port: c.port}
	} else if c.from, err = parseSIPAddress(cfg.From); err != nil {
		c.closeSockets()
		return nil, fmt.Errorf("--from: %w", err)
	}
	c.contact = sip.ContactHeader{Address: sip.Uri{
		Scheme: "sip", User: c.from.User, Host: host, Port: c.port,
		UriParams: sip.HeaderParams{{K: "transport", V: c.network}},
	}}
	c.epid = sip.GenerateTagN(10)
	if err := c.setup(); err != nil {
		c.closeSockets()
		return nil, err
	}
	c.serve.Add(2)
	go func() {
		defer c.serve.Done()
		if err := c.srv.ServeUDP(c.udp); err != nil && !errors.Is(err, net.ErrClosed) {
			c.log.Debug("serve udp", "error", err)
		}
	}()
	go func() {
		defer c.serve.Done()
		if err := c.srv.ServeTCP(c.tcp); err != nil && !errors.Is(err, net.ErrClosed) {
			c.log.Debug("serve tcp", "error", err)
		}
	}()
	// sipgo pools the UDP socket when it first reads from it; requests leave from it.
	<-c.udp.ready
	return c, nil
}

// bind opens UDP and TCP on the same port (a free one for port 0).
func (c *imClient) bind(host, port string) error {
	var lastErr error
	for range 5 {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, port))
		if err != nil {
			return fmt.Errorf("listen udp: %w", err)
		}
		_, p, _ := net.SplitHostPort(pc.LocalAddr().String())
		ln, err := net.Listen("tcp", net.JoinHostPort(host, p))
		if err != nil {
			pc.Close()
			lastErr = err
			if port != "0" {
				break
			}
			continue // another program has that TCP port: try another
		}
		c.udp = &readyConn{PacketConn: pc, ready: make(chan struct{})}
		c.tcp = ln
		c.port, _ = strconv.Atoi(p)
		return nil
	}
	return fmt.Errorf("listen tcp: %w", lastErr)
}

func (c *imClient) setup() error {
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent("imbot-chat"),
		sipgo.WithUserAgentHostname(c.host),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(c.log)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(c.log)),
	)
	if err != nil {
		return fmt.Errorf("sip user agent: %w", err)
	}
	c.ua = ua
	if c.srv, err = sipgo.NewServer(ua, sipgo.WithServerLogger(c.log)); err != nil {
		ua.Close()
		return fmt.Errorf("sip server: %w", err)
	}
	opts := []sipgo.ClientOption{
		sipgo.WithClientLogger(c.log),
		sipgo.WithClientHostname(c.host),
		sipgo.WithClientPort(c.port),
	}
	if c.network == "udp" {
		// Requests leave from the listening socket: a bot answers page mode where the
		// request came from.
		opts = append(opts, sipgo.WithClientConnectionAddr(net.JoinHostPort(c.host, strconv.Itoa(c.port))))
	}
	if c.cli, err = sipgo.NewClient(ua, opts...); err != nil {
		ua.Close()
		return fmt.Errorf("sip client: %w", err)
	}
	c.dua = &sipgo.DialogUA{Client: c.cli, ContactHDR: c.contact}
	for _, m := range []sip.RequestMethod{sip.MESSAGE, sip.INFO, sip.BYE, sip.OPTIONS, sip.INVITE, sip.NOTIFY} {
		c.srv.OnRequest(m, c.handle)
	}
	c.srv.OnNoRoute(c.handle)
	return nil
}

// Addr returns the client's address, host:port (UDP and TCP).
func (c *imClient) Addr() string { return net.JoinHostPort(c.host, strconv.Itoa(c.port)) }

// From returns the client's own SIP address.
func (c *imClient) From() string { return c.from.String() }

// Close releases the sockets. It does not end an open session: see Bye.
func (c *imClient) Close() {
	c.closeSockets()
	c.serve.Wait()
	c.ua.Close()
}

func (c *imClient) closeSockets() {
	if c.udp != nil {
		c.udp.Close()
	}
	if c.tcp != nil {
		c.tcp.Close()
	}
}

// handle answers a request of the bot and reports what it carried.
func (c *imClient) handle(req *sip.Request, tx sip.ServerTransaction) {
	respond := func(code int, reason string) {
		if err := tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil)); err != nil {
			c.log.Debug("respond", "error", err)
		}
	}
	switch req.Method {
	case sip.BYE:
		dlg := c.session(req)
		if dlg == nil {
			respond(481, "Call/Transaction Does Not Exist")
			return
		}
		if err := dlg.ReadBye(req, tx); err != nil {
			c.log.Debug("BYE", "error", err)
		}
		if c.endSession() {
			c.emit(imEvent{Kind: imBye})
		}
	case sip.MESSAGE, sip.INFO:
		if to := req.To(); to != nil {
			if _, inDialog := to.Params.Get("tag"); inDialog && c.session(req) == nil {
				respond(481, "Call/Transaction Does Not Exist")
				return
			}
		}
		ev, ok := decodeIM(req)
		respond(200, "OK")
		if ok {
			c.emit(ev)
		}
	case sip.OPTIONS, sip.NOTIFY:
		respond(200, "OK")
	case sip.INVITE:
		respond(480, "Temporarily Unavailable") // the terminal opens its sessions itself
	default:
		respond(405, "Method Not Allowed")
	}
}

// decodeIM turns a MESSAGE or INFO body into an event: a text, or typing (RFC 3994
// isComposing, or the Microsoft dialect's KeyboardActivity).
func decodeIM(req *sip.Request) (imEvent, bool) {
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = h.Value()
	}
	mt, _ := imcodec.MediaType(ct)
	switch mt {
	case imcodec.TypeIsComposing:
		st, err := imcodec.ParseIsComposing(req.Body())
		return imEvent{Kind: imTyping, Active: st.Active}, err == nil
	case imcodec.TypeKeyboard:
		active, err := imcodec.ParseKeyboardActivity(req.Body())
		return imEvent{Kind: imTyping, Active: active}, err == nil
	}
	if req.Method != sip.MESSAGE || mt == imcodec.TypeIMDN {
		return imEvent{}, false // delivery notifications are not shown
	}
	t, err := imcodec.DecodeText(ct, req.Body())
	if err != nil {
		return imEvent{Kind: imText, Text: fmt.Sprintf("[a %s message this terminal cannot show]", mt)}, true
	}
	return imEvent{Kind: imText, Text: t.Plain}, true
}

func (c *imClient) emit(ev imEvent) {
	if c.cfg.OnEvent != nil {
		c.cfg.OnEvent(ev)
	}
}

// session returns the open session when req belongs to it.
func (c *imClient) session(req *sip.Request) *sipgo.DialogClientSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dlg == nil || req.CallID() == nil || req.CallID().Value() != c.dlg.InviteRequest.CallID().Value() {
		return nil
	}
	return c.dlg
}

// endSession forgets the open session; it reports whether there was one.
func (c *imClient) endSession() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dlg == nil {
		return false
	}
	c.dlg = nil
	close(c.ended)
	return true
}

// Ended returns a channel closed when the session (see Open) ends.
func (c *imClient) Ended() <-chan struct{} { return c.ended }

// newFrom returns the From header of a new request, with a fresh tag.
func (c *imClient) newFrom() *sip.FromHeader {
	from := &sip.FromHeader{Address: *c.from.Clone(), Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	return from
}

// route sends a request straight to the bot over the chosen transport.
func (c *imClient) route(req *sip.Request) {
	req.SetDestination(c.dest)
	req.SetTransport(strings.ToUpper(c.network))
}

// do sends an out-of-dialog request and returns its final response, answering one digest
// challenge when credentials are set. A non-2xx answer is a *statusError.
func (c *imClient) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	res, err := c.cli.Do(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", req.Method, err)
	}
	if (res.StatusCode == 401 || res.StatusCode == 407) && c.cfg.Password != "" {
		res, err = c.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: c.cfg.Username, Password: c.cfg.Password})
		if err != nil {
			return nil, fmt.Errorf("%s with credentials: %w", req.Method, err)
		}
	}
	if !res.IsSuccess() {
		return res, newStatusError(req.Method, res)
	}
	return res, nil
}

// Register binds the client's address of record (From) to its Contact at a registrar, for
// expires (0 removes the binding), answering a digest challenge with the credentials. The
// registrar must be reached over the transport used toward the bot.
func (c *imClient) Register(ctx context.Context, registrar string, expires time.Duration) error {
	reg, err := parseSIPAddress(registrar)
	if err != nil {
		return fmt.Errorf("--registrar: %w", err)
	}
	network := "udp"
	if t, ok := reg.UriParams.Get("transport"); ok && t != "" {
		network = strings.ToLower(t)
	}
	if network != c.network {
		return fmt.Errorf("--registrar: transport %s, but the bot is reached over %s: use the same", network, c.network)
	}
	dest := reg.HostPort()
	if reg.Port == 0 {
		dest = net.JoinHostPort(reg.Host, "5060")
	}
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: reg.Scheme, Host: reg.Host, Port: reg.Port})
	req.AppendHeader(c.newFrom())
	aor := *c.from.Clone()
	req.AppendHeader(&sip.ToHeader{Address: aor})
	req.AppendHeader(sip.HeaderClone(&c.contact))
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	req.SetDestination(dest)
	req.SetTransport(strings.ToUpper(network))
	_, err = c.do(ctx, req)
	return err
}

// acceptTypes are what the client can show: text, and typing in both dialects.
const acceptTypes = "text/plain, application/im-iscomposing+xml"

// SendPage sends text in a page-mode MESSAGE (RFC 3428).
func (c *imClient) SendPage(ctx context.Context, text string) (*sip.Response, error) {
	return c.sendPage(ctx, "text/plain;charset=UTF-8", []byte(text))
}

// sendPage sends a page-mode MESSAGE with a body.
func (c *imClient) sendPage(ctx context.Context, contentType string, body []byte) (*sip.Response, error) {
	req := sip.NewRequest(sip.MESSAGE, *c.to.Clone())
	req.AppendHeader(c.newFrom())
	req.AppendHeader(&sip.ToHeader{Address: *c.to.Clone()})
	req.AppendHeader(sip.NewHeader("Accept", acceptTypes))
	ct := sip.ContentTypeHeader(contentType)
	req.AppendHeader(&ct)
	req.SetBody(body)
	c.route(req)
	return c.do(ctx, req)
}

// Open opens an IM session in the Microsoft dialect, as Lync does: an INVITE offering
// "m=message <port> sip null", with ms-sender support, an endpoint ID and a conversation ID.
func (c *imClient) Open(ctx context.Context) error {
	inv := sip.NewRequest(sip.INVITE, *c.to.Clone())
	from := c.newFrom()
	from.Params.Add("epid", c.epid)
	inv.AppendHeader(from)
	inv.AppendHeader(&sip.ToHeader{Address: *c.to.Clone()})
	inv.AppendHeader(sip.HeaderClone(&c.contact))
	inv.AppendHeader(sip.NewHeader("Supported", "ms-sender"))
	inv.AppendHeader(sip.NewHeader("Supported", "ms-renders-mime-alternative"))
	inv.AppendHeader(sip.NewHeader("Ms-Conversation-ID", sip.GenerateTagN(16)))
	inv.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, MESSAGE, INFO, OPTIONS"))
	ct := sip.ContentTypeHeader(imcodec.TypeSDP)
	inv.AppendHeader(&ct)
	inv.SetBody(imcodec.Answer(c.host, c.port, "null",
		[]string{"text/plain", "application/im-iscomposing+xml", "application/xml"}, false))
	c.route(inv)

	dlg, err := c.dua.WriteInvite(ctx, inv)
	if err != nil {
		return fmt.Errorf("INVITE: %w", err)
	}
	c.mu.Lock()
	c.dlg = dlg // before the answer: the bot may write before its 200 arrives
	c.mu.Unlock()
	err = dlg.WaitAnswer(ctx, sipgo.AnswerOptions{Username: c.cfg.Username, Password: c.cfg.Password})
	if err != nil {
		c.forget(dlg)
		var de *sipgo.ErrDialogResponse
		if errors.As(err, &de) {
			return newStatusError(sip.INVITE, de.Res)
		}
		return fmt.Errorf("INVITE: %w", err)
	}
	if err := dlg.Ack(ctx); err != nil {
		c.forget(dlg)
		return fmt.Errorf("ACK: %w", err)
	}
	return nil
}

// forget drops a session that did not start.
func (c *imClient) forget(dlg *sipgo.DialogClientSession) {
	c.mu.Lock()
	if c.dlg == dlg {
		c.dlg = nil
	}
	c.mu.Unlock()
	_ = dlg.Close()
}

// errNoSession is returned when sending in a session that has ended.
var errNoSession = errors.New("the session has ended")

// SendInSession sends text in an in-dialog MESSAGE.
func (c *imClient) SendInSession(ctx context.Context, text string) error {
	return c.doInSession(ctx, sip.MESSAGE, "text/plain;charset=UTF-8", []byte(text))
}

// typingRefresh is the refresh interval announced in an "active" isComposing indication.
const typingRefresh = 60 * time.Second

// SendTypingPage tells the bot that the user started (active) or stopped typing, in a
// page-mode MESSAGE with an RFC 3994 isComposing document (state "active" with refresh 60,
// or "idle").
func (c *imClient) SendTypingPage(ctx context.Context, active bool) error {
	_, err := c.sendPage(ctx, imcodec.TypeIsComposing, imcodec.IsComposing(active, typingRefresh))
	return err
}

// SendTypingInSession tells the bot that the user started (active) or stopped typing, in
// the open session's dialect, the Microsoft one: an INFO with a KeyboardActivity document
// (status "type" or "idle"), as Lync sends it.
func (c *imClient) SendTypingInSession(ctx context.Context, active bool) error {
	return c.doInSession(ctx, sip.INFO, imcodec.TypeKeyboard, imcodec.KeyboardActivity(active))
}

// doInSession sends a request with a body in the open session. A 481 answer means that the
// bot forgot the session: it ends here too.
func (c *imClient) doInSession(ctx context.Context, method sip.RequestMethod, contentType string, body []byte) error {
	c.mu.Lock()
	dlg := c.dlg
	c.mu.Unlock()
	if dlg == nil {
		return errNoSession
	}
	req := sip.NewRequest(method, c.target(dlg))
	ct := sip.ContentTypeHeader(contentType)
	req.AppendHeader(&ct)
	req.SetBody(body)
	res, err := dlg.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	if !res.IsSuccess() {
		if res.StatusCode == 481 && c.endSession() {
			c.emit(imEvent{Kind: imBye})
		}
		return newStatusError(method, res)
	}
	return nil
}

// target is the remote target of the session: the bot's Contact.
func (c *imClient) target(dlg *sipgo.DialogClientSession) sip.Uri {
	if res := dlg.InviteResponse; res != nil {
		if ct := res.Contact(); ct != nil {
			return *ct.Address.Clone()
		}
	}
	return *c.to.Clone()
}

// Bye ends the open session, if any, and waits for the bot's answer.
func (c *imClient) Bye(ctx context.Context) error {
	c.mu.Lock()
	dlg := c.dlg
	c.mu.Unlock()
	if dlg == nil || !c.endSession() {
		return nil
	}
	defer dlg.Close()
	if err := dlg.Bye(ctx); err != nil {
		return fmt.Errorf("BYE: %w", err)
	}
	return nil
}

// readyConn is the client's UDP socket; ready is closed when sipgo first reads from it.
type readyConn struct {
	net.PacketConn
	once  sync.Once
	ready chan struct{}
}

// ReadFrom implements net.PacketConn.
func (c *readyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.once.Do(func() { close(c.ready) })
	return c.PacketConn.ReadFrom(b)
}
