package bottest

import (
	"context"
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// SendPage sends text to the bot in a page-mode (RFC 3428) MESSAGE,
// Content-Type text/plain;charset=UTF-8, and returns the final response. A
// non-2xx response is not an error; the error reports a request that got no
// final response (ctx ended, transport error, peer closed).
func (p *Peer) SendPage(ctx context.Context, text string) (*sip.Response, error) {
	return p.SendPageRaw(ctx, ContentTypeText, []byte(text))
}

// SendPageTyping sends an RFC 3994 isComposing document ("active" with
// refresh 60, or "idle") in a page-mode MESSAGE.
func (p *Peer) SendPageTyping(ctx context.Context, active bool) (*sip.Response, error) {
	return p.SendPageRaw(ctx, ContentTypeIsComposing, isComposing(active))
}

// SendPageRaw sends an out-of-dialog MESSAGE with any body to the bot's
// address-of-record and returns the final response. Each MESSAGE has a new
// Call-ID and From-tag. contentType is omitted when empty; hdrs are added
// as they are (with Options.AcceptComposing the peer adds an Accept header
// unless hdrs has one).
func (p *Peer) SendPageRaw(ctx context.Context, contentType string, body []byte, hdrs ...sip.Header) (*sip.Response, error) {
	if p.isClosed() {
		return nil, errClosed
	}
	req := sip.NewRequest(sip.MESSAGE, p.botURI)
	req.AppendHeader(p.newFrom())
	req.AppendHeader(&sip.ToHeader{Address: p.botURI})
	hasAccept := false
	for _, h := range hdrs {
		req.AppendHeader(h)
		if strings.EqualFold(h.Name(), "Accept") {
			hasAccept = true
		}
	}
	if p.opts.AcceptComposing && !hasAccept {
		req.AppendHeader(sip.NewHeader("Accept", "text/plain, application/im-iscomposing+xml"))
	}
	if contentType != "" {
		ct := sip.ContentTypeHeader(contentType)
		req.AppendHeader(&ct)
	}
	req.SetBody(body)
	p.prepare(req)

	// sipgo fills in Via, Call-ID, CSeq and Max-Forwards.
	if !p.enter() {
		return nil, errClosed
	}
	tx, err := p.cli.TransactionRequest(ctx, req)
	p.leave()
	if err != nil {
		return nil, fmt.Errorf("bottest: MESSAGE: %w", err)
	}
	defer tx.Terminate()
	return waitFinal(ctx, sip.MESSAGE, tx)
}
