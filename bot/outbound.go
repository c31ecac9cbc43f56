package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/internal/imcodec"
)

// Delivery says what the network did with a message the bot sent.
type Delivery int

// Deliveries.
const (
	// Delivered: the peer's device answered 200.
	Delivered Delivery = iota + 1
	// Accepted: a server answered 202 and stores the message for later delivery (Kamailio
	// msilo, a gateway): it is not a delivery confirmation.
	Accepted
)

// String returns "delivered" or "accepted".
func (d Delivery) String() string {
	switch d {
	case Delivered:
		return "delivered"
	case Accepted:
		return "accepted"
	}
	return "unknown"
}

// Send sends text to a peer as a page-mode MESSAGE (RFC 3428), for proactive notices. The
// request goes through Config.OutboundProxy when one is set, else straight to the host of to.
// Digest challenges are answered with the registration credentials. A refusal is returned
// as a *SendError carrying the SIP status. Over UDP a long text goes out as several
// messages. The peer's answer, if any, starts an ordinary conversation.
func (b *Bot) Send(ctx context.Context, to, text string) (Delivery, error) {
	uri, dest, network, err := b.target(to)
	if err != nil {
		return 0, fmt.Errorf("send: %w", err)
	}
	// A conversation of its own, never listed: the peer's answer starts the real one.
	s := &Session{
		b: b, id: "send " + uri.String(), mode: ModePage, peer: verifiedPeer(uri, ""),
		local: b.identity, pageState: &pageState{peerURI: uri, peerAddr: dest, network: network},
		started: time.Now(), endedCh: make(chan struct{}),
	}
	return s.sendText(ctx, text)
}

// Open starts an IM session with a peer, as Lync-style clients do: an INVITE offering
// "m=message ... sip" in the Microsoft dialect, through Config.OutboundProxy when set. It
// returns once the peer accepted (200, then ACK) and the session is served like one the peer
// opened: EventSessionStart, then the peer's messages, go through the chain. A refusal is
// returned as a *SendError. Cancelling ctx before the answer sends CANCEL.
func (b *Bot) Open(ctx context.Context, to string) (*Session, error) {
	if b.closing.Load() {
		return nil, errors.New("open: the bot is shutting down")
	}
	uri, dest, network, err := b.target(to)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	dua := b.duas[network]
	if dua == nil {
		return nil, fmt.Errorf("open: the bot does not listen on %s, needed to reach %s", network, to)
	}
	inv, from := b.newOutOfDialog(sip.INVITE, b.identity, uri)
	ct := sip.ContentTypeHeader(imcodec.TypeSDP)
	inv.AppendHeader(&ct)
	inv.AppendHeader(sip.NewHeader("Supported", "ms-sender"))
	inv.AppendHeader(sip.NewHeader("Allow", allowMethods))
	inv.SetBody(imcodec.Answer(b.host, b.ports[network], "null", sdpAcceptTypes, false))
	inv.SetDestination(dest)
	inv.SetTransport(strings.ToUpper(network))

	dlg, err := dua.WriteInvite(ctx, inv)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", to, err)
	}
	err = dlg.WaitAnswer(ctx, sipgo.AnswerOptions{Username: b.authUser(), Password: b.cfg.Registration.Password})
	var de *sipgo.ErrDialogResponse
	switch {
	case errors.As(err, &de):
		_ = dlg.Close()
		return nil, &SendError{Code: de.Res.StatusCode, Reason: de.Res.Reason}
	case err != nil:
		_ = dlg.Close()
		return nil, fmt.Errorf("open %s: %w", to, err)
	}
	res := dlg.InviteResponse
	answer, err := imcodec.ParseOffer(res.Body())
	if err != nil || !answer.Message {
		_ = dlg.Ack(ctx)
		_ = dlg.Bye(ctx)
		_ = dlg.Close()
		return nil, fmt.Errorf("open %s: the answer has no m=message stream", to)
	}
	target := uri
	if c := res.Contact(); c != nil {
		target = c.Address
	}
	peerTo := res.To()
	peer := verifiedPeer(peerTo.Address, peerTo.DisplayName) // the bot chose whom to call
	ourTag, _ := from.Params.Get("tag")
	peerTag, _ := peerTo.Params.Get("tag")
	s := &Session{
		b: b,
		// Keyed as the peer's requests will name it: Call-ID, our tag (their To), theirs.
		id:      sip.DialogIDMake(res.CallID().Value(), ourTag, peerTag),
		key:     b.conversationKey(b.identity, peer),
		mode:    ModeSession,
		peer:    peer,
		local:   sip.Uri{Scheme: b.identity.Scheme, User: b.identity.User, Host: b.identity.Host, Port: b.identity.Port},
		started: time.Now(),
		endedCh: make(chan struct{}),
	}
	d := &dialog{
		callID:  res.CallID().Value(),
		from:    *from,
		to:      *peerTo,
		target:  target,
		network: network,
		cli:     b.clients[network],
		tcp:     b.clients["tcp"],
		contact: b.contacts[network],
		cseq:    dlg.InviteRequest.CSeq().SeqNo,
		acked:   true,
		uac:     dlg,
	}
	// The route set is the 200's Record-Route, in reverse (RFC 3261 §12.1.2).
	rr := res.GetHeaders("Record-Route")
	routes := make([]string, 0, len(rr))
	for i := len(rr) - 1; i >= 0; i-- {
		routes = append(routes, rr[i].Value())
	}
	d.setRoutes(routes, dest)
	s.dlg = d
	s.typing.acceptsComposing = imcodec.AcceptsType(answer.AcceptTypes, imcodec.TypeIsComposing)
	s.typing.ms = true
	s.touch()
	// The peer's first request may follow its 200 at once: be ready for it before the ACK.
	if !b.sessions.addDialog(s, b.cfg.MaxSessions) {
		_ = dlg.Ack(ctx)
		_ = dlg.Bye(ctx)
		_ = dlg.Close()
		return nil, fmt.Errorf("open %s: %d IM sessions are open already (Config.MaxSessions)", to, b.cfg.MaxSessions)
	}
	if err := dlg.Ack(ctx); err != nil {
		s.end(b.handlerCtx, EndDeadDialog, false)
		return nil, fmt.Errorf("open %s: ACK: %w", to, err)
	}
	s.mu.Lock()
	s.push(&Event{Kind: EventSessionStart, Session: s, Time: time.Now()})
	s.mu.Unlock()
	return s, nil
}

// newOutOfDialog starts a request outside any dialog: from the bot's address from (with a
// new tag, and the display name), to uri.
func (b *Bot) newOutOfDialog(method sip.RequestMethod, from, uri sip.Uri) (*sip.Request, *sip.FromHeader) {
	req := sip.NewRequest(method, sip.Uri{Scheme: uri.Scheme, User: uri.User, Host: uri.Host, Port: uri.Port, UriParams: uri.UriParams})
	fh := &sip.FromHeader{DisplayName: b.cfg.DisplayName, Address: from}
	fh.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(fh)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: uri.Scheme, User: uri.User, Host: uri.Host, Port: uri.Port}})
	return req, fh
}

// verifiedPeer is the Peer of an address the bot knows to be right: one it chose itself,
// or one a trusted proxy asserted.
func verifiedPeer(uri sip.Uri, display string) Peer {
	p := peerFromURI(uri, display)
	p.Verified = true
	return p
}

// target resolves a peer address to the Request-URI, the next hop and the transport: the
// outbound proxy when one is set.
func (b *Bot) target(to string) (uri sip.Uri, dest, network string, err error) {
	uri, dest, network, err = b.directTarget(to)
	if err != nil {
		return uri, "", "", fmt.Errorf("%q is not a SIP address such as sip:alice@example.com", to)
	}
	if b.proxyAddr != "" {
		dest, network = b.proxyAddr, b.proxyTp
	}
	return uri, dest, network, nil
}

// Send sends text to the peer outside of any handler, for example a notice in a session
// the bot opened. Inside a handler use the Responder.
func (s *Session) Send(ctx context.Context, text string) error {
	if s.isEnded() {
		return ErrSessionEnded
	}
	_, err := s.sendText(ctx, text)
	return err
}

// Close ends the session: BYE for an IM session; a page-mode conversation is forgotten.
// EventSessionEnd follows with EndByBot.
func (s *Session) Close(ctx context.Context) {
	s.end(ctx, EndByBot, true)
}
