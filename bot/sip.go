package bot

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/internal/imcodec"
)

// acceptTypes are the body types the bot takes, in its SDP answer and its 415 answers.
var acceptTypes = []string{
	imcodec.TypePlain, imcodec.TypeHTML, imcodec.TypeMultipartAlt,
	imcodec.TypeIsComposing, imcodec.TypeCPIM, imcodec.TypeIMDN,
}

// sdpAcceptTypes is what the bot announces in its SDP answer.
var sdpAcceptTypes = []string{
	imcodec.TypePlain, imcodec.TypeHTML, imcodec.TypeMultipartAlt, imcodec.TypeIsComposing,
}

const allowMethods = "INVITE, ACK, CANCEL, BYE, MESSAGE, INFO, OPTIONS"

// routes installs the SIP request handlers, each guarded against panics.
func (b *Bot) routes() {
	b.srv.OnInvite(b.guard(b.onInvite))
	b.srv.OnAck(b.guard(b.onAck))
	b.srv.OnBye(b.guard(b.onBye))
	b.srv.OnMessage(b.guard(b.onMessage))
	b.srv.OnInfo(b.guard(b.onInfo))
	b.srv.OnOptions(b.guard(b.onOptions))
	b.srv.OnCancel(b.guard(func(req *sip.Request, tx sip.ServerTransaction) {
		// A CANCEL that matched a pending INVITE never gets here: the transaction layer
		// answers it and the INVITE gets 487.
		b.respond(req, tx, 481)
	}))
	b.srv.OnNoRoute(b.guard(func(req *sip.Request, tx sip.ServerTransaction) {
		b.respond(req, tx, 405, sip.NewHeader("Allow", allowMethods))
	}))
}

// guard wraps every SIP handler. It first applies Config.SourceLimit (see limited). Then it
// recovers a panic (the request gets 500 and the bot keeps running), refuses requests
// without the headers every handler needs (400), and takes in-dialog requests in their
// arrival order: it waits for the request's turn in its session, applies RFC 3261 §12.2.2 (a
// CSeq lower than or equal to the last one gets 500) and lets the next request go on once
// the handler has answered. A request that requires an extension the bot does not support
// gets 420.
func (b *Bot) guard(h func(*sip.Request, sip.ServerTransaction)) func(*sip.Request, sip.ServerTransaction) {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		if b.limited(req, tx) {
			return
		}
		b.inflight.add()
		defer b.inflight.done()
		a := b.arrivalOf(req)
		if a != nil && a.s != nil {
			a.s.takeTurn(a.ticket)
			defer a.s.endTurn(a.ticket)
		}
		defer func() {
			if r := recover(); r != nil {
				b.log.Error("SIP handler panicked", "method", req.Method, "panic", r, "stack", string(debug.Stack()))
				b.respond(req, tx, 500)
			}
		}()
		if req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil {
			b.log.Info("request without From, To, Call-ID or CSeq refused", "method", req.Method, "source", req.Source())
			b.respond(req, tx, 400)
			return
		}
		if code, reason := validate(req); code != 0 {
			b.log.Info("request refused", "method", req.Method, "source", req.Source(), "code", code, "reason", reason)
			b.respondReason(req, tx, code, reason)
			return
		}
		if a != nil {
			s := a.s
			if s == nil {
				s = b.lookup(req) // opened after the request arrived (a session the bot opened)
			}
			if s != nil && !s.checkCSeq(req.CSeq().SeqNo) {
				b.log.Info("in-dialog request with a CSeq not above the last one refused", "session", s.id,
					"method", req.Method, "cseq", req.CSeq().SeqNo)
				b.respondReason(req, tx, 500, "CSeq Out of Order")
				return
			}
		}
		if b.merges.merged(req) {
			// RFC 3261 §8.2.2.2: the same request reached the bot twice along different paths.
			b.respondReason(req, tx, 482, "Loop Detected")
			return
		}
		if tags := unsupportedExtensions(req); len(tags) > 0 {
			b.log.Info("request requiring an unsupported extension refused", "method", req.Method, "unsupported", tags)
			// In a dialog the request has taken its CSeq (above): the dialog goes on.
			b.respond(req, tx, 420, sip.NewHeader("Unsupported", strings.Join(tags, ", ")))
			return
		}
		h(req, tx)
	}
}

// limited applies Config.SourceLimit to a request and reports whether the request is over
// it: then the request has been answered 503 or dropped. A dropped request gets no answer at
// all: sipgo terminates the transaction of a request its handler did not answer, so a
// retransmission is a new request, counted again. An in-dialog request gives up its turn in
// its session (see passTurn).
func (b *Bot) limited(req *sip.Request, tx sip.ServerTransaction) bool {
	v, src, retry := b.pike.checkRequest(req)
	if v == limitPass {
		return false
	}
	if v == limitAnswer {
		b.log.Info("source rate-limited", "source", src, "rate", b.cfg.SourceLimit.Rate,
			"burst", b.cfg.SourceLimit.Burst, "retry_after", retry)
		b.respond(req, tx, 503, retryAfter(retry))
	}
	b.passTurn(req)
	return true
}

// supportedExtensions are the option tags (RFC 3261 §19.2) of the SIP extensions the bot
// implements: none. The tags a peer lists in Supported (timer, 100rel...) are the peer's
// and the bot never puts them in Require.
var supportedExtensions []string

// unsupportedExtensions returns the option tags of the request's Require headers that are
// not in supportedExtensions, each once, for a 420 Bad Extension (RFC 3261 §8.2.2.3). ACK
// and CANCEL ignore Require; a method the bot does not handle gets 405 first (§8.2.1).
func unsupportedExtensions(req *sip.Request) []string {
	hdrs := req.GetHeaders("Require")
	if len(hdrs) == 0 || req.IsAck() || req.IsCancel() ||
		!slices.Contains(strings.Split(allowMethods, ", "), string(req.Method)) {
		return nil
	}
	var tags []string
	for _, h := range hdrs {
		for tag := range strings.SplitSeq(h.Value(), ",") {
			tag = strings.TrimSpace(tag)
			if tag != "" && !slices.Contains(supportedExtensions, tag) && !slices.Contains(tags, tag) {
				tags = append(tags, tag)
			}
		}
	}
	return tags
}

// respond answers a request with the status's usual reason phrase; a failure to send is
// logged, not fatal.
func (b *Bot) respond(req *sip.Request, tx sip.ServerTransaction, code int, hdrs ...sip.Header) {
	b.respondReason(req, tx, code, reasonFor(code), hdrs...)
}

// respondReason is respond with a reason phrase of the caller's.
func (b *Bot) respondReason(req *sip.Request, tx sip.ServerTransaction, code int, reason string, hdrs ...sip.Header) {
	if req.IsAck() {
		return
	}
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	res.SipVersion = "SIP/2.0" // whatever the request said (a 505 names the version it speaks)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	b.sendResponse(req, tx, res)
}

// sendResponse sends a response in its transaction and counts it.
func (b *Bot) sendResponse(req *sip.Request, tx sip.ServerTransaction, res *sip.Response) {
	if err := tx.Respond(res); err != nil {
		b.log.Debug("response not sent", "method", req.Method, "code", res.StatusCode, "err", err)
		return
	}
	b.observeResponse(res.StatusCode)
}

func (b *Bot) observeResponse(code int) {
	if b.cfg.Observer != nil {
		b.cfg.Observer.ObserveSIPResponse(code)
	}
}

func retryAfter(sec int) sip.Header { return sip.NewHeader("Retry-After", fmt.Sprint(sec)) }

func acceptHeader() sip.Header { return sip.NewHeader("Accept", strings.Join(acceptTypes, ", ")) }

// reasons are the reason phrases of the statuses the bot answers with (RFC 3261 §21).
var reasons = map[int]string{
	100: "Trying", 200: "OK", 400: "Bad Request", 403: "Forbidden", 405: "Method Not Allowed",
	413: "Request Entity Too Large", 415: "Unsupported Media Type", 420: "Bad Extension",
	480: "Temporarily Unavailable",
	481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 486: "Busy Here", 487: "Request Terminated",
	488: "Not Acceptable Here", 500: "Server Internal Error", 503: "Service Unavailable",
	505: "Version Not Supported",
	603: "Decline",
}

func reasonFor(code int) string {
	if r, ok := reasons[code]; ok {
		return r
	}
	return "Refused"
}

// inDialog reports whether the request carries a To-tag.
func inDialog(req *sip.Request) bool {
	to := req.To()
	return to != nil && to.Params.Has("tag")
}

// lookup finds the session of an in-dialog request.
func (b *Bot) lookup(req *sip.Request) *Session {
	id, err := sip.DialogIDFromRequestUAS(req)
	if err != nil {
		return nil
	}
	return b.sessions.dialog(id)
}

// admit asks Config.Admit whether a new conversation may start; it returns the refusal status.
func (b *Bot) admit(ctx context.Context, peer Peer, mode Mode) (int, string) {
	if b.cfg.Admit == nil {
		return 0, ""
	}
	err := b.cfg.Admit(ctx, peer, mode)
	if err == nil {
		return 0, ""
	}
	var r *Refusal
	if errors.As(err, &r) && r.Code >= 400 && r.Code <= 699 {
		reason := r.Reason
		if reason == "" {
			reason = reasonFor(r.Code)
		}
		return r.Code, reason
	}
	b.log.Info("conversation refused", "peer", peer.URI, "mode", mode.String(), "err", err)
	return 403, "Forbidden"
}

func (b *Bot) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	if req.GetHeader(GuestHeader) != nil {
		peer, ref, ok := b.guestIdentity(req)
		if ok && ref != nil {
			b.respondReason(req, tx, ref.code, ref.reason, ref.hdrs...)
			return
		}
		if ok {
			b.guestReconnected(req, peer)
		}
	}
	if !inDialog(req) {
		// A probe: healthy or not (see Config.Health).
		var why string
		if b.closing.Load() {
			why = "shutting down"
		} else if b.cfg.Health != nil {
			if err := b.cfg.Health(b.handlerCtx); err != nil {
				why = err.Error()
			}
		}
		if why != "" {
			b.respond(req, tx, 503, retryAfter(5), sip.NewHeader("Warning", fmt.Sprintf("399 imbot %q", "not ready: "+why)))
			return
		}
	}
	b.respond(req, tx, 200, sip.NewHeader("Allow", allowMethods), acceptHeader())
}

func (b *Bot) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if inDialog(req) {
		b.onReInvite(req, tx)
		return
	}
	if b.resendOK(req, tx) {
		return // a retransmission of an INVITE the bot answered: the same 200 again
	}
	if b.closing.Load() {
		b.respond(req, tx, 503, retryAfter(5))
		return
	}
	peer, ok := b.identified(req, tx)
	if !ok {
		return
	}
	offer, err := imOffer(req)
	if err != nil || !offer.Message {
		b.log.Info("INVITE without an IM stream refused", "from", req.From().Address.String(), "err", err)
		b.respond(req, tx, 488, sip.NewHeader("Warning", `304 imbot "only m=message sip sessions are accepted"`))
		return
	}
	if b.overloaded() {
		b.respond(req, tx, 503, retryAfter(1))
		return
	}
	from := req.From()
	network := sip.NetworkToLower(req.Transport())
	if b.clients[network] == nil {
		b.respond(req, tx, 500)
		return
	}
	// The Admit hook runs before the 200 and is cancelled if the caller gives up.
	if b.cfg.Admit != nil {
		// It may take a while: tell the caller (and let it CANCEL).
		b.respond(req, tx, 100)
	}
	actx, cancel := context.WithCancel(b.handlerCtx)
	defer cancel()
	tx.OnCancel(func(*sip.Request) { cancel() })
	if code, reason := b.admit(actx, peer, ModeSession); code != 0 {
		if actx.Err() == nil {
			b.respondReason(req, tx, code, reason)
		}
		return
	}
	if actx.Err() != nil {
		return // CANCELled: the transaction layer answered 487
	}
	if req.Contact() == nil {
		b.respondReason(req, tx, 400, "Missing Contact")
		return
	}
	local := req.To().Address
	s := &Session{
		b:       b,
		key:     b.conversationKey(local, peer),
		mode:    ModeSession,
		peer:    peer,
		local:   sip.Uri{Scheme: local.Scheme, User: local.User, Host: local.Host, Port: local.Port},
		started: time.Now(),
		endedCh: make(chan struct{}),
	}
	sdpAnswer := imcodec.AnswerOffer(offer, b.host, b.ports[network], b.identity.String(), sdpAcceptTypes)
	res := sip.NewResponseFromRequest(req, 200, "OK", sdpAnswer)
	contact := b.contact(network)
	ct := sip.ContentTypeHeader(imcodec.TypeSDP)
	res.AppendHeader(&contact)
	res.AppendHeader(&ct)
	res.AppendHeader(sip.NewHeader("Allow", allowMethods))
	toTag, _ := res.To().Params.Get("tag")
	fromTag, _ := from.Params.Get("tag")
	s.id = sip.DialogIDMake(req.CallID().Value(), toTag, fromTag)
	d := &dialog{
		callID:  req.CallID().Value(),
		from:    res.To().AsFrom(),
		to:      from.AsTo(),
		target:  req.Contact().Address,
		network: network,
		cli:     b.clients[network],
		tcp:     b.clients["tcp"],
		contact: b.contacts[network],
		cseq:    0,
	}
	var routes []string
	for _, h := range req.GetHeaders("Record-Route") {
		routes = append(routes, h.Value())
	}
	// Without a route set, requests go back where the INVITE came from: the peer's Contact
	// may be unroutable (a WebSocket client's *.invalid, a NAT).
	d.setRoutes(routes, req.Source())
	s.dlg = d
	s.lastSeq, s.seqKnown = req.CSeq().SeqNo, true
	s.touch()
	s.typing.acceptsComposing = imcodec.AcceptsType(offer.AcceptTypes, imcodec.TypeIsComposing)
	s.typing.ms = offer.MSDialect || hasMSHeaders(req)
	if !b.sessions.addDialog(s, b.cfg.MaxSessions) {
		b.respond(req, tx, 503, retryAfter(10))
		return
	}
	// The session takes requests from the moment its 200 is sent: a MESSAGE that overtakes
	// the ACK is answered and handled like any other.
	s.mu.Lock()
	s.push(&Event{Kind: EventSessionStart, Session: s, Time: time.Now(), req: req})
	s.mu.Unlock()
	noAck := func() {
		// RFC 3261 §13.3.1.4 ends such a session with a BYE. Only when the peer showed it
		// knows the dialog, though: an INVITE from a forged source would otherwise bring
		// its victim a BYE and its retransmissions on top of the 200's.
		bye := s.peerSpoke.Load()
		b.log.Info("IM session got no ACK for its 200: ending it", "session", s.id, "peer", peer.URI, "bye", bye)
		s.end(b.handlerCtx, EndDeadDialog, bye)
	}
	var heard func() bool // see sendOK
	if !peer.Verified && !sip.IsReliable(req.Transport()) {
		heard = s.peerSpoke.Load
	}
	if err := b.sendOK(d, tx, req, res, heard, noAck); err != nil {
		b.log.Info("IM session not established: 200 not sent", "session", s.id, "peer", peer.URI, "err", err)
		s.end(b.handlerCtx, EndDeadDialog, false)
		return
	}
	b.observeResponse(200)
	b.log.Debug("IM session established", "session", s.id, "peer", peer.URI, "transport", network)
}

// imOffer parses the SDP offer of an INVITE.
func imOffer(req *sip.Request) (imcodec.Offer, error) {
	if mt, _ := imcodec.MediaType(contentType(req)); mt != imcodec.TypeSDP || len(req.Body()) == 0 {
		return imcodec.Offer{}, errors.New("no SDP offer")
	}
	return imcodec.ParseOffer(req.Body())
}

func hasMSHeaders(req *sip.Request) bool {
	for _, h := range req.Headers() {
		if strings.HasPrefix(strings.ToLower(h.Name()), "ms-") {
			return true
		}
	}
	if from := req.From(); from != nil && from.Params.Has("epid") {
		return true
	}
	return false
}

// onReInvite answers a re-INVITE (a session refresh) with the SDP answer already given.
func (b *Bot) onReInvite(req *sip.Request, tx sip.ServerTransaction) {
	s := b.lookup(req)
	if s == nil || s.isEnded() {
		b.respond(req, tx, 481)
		return
	}
	// The answer is made again from this offer (the session keeps none: it would cost every
	// open session its SDP for a request few peers send).
	network := sip.NetworkToLower(req.Transport())
	var answer []byte
	if len(req.Body()) == 0 {
		s.mu.Lock()
		ms := s.typing.ms
		s.mu.Unlock()
		answer = imcodec.Answer(b.host, b.ports[network], b.identity.String(), sdpAcceptTypes, ms)
	} else if offer, err := imOffer(req); err != nil || !offer.Message {
		b.respond(req, tx, 488, sip.NewHeader("Warning", `304 imbot "only m=message sip sessions are accepted"`))
		return
	} else {
		answer = imcodec.AnswerOffer(offer, b.host, b.ports[network], b.identity.String(), sdpAcceptTypes)
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", answer)
	ct := sip.ContentTypeHeader(imcodec.TypeSDP)
	contact := b.contact(network)
	res.AppendHeader(&ct)
	res.AppendHeader(&contact)
	if err := b.writeResponse(tx, req, res); err != nil {
		b.log.Debug("re-INVITE answer not sent", "session", s.id, "err", err)
		return
	}
	b.observeResponse(200)
}

func (b *Bot) onAck(req *sip.Request, tx sip.ServerTransaction) {
	// An ACK for a re-INVITE's 200 finds the dialog acknowledged already: harmless.
	if s := b.lookup(req); s != nil {
		s.dlg.ack(b)
	}
}

func (b *Bot) onBye(req *sip.Request, tx sip.ServerTransaction) {
	s := b.lookup(req)
	if s == nil {
		b.log.Info("BYE for an unknown session", "call-id", callID(req))
		b.respond(req, tx, 481)
		return
	}
	// Forget the dialog before the 200 goes out: a request the peer sends after it gets 481.
	// Whatever the peer sent before the BYE was answered and queued first (arrival order).
	if !s.stop() {
		b.respond(req, tx, 481)
		return
	}
	b.respond(req, tx, 200)
	s.finish(b.handlerCtx, EndByPeer, false)
}

func callID(req *sip.Request) string {
	if h := req.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

func (b *Bot) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	s := b.lookup(req)
	if s == nil {
		b.respond(req, tx, 481)
		return
	}
	var ev *Event
	if len(req.Body()) > 0 {
		ct := contentType(req)
		mt, _ := imcodec.MediaType(ct)
		if mt != imcodec.TypeKeyboard {
			b.respond(req, tx, 415, sip.NewHeader("Accept", imcodec.TypeKeyboard))
			return
		}
		active, err := imcodec.ParseKeyboardActivity(req.Body())
		if err != nil {
			b.log.Info("bad KeyboardActivity", "session", s.id, "err", err)
			b.respond(req, tx, 400)
			return
		}
		ev = &Event{Kind: EventTyping, Session: s, Time: time.Now(), Typing: active, ContentType: ct, req: req}
	}
	b.acceptInDialog(req, tx, s, ev, func(p *typingPrefs) { p.peerKeyboard = p.peerKeyboard || ev != nil })
}

// acceptInDialog answers an in-dialog request that carries ev (nil: nothing for the chain)
// and queues ev: 481 when the session has ended, 503 when the bot or the session is
// overloaded, else 200. note records what the request says of the peer's typing. The 200
// goes out before the event is queued, so that it precedes anything the bot sends, and while
// the session cannot end, so that a request answered 200 is handled. Requests of one dialog
// get here one at a time, in arrival order (see guard). It reports whether the request was
// accepted.
func (b *Bot) acceptInDialog(req *sip.Request, tx sip.ServerTransaction, s *Session, ev *Event, note func(*typingPrefs)) bool {
	if ev != nil && (b.closing.Load() || b.overloaded()) {
		b.respond(req, tx, 503, retryAfter(1))
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		b.respond(req, tx, 481)
		return false
	}
	if ev != nil && len(s.inbox) >= b.cfg.InboxSize {
		b.respond(req, tx, 503, retryAfter(1))
		return false
	}
	note(&s.typing)
	if ev != nil && ev.Kind == EventMessage {
		s.received()
	}
	s.peerSpoke.Store(true)
	b.respond(req, tx, 200)
	if ev != nil {
		s.push(ev)
	}
	return true
}

// contentType returns the request's Content-Type value, "" when it has none.
func contentType(req *sip.Request) string {
	if h := req.ContentType(); h != nil {
		return h.Value()
	}
	return ""
}

func (b *Bot) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	var (
		s    *Session
		peer Peer
	)
	if inDialog(req) {
		if s = b.lookup(req); s == nil {
			b.respond(req, tx, 481)
			return
		}
	} else if b.closing.Load() {
		b.respond(req, tx, 503, retryAfter(5))
		return
	} else if b.relayToGuest(req, tx) {
		return
	} else {
		var ok bool
		if peer, ok = b.identified(req, tx); !ok {
			return
		}
	}
	if len(req.Body()) > b.cfg.MaxMessageBytes {
		b.log.Info("message too large", "from", req.From().Address.String(), "bytes", len(req.Body()), "limit", b.cfg.MaxMessageBytes)
		b.respond(req, tx, 413)
		return
	}
	in, code := b.decode(req)
	if code != 0 {
		hdrs := []sip.Header(nil)
		if code == 415 {
			hdrs = append(hdrs, acceptHeader())
		}
		b.respond(req, tx, code, hdrs...)
		return
	}
	if s != nil {
		b.onDialogMessage(req, tx, s, in)
		return
	}
	b.onPageMessage(req, tx, peer, in)
}

// identified runs the trust model on a request that starts a conversation: it returns the
// sender, or answers the request (401 with a challenge, 403) and returns false.
func (b *Bot) identified(req *sip.Request, tx sip.ServerTransaction) (Peer, bool) {
	peer, ref := b.identify(b.handlerCtx, req)
	if ref != nil {
		if ref.code != 401 {
			b.log.Info("request refused by the trust model", "method", req.Method, "source", req.Source(),
				"from", req.From().Address.String(), "code", ref.code)
		}
		b.respondReason(req, tx, ref.code, ref.reason, ref.hdrs...)
		return Peer{}, false
	}
	return peer, true
}

// inbound is a decoded MESSAGE body.
type inbound struct {
	kind        EventKind // EventMessage or EventTyping; 0: nothing for the chain (a receipt)
	text, html  string
	active      bool
	contentType string
	receiptFor  string // imdn.Message-ID of a CPIM message that asked for a delivery receipt
	receiptTo   string // the CPIM From to address the receipt to
}

// decode classifies a MESSAGE body. A non-zero code is the status to refuse it with.
func (b *Bot) decode(req *sip.Request) (inbound, int) {
	ct := contentType(req)
	body := req.Body()
	if enc := req.GetHeader("Content-Encoding"); enc != nil {
		switch strings.ToLower(strings.TrimSpace(enc.Value())) {
		case "", "identity":
		case "deflate":
			out, err := imcodec.Inflate(body, b.cfg.MaxMessageBytes)
			if err != nil {
				b.log.Info("bad deflate body", "from", req.From().Address.String(), "err", err)
				return inbound{}, 400
			}
			body = out
		default:
			return inbound{}, 415
		}
	}
	in := inbound{contentType: ct}
	mt, _ := imcodec.MediaType(ct)
	if mt == imcodec.TypeCPIM {
		c, err := imcodec.ParseCPIM(body)
		if err != nil {
			b.log.Info("bad CPIM body", "from", req.From().Address.String(), "err", err)
			return inbound{}, 400
		}
		ct, body = c.ContentType, c.Body
		mt, _ = imcodec.MediaType(ct)
		if c.MessageID != "" && slices.Contains(c.Disposition, "positive-delivery") {
			in.receiptFor, in.receiptTo = c.MessageID, c.From
		}
	}
	switch mt {
	case imcodec.TypeIsComposing:
		c, err := imcodec.ParseIsComposing(body)
		if err != nil {
			b.log.Info("bad isComposing body", "from", req.From().Address.String(), "err", err)
			return inbound{}, 400
		}
		in.kind, in.active = EventTyping, c.Active
		return in, 0
	case imcodec.TypeIMDN:
		return in, 0 // a delivery receipt: accepted, not user text
	}
	if ct == "" && len(body) > 0 {
		ct = imcodec.TypePlain
	}
	if len(body) == 0 {
		return in, 0
	}
	t, err := imcodec.DecodeText(ct, body)
	switch {
	case errors.Is(err, imcodec.ErrUnsupportedType):
		b.log.Info("unsupported message type", "from", req.From().Address.String(), "content-type", ct)
		return inbound{}, 415
	case err != nil:
		b.log.Info("undecodable message", "from", req.From().Address.String(), "content-type", ct, "err", err)
		return inbound{}, 400
	}
	// Clients end lines with CRLF and some end the message with one: keep the text itself.
	in.kind, in.text, in.html = EventMessage, strings.TrimRight(t.Plain, "\r\n"), t.HTML
	return in, 0
}

func (in inbound) event(s *Session, req *sip.Request) *Event {
	if in.kind == 0 {
		return nil
	}
	return &Event{Kind: in.kind, Session: s, Time: time.Now(), Text: in.text, HTML: in.html,
		ContentType: in.contentType, Typing: in.active, req: req}
}

func (b *Bot) onDialogMessage(req *sip.Request, tx sip.ServerTransaction, s *Session, in inbound) {
	note := func(p *typingPrefs) { p.peerComposing = p.peerComposing || in.kind == EventTyping }
	if b.acceptInDialog(req, tx, s, in.event(s, req), note) {
		b.sendReceipt(s, in)
	}
}

// sendReceipt sends an IMDN "delivered" (RFC 5438) for a message that asked for one. It is
// written in order with the session's other requests; its answer is not awaited.
func (b *Bot) sendReceipt(s *Session, in inbound) {
	if in.receiptFor == "" || in.kind != EventMessage {
		return
	}
	to := in.receiptTo
	if to == "" {
		to = "<" + s.peer.URI + ">"
	}
	now := time.Now()
	body := imcodec.WrapCPIM("<"+aor(s.local)+">", to, newRef()+newRef(), "", imcodec.TypeIMDN,
		imcodec.DeliveryNotification(in.receiptFor, now), now)
	err := s.post(b.handlerCtx, sip.MESSAGE, imcodec.TypeCPIM, body, func(_ int, err error) {
		if err != nil {
			b.log.Debug("delivery receipt not delivered", "session", s.id, "err", err)
		}
	})
	if err != nil {
		b.log.Debug("delivery receipt not sent", "session", s.id, "err", err)
	}
}

// aor renders an address without parameters.
func aor(u sip.Uri) string {
	return (&sip.Uri{Scheme: u.Scheme, User: u.User, Host: u.Host, Port: u.Port}).String()
}

// onPageMessage takes a page-mode MESSAGE. The conversation is the bot's identity and the
// peer's address of record: whatever the request's To says, the bot answers as itself.
func (b *Bot) onPageMessage(req *sip.Request, tx sip.ServerTransaction, peer Peer, in inbound) {
	from := req.From()
	// Replies go to the peer's address: a verified one's as asserted, else the From URI
	// with its parameters (;transport=tcp says how to reach the peer).
	target := sip.Uri{Scheme: from.Address.Scheme, User: from.Address.User, Host: from.Address.Host,
		Port: from.Address.Port, UriParams: from.Address.UriParams}
	if peer.Verified && b.trust.trusted(req.Source()) {
		var u sip.Uri
		if sip.ParseUri(peer.URI, &u) == nil {
			target = u
		}
	}
	local := sip.Uri{Scheme: b.identity.Scheme, User: b.identity.User, Host: b.identity.Host, Port: b.identity.Port}
	key := b.conversationKey(local, peer)
	network := sip.NetworkToLower(req.Transport())
	if in.kind != 0 && b.overloaded() {
		b.respond(req, tx, 503, retryAfter(1))
		return
	}
	mk := func() *Session {
		s := &Session{
			b: b, id: key, key: key, mode: ModePage, peer: peer, local: local,
			pageState: &pageState{peerURI: target},
			started:   time.Now(), endedCh: make(chan struct{}),
		}
		if b.cfg.Admit != nil {
			s.admitted = make(chan struct{})
		}
		return s
	}
	for {
		s, created, evict := b.sessions.page(key, b.cfg.MaxPageConversations, mk)
		if evict != nil {
			b.log.Debug("page-mode conversation evicted to make room", "session", evict.id)
			evict.end(b.handlerCtx, EndEvicted, false)
		}
		if s == nil {
			b.respond(req, tx, 503, retryAfter(10))
			return
		}
		if s.admitted != nil {
			if created {
				s.refusal, s.refReason = b.admit(b.handlerCtx, peer, ModePage)
				if s.refusal != 0 {
					b.log.Debug("page-mode conversation refused", "session", s.id, "code", s.refusal)
					b.sessions.remove(s)
				}
				close(s.admitted)
			} else {
				// Another message of this peer is being admitted: its answer is this one's.
				b.log.Debug("message waits for the admission of its conversation", "session", s.id)
				<-s.admitted
			}
			if s.refusal != 0 {
				b.respondReason(req, tx, s.refusal, s.refReason)
				return
			}
		}
		ev := in.event(s, req)
		s.mu.Lock()
		if s.ended {
			s.mu.Unlock()
			continue // it just timed out: start a new conversation
		}
		if ev != nil && len(s.inbox) >= b.cfg.InboxSize {
			s.mu.Unlock()
			b.respond(req, tx, 503, retryAfter(1))
			return
		}
		s.peerAddr, s.network = req.Source(), network
		s.proxied.Store(b.fromProxy(req.Source()))
		s.unreachable.Store(false) // it writes: it may answer again
		if in.kind == EventTyping {
			s.typing.peerComposing = true
		}
		if acc := req.GetHeader("Accept"); acc != nil &&
			imcodec.AcceptsType(imcodec.SplitAcceptHeader(acc.Value()), imcodec.TypeIsComposing) {
			s.typing.acceptsComposing = true
		}
		// The 200 goes out before the events are queued, so that it precedes anything the
		// bot sends, and while the conversation cannot end, so that the message is handled.
		b.respondPage(req, tx)
		if created {
			s.touch()
			s.push(&Event{Kind: EventSessionStart, Session: s, Time: time.Now(), req: req})
		}
		if ev != nil {
			if ev.Kind == EventMessage {
				s.received()
			}
			s.push(ev)
		}
		s.mu.Unlock()
		b.sendReceipt(s, in)
		return
	}
}
