package bot

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// dialog is what an IM session keeps of its SIP dialog, whichever side opened it: the few
// fields in-dialog requests are built from, and the bot's local CSeq. It keeps no request
// or response of the INVITE exchange once the session is confirmed (see ack).
//
// The bot's own in-dialog requests go through one writer: the CSeq is assigned and the
// request written under wmu, so numbers leave the socket strictly increasing, while the
// answers are awaited outside it (typing, receipts and replies are pipelined in order).
type dialog struct {
	callID  string
	from    sip.FromHeader // the bot's side, with its tag
	to      sip.ToHeader   // the peer's side, with its tag
	target  sip.Uri        // the peer's Contact: Request-URI of in-dialog requests
	routes  []string       // Route header values, in the order they are sent
	dest    string         // next hop host:port
	network string
	cli     *sipgo.Client
	contact *sip.ContactHeader
	sdp     []byte // the SDP answer the bot gave, for re-INVITEs

	wmu  sync.Mutex
	cseq uint32 // last local CSeq used

	// UAS side, until the ACK: the 200 and its transaction, for retransmissions (RFC 3261
	// §13.3.1.4).
	amu      sync.Mutex
	acked    bool
	inviteTx sip.ServerTransaction
	ok       *sip.Response
	retx     *time.Timer
	interval time.Duration
	deadline time.Time

	// UAC side: sipgo's session, which answers 200 retransmissions with ACK until closed.
	uac *sipgo.DialogClientSession
}

// routeBytes is the size of the Route headers of in-dialog requests.
func (d *dialog) routeBytes() int {
	n := 0
	for _, r := range d.routes {
		n += len("Route: \r\n") + len(r)
	}
	return n
}

// setRoutes records the route set and the next hop: the first route, or else where.
func (d *dialog) setRoutes(routes []string, elsewhere string) {
	d.routes = routes
	d.dest = elsewhere
	if len(routes) > 0 {
		if hp := uriHostPort(routes[0]); hp != "" {
			d.dest = hp
		}
	}
}

// uriHostPort returns the host:port of a name-addr such as "<sip:p.example.com:5070;lr>",
// with port 5060 when none is given.
func uriHostPort(v string) string {
	if i := strings.IndexByte(v, '<'); i >= 0 {
		v = v[i+1:]
		if j := strings.IndexByte(v, '>'); j >= 0 {
			v = v[:j]
		}
	}
	var u sip.Uri
	if err := sip.ParseUri(strings.TrimSpace(v), &u); err != nil || u.Host == "" {
		return ""
	}
	return hostPort(u)
}

func hostPort(u sip.Uri) string {
	port := u.Port
	if port == 0 {
		port = 5060
	}
	return net.JoinHostPort(u.Host, strconv.Itoa(port))
}

// request builds an in-dialog request without its CSeq and Via (see write).
func (d *dialog) request(method sip.RequestMethod, contentType string, body []byte) *sip.Request {
	req := sip.NewRequest(method, d.target)
	from, to := d.from, d.to
	from.Params, to.Params = from.Params.Clone(), to.Params.Clone()
	req.AppendHeader(&from)
	req.AppendHeader(&to)
	cid := sip.CallIDHeader(d.callID)
	req.AppendHeader(&cid)
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	for _, r := range d.routes {
		req.AppendHeader(sip.NewHeader("Route", r))
	}
	if d.contact != nil {
		req.AppendHeader(sip.HeaderClone(d.contact))
	}
	if contentType != "" {
		ct := sip.ContentTypeHeader(contentType)
		req.AppendHeader(&ct)
	}
	req.SetBody(body)
	req.SetTransport(strings.ToUpper(d.network))
	req.SetDestination(d.dest)
	return req
}

// write assigns the next CSeq and writes req, starting its client transaction. Requests
// leave the socket in the order of their CSeq.
func (d *dialog) write(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.cseq++
	req.AppendHeader(&sip.CSeqHeader{SeqNo: d.cseq, MethodName: req.Method})
	return d.cli.TransactionRequest(ctx, req, sipgo.ClientRequestAddVia)
}

// waitFinal waits for the final response of a client transaction.
func waitFinal(ctx context.Context, tx sip.ClientTransaction) (*sip.Response, error) {
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return res, nil
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return nil, err
			}
			return nil, errors.New("transaction ended without a final response")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// sendOK sends the 200 of an INVITE and, over UDP, retransmits it at T1, 2·T1, 4·T1... (at
// most T2 apart) until the ACK comes; without an ACK after 64·T1 noAck runs (the session
// then ends with a BYE, RFC 3261 §13.3.1.4). Over reliable transports only the ACK
// deadline applies.
func (b *Bot) sendOK(d *dialog, tx sip.ServerTransaction, req *sip.Request, res *sip.Response, noAck func()) error {
	d.amu.Lock()
	defer d.amu.Unlock()
	d.inviteTx, d.ok = tx, res
	d.deadline = time.Now().Add(b.cfg.AckTimeout)
	if err := b.writeResponse(tx, req, res); err != nil {
		return err
	}
	d.interval = sip.T1
	if sip.IsReliable(req.Transport()) {
		d.interval = b.cfg.AckTimeout
	}
	var tick func()
	tick = func() {
		d.amu.Lock()
		defer d.amu.Unlock()
		if d.acked {
			return
		}
		if !time.Now().Before(d.deadline) {
			d.acked = true // given up: no more retransmissions
			d.release()
			go noAck()
			return
		}
		if !sip.IsReliable(req.Transport()) {
			if err := b.writeResponse(d.inviteTx, req, d.ok); err != nil {
				b.log.Debug("200 retransmission not sent", "call-id", d.callID, "err", err)
			}
			d.interval = min(2*d.interval, sip.T2)
		}
		d.retx.Reset(min(d.interval, time.Until(d.deadline)))
	}
	d.retx = time.AfterFunc(min(d.interval, b.cfg.AckTimeout), tick)
	return nil
}

// ack records the ACK of the 200: retransmissions stop and the INVITE exchange is released.
func (d *dialog) ack() {
	d.amu.Lock()
	defer d.amu.Unlock()
	if d.acked {
		return
	}
	d.acked = true
	d.release()
}

// release forgets the INVITE exchange; the caller holds d.amu.
func (d *dialog) release() {
	if d.retx != nil {
		d.retx.Stop()
		d.retx = nil
	}
	if d.inviteTx != nil {
		d.inviteTx.Terminate()
		d.inviteTx = nil
	}
	d.ok = nil
}

// close stops what the dialog still runs.
func (d *dialog) close() {
	d.amu.Lock()
	d.acked = true
	d.release()
	d.amu.Unlock()
	if d.uac != nil {
		_ = d.uac.Close()
	}
}

// writeResponse sends a response in its transaction. A response too large for sipgo's UDP
// limit (a 200 carrying a long Record-Route set) is written to the listening socket
// directly: a response goes back over the transport of its request, whatever its size
// (RFC 3261 §18.2.2), and a caller left without a final response would retransmit in vain.
func (b *Bot) writeResponse(tx sip.ServerTransaction, req *sip.Request, res *sip.Response) error {
	err := tx.Respond(res)
	if !errors.Is(err, sip.ErrUDPMTUCongestion) {
		return err
	}
	pc := b.udpConn()
	if pc == nil {
		return err
	}
	// sipgo answers UDP requests at their source address; so does this.
	dst, rerr := net.ResolveUDPAddr("udp", req.Source())
	if rerr != nil {
		return errors.Join(err, rerr)
	}
	if _, werr := pc.WriteTo([]byte(res.String()), dst); werr != nil {
		return errors.Join(err, werr)
	}
	return nil
}

// udpConn returns the bot's UDP socket, nil when it does not listen on UDP.
func (b *Bot) udpConn() net.PacketConn {
	for _, l := range b.listeners {
		if l.pc != nil {
			return l.pc
		}
	}
	return nil
}
