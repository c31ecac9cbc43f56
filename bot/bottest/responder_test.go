package bottest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// responder is a minimal sipgo bot for testing the kit:
//
//   - page mode: answers MESSAGE 200; echoes a text as a page MESSAGE
//     "echo: <text>", preceded by an RFC 3994 "active" notice when the
//     MESSAGE had an Accept listing application/im-iscomposing+xml;
//   - sessions: answers an INVITE offering m=message with 200 and an SDP
//     answer (488 otherwise; Request-URI user "busy": 486; "slow": 180,
//     then nothing until CANCEL);
//     echoes in-dialog texts, each preceded by a typing notice in the
//     session's dialect (KeyboardActivity INFO when the INVITE had
//     Ms-Conversation-ID, isComposing MESSAGE otherwise); sends BYE after
//     answering the text "bye"; answers INFO 200, BYE 200 and requests
//     for unknown dialogs 481;
//   - it records what it receives, and the status of what it sends.
type responder struct {
	addr      string
	transport string
	ua        *sipgo.UserAgent
	cli       *sipgo.Client
	dua       *sipgo.DialogUA
	pc        net.PacketConn
	ln        net.Listener
	serveDone chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	mu       sync.Mutex
	closing  bool // Close began: no new goroutine is started (go_)
	received []*sip.Request
	sent     []sentReq
	sentCh   chan struct{}         // closed and replaced when sent grows
	dialogs  map[string]*uasDialog // Call-ID -> dialog
	uac      map[string]*sipgo.DialogClientSession
	cancels  chan struct{} // one value per CANCELled INVITE
	acks     chan struct{} // one value per ACKed 487
}

type uasDialog struct {
	dlg   *sipgo.DialogServerSession
	ms    bool
	ended atomic.Bool // set before answering BYE: sipgo's ReadBye answers before it marks the dialog ended
}

type sentReq struct {
	method, contentType string
	status              int
}

// startResponder starts a responder on 127.0.0.1 over "udp" or "tcp". The
// caller must close it.
func startResponder(transport string) (*responder, error) {
	r := &responder{
		transport: transport,
		serveDone: make(chan struct{}),
		dialogs:   map[string]*uasDialog{},
		uac:       map[string]*sipgo.DialogClientSession{},
		cancels:   make(chan struct{}, 16),
		acks:      make(chan struct{}, 16),
		sentCh:    make(chan struct{}),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	var port int
	var ready chan struct{}
	if transport == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ready = make(chan struct{})
		r.pc, r.addr = &readyConn{PacketConn: pc, ready: ready}, pc.LocalAddr().String()
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		r.ln, r.addr = ln, ln.Addr().String()
	}
	_, ps, _ := net.SplitHostPort(r.addr)
	port, _ = strconv.Atoi(ps)

	log := slog.New(slog.DiscardHandler)
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("bot"), sipgo.WithUserAgentHostname("127.0.0.1"),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log)))
	if err != nil {
		return nil, err
	}
	r.ua = ua
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(log))
	if err != nil {
		return nil, err
	}
	copts := []sipgo.ClientOption{sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientPort(port),
		sipgo.WithClientLogger(log)}
	if transport == "udp" {
		copts = append(copts, sipgo.WithClientConnectionAddr(r.addr))
	}
	r.cli, err = sipgo.NewClient(ua, copts...)
	if err != nil {
		return nil, err
	}
	r.dua = &sipgo.DialogUA{Client: r.cli, ContactHDR: sip.ContactHeader{Address: sip.Uri{
		Scheme: "sip", User: "bot", Host: "127.0.0.1", Port: port,
		UriParams: sip.HeaderParams{{K: "transport", V: transport}},
	}}}

	srv.OnMessage(r.onMessage)
	srv.OnInvite(r.onInvite)
	srv.OnAck(r.onAck)
	srv.OnBye(r.onBye)
	srv.OnInfo(r.onInfo)

	go func() {
		defer close(r.serveDone)
		if r.pc != nil {
			srv.ServeUDP(r.pc)
		} else {
			srv.ServeTCP(r.ln)
		}
	}()
	if ready != nil {
		<-ready // sipgo pools the UDP listener before it first reads from it
	}
	return r, nil
}

type readyConn struct {
	net.PacketConn
	once  sync.Once
	ready chan struct{}
}

func (c *readyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.once.Do(func() { close(c.ready) })
	return c.PacketConn.ReadFrom(b)
}

func (r *responder) Close() {
	r.mu.Lock()
	r.closing = true // wg.Add must not race wg.Wait
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	if r.pc != nil {
		r.pc.Close()
	}
	if r.ln != nil {
		r.ln.Close()
	}
	<-r.serveDone
	r.ua.Close()
}

func (r *responder) record(req *sip.Request) {
	r.mu.Lock()
	r.received = append(r.received, req.Clone())
	r.mu.Unlock()
}

// Received returns the requests the responder received with this method.
func (r *responder) Received(method sip.RequestMethod) []*sip.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*sip.Request
	for _, req := range r.received {
		if req.Method == method {
			out = append(out, req)
		}
	}
	return out
}

// Sent waits until the responder has sent n requests and got their
// answers, and returns them all.
func (r *responder) Sent(ctx context.Context, n int) []sentReq {
	for {
		r.mu.Lock()
		sent, ch := append([]sentReq(nil), r.sent...), r.sentCh
		r.mu.Unlock()
		if len(sent) >= n {
			return sent
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return sent
		}
	}
}

func (r *responder) go_(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
}

func respond(req *sip.Request, tx sip.ServerTransaction, code int, reason string) {
	tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
}

func isText(req *sip.Request) bool {
	ct := req.ContentType()
	return ct != nil && strings.HasPrefix(strings.ToLower(ct.Value()), "text/plain")
}

func (r *responder) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	r.record(req)
	if _, inDialog := req.To().Params.Get("tag"); inDialog {
		if r.uacDialog(req) != nil {
			respond(req, tx, 200, "OK")
			return
		}
		d := r.dialog(req)
		if d == nil {
			respond(req, tx, 481, "Call/Transaction Does Not Exist")
			return
		}
		respond(req, tx, 200, "OK")
		if !isText(req) {
			return
		}
		text := string(req.Body())
		r.go_(func() {
			if d.ms {
				r.sendInDialog(d, sip.INFO, "application/xml",
					`<?xml version="1.0"?><KeyboardActivity><status status="type" /></KeyboardActivity>`)
			} else {
				r.sendInDialog(d, sip.MESSAGE, "application/im-iscomposing+xml",
					`<?xml version="1.0" encoding="UTF-8"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state><refresh>60</refresh></isComposing>`)
			}
			r.sendInDialog(d, sip.MESSAGE, "text/plain;charset=UTF-8", "echo: "+text)
			if text == "bye" {
				ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
				defer cancel()
				d.ended.Store(true)
				d.dlg.Bye(ctx)
			}
		})
		return
	}
	respond(req, tx, 200, "OK")
	if !isText(req) {
		return
	}
	text := string(req.Body())
	from := req.From().Address
	tp := req.Transport()
	composing := false
	for _, h := range req.GetHeaders("Accept") {
		composing = composing || strings.Contains(h.Value(), "application/im-iscomposing+xml")
	}
	r.go_(func() {
		if composing {
			r.sendPage(from, tp, "application/im-iscomposing+xml",
				`<?xml version="1.0" encoding="UTF-8"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state></isComposing>`)
		}
		r.sendPage(from, tp, "text/plain;charset=UTF-8", "echo: "+text)
	})
}

func (r *responder) sendPage(to sip.Uri, transport, ctype, body string) {
	req := sip.NewRequest(sip.MESSAGE, to)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "bot", Host: r.addr[:strings.LastIndex(r.addr, ":")]}}
	from.Params = sip.NewParams()
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: to})
	ct := sip.ContentTypeHeader(ctype)
	req.AppendHeader(&ct)
	req.SetBody([]byte(body))
	req.SetTransport(transport)
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
	defer cancel()
	res, err := r.cli.Do(ctx, req)
	r.noteSent(req, res, err)
}

func (r *responder) sendInDialog(d *uasDialog, method sip.RequestMethod, ctype, body string) (*sip.Response, error) {
	req := sip.NewRequest(method, d.dlg.InviteRequest.Contact().Address)
	ct := sip.ContentTypeHeader(ctype)
	req.AppendHeader(&ct)
	req.SetBody([]byte(body))
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
	defer cancel()
	res, err := d.dlg.Do(ctx, req)
	r.noteSent(req, res, err)
	return res, err
}

// SendInDialog sends a MESSAGE in the dialog with this Call-ID, even if it
// has ended.
func (r *responder) SendInDialog(callID, text string) (*sip.Response, error) {
	r.mu.Lock()
	d := r.dialogs[callID]
	r.mu.Unlock()
	if d == nil {
		return nil, errors.New("no such dialog")
	}
	return r.sendInDialog(d, sip.MESSAGE, "text/plain;charset=UTF-8", text)
}

func (r *responder) noteSent(req *sip.Request, res *sip.Response, err error) {
	s := sentReq{method: string(req.Method), contentType: req.ContentType().Value()}
	if err == nil {
		s.status = res.StatusCode
	}
	r.mu.Lock()
	r.sent = append(r.sent, s)
	close(r.sentCh)
	r.sentCh = make(chan struct{})
	r.mu.Unlock()
}

func (r *responder) dialog(req *sip.Request) *uasDialog {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.dialogs[req.CallID().Value()]
	if d == nil || d.ended.Load() || d.dlg.LoadState() == sip.DialogStateEnded {
		return nil
	}
	return d
}

func (r *responder) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	r.record(req)
	if req.Recipient.User == "busy" {
		respond(req, tx, 486, "Busy Here")
		return
	}
	if req.Recipient.User == "slow" {
		tx.OnCancel(func(*sip.Request) { r.cancels <- struct{}{} })
		respond(req, tx, 180, "Ringing")
		select {
		case <-tx.Acks(): // the ACK of the 487 that follows the CANCEL
			r.acks <- struct{}{}
		case <-tx.Done():
		}
		return
	}
	dlg, err := r.dua.ReadInvite(req, tx)
	if err != nil {
		respond(req, tx, 400, "Bad Request")
		return
	}
	if !strings.Contains(string(req.Body()), "m=message ") {
		dlg.Respond(488, "Not Acceptable Here", nil)
		return
	}
	d := &uasDialog{dlg: dlg, ms: req.GetHeader("Ms-Conversation-ID") != nil}
	r.mu.Lock()
	r.dialogs[req.CallID().Value()] = d
	r.mu.Unlock()
	answer := fmt.Sprintf("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=session\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=message %d sip sip:bot@127.0.0.1\r\na=accept-types:text/plain application/im-iscomposing+xml\r\n",
		r.dua.ContactHDR.Address.Port)
	ct := sip.ContentTypeHeader("application/sdp")
	dlg.Respond(200, "OK", []byte(answer), &ct) // blocks until ACK
}

func (r *responder) onAck(req *sip.Request, tx sip.ServerTransaction) {
	r.mu.Lock()
	d := r.dialogs[req.CallID().Value()]
	r.mu.Unlock()
	if d != nil {
		d.dlg.ReadAck(req, tx)
	}
}

func (r *responder) uacDialog(req *sip.Request) *sipgo.DialogClientSession {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.uac[req.CallID().Value()]
}

func (r *responder) onBye(req *sip.Request, tx sip.ServerTransaction) {
	r.record(req)
	if d := r.uacDialog(req); d != nil {
		d.ReadBye(req, tx)
		return
	}
	d := r.dialog(req)
	if d == nil {
		respond(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	d.ended.Store(true)
	d.dlg.ReadBye(req, tx)
}

func (r *responder) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	r.record(req)
	if r.uacDialog(req) != nil {
		respond(req, tx, 200, "OK")
		return
	}
	if r.dialog(req) == nil {
		respond(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	respond(req, tx, 200, "OK")
}

// Invite opens a session from the responder to a peer, waits for the answer
// and ACKs it. The dialog ends when ctx does.
func (r *responder) Invite(ctx context.Context, peerContact string, sdp string) (*sipgo.DialogClientSession, error) {
	var target sip.Uri
	if err := sip.ParseUri(peerContact, &target); err != nil {
		return nil, err
	}
	req := sip.NewRequest(sip.INVITE, target)
	req.SetTransport(strings.ToUpper(r.transport))
	ct := sip.ContentTypeHeader("application/sdp")
	req.AppendHeader(&ct)
	req.AppendHeader(sip.NewHeader("Ms-Conversation-ID", "abc"))
	req.SetBody([]byte(sdp))
	dlg, err := r.dua.WriteInvite(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		dlg.Close()
		return nil, err
	}
	r.mu.Lock()
	r.uac[req.CallID().Value()] = dlg
	r.mu.Unlock()
	if err := dlg.Ack(ctx); err != nil {
		return nil, err
	}
	return dlg, nil
}
