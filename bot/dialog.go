package bot

import (
	"bytes"
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
	tcp     *sipgo.Client      // for requests too large for UDP; nil when the bot has no TCP
	contact *sip.ContactHeader // shared by the bot's dialogs of one transport: never modified

	wmu  sync.Mutex
	cseq uint32 // last local CSeq used

	// UAS side, until the ACK (nil after it, and on the UAC side).
	amu         sync.Mutex
	acked       bool
	*uasPending // guarded by amu

	// UAC side: sipgo's session, which answers 200 retransmissions with ACK until closed.
	uac *sipgo.DialogClientSession
}

// uasPending is what a dialog the bot accepted keeps until the ACK: the 200, where it goes,
// for retransmissions (RFC 3261 §13.3.1.4), and the INVITE's key in the bot's table of
// recent INVITEs. An established session keeps none of it.
type uasPending struct {
	okAt      time.Time // when the 200 was first sent
	ok        *sip.Response
	okTx      sip.ServerTransaction // only where the 200 went through the transaction
	okReq     *sip.Request
	inviteKey string
	retx      *time.Timer
	interval  time.Duration
	deadline  time.Time
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
	cli := d.cli
	if d.tcp != nil && d.network == "udp" && len(req.String())+udpViaBytes > udpBudget {
		// RFC 3261 §18.1.1: a request this large goes over a congestion-controlled
		// transport, to the same next hop (a long route set makes even a short message
		// too large for UDP).
		req.SetTransport("TCP")
		cli = d.tcp
	}
	return cli.TransactionRequest(ctx, req, sipgo.ClientRequestAddVia)
}

// writeLean is write for a request over UDP toward an IP address (the lean path,
// leanudp.go): it renders the request straight into bytes with the next CSeq. It returns
// errNotLean, and takes no CSeq, when the request cannot take it (another transport, a next
// hop by name, or too large for UDP: write sends that one over TCP).
func (d *dialog) writeLean(l *leanUDP, method sip.RequestMethod, contentType string, body []byte, timeout time.Duration) (*leanClientTx, error) {
	if d.network != "udp" {
		return nil, errNotLean
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	tx, err := l.send(method, d.dest, timeout, func(w *bytes.Buffer, branch string) {
		d.render(w, l.b, branch, d.cseq+1, method, contentType, body)
	})
	if errors.Is(err, sip.ErrUDPMTUCongestion) {
		err = errNotLean
	}
	if err == nil {
		d.cseq++
	}
	return tx, err
}

// render writes an in-dialog request as request and write build it (Via, the dialog's From,
// To, Call-ID, Max-Forwards, Route set, Contact, CSeq, Content-Type, Content-Length).
func (d *dialog) render(w *bytes.Buffer, b *Bot, branch string, cseq uint32, method sip.RequestMethod, contentType string, body []byte) {
	w.WriteString(string(method))
	w.WriteByte(' ')
	d.target.StringWrite(w)
	w.WriteString(" SIP/2.0\r\nVia: SIP/2.0/UDP ")
	w.WriteString(b.host)
	w.WriteByte(':')
	w.WriteString(strconv.Itoa(b.ports["udp"]))
	w.WriteString(";branch=")
	w.WriteString(branch)
	w.WriteString("\r\n")
	d.from.StringWrite(w)
	w.WriteString("\r\n")
	d.to.StringWrite(w)
	w.WriteString("\r\nCall-ID: ")
	w.WriteString(d.callID)
	w.WriteString("\r\nCSeq: ")
	w.WriteString(strconv.FormatUint(uint64(cseq), 10))
	w.WriteByte(' ')
	w.WriteString(string(method))
	w.WriteString("\r\nMax-Forwards: 70\r\n")
	for _, r := range d.routes {
		w.WriteString("Route: ")
		w.WriteString(r)
		w.WriteString("\r\n")
	}
	if d.contact != nil {
		d.contact.StringWrite(w)
		w.WriteString("\r\n")
	}
	renderBody(w, contentType, body)
}

// udpViaBytes is room for the Via header written with the request.
const udpViaBytes = 120

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

// unprovenWait bounds how long the bot keeps sending to an unverified UDP peer that has not
// shown it hears the bot: the 200 of its INVITE is retransmitted until then (0, T1, 3·T1,
// 7·T1: four packets), and a page-mode request toward it is given up then (four packets).
// A forged source, whose victim never answers, gets no more than that; a real peer on
// loopback or a LAN answers within milliseconds, and one whose packets are lost gets three
// retransmissions, as a UDP client retransmits its own requests.
const unprovenWait = 4 * time.Second

// connTx is a server transaction that exposes its connection (sipgo's *sip.ServerTx).
type connTx interface {
	Connection() sip.Connection
}

// sendOK sends the 200 of an INVITE and, over UDP, retransmits it at T1, 2·T1, 4·T1... (at
// most T2 apart) until the ACK comes; without an ACK after Config.AckTimeout noAck runs (the
// session then ends with a BYE, RFC 3261 §13.3.1.4). Over reliable transports only the ACK
// deadline applies.
//
// Toward an unverified peer over UDP (heard is then set) the 200 goes out at most four times
// (0, T1, 3·T1, 7·T1) unless heard reports that the peer spoke in the dialog: a forged
// INVITE brings its victim four small packets, not a 200 every T2 for 32 s.
//
// The 200 is written on the transaction's connection and the transaction is terminated at
// once: sipgo would keep an accepted INVITE transaction (the INVITE, the 200, the SDP) for 32
// s after the ACK, whatever the session does, which is most of what an IM session costs. The
// bot plays the accepted state itself: it keeps the 200 until the ACK and answers a
// retransmitted INVITE with it (see resendOK).
func (b *Bot) sendOK(d *dialog, tx sip.ServerTransaction, req *sip.Request, res *sip.Response, heard func() bool, noAck func()) error {
	d.amu.Lock()
	defer d.amu.Unlock()
	d.uasPending = &uasPending{ok: res, okReq: req}
	d.okAt = time.Now()
	d.deadline = d.okAt.Add(b.cfg.AckTimeout)
	if heard != nil {
		d.deadline = d.okAt.Add(min(unprovenWait, b.cfg.AckTimeout))
	}
	if ct, ok := tx.(connTx); ok {
		if err := b.writeOn(ct.Connection(), req, res); err != nil {
			return err
		}
		d.inviteKey = inviteKey(req)
		b.unacked.Store(d.inviteKey, d)
		tx.Terminate()
	} else {
		if err := b.writeResponse(tx, req, res); err != nil {
			return err
		}
		d.okTx = tx
	}
	d.interval = sip.T1
	reliable := sip.IsReliable(req.Transport())
	if reliable {
		d.interval = b.cfg.AckTimeout
	}
	var tick func()
	tick = func() {
		d.amu.Lock()
		defer d.amu.Unlock()
		if d.acked {
			return
		}
		if full := d.okAt.Add(b.cfg.AckTimeout); !time.Now().Before(d.deadline) && d.deadline.Before(full) && heard() {
			d.deadline = full // the peer spoke in the dialog: it hears the bot, wait as long as for anyone
		}
		if !time.Now().Before(d.deadline) {
			d.acked = true // given up: no more retransmissions
			d.releaseLocked(b)
			go noAck()
			return
		}
		if !reliable {
			b.rewriteOK(d)
			d.interval = min(2*d.interval, sip.T2)
		}
		d.retx.Reset(min(d.interval, time.Until(d.deadline)))
	}
	d.retx = time.AfterFunc(min(d.interval, b.cfg.AckTimeout), tick)
	return nil
}

// rewriteOK sends the 200 again; the caller holds d.amu.
func (b *Bot) rewriteOK(d *dialog) {
	var err error
	if d.okTx != nil {
		err = b.writeResponse(d.okTx, d.okReq, d.ok)
	} else {
		err = b.writeUDP(d.okReq, d.ok)
	}
	if err != nil {
		b.log.Debug("200 retransmission not sent", "call-id", d.callID, "err", err)
	}
}

// resendOK answers a retransmitted INVITE of a session whose ACK has not come with the same
// 200, and absorbs one that comes later (delayed in the network: the caller has its 200),
// as RFC 6026's Accepted state does for 64·T1. It reports whether req was one.
func (b *Bot) resendOK(req *sip.Request, tx sip.ServerTransaction) bool {
	v, ok := b.unacked.Load(inviteKey(req))
	if !ok {
		return false
	}
	d, ok := v.(*dialog)
	if !ok {
		tx.Terminate() // the exchange is over: absorbed
		return true
	}
	d.amu.Lock()
	if !d.acked && d.uasPending != nil {
		if ct, ok := tx.(connTx); ok {
			if err := b.writeOn(ct.Connection(), req, d.ok); err != nil {
				b.log.Debug("200 for a retransmitted INVITE not sent", "call-id", d.callID, "err", err)
			}
		}
	}
	d.amu.Unlock()
	tx.Terminate()
	return true
}

// inviteKey identifies an INVITE and its retransmissions.
func inviteKey(req *sip.Request) string {
	branch := ""
	if via := req.Via(); via != nil {
		branch, _ = via.Params.Get("branch")
	}
	tag, _ := req.From().Params.Get("tag")
	return branch + "\x00" + req.CallID().Value() + "\x00" + tag
}

// ack records the ACK of the 200: retransmissions stop and the INVITE exchange is released.
func (d *dialog) ack(b *Bot) {
	d.amu.Lock()
	defer d.amu.Unlock()
	if d.acked {
		return
	}
	d.acked = true
	d.releaseLocked(b)
}

// releaseLocked forgets the INVITE exchange; the caller holds d.amu.
func (d *dialog) releaseLocked(b *Bot) {
	if d.uasPending == nil {
		return
	}
	if d.retx != nil {
		d.retx.Stop()
		d.retx = nil
	}
	if d.okTx != nil {
		d.okTx.Terminate()
		d.okTx = nil
	}
	// The INVITE's key stays in b.unacked until sweepAccepted, with only the time of the 200:
	// a late copy of the INVITE is absorbed rather than taken for a new session.
	if d.inviteKey != "" {
		b.unacked.Store(d.inviteKey, acceptedAt(d.okAt.UnixNano()))
	}
	d.uasPending = nil
}

// acceptedAt marks an INVITE whose exchange is over, by the time of its 200.
type acceptedAt int64

// sweepAccepted forgets the INVITEs answered more than 64·T1 ago whose ACK came (or never
// will).
func (b *Bot) sweepAccepted(now time.Time) {
	limit := now.Add(-64 * sip.T1).UnixNano()
	b.unacked.Range(func(k, v any) bool {
		if at, ok := v.(acceptedAt); ok && int64(at) < limit {
			b.unacked.Delete(k)
		}
		return true
	})
}

// close stops what the dialog still runs.
func (d *dialog) close(b *Bot) {
	d.amu.Lock()
	d.acked = true
	d.releaseLocked(b)
	d.amu.Unlock()
	if d.uac != nil {
		_ = d.uac.Close()
	}
}

// writeOn writes a response on a connection; over UDP one too large for sipgo's limit goes
// to the listening socket directly (see writeResponse).
func (b *Bot) writeOn(conn sip.Connection, req *sip.Request, res *sip.Response) error {
	err := conn.WriteMsg(res)
	if errors.Is(err, sip.ErrUDPMTUCongestion) {
		return b.writeUDP(req, res)
	}
	return err
}

// writeResponse sends a response in its transaction. A response too large for sipgo's UDP
// limit (a 200 carrying a long Record-Route set) is written to the listening socket
// directly: a response goes back over the transport of its request, whatever its size
// (RFC 3261 §18.2.2), and a caller left without a final response would retransmit in vain.
func (b *Bot) writeResponse(tx sip.ServerTransaction, req *sip.Request, res *sip.Response) error {
	err := tx.Respond(res)
	if errors.Is(err, sip.ErrUDPMTUCongestion) {
		return b.writeUDP(req, res)
	}
	return err
}

// writeUDP writes a response to a UDP request's source from the bot's UDP socket, as sipgo
// answers UDP requests.
func (b *Bot) writeUDP(req *sip.Request, res *sip.Response) error {
	pc := b.udpConn()
	if pc == nil {
		return errors.New("the bot does not listen on UDP")
	}
	dst, err := net.ResolveUDPAddr("udp", req.Source())
	if err != nil {
		return err
	}
	_, err = pc.WriteTo([]byte(res.String()), dst)
	return err
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
