package bot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/internal/imcodec"
)

// udpBudget is the largest request the bot sends over UDP (RFC 3261 §18.1.1, RFC 3428).
const udpBudget = 1300

// minSplit is the smallest part worth splitting a text into for UDP.
const minSplit = 256

// SendError reports a request the peer (or a proxy) refused.
type SendError struct {
	Code   int
	Reason string
}

// Error implements error.
func (e *SendError) Error() string { return fmt.Sprintf("peer answered %d %s", e.Code, e.Reason) }

// sendText sends a text, split into several messages if it does not fit a UDP request. It
// reports Accepted when a server stored any part for later delivery. The parts go one after
// the other, each once the one before was answered.
func (s *Session) sendText(ctx context.Context, text string) (Delivery, error) {
	parts := []string{text}
	// A text of minSplit bytes or less is never split (a room smaller than minSplit is no
	// reason to split): its headers need not be measured.
	if len(text) > minSplit && s.replyNetwork() == "udp" {
		// Split between words to fit UDP, unless the headers alone leave no sensible room
		// (a long route set): then the message goes whole, over TCP (dialog.write).
		if overhead := s.udpOverhead(); overhead+len(text) > udpBudget && udpBudget-overhead >= minSplit {
			parts = imcodec.Split(text, udpBudget-overhead)
		}
	}
	// A typing indication still in flight is answered first: a proxy with parallel workers
	// (Kamailio over UDP) may relay two requests in either order, and typing that reached
	// the peer after the reply would show the bot typing when it is done. Its answer also
	// says whether the peer refused typing, before the next message is handled.
	s.tmu.Lock()
	s.settleTypingLocked()
	s.typingForMessageLocked()
	delivery := Delivered
	for i, part := range parts {
		wait, err := s.start(ctx, sip.MESSAGE, imcodec.PlainUTF8, []byte(part))
		if err != nil {
			s.tmu.Unlock()
			return 0, err
		}
		if i == len(parts)-1 {
			s.tmu.Unlock() // the last (or only) part is awaited without holding up typing
		}
		// Each part waits for the answer to the one before: a proxy with parallel workers
		// could otherwise deliver them in any order, and a receiver that handles requests
		// concurrently could show them so. A part that failed stops the rest.
		code, err := wait()
		if err != nil {
			if i < len(parts)-1 {
				s.tmu.Unlock()
			}
			return 0, err
		}
		if err == nil && s.b.cfg.Observer != nil {
			s.b.cfg.Observer.ObserveMessageOut(s.mode)
		}
		if code == 202 {
			delivery = Accepted
		}
	}
	return delivery, nil
}

// udpOverhead is the size of a text message of this conversation without its body, with a
// margin for what sipgo adds on sending (Via, CSeq, tags, Contact). It is measured once: the
// headers of one conversation's messages keep their size.
func (s *Session) udpOverhead() int {
	if n := s.headerBytes.Load(); n > 0 {
		return int(n)
	}
	n := len(s.newRequest(sip.MESSAGE, imcodec.PlainUTF8, nil).String()) + 400
	s.headerBytes.Store(int32(n))
	return n
}

func (s *Session) replyNetwork() string {
	if s.dlg != nil {
		return s.dlg.network
	}
	if s.viaProxy() {
		return s.b.proxyTp
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.network
}

// newRequest builds a request of the conversation (without the fields that are added when it
// is written: CSeq and Via, and out of dialog Call-ID).
func (s *Session) newRequest(method sip.RequestMethod, contentType string, body []byte) *sip.Request {
	if s.dlg != nil {
		return s.dlg.request(method, contentType, body)
	}
	req, _ := s.b.newOutOfDialog(method, s.local, s.peerURI)
	if contentType != "" {
		ct := sip.ContentTypeHeader(contentType)
		req.AppendHeader(&ct)
	}
	req.SetBody(body)
	if s.viaProxy() {
		req.SetDestination(s.b.proxyAddr)
		req.SetTransport(strings.ToUpper(s.b.proxyTp))
		return req
	}
	s.mu.Lock()
	dest, network := s.peerAddr, s.network
	s.mu.Unlock()
	req.SetDestination(dest)
	req.SetTransport(strings.ToUpper(network))
	return req
}

// viaProxy reports whether page-mode requests go through Config.OutboundProxy, answering
// its challenges with the bot's credentials: toward a peer whose address the bot knows to
// be right (verified, or chosen by the bot), or whose request came through a proxy (the
// outbound proxy or a trusted one), which routes the reply as it routed the request. An
// unverified peer that wrote to the bot directly is answered where its request came from,
// so that a forged From cannot make the bot send, through its proxy and in its name, a
// message to anyone. A web visitor (Peer.Guest) is reached over its own connection only.
func (s *Session) viaProxy() bool {
	return s.dlg == nil && s.b.proxyAddr != "" && !s.peer.Guest && (s.peer.Verified || s.proxied.Load())
}

// request sends one request of the conversation and waits for its final response, whose 2xx
// status it returns.
func (s *Session) request(ctx context.Context, method sip.RequestMethod, contentType string, body []byte) (int, error) {
	wait, err := s.start(ctx, method, contentType, body)
	if err != nil {
		return 0, err
	}
	return wait()
}

// post sends one request of the conversation without waiting: done gets its outcome.
func (s *Session) post(ctx context.Context, method sip.RequestMethod, contentType string, body []byte, done func(int, error)) error {
	wait, err := s.start(ctx, method, contentType, body)
	if err != nil {
		return err
	}
	go func() { done(wait()) }()
	return nil
}

// start writes one request of the conversation and returns how to wait for its final
// response. Requests of one session leave in the order start is called. A 408, 480 or 481
// (or no answer at all) inside a dialog means the peer lost it: the session ends.
func (s *Session) start(parent context.Context, method sip.RequestMethod, contentType string, body []byte) (func() (int, error), error) {
	if s.dlg == nil && s.unreachable.Load() {
		return nil, ErrPeerUnreachable
	}
	if s.b.sendHook == nil && (s.dlg != nil || !s.viaProxy()) {
		if wait, err := s.startLean(parent, method, contentType, body); !errors.Is(err, errNotLean) {
			return wait, err
		}
	}
	req := s.newRequest(method, contentType, body)
	timeout := s.b.cfg.RequestTimeout
	if s.dlg == nil && !s.peer.Verified && !s.heard.Load() && !sip.IsReliable(req.Transport()) {
		timeout = min(timeout, unprovenWait) // a forged source's victim gets four packets
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	if s.b.sendHook != nil {
		defer cancel()
		s.touch()
		err := s.b.sendHook(ctx, s, req)
		return func() (int, error) { return 200, err }, nil
	}
	s.touch()
	if s.dlg == nil && s.viaProxy() {
		// Through an outbound proxy that may challenge: one exchange, answered with
		// credentials if asked.
		defer cancel()
		cli := s.b.clients[sip.NetworkToLower(req.Transport())]
		if cli == nil {
			return nil, fmt.Errorf("send %s: the bot does not listen on %s", method, req.Transport())
		}
		res, err := s.b.doAuth(ctx, cli, req)
		code, err := s.outcome(parent, method, res, err)
		return func() (int, error) { return code, err }, nil
	}
	var (
		tx  sip.ClientTransaction
		err error
	)
	if s.dlg != nil {
		tx, err = s.dlg.write(ctx, req)
	} else if cli := s.b.clients[sip.NetworkToLower(req.Transport())]; cli == nil {
		err = fmt.Errorf("the bot does not listen on %s", req.Transport())
	} else {
		tx, err = cli.TransactionRequest(ctx, req)
	}
	if err != nil {
		cancel()
		_, err = s.outcome(parent, method, nil, err)
		return nil, err
	}
	return func() (int, error) {
		defer cancel()
		res, err := waitFinal(ctx, tx)
		s.touch()
		return s.outcome(parent, method, res, err)
	}, nil
}

// startLean is start for a request over UDP straight to an IP address (the peer's, or in a
// dialog the next hop's): the lean path (leanudp.go). It returns errNotLean when the request
// cannot take it.
func (s *Session) startLean(parent context.Context, method sip.RequestMethod, contentType string, body []byte) (func() (int, error), error) {
	var (
		tx  *leanClientTx
		err error
	)
	timeout := s.b.cfg.RequestTimeout
	if s.dlg != nil {
		tx, err = s.dlg.writeLean(s.b.lean, method, contentType, body, timeout)
	} else {
		s.mu.Lock()
		dest, network := s.peerAddr, s.network
		s.mu.Unlock()
		if network != "udp" {
			return nil, errNotLean
		}
		if !s.peer.Verified && !s.heard.Load() {
			timeout = min(timeout, unprovenWait) // a forged source's victim gets four packets
		}
		tx, err = s.b.lean.send(method, dest, timeout, func(w *bytes.Buffer, branch string) {
			s.renderPage(w, branch, method, contentType, body)
		})
	}
	if err == nil {
		s.touch()
	}
	switch {
	case errors.Is(err, errNotLean):
		return nil, err
	case err != nil:
		_, err = s.outcome(parent, method, nil, err)
		return nil, err
	}
	return func() (int, error) {
		res, err := tx.wait(parent)
		s.touch()
		return s.outcome(parent, method, res, err)
	}, nil
}

// outcome turns a final response (or its absence) into a status or an error, and ends a
// dialog the peer lost.
func (s *Session) outcome(parent context.Context, method sip.RequestMethod, res *sip.Response, err error) (int, error) {
	if err != nil {
		if s.dlg == nil && parent.Err() == nil && !errors.Is(err, sip.ErrUDPMTUCongestion) {
			// No answer at all: whoever wrote from that address is not there (or never
			// was). One timeout is all such a conversation costs.
			s.unreachable.Store(true)
		}
		// A request too large for UDP never left: the peer did not lose the dialog.
		if s.dlg != nil && parent.Err() == nil && method != sip.BYE && !errors.Is(err, sip.ErrUDPMTUCongestion) {
			// No answer at all, or no way to reach the peer (its connection is gone, a
			// browser tab closed): the dialog is dead.
			go s.end(s.b.handlerCtx, EndDeadDialog, false)
		}
		return 0, fmt.Errorf("send %s to %s: %w", method, s.peer.URI, err)
	}
	s.heard.Store(true)
	if res.StatusCode >= 300 {
		if s.dlg != nil && method != sip.BYE && (res.StatusCode == 408 || res.StatusCode == 480 || res.StatusCode == 481) {
			go s.end(s.b.handlerCtx, EndDeadDialog, res.StatusCode != 481)
		}
		return 0, &SendError{Code: res.StatusCode, Reason: res.Reason}
	}
	return res.StatusCode, nil
}
