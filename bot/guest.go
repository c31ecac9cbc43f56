package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/internal/origin"
)

// GuestHeader is the SIP header in which a web visitor's requests carry the token that
// vouches for its address (see TrustConfig.Guests).
const GuestHeader = "X-Imbot-Guest"

// GuestVerifier checks the tokens of anonymous web visitors. Package web's *Guests is one:
// it issues each visitor a short-lived signed token for an address of its own.
type GuestVerifier interface {
	// GuestDomain is the host of every visitor's address, such as "guest.invalid".
	GuestDomain() string
	// VerifyGuest returns nil when token was issued for the visitor address uri (in the
	// form Peer.URI has) and has not expired, else an error that says which.
	VerifyGuest(uri, token string) error
}

// guestIdentity applies TrustConfig.Guests to a request that starts a conversation. It
// reports ok false when the request is no visitor's (its From is outside the guest domain
// and it carries no token): the rest of the trust model decides. A visitor with a valid
// token is Verified and Guest; a From in the guest domain without a valid token, or a
// token with a From outside it, is refused 403, so that nobody can pose as a visitor and
// no visitor as anyone else.
func (b *Bot) guestIdentity(req *sip.Request) (peer Peer, ref *refusal, ok bool) {
	g := b.cfg.Trust.Guests
	if g == nil {
		return Peer{}, nil, false
	}
	from := req.From()
	hdr := req.GetHeader(GuestHeader)
	inDomain := strings.EqualFold(from.Address.Host, g.GuestDomain())
	if hdr == nil && !inDomain {
		return Peer{}, nil, false
	}
	refuse := func(why string) (Peer, *refusal, bool) {
		b.log.Info("web visitor refused", "from", from.Address.String(), "source", req.Source(), "why", why)
		return Peer{}, &refusal{code: 403, reason: "Forbidden", hdrs: []sip.Header{
			sip.NewHeader("Warning", fmt.Sprintf("399 imbot %q", why))}}, true
	}
	switch {
	case hdr == nil:
		return refuse("a web visitor's address needs its token (" + GuestHeader + "); reload the page")
	case !inDomain:
		return refuse("a web visitor's token is only good for its own address")
	}
	peer = peerFromURI(from.Address, from.DisplayName)
	if err := g.VerifyGuest(peer.URI, strings.TrimSpace(hdr.Value())); err != nil {
		return refuse(err.Error() + "; reload the page")
	}
	peer.Verified, peer.Guest = true, true
	return peer, nil, true
}

// guestReconnected takes a web visitor's OPTIONS (the widget sends one on every new
// WebSocket connection, whose token guestIdentity accepted) as its new address: its
// page-mode conversation, if it has one, is reached over that connection from now on, so
// that what the bot or an agent says next reaches a visitor whose connection dropped and came
// back before it writes again.
func (b *Bot) guestReconnected(req *sip.Request, peer Peer) {
	local := sip.Uri{Scheme: b.identity.Scheme, User: b.identity.User, Host: b.identity.Host, Port: b.identity.Port}
	s := b.sessions.pageOf(b.conversationKey(local, peer))
	if s == nil {
		return
	}
	s.mu.Lock()
	moved := s.peerAddr != req.Source()
	s.peerAddr, s.network = req.Source(), sip.NetworkToLower(req.Transport())
	s.mu.Unlock()
	s.unreachable.Store(false)
	if moved {
		b.log.Debug("web visitor reconnected", "session", s.id, "source", req.Source())
	}
}

// originAllowed reports whether a WebSocket upgrade request with this Origin header (present
// false: none) may go on, by Config.WebSocketOrigins: a request without Origin comes from a
// SIP client, not a browser, and goes on; a browser's must name an origin of the list (or
// the list holds "*").
func originAllowed(allowed []string, o string, present bool) bool {
	return !present || len(allowed) == 0 || origin.Listed(allowed, o)
}

// relayToGuest passes a request on to a web visitor whose connection is to this instance:
// a page-mode MESSAGE that another instance of the bot (a trusted proxy's address, see
// Bot.Forward) sent to the visitor's address, which only this instance can reach. It is
// answered with the visitor's answer, 480 when the visitor has no conversation here (its page
// was closed, or it reconnected elsewhere). It reports false for any other request.
func (b *Bot) relayToGuest(req *sip.Request, tx sip.ServerTransaction) bool {
	g := b.cfg.Trust.Guests
	if g == nil || !strings.EqualFold(req.Recipient.Host, g.GuestDomain()) || !b.trust.trusted(req.Source()) {
		return false
	}
	peer := peerFromURI(req.Recipient, "")
	peer.Verified, peer.Guest = true, true
	local := sip.Uri{Scheme: b.identity.Scheme, User: b.identity.User, Host: b.identity.Host, Port: b.identity.Port}
	s := b.sessions.pageOf(b.conversationKey(local, peer))
	if s == nil || s.isEnded() {
		b.log.Info("a message for a web visitor not connected here", "to", peer.URI, "source", req.Source())
		b.respond(req, tx, 480)
		return true
	}
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = h.Value()
	}
	ctx, cancel := context.WithTimeout(b.handlerCtx, b.cfg.RequestTimeout)
	defer cancel()
	code, err := s.request(ctx, sip.MESSAGE, ct, req.Body())
	var se *SendError
	switch {
	case errors.As(err, &se):
		code = se.Code
	case err != nil:
		b.log.Info("a message for a web visitor not relayed", "to", peer.URI, "err", err)
		code = 408
	}
	b.respond(req, tx, code)
	return true
}
