package bottest

import (
	"github.com/emiago/sipgo/sip"
)

// handleRequest answers and records every request the bot sends (ACK
// excepted).
func (p *Peer) handleRequest(req *sip.Request, tx sip.ServerTransaction) {
	seq, at := p.arrivals.take(req)
	rec := classify(req)
	rec.Time = at

	var sess *Session
	if rec.InDialog {
		sess = p.lookup(req)
	}
	status := p.status(req, rec, sess)
	rec.Status = status
	p.addRecord(seq, rec)
	p.arrivals.settled(req)

	switch {
	case req.Method == sip.BYE && sess != nil && status >= 200 && status < 300:
		sess.readBye(req, tx, status)
	case req.Method == sip.INVITE && !rec.InDialog && status >= 200 && status < 300:
		p.acceptInvite(req, tx, status)
	default:
		p.respond(req, tx, status)
	}
}

// handleAck passes the ACK of a 2xx to the session the bot opened. ACKs are
// not recorded.
func (p *Peer) handleAck(req *sip.Request, tx sip.ServerTransaction) {
	p.arrivals.take(req)
	p.arrivals.settled(req)
	if s := p.lookup(req); s != nil {
		s.readAck(req, tx)
	}
}

// status decides the answer to a request from the bot.
func (p *Peer) status(req *sip.Request, rec Record, sess *Session) int {
	if p.opts.Respond != nil {
		if code := p.opts.Respond(req); code != 0 {
			return code
		}
	}
	if req.Method == sip.CANCEL {
		return 481 // sipgo answers CANCELs that match a transaction itself
	}
	if rec.InDialog && sess == nil {
		return 481
	}
	if p.opts.RefuseComposing && rec.Kind == KindTyping && rec.Dialect == DialectIETF {
		return 415
	}
	switch req.Method {
	case sip.MESSAGE, sip.INFO, sip.BYE, sip.OPTIONS, sip.NOTIFY:
		return 200
	case sip.INVITE:
		if rec.InDialog {
			return 488 // no re-INVITEs
		}
		if p.opts.AcceptSessions && offersIM(req.Body()) {
			return 200
		}
		if p.opts.AcceptSessions {
			return 488
		}
		return 480
	}
	return 405
}

// respond sends a final response without a body.
func (p *Peer) respond(req *sip.Request, tx sip.ServerTransaction, status int) {
	res := sip.NewResponseFromRequest(req, status, reason(status), nil)
	switch status {
	case 415:
		res.AppendHeader(sip.NewHeader("Accept", "text/plain"))
	case 405:
		res.AppendHeader(sip.NewHeader("Allow", allow))
	case 200:
		if req.Method == sip.OPTIONS {
			res.AppendHeader(sip.NewHeader("Allow", allow))
			res.AppendHeader(sip.NewHeader("Accept", "text/plain, application/im-iscomposing+xml, application/sdp"))
		}
	}
	if err := tx.Respond(res); err != nil && !p.isClosed() {
		p.log.Debug("bottest: respond", "status", status, "request", req.StartLine(), "error", err)
	}
}

const allow = "INVITE, ACK, CANCEL, BYE, MESSAGE, INFO, OPTIONS"

// reason returns the reason phrase of a status code.
func reason(code int) string {
	switch code {
	case 200:
		return "OK"
	case 202:
		return "Accepted"
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 408:
		return "Request Timeout"
	case 413:
		return "Request Entity Too Large"
	case 415:
		return "Unsupported Media Type"
	case 480:
		return "Temporarily Unavailable"
	case 481:
		return "Call/Transaction Does Not Exist"
	case 486:
		return "Busy Here"
	case 488:
		return "Not Acceptable Here"
	case 500:
		return "Server Internal Error"
	case 503:
		return "Service Unavailable"
	case 603:
		return "Decline"
	}
	switch code / 100 {
	case 1:
		return "Trying"
	case 2:
		return "OK"
	case 3:
		return "Redirect"
	case 4:
		return "Client Error"
	case 5:
		return "Server Error"
	}
	return "Global Failure"
}
