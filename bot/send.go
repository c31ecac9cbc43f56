package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/internal/imcodec"
)

// udpBudget is the largest request the bot sends over UDP (RFC 3261 §18.1.1, RFC 3428).
const udpBudget = 1300

// typingKind is the typing signal a session gets.
type typingKind int

const (
	typingNone      typingKind = iota
	typingKeyboard             // INFO application/xml KeyboardActivity (Microsoft dialect)
	typingComposing            // RFC 3994 isComposing MESSAGE
)

// typingPrefs records what the peer showed it understands.
type typingPrefs struct {
	peerKeyboard, peerComposing bool // the peer sent one
	acceptsComposing            bool // listed in accept-types or Accept
	ms                          bool // a Microsoft-style session
	refusedKeyboard             bool
	refusedComposing            bool
}

// typingKind picks the signal: mirror the peer, else what it announced, never one it refused.
func (s *Session) typingKind() typingKind {
	s.mu.Lock()
	p := s.typing
	s.mu.Unlock()
	keyboard := s.mode == ModeSession && !p.refusedKeyboard
	composing := !p.refusedComposing
	switch {
	case p.peerKeyboard && keyboard:
		return typingKeyboard
	case p.peerComposing && composing:
		return typingComposing
	case p.acceptsComposing && composing:
		return typingComposing
	case p.ms && keyboard:
		return typingKeyboard
	}
	return typingNone
}

// SendError reports a request the peer (or a proxy) refused.
type SendError struct {
	Code   int
	Reason string
}

// Error implements error.
func (e *SendError) Error() string { return fmt.Sprintf("peer answered %d %s", e.Code, e.Reason) }

// sendText sends a text reply, split into several messages if it does not fit a UDP request.
func (s *Session) sendText(ctx context.Context, text string) error {
	body := []byte(text)
	network := s.replyNetwork()
	if network == "udp" {
		req := s.newRequest(sip.MESSAGE, imcodec.PlainUTF8, nil)
		overhead := len(req.String()) + s.routeLen + 400 // Via, CSeq, tags, Contact added on send
		if overhead+len(body) > udpBudget {
			for _, part := range imcodec.Split(text, udpBudget-overhead) {
				if err := s.send(ctx, sip.MESSAGE, imcodec.PlainUTF8, []byte(part)); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return s.send(ctx, sip.MESSAGE, imcodec.PlainUTF8, body)
}

// sendTyping sends one typing indication.
func (s *Session) sendTyping(ctx context.Context, kind typingKind, active bool) error {
	var err error
	switch kind {
	case typingKeyboard:
		err = s.send(ctx, sip.INFO, imcodec.TypeKeyboard, imcodec.KeyboardActivity(active))
	case typingComposing:
		err = s.send(ctx, sip.MESSAGE, imcodec.TypeIsComposing, imcodec.IsComposing(active, s.b.cfg.Typing.Refresh))
	default:
		return ErrTypingNotSupported
	}
	var se *SendError
	if errors.As(err, &se) && (se.Code == 415 || se.Code == 405 || se.Code == 501) {
		s.mu.Lock()
		if kind == typingKeyboard {
			s.typing.refusedKeyboard = true
		} else {
			s.typing.refusedComposing = true
		}
		s.mu.Unlock()
		s.b.log.Debug("peer refused typing; no more of them", "session", s.id, "code", se.Code)
		return nil
	}
	if err == nil && s.b.cfg.Observer != nil {
		s.b.cfg.Observer.ObserveTypingSent()
	}
	return err
}

func (s *Session) replyNetwork() string {
	if s.mode == ModePage && s.b.proxyAddr != "" {
		return s.b.proxyTp
	}
	return s.network
}

// newRequest builds a request of the conversation (without the dialog fields that sipgo adds).
func (s *Session) newRequest(method sip.RequestMethod, contentType string, body []byte) *sip.Request {
	if s.dlg != nil {
		req := sip.NewRequest(method, s.target)
		ct := sip.ContentTypeHeader(contentType)
		req.AppendHeader(&ct)
		req.SetBody(body)
		return req
	}
	req := sip.NewRequest(method, s.peerURI)
	from := &sip.FromHeader{DisplayName: s.b.cfg.DisplayName, Address: s.local}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: s.peerURI})
	ct := sip.ContentTypeHeader(contentType)
	req.AppendHeader(&ct)
	req.SetBody(body)
	if s.b.proxyAddr != "" {
		req.SetDestination(s.b.proxyAddr)
		req.SetTransport(strings.ToUpper(s.b.proxyTp))
	} else {
		req.SetDestination(s.peerAddr)
		req.SetTransport(strings.ToUpper(s.network))
	}
	return req
}

// send sends one request of the conversation and waits for its final response. A 408, 480 or
// 481 (or no answer at all) inside a dialog means the peer lost it: the session ends.
func (s *Session) send(parent context.Context, method sip.RequestMethod, contentType string, body []byte) error {
	ctx, cancel := context.WithTimeout(parent, s.b.cfg.RequestTimeout)
	defer cancel()
	req := s.newRequest(method, contentType, body)
	if s.b.sendHook != nil {
		s.touch()
		return s.b.sendHook(ctx, s, req)
	}
	var (
		res *sip.Response
		err error
	)
	if s.dlg != nil {
		res, err = s.dlg.Do(ctx, req)
	} else {
		cli := s.b.clients[sip.NetworkToLower(req.Transport())]
		if cli == nil {
			return fmt.Errorf("send %s: the bot does not listen on %s", method, req.Transport())
		}
		res, err = s.b.doAuth(ctx, cli, req) // an outbound proxy may challenge
	}
	s.touch()
	if err != nil {
		if s.dlg != nil && parent.Err() == nil {
			// No answer at all, or no way to reach the peer (its connection is gone, a
			// browser tab closed): the dialog is dead.
			go s.end(s.b.handlerCtx, EndDeadDialog, false)
		}
		return fmt.Errorf("send %s to %s: %w", method, s.peer.URI, err)
	}
	if res.StatusCode >= 300 {
		if s.dlg != nil && (res.StatusCode == 408 || res.StatusCode == 480 || res.StatusCode == 481) {
			go s.end(s.b.handlerCtx, EndDeadDialog, res.StatusCode != 481)
		}
		return &SendError{Code: res.StatusCode, Reason: res.Reason}
	}
	return nil
}
