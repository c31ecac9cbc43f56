package bot

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/emiago/sipgo"
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

// guard recovers a panic in a SIP handler: the request gets 500 and the bot keeps running.
// It refuses, before the handler runs, a request without the headers every request has
// (400) and one that requires an extension the bot does not support (420).
func (b *Bot) guard(h func(*sip.Request, sip.ServerTransaction)) func(*sip.Request, sip.ServerTransaction) {
	return func(req *sip.Request, tx sip.ServerTransaction) {
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
		if tags := unsupportedExtensions(req); len(tags) > 0 {
			b.log.Info("request requiring an unsupported extension refused", "method", req.Method, "unsupported", tags)
			// In a dialog the request still consumes its CSeq: the dialog goes on.
			b.refuse(req, tx, b.lookup(req), 420, sip.NewHeader("Unsupported", strings.Join(tags, ", ")))
			return
		}
		h(req, tx)
	}
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
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		b.log.Debug("response not sent", "method", req.Method, "code", code, "err", err)
		return
	}
	b.observeResponse(code)
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
	481: "Call/Transaction Does Not Exist", 486: "Busy Here", 487: "Request Terminated",
	488: "Not Acceptable Here", 500: "Server Internal Error", 503: "Service Unavailable",
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
	b.respond(req, tx, 200, sip.NewHeader("Allow", allowMethods), acceptHeader())
}

func (b *Bot) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if inDialog(req) {
		b.onReInvite(req, tx)
		return
	}
	if b.closing.Load() {
		b.respond(req, tx, 503, retryAfter(5))
		return
	}
	offer, err := imOffer(req)
	if err != nil || !offer.Message {
		b.log.Info("INVITE without an IM stream refused", "from", req.From().Address.String(), "err", err)
		b.respond(req, tx, 488, sip.NewHeader("Warning", `304 imbot "only m=message sip sessions are accepted"`))
		return
	}
	if b.sessions.count() >= b.cfg.MaxSessions {
		b.respond(req, tx, 503, retryAfter(10))
		return
	}
	from := req.From()
	peer := peerFromURI(from.Address, from.DisplayName)
	network := sip.NetworkToLower(req.Transport())
	dua := b.duas[network]
	if dua == nil {
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
	dlg, err := dua.ReadInvite(req, tx)
	if err != nil {
		b.respond(req, tx, 400)
		return
	}
	local := req.To().Address
	s := &Session{
		b:        b,
		id:       dlg.ID,
		key:      aor(local) + " " + peer.URI,
		mode:     ModeSession,
		peer:     peer,
		local:    sip.Uri{Scheme: local.Scheme, User: local.User, Host: local.Host, Port: local.Port},
		started:  time.Now(),
		lastSeq:  req.CSeq().SeqNo,
		seqKnown: true,
		endedCh:  make(chan struct{}),
	}
	s.setDialog(dlg, req.Contact().Address, network, req.GetHeaders("Record-Route"))
	s.touch()
	s.typing.acceptsComposing = imcodec.AcceptsType(offer.AcceptTypes, imcodec.TypeIsComposing)
	s.typing.ms = offer.MSDialect || hasMSHeaders(req)
	s.sdpAnswer = imcodec.AnswerOffer(offer, b.host, b.ports[network], b.identity.String(), sdpAcceptTypes)
	s.push(&Event{Kind: EventSessionStart, Session: s, Time: time.Now(), req: req})
	b.sessions.addDialog(s)

	ct := sip.ContentTypeHeader(imcodec.TypeSDP)
	// Respond blocks until the ACK arrives (or 64*T1 passes), retransmitting the 200 on UDP.
	if err := dlg.Respond(200, "OK", s.sdpAnswer, &ct, sip.NewHeader("Allow", allowMethods)); err != nil {
		if !s.stop() {
			// ACK and BYE both came before Respond saw the ACK: the session was established
			// and has ended normally; its events are on their way.
			return
		}
		b.log.Info("IM session not established", "session", s.id, "peer", peer.URI, "err", err)
		s.mu.Lock()
		s.inbox = nil
		s.mu.Unlock()
		close(s.endedCh)
		return
	}
	b.observeResponse(200)
	b.log.Debug("IM session established", "session", s.id, "peer", peer.URI, "transport", network)
	s.mu.Lock()
	s.confirmed = true
	s.kick()
	s.mu.Unlock()
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
	s.mu.Lock()
	s.sequence(req.CSeq().SeqNo, nil)
	s.mu.Unlock()
	res := sip.NewResponseFromRequest(req, 200, "OK", s.sdpAnswer)
	ct := sip.ContentTypeHeader(imcodec.TypeSDP)
	contact := b.contact(sip.NetworkToLower(req.Transport()))
	res.AppendHeader(&ct)
	res.AppendHeader(&contact)
	if err := tx.Respond(res); err != nil {
		b.log.Debug("re-INVITE answer not sent", "session", s.id, "err", err)
		return
	}
	b.observeResponse(200)
}

func (b *Bot) onAck(req *sip.Request, tx sip.ServerTransaction) {
	if s := b.lookup(req); s != nil {
		if uas, ok := s.dlg.(*sipgo.DialogServerSession); ok {
			// An ACK for a re-INVITE's 200 carries another CSeq; ReadAck refuses it, harmlessly.
			_ = uas.ReadAck(req, tx)
		}
	}
}

func (b *Bot) onBye(req *sip.Request, tx sip.ServerTransaction) {
	s := b.lookup(req)
	if s == nil || s.dlg == nil {
		b.log.Info("BYE for an unknown session", "call-id", callID(req))
		b.respond(req, tx, 481)
		return
	}
	// Forget the dialog before the 200 goes out: a request the peer sends after it gets 481.
	if !s.stop() {
		b.respond(req, tx, 481)
		return
	}
	if err := s.dlg.ReadBye(req, tx); err != nil {
		b.log.Info("BYE refused", "session", s.id, "err", err)
		b.respond(req, tx, 400)
	}
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
			b.refuse(req, tx, s, 415, sip.NewHeader("Accept", imcodec.TypeKeyboard))
			return
		}
		active, err := imcodec.ParseKeyboardActivity(req.Body())
		if err != nil {
			b.log.Info("bad KeyboardActivity", "session", s.id, "err", err)
			b.refuse(req, tx, s, 400)
			return
		}
		ev = &Event{Kind: EventTyping, Session: s, Time: time.Now(), Typing: active, ContentType: ct, req: req}
	}
	b.acceptInDialog(req, tx, s, ev, func(p *typingPrefs) { p.peerKeyboard = p.peerKeyboard || ev != nil })
}

// acceptInDialog answers an in-dialog request that carries ev (nil: nothing for the chain)
// and queues ev in CSeq order: 481 when the session has ended, 503 when its inbox is full,
// else 200. note records what the request says of the peer's typing. The 200 goes out
// before the event is queued, so that it precedes anything the bot sends, and while the
// session cannot end, so that a request answered 200 is handled. It reports whether the
// request was accepted.
func (b *Bot) acceptInDialog(req *sip.Request, tx sip.ServerTransaction, s *Session, ev *Event, note func(*typingPrefs)) bool {
	seq := req.CSeq().SeqNo
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		b.respond(req, tx, 481)
		return false
	}
	if ev != nil && s.pending() >= b.cfg.InboxSize {
		b.respond(req, tx, 503, retryAfter(1))
		s.sequence(seq, nil)
		return false
	}
	note(&s.typing)
	if ev != nil && ev.Kind == EventMessage {
		s.received()
	}
	b.respond(req, tx, 200)
	s.sequence(seq, ev)
	return true
}

// refuse answers a request with an error status. In a dialog (s != nil) the request still
// consumes its CSeq, so that the requests after it are not held waiting for it.
func (b *Bot) refuse(req *sip.Request, tx sip.ServerTransaction, s *Session, code int, hdrs ...sip.Header) {
	b.respond(req, tx, code, hdrs...)
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		s.sequence(req.CSeq().SeqNo, nil)
	}
}

// contentType returns the request's Content-Type value, "" when it has none.
func contentType(req *sip.Request) string {
	if h := req.ContentType(); h != nil {
		return h.Value()
	}
	return ""
}

func (b *Bot) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	var s *Session
	if inDialog(req) {
		if s = b.lookup(req); s == nil {
			b.respond(req, tx, 481)
			return
		}
	} else if b.closing.Load() {
		b.respond(req, tx, 503, retryAfter(5))
		return
	}
	if len(req.Body()) > b.cfg.MaxMessageBytes {
		b.log.Info("message too large", "from", req.From().Address.String(), "bytes", len(req.Body()), "limit", b.cfg.MaxMessageBytes)
		b.refuse(req, tx, s, 413)
		return
	}
	in, code := b.decode(req)
	if code != 0 {
		hdrs := []sip.Header(nil)
		if code == 415 {
			hdrs = append(hdrs, acceptHeader())
		}
		b.refuse(req, tx, s, code, hdrs...)
		return
	}
	if s != nil {
		b.onDialogMessage(req, tx, s, in)
		return
	}
	b.onPageMessage(req, tx, in)
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

// sendReceipt sends an IMDN "delivered" (RFC 5438) for a message that asked for one.
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
	go func() {
		if _, err := s.send(b.handlerCtx, sip.MESSAGE, imcodec.TypeCPIM, body); err != nil {
			b.log.Debug("delivery receipt not sent", "session", s.id, "err", err)
		}
	}()
}

// aor renders an address without parameters.
func aor(u sip.Uri) string {
	return (&sip.Uri{Scheme: u.Scheme, User: u.User, Host: u.Host, Port: u.Port}).String()
}

func (b *Bot) onPageMessage(req *sip.Request, tx sip.ServerTransaction, in inbound) {
	from := req.From()
	peer := peerFromURI(from.Address, from.DisplayName)
	local := req.To().Address
	key := aor(local) + " " + peer.URI
	network := sip.NetworkToLower(req.Transport())
	for {
		s, created := b.sessions.page(key, b.cfg.MaxSessions, func() *Session {
			return &Session{
				b: b, id: key, key: key, mode: ModePage, peer: peer,
				local: sip.Uri{Scheme: local.Scheme, User: local.User, Host: local.Host, Port: local.Port},
				// Keep the URI's parameters: ;transport=tcp says how to reach the peer.
				peerURI: sip.Uri{Scheme: from.Address.Scheme, User: from.Address.User, Host: from.Address.Host,
					Port: from.Address.Port, UriParams: from.Address.UriParams},
				started: time.Now(), confirmed: true, endedCh: make(chan struct{}),
			}
		})
		if s == nil {
			b.respond(req, tx, 503, retryAfter(10))
			return
		}
		if created && b.cfg.Admit != nil {
			if code, reason := b.admit(b.handlerCtx, peer, ModePage); code != 0 {
				b.sessions.remove(s)
				b.respondReason(req, tx, code, reason)
				return
			}
		}
		ev := in.event(s, req)
		s.mu.Lock()
		if s.ended {
			s.mu.Unlock()
			continue // it just timed out: start a new conversation
		}
		if ev != nil && s.pending() >= b.cfg.InboxSize {
			s.mu.Unlock()
			b.respond(req, tx, 503, retryAfter(1))
			return
		}
		s.peerAddr, s.network = req.Source(), network
		if in.kind == EventTyping {
			s.typing.peerComposing = true
		}
		if acc := req.GetHeader("Accept"); acc != nil &&
			imcodec.AcceptsType(imcodec.SplitAcceptHeader(acc.Value()), imcodec.TypeIsComposing) {
			s.typing.acceptsComposing = true
		}
		// The 200 goes out before the events are queued, so that it precedes anything the
		// bot sends, and while the conversation cannot end, so that the message is handled.
		b.respond(req, tx, 200)
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
