package bot

import (
	"context"
	"fmt"
	"strings"

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
	var uri sip.Uri
	if !strings.HasPrefix(strings.ToLower(to), "sip:") && !strings.HasPrefix(strings.ToLower(to), "sips:") {
		to = "sip:" + to
	}
	if err := sip.ParseUri(to, &uri); err != nil || uri.Host == "" || strings.ContainsAny(to, "\r\n") {
		return 0, fmt.Errorf("send: %q is not a SIP address such as sip:alice@example.com", to)
	}
	network := "udp"
	if t, ok := uri.UriParams.Get("transport"); ok && t != "" {
		network = strings.ToLower(t)
	}
	dest := uri.HostPort()
	if uri.Port == 0 {
		dest = uri.Host + ":5060"
	}
	if b.proxyAddr != "" {
		dest, network = b.proxyAddr, b.proxyTp
	}
	cli := b.clients[network]
	if cli == nil {
		return 0, fmt.Errorf("send: the bot does not listen on %s, needed to reach %s", network, to)
	}
	budget := 0
	if network == "udp" {
		budget = udpBudget - 600 // headers of an out-of-dialog MESSAGE, generously
	}
	parts := []string{text}
	if budget > 0 && len(text) > budget {
		parts = imcodec.Split(text, budget)
	}
	delivery := Delivered
	for _, part := range parts {
		req := sip.NewRequest(sip.MESSAGE, sip.Uri{Scheme: uri.Scheme, User: uri.User, Host: uri.Host, Port: uri.Port, UriParams: uri.UriParams})
		from := &sip.FromHeader{DisplayName: b.cfg.DisplayName, Address: b.identity}
		from.Params.Add("tag", sip.GenerateTagN(16))
		req.AppendHeader(from)
		req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: uri.Scheme, User: uri.User, Host: uri.Host, Port: uri.Port}})
		ct := sip.ContentTypeHeader(imcodec.PlainUTF8)
		req.AppendHeader(&ct)
		req.SetBody([]byte(part))
		req.SetDestination(dest)
		req.SetTransport(strings.ToUpper(network))
		rctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
		res, err := b.doAuth(rctx, cli, req)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("send to %s: %w", to, err)
		}
		switch {
		case res.StatusCode == 202:
			delivery = Accepted
		case res.StatusCode >= 300:
			return 0, &SendError{Code: res.StatusCode, Reason: res.Reason}
		}
	}
	return delivery, nil
}
