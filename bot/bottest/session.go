package bottest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// StatusError reports that a request of the peer got a final non-2xx
// response. Match it with errors.As and a *StatusError target.
type StatusError struct {
	// Method is the method of the request.
	Method string
	// Code and Reason are the status code and reason phrase.
	Code   int
	Reason string
	// Response is the response itself.
	Response *sip.Response
}

// Error returns "bottest: INVITE answered 488 Not Acceptable Here".
func (e *StatusError) Error() string {
	return fmt.Sprintf("bottest: %s answered %d %s", e.Method, e.Code, e.Reason)
}

func statusError(method sip.RequestMethod, res *sip.Response) *StatusError {
	return &StatusError{Method: string(method), Code: res.StatusCode, Reason: res.Reason, Response: res}
}

// ErrSessionEnded is returned by Bye on a session that has already ended.
var ErrSessionEnded = errors.New("bottest: session ended")

// dialog is what a Session needs from sipgo's DialogClientSession (sessions
// the peer opened) and DialogServerSession (sessions the bot opened).
type dialog interface {
	TransactionRequest(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error)
	ReadBye(req *sip.Request, tx sip.ServerTransaction) error
}

// dialogKey identifies a session by its Call-ID and the peer's own tag, which
// is the To-tag of every in-dialog request from the bot.
type dialogKey struct{ callID, localTag string }

// Session is an IM session (an INVITE dialog) between the peer and the bot.
// Its methods are safe for concurrent use; in-dialog requests get increasing
// CSeq numbers in the order they are sent.
type Session struct {
	p        *Peer
	dialect  Dialect
	key      dialogKey
	incoming bool // the bot sent the INVITE

	mu     sync.Mutex // guards the fields below
	dlg    dialog
	target sip.Uri // remote target: the bot's Contact
	sdp    []byte  // the bot's SDP (offer or answer)
	invite *sip.Request

	sendMu sync.Mutex // serialises building and sending in-dialog requests

	endOnce sync.Once
	ended   chan struct{}
}

func newSession(p *Peer, d Dialect, key dialogKey) *Session {
	return &Session{p: p, dialect: d, key: key, ended: make(chan struct{})}
}

// OpenSession opens an IM session with the bot in dialect d: it sends an
// INVITE with an "m=message <port> sip null" SDP offer (see
// [Dialect.AcceptTypes] and [Peer.DialectHeaders]), waits for the final
// response and ACKs a 2xx. A non-2xx answer is returned as a
// *[StatusError]. The first text of a DialectMS session travels in the
// INVITE's ms-body ([FirstLine]) but is not sent again as a MESSAGE.
//
// If ctx ends before the bot answers, OpenSession returns ctx's error at
// once and sends a CANCEL if the bot has sent a provisional response.
func (p *Peer) OpenSession(ctx context.Context, d Dialect) (*Session, error) {
	s, res, err := p.invite(ctx, d, p.OfferSDP(d.AcceptTypes()...), p.DialectHeaders(d))
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, statusError(sip.INVITE, res)
	}
	return s, nil
}

// Invite sends an INVITE with the given SDP body (Content-Type
// application/sdp; no body if sdp is nil) and extra headers, for negative
// tests such as an audio offer that the bot must refuse with 488. A From,
// To, Call-ID or Contact among hdrs replaces the peer's default one (pass
// typed headers such as *sip.FromHeader; [Peer.DialectHeaders] provides a
// From with ;epid=). The session's dialect is DialectMS if any of hdrs is
// an ms-* header, DialectIETF otherwise.
//
// Invite returns the final response. A non-2xx answer is not an error; a
// 2xx is ACKed and returned with its Session.
func (p *Peer) Invite(ctx context.Context, sdp []byte, hdrs ...sip.Header) (*Session, *sip.Response, error) {
	d := DialectIETF
	for _, h := range hdrs {
		if strings.HasPrefix(strings.ToLower(h.Name()), "ms-") {
			d = DialectMS
		}
	}
	return p.invite(ctx, d, sdp, hdrs)
}

func (p *Peer) invite(ctx context.Context, d Dialect, sdp []byte, hdrs []sip.Header) (*Session, *sip.Response, error) {
	if p.isClosed() {
		return nil, nil, errClosed
	}
	req := sip.NewRequest(sip.INVITE, p.botURI)
	has := map[string]bool{}
	for _, h := range hdrs {
		has[strings.ToLower(h.Name())] = true
	}
	if !has["from"] && !has["f"] {
		req.AppendHeader(p.newFrom())
	}
	if !has["to"] && !has["t"] {
		req.AppendHeader(&sip.ToHeader{Address: p.botURI})
	}
	if !has["call-id"] && !has["i"] {
		id := sip.CallIDHeader(sip.GenerateTagN(24))
		req.AppendHeader(&id)
	}
	if !has["contact"] && !has["m"] {
		req.AppendHeader(sip.HeaderClone(&p.contact))
	}
	for _, h := range hdrs {
		req.AppendHeader(h)
	}
	if sdp != nil {
		ct := sip.ContentTypeHeader(ContentTypeSDP)
		req.AppendHeader(&ct)
	}
	req.SetBody(sdp)
	p.prepare(req)

	from, callID := req.From(), req.CallID()
	if from == nil || callID == nil {
		return nil, nil, errors.New("bottest: INVITE needs a valid From and Call-ID")
	}
	tag, _ := from.Params.Get("tag")
	if tag == "" {
		return nil, nil, errors.New("bottest: INVITE From has no tag")
	}
	s := newSession(p, d, dialogKey{callID: callID.Value(), localTag: tag})
	s.invite = req
	p.register(s) // before sending: the bot may send in-dialog requests before we see its 200

	if !p.enter() {
		s.end()
		return nil, nil, errClosed
	}
	dlg, err := p.dua.WriteInvite(ctx, req)
	p.leave()
	if err != nil {
		s.end()
		return nil, nil, fmt.Errorf("bottest: INVITE: %w", err)
	}
	s.mu.Lock()
	s.dlg = dlg
	s.mu.Unlock()

	// When ctx ends first, WaitAnswer sends a CANCEL as soon as the bot has
	// sent a provisional response (RFC 3261 §9.1) and waits for the 487.
	err = dlg.WaitAnswer(ctx, sipgo.AnswerOptions{})
	if err != nil {
		s.end()
		var de *sipgo.ErrDialogResponse
		if errors.As(err, &de) {
			return nil, de.Res, nil
		}
		if ctx.Err() != nil {
			p.abandoned.Store(s.key.callID, req)
			return nil, nil, fmt.Errorf("bottest: INVITE: no answer: %w", ctx.Err())
		}
		return nil, nil, fmt.Errorf("bottest: INVITE: %w", err)
	}
	res := dlg.InviteResponse
	s.mu.Lock()
	s.target = p.botURI
	if c := res.Contact(); c != nil {
		s.target = *c.Address.Clone()
	}
	s.sdp = res.Body()
	s.mu.Unlock()

	// The ACK goes straight to the bot too; WriteAck fills in the dialog's
	// headers and re-sends it when a retransmitted 2xx arrives.
	ack := sip.NewRequest(sip.ACK, s.target)
	p.prepare(ack)
	if !p.enter() {
		s.end()
		return nil, res, errClosed
	}
	err = dlg.WriteAck(ctx, ack)
	p.leave()
	if err != nil {
		s.end()
		return nil, res, fmt.Errorf("bottest: ACK: %w", err)
	}
	return s, res, nil
}

// cancel sends a CANCEL for a pending INVITE, outside any transaction.
func (p *Peer) cancel(inv *sip.Request) {
	if !p.enter() {
		return
	}
	defer p.leave()
	c := sip.NewRequest(sip.CANCEL, inv.Recipient)
	c.AppendHeader(sip.HeaderClone(inv.Via()))
	c.AppendHeader(sip.HeaderClone(inv.From()))
	c.AppendHeader(sip.HeaderClone(inv.To()))
	c.AppendHeader(sip.HeaderClone(inv.CallID()))
	c.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	mf := sip.MaxForwardsHeader(70)
	c.AppendHeader(&mf)
	c.SetBody(nil)
	p.prepare(c)
	if err := p.cli.WriteRequest(c, func(*sipgo.Client, *sip.Request) error { return nil }); err != nil {
		p.log.Debug("bottest: CANCEL", "error", err)
	}
}

// acceptInvite answers an INVITE from the bot (Options.AcceptSessions) and
// queues the session for WaitSession once the bot's ACK has arrived.
func (p *Peer) acceptInvite(req *sip.Request, tx sip.ServerTransaction, status int) {
	dlg, err := p.dua.ReadInvite(req, tx)
	if err != nil {
		p.respond(req, tx, 400)
		return
	}
	d := DialectIETF
	if req.GetHeader("Ms-Conversation-ID") != nil || bytes.Contains(req.Body(), []byte("m=x-ms-message")) {
		d = DialectMS
	}
	tag, _ := dlg.InviteRequest.To().Params.Get("tag")
	s := newSession(p, d, dialogKey{callID: req.CallID().Value(), localTag: tag})
	s.incoming = true
	s.dlg = dlg
	s.invite = dlg.InviteRequest
	s.sdp = req.Body()
	s.target = p.botURI
	if c := req.Contact(); c != nil {
		s.target = *c.Address.Clone()
	}
	p.register(s)

	answer := bytes.Replace(p.OfferSDP(d.AcceptTypes()...), []byte(" sip null"), []byte(" sip "+p.URI()), 1)
	ct := sip.ContentTypeHeader(ContentTypeSDP)
	// Respond blocks until the ACK (handleAck -> readAck) or until the
	// transaction ends.
	if err := dlg.Respond(status, reason(status), answer, &ct); err != nil {
		p.log.Debug("bottest: answering INVITE", "error", err)
		s.end()
		return
	}
	p.mu.Lock()
	p.incoming = append(p.incoming, s)
	close(p.notify)
	p.notify = make(chan struct{})
	p.mu.Unlock()
}

// WaitSession returns the next session the bot opened with an INVITE
// (see Options.AcceptSessions), waiting for it if needed. Each session is
// returned once, in the order they were established.
func (p *Peer) WaitSession(ctx context.Context) (*Session, error) {
	for {
		p.mu.Lock()
		if len(p.incoming) > p.taken {
			s := p.incoming[p.taken]
			p.taken++
			p.mu.Unlock()
			return s, nil
		}
		changed := p.notify
		p.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("bottest: the bot opened no session: %w", ctx.Err())
		case <-p.closed:
			return nil, errClosed
		}
	}
}

func (p *Peer) register(s *Session) {
	p.mu.Lock()
	p.sessions[s.key] = s
	p.mu.Unlock()
}

// lookup finds the session of an in-dialog request from the bot.
func (p *Peer) lookup(req *sip.Request) *Session {
	callID, to := req.CallID(), req.To()
	if callID == nil || to == nil {
		return nil
	}
	tag, _ := to.Params.Get("tag")
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sessions[dialogKey{callID: callID.Value(), localTag: tag}]
}

// end marks the session ended and forgets it: later in-dialog requests from
// the bot get 481.
func (s *Session) end() {
	s.endOnce.Do(func() {
		s.p.mu.Lock()
		if s.p.sessions[s.key] == s {
			delete(s.p.sessions, s.key)
		}
		s.p.mu.Unlock()
		close(s.ended)
	})
}

func (s *Session) dialog() dialog {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dlg
}

// readBye ends the session and answers the bot's BYE. The session is
// forgotten first, so that a request the bot sends once it has the answer
// gets 481.
func (s *Session) readBye(req *sip.Request, tx sip.ServerTransaction, status int) {
	s.end()
	if dlg := s.dialog(); dlg != nil && status == 200 {
		if err := dlg.ReadBye(req, tx); err == nil {
			return
		}
	}
	s.p.respond(req, tx, status)
}

// readAck confirms a session the bot opened.
func (s *Session) readAck(req *sip.Request, tx sip.ServerTransaction) {
	if d, ok := s.dialog().(*sipgo.DialogServerSession); ok {
		if err := d.ReadAck(req, tx); err != nil {
			s.p.log.Debug("bottest: ACK", "error", err)
		}
	}
}

// CallID returns the session's Call-ID.
func (s *Session) CallID() string { return s.key.callID }

// Dialect returns the session's dialect.
func (s *Session) Dialect() Dialect { return s.dialect }

// Incoming reports whether the bot opened the session.
func (s *Session) Incoming() bool { return s.incoming }

// Target returns the remote target of the session: the URI of the bot's
// Contact, used as Request-URI of in-dialog requests.
func (s *Session) Target() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.target.String()
}

// SDP returns the bot's SDP: its answer for sessions the peer opened, its
// offer for sessions the bot opened.
func (s *Session) SDP() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.sdp)
}

// Ended returns a channel that is closed when the session ends: the bot
// sent BYE, the peer sent BYE, or the peer was closed.
func (s *Session) Ended() <-chan struct{} { return s.ended }

// Records returns the records of this session's dialog (requests from the
// bot with its Call-ID), in arrival order.
func (s *Session) Records() []Record {
	var out []Record
	for _, r := range s.p.Records() {
		if r.CallID == s.key.callID {
			out = append(out, r)
		}
	}
	return out
}

// Wait is Peer.Wait restricted to the records of this session.
func (s *Session) Wait(ctx context.Context, match func(Record) bool) (Record, error) {
	return s.p.wait(ctx, s.inDialog, match)
}

// WaitText is Peer.WaitText restricted to the records of this session.
func (s *Session) WaitText(ctx context.Context, text string) (Record, error) {
	return s.p.wait(ctx, s.inDialog, IsText(text))
}

func (s *Session) inDialog(r Record) bool { return r.CallID == s.key.callID }

// Send sends text in an in-dialog MESSAGE (text/plain; charset=UTF-8, with
// the msgr parameter in DialectMS) and returns the final response. As with
// all Session requests, a non-2xx response is not an error; the error
// reports a request that got no final response.
func (s *Session) Send(ctx context.Context, text string) (*sip.Response, error) {
	return s.SendRaw(ctx, sip.MESSAGE.String(), contentTypeText(s.dialect), []byte(text))
}

// Typing sends a typing notice in the session's dialect: an INFO with a
// KeyboardActivity document (status "type" or "idle") for DialectMS, an
// RFC 3994 isComposing MESSAGE (state "active" with refresh 60, or "idle")
// for DialectIETF.
func (s *Session) Typing(ctx context.Context, active bool) (*sip.Response, error) {
	if s.dialect == DialectMS {
		return s.SendRaw(ctx, sip.INFO.String(), ContentTypeXML, keyboardActivity(active))
	}
	return s.SendRaw(ctx, sip.MESSAGE.String(), ContentTypeIsComposing, isComposing(active))
}

// SendRaw sends any in-dialog request and returns its final response.
// contentType is omitted when empty. From, To, Call-ID, CSeq, Contact and
// Route come from the dialog; pass only other headers in hdrs. Requests may
// be sent after the session ended, to test how the bot answers them (481).
func (s *Session) SendRaw(ctx context.Context, method, contentType string, body []byte, hdrs ...sip.Header) (*sip.Response, error) {
	req := s.newRequest(sip.RequestMethod(strings.ToUpper(method)), contentType, body, hdrs)
	tx, err := s.send(ctx, req)
	if err != nil {
		return nil, err
	}
	defer tx.Terminate()
	return waitFinal(ctx, req.Method, tx)
}

// SendBurst sends one in-dialog MESSAGE per text as fast as possible, each
// in its own transaction with increasing CSeq numbers, without waiting for
// responses in between; then it waits for every final response. The error
// joins one *StatusError (or transport error) per message that failed.
func (s *Session) SendBurst(ctx context.Context, texts []string) error {
	txs := make([]sip.ClientTransaction, 0, len(texts))
	defer func() {
		for _, tx := range txs {
			tx.Terminate()
		}
	}()
	dlg := s.dialog()
	if dlg == nil || !s.p.enter() {
		return errClosed
	}
	s.sendMu.Lock()
	for _, text := range texts {
		req := s.newRequest(sip.MESSAGE, contentTypeText(s.dialect), []byte(text), nil)
		tx, err := dlg.TransactionRequest(ctx, req)
		if err != nil {
			s.sendMu.Unlock()
			s.p.leave()
			return fmt.Errorf("bottest: sending message %d of %d: %w", len(txs)+1, len(texts), err)
		}
		txs = append(txs, tx)
	}
	s.sendMu.Unlock()
	s.p.leave()

	var errs []error
	for i, tx := range txs {
		res, err := waitFinal(ctx, sip.MESSAGE, tx)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("message %d (%q): %w", i+1, texts[i], err))
			if ctx.Err() != nil {
				return errors.Join(errs...)
			}
		case !res.IsSuccess():
			errs = append(errs, fmt.Errorf("message %d (%q): %w", i+1, texts[i], statusError(sip.MESSAGE, res)))
		}
	}
	return errors.Join(errs...)
}

// Bye ends the session with a BYE and waits for the answer; the session is
// ended whatever the answer. A non-200 answer is returned as a
// *StatusError. Bye on an ended session returns ErrSessionEnded.
func (s *Session) Bye(ctx context.Context) error {
	select {
	case <-s.ended:
		return ErrSessionEnded
	default:
	}
	defer s.end()
	tx, err := s.send(ctx, s.newRequest(sip.BYE, "", nil, nil))
	if err != nil {
		return err
	}
	defer tx.Terminate()
	res, err := waitFinal(ctx, sip.BYE, tx)
	if err != nil {
		return err
	}
	if res.StatusCode != 200 {
		return statusError(sip.BYE, res)
	}
	return nil
}

func (s *Session) targetURI() sip.Uri {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.target.Clone()
}

// newRequest builds an in-dialog request; the dialog adds its headers when
// it is sent.
func (s *Session) newRequest(method sip.RequestMethod, contentType string, body []byte, hdrs []sip.Header) *sip.Request {
	req := sip.NewRequest(method, s.targetURI())
	for _, h := range hdrs {
		req.AppendHeader(h)
	}
	if contentType != "" {
		ct := sip.ContentTypeHeader(contentType)
		req.AppendHeader(&ct)
	}
	req.SetBody(body)
	s.p.prepare(req)
	return req
}

// send starts a client transaction for an in-dialog request.
func (s *Session) send(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	dlg := s.dialog()
	if dlg == nil || !s.p.enter() {
		return nil, errClosed
	}
	defer s.p.leave()
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	tx, err := dlg.TransactionRequest(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("bottest: %s: %w", req.Method, err)
	}
	return tx, nil
}

// waitFinal waits for the final response of a client transaction.
func waitFinal(ctx context.Context, method sip.RequestMethod, tx sip.ClientTransaction) (*sip.Response, error) {
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return res, nil
		case <-tx.Done():
			// A final response may have been delivered just before Done.
			select {
			case res := <-tx.Responses():
				if !res.IsProvisional() {
					return res, nil
				}
			default:
			}
			if err := tx.Err(); err != nil {
				return nil, fmt.Errorf("bottest: %s: %w", method, err)
			}
			return nil, fmt.Errorf("bottest: %s: transaction ended without a final response", method)
		case <-ctx.Done():
			return nil, fmt.Errorf("bottest: %s: no final response: %w", method, ctx.Err())
		}
	}
}
