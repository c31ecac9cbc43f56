package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/internal/imcodec"
)

// ForwardHeader carries the intent of a message one bot instance forwarded to another
// (Bot.Forward). An instance reads it only from a trusted proxy (TrustConfig.Proxies): from
// anyone else it is removed, as P-Asserted-Identity is.
const ForwardHeader = "X-Imbot-Forward"

// Forward sends the message of ev (or the end of its conversation: a message whose intent
// says so) to another instance of the bot, at dest (its SIP address,
// such as sip:10.0.0.12:5060 or sip:10.0.0.12:5060;transport=tcp), as the peer's own: a
// page-mode MESSAGE from the peer's address, with its Content-Type and body, asserted with
// P-Asserted-Identity when the peer is Verified, and intent in the ForwardHeader (the
// receiver reads it with Event.Forwarded). It goes straight to dest, never through the
// outbound proxy, and returns once dest answered 2xx; a refusal is a *SendError.
//
// The receiving instance takes the peer for who it is only if it trusts this one
// (TrustConfig.Proxies lists its address); its replies then reach the peer through its own
// outbound proxy. Several instances that share a store forward to the one that runs what
// cannot be shared, such as the helpdesk (handlers.Leader). A web visitor (Peer.Guest) is
// forwarded with its token (GuestHeader), which the receiver checks as this instance did:
// the receiver's messages to the visitor come back here, to the visitor's connection.
func (b *Bot) Forward(ctx context.Context, ev *Event, dest, intent string) error {
	if ev == nil || ev.Session == nil || (ev.Kind != EventMessage && ev.Kind != EventSessionEnd) {
		return errors.New("forward: only a message or the end of a conversation can be forwarded")
	}
	if strings.ContainsAny(intent, "\r\n") {
		return errors.New("forward: the intent must be one line")
	}
	peer := ev.Session.Peer()
	var token sip.Header
	if peer.Guest {
		// The receiver checks the visitor's token as this instance did (the instances
		// share the secret), and answers the visitor here, where its connection is.
		if r := ev.SIPRequest(); r != nil {
			token = r.GetHeader(GuestHeader)
		}
		if token == nil {
			return fmt.Errorf("forward: %s is a web visitor whose token is not at hand", peer.URI)
		}
	}
	var from sip.Uri
	if err := sip.ParseUri(peer.URI, &from); err != nil {
		return fmt.Errorf("forward: the peer's address %q: %w", peer.URI, err)
	}
	uri, destAddr, network, err := b.directTarget(dest)
	if err != nil {
		return fmt.Errorf("forward: %w", err)
	}
	cli := b.clients[network]
	if cli == nil {
		return fmt.Errorf("forward: the bot does not listen on %s, needed to reach %s", network, dest)
	}
	req := sip.NewRequest(sip.MESSAGE, uri)
	fh := &sip.FromHeader{DisplayName: peer.DisplayName, Address: from}
	fh.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(fh)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: uri.Scheme, User: uri.User, Host: uri.Host, Port: uri.Port}})
	switch {
	case token != nil:
		req.AppendHeader(sip.NewHeader(GuestHeader, token.Value()))
	case peer.Verified:
		req.AppendHeader(sip.NewHeader("P-Asserted-Identity", "<"+peer.URI+">"))
	}
	if intent == "" {
		intent = "message"
	}
	req.AppendHeader(sip.NewHeader(ForwardHeader, intent))
	ct, body := imcodec.PlainUTF8, []byte(ev.Text)
	switch {
	case ev.Kind == EventSessionEnd:
		// A request with a body, so that the receiver hands it to its chain; the intent
		// says what it stands for.
		body = []byte("(the session ended: " + string(ev.Reason) + ")")
	case ev.SIPRequest() != nil && len(ev.SIPRequest().Body()) > 0 && ev.ContentType != "":
		ct, body = ev.ContentType, ev.SIPRequest().Body()
	}
	cth := sip.ContentTypeHeader(ct)
	req.AppendHeader(&cth)
	req.SetBody(body)
	req.SetDestination(destAddr)
	req.SetTransport(strings.ToUpper(network))
	res, err := cli.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("forward to %s: %w", dest, err)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return &SendError{Code: res.StatusCode, Reason: res.Reason}
	}
	return nil
}

// Forwarded reports whether the event is a message another instance forwarded (Bot.Forward)
// through a trusted source, and with which intent.
func (e *Event) Forwarded() (intent string, ok bool) {
	// Forwarded messages are page-mode ones, which the trust model vetted (see
	// ForwardHeader); a request inside a dialog is not.
	if e.req == nil || e.Session == nil || e.Session.Mode() != ModePage {
		return "", false
	}
	h := e.req.GetHeader(ForwardHeader)
	if h == nil {
		return "", false
	}
	return h.Value(), true
}

// directTarget resolves an address to the Request-URI, the next hop (its host, port 5060 by
// default) and the transport (its transport parameter, UDP by default).
func (b *Bot) directTarget(to string) (uri sip.Uri, dest, network string, err error) {
	if !strings.HasPrefix(strings.ToLower(to), "sip:") && !strings.HasPrefix(strings.ToLower(to), "sips:") {
		to = "sip:" + to
	}
	if err := sip.ParseUri(to, &uri); err != nil || uri.Host == "" || strings.ContainsAny(to, "\r\n") {
		return uri, "", "", fmt.Errorf("%q is not a SIP address such as sip:10.0.0.12:5060", to)
	}
	network = "udp"
	if t, ok := uri.UriParams.Get("transport"); ok && t != "" {
		network = strings.ToLower(t)
	}
	dest = uri.HostPort()
	if uri.Port == 0 {
		dest = uri.Host + ":5060"
	}
	return uri, dest, network, nil
}
