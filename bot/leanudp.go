package bot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Page mode over UDP is where a busy bot spends its time: every user message is a
// transaction of its own in each direction (the peer's MESSAGE, and the bot's typing and
// reply). sipgo runs each transaction as a state machine with its own goroutine, context
// and timers, and starts a fresh goroutine for every datagram it reads: at thousands of
// messages a second that costs more than the bot's own work. The lean path takes these
// messages off sipgo's transaction layer, in the socket's read loop (udpReader):
//
//   - A MESSAGE (page mode, or in a session the bot has), or a BYE, is parsed there and handed, with
//     a leanServerTx, to a small pool of long-lived workers that run the usual handler
//     (guard, onMessage). Its retransmissions are absorbed while it is handled (busy) and
//     answered from the answered memory after (answered.go), in the read loop, as sipgo's
//     transaction would.
//     An in-dialog one gets its place in the dialog's order (onArrival) in the read loop,
//     as a request sipgo reads does.
//   - A page-mode request of the bot's own toward an address it knows (the peer's source,
//     not a proxy that may challenge) is written to the socket directly and retransmitted
//     by one timer as RFC 3261 §17.1.2 says (T1 doubling up to T2, until the request's
//     timeout); its responses are recognised by the branch prefix leanBranch and matched
//     to it in the read loop.
//
// Everything else (INVITE, ACK, INFO, OPTIONS, the bot's requests in sessions and
// through the outbound proxy, TCP, TLS, WebSocket) goes through sipgo as before. A datagram the lean path cannot
// parse goes to sipgo too, which logs it and gets it answered 400 (unparsable.go).

// leanBranch starts the Via branch of the bot's lean requests: a response that carries it
// is the lean path's, even a late retransmission whose request is done.
const leanBranch = sip.RFC3261BranchMagicCookie + ".imb-"

// leanWorkers is how many long-lived goroutines run lean requests' handlers per CPU. A
// handler that blocks (an Admit hook, a credentials lookup) holds one; when all are busy a
// request gets a goroutine of its own, so that nothing waits behind a slow hook.
const leanWorkers = 4

// errNotLean says that a request cannot take the lean path: the caller sends it with sipgo.
var errNotLean = errors.New("not a lean request")

// leanUDP is the bot's page-mode fast path over UDP (one per bot, shared by its UDP sockets).
type leanUDP struct {
	b      *Bot
	parser *sip.Parser // read-only once made: shared by the read loops
	// onMessage and onBye are the bot's handlers, guarded.
	onMessage, onBye func(*sip.Request, sip.ServerTransaction)
	out              atomic.Pointer[udpReader] // the socket the bot's requests leave from (its sipgo client's)

	bufs sync.Pool // *bytes.Buffer for requests

	jobs chan leanJob
	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	busy    map[string]struct{}      // keys of requests being handled
	pending map[string]*leanClientTx // branch -> request awaiting its final response
}

// leanJob is a request for a worker.
type leanJob struct {
	req *sip.Request
	h   func(*sip.Request, sip.ServerTransaction)
	tx  *leanServerTx
}

func newLeanUDP(b *Bot) *leanUDP {
	return &leanUDP{
		b:         b,
		parser:    sip.NewParser(),
		bufs:      sync.Pool{New: func() any { return new(bytes.Buffer) }},
		onMessage: b.guard(b.onMessage),
		onBye:     b.guard(b.onBye),
		jobs:      make(chan leanJob, 1024),
		stop:      make(chan struct{}),
		busy:      make(map[string]struct{}),
		pending:   make(map[string]*leanClientTx),
	}
}

// start runs the workers.
func (l *leanUDP) start() {
	n := leanWorkers * runtime.GOMAXPROCS(0)
	l.wg.Add(n)
	for range n {
		go l.work()
	}
}

// close stops the workers once they ran what was queued (the sockets are closed first), and
// fails the requests still awaiting an answer.
func (l *leanUDP) close() {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	txs := make([]*leanClientTx, 0, len(l.pending))
	for _, tx := range l.pending {
		txs = append(txs, tx)
	}
	l.mu.Unlock()
	for _, tx := range txs {
		tx.finish(nil, fmt.Errorf("bot stopped: %w", net.ErrClosed))
	}
}

func (l *leanUDP) work() {
	defer l.wg.Done()
	for {
		select {
		case j := <-l.jobs:
			l.run(j)
		case <-l.stop:
			for {
				select {
				case j := <-l.jobs:
					l.run(j)
				default:
					return
				}
			}
		}
	}
}

func (l *leanUDP) run(j leanJob) {
	defer func() {
		l.mu.Lock()
		delete(l.busy, j.tx.key)
		l.mu.Unlock()
		j.tx.Terminate()
	}()
	j.h(j.req, j.tx)
}

// take looks at a datagram read from socket c and reports whether the lean path took it.
// It runs in the socket's read loop: data is reused by the next read.
func (l *leanUDP) take(c *udpReader, data []byte, from net.Addr) bool {
	switch {
	case bytes.HasPrefix(data, []byte("SIP/2.0 ")):
		if !bytes.Contains(data, []byte(leanBranch)) {
			return false
		}
		if st, ok := scanStatus(data); ok {
			l.status(st)
			return true
		}
		msg, err := l.parser.ParseSIP(data)
		if err != nil {
			return false
		}
		res, ok := msg.(*sip.Response)
		if !ok {
			return false
		}
		l.response(res)
		return true
	case bytes.HasPrefix(data, []byte("MESSAGE ")), bytes.HasPrefix(data, []byte("BYE ")):
		msg, err := l.parser.ParseSIP(data)
		if err != nil {
			return false // sipgo parses it again, logs it, and it is answered 400
		}
		req, ok := msg.(*sip.Request)
		if !ok || (req.Method != sip.MESSAGE && req.Method != sip.BYE) {
			return false
		}
		key := txKey(req)
		if key == "" || req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil {
			return false // sipgo's path answers these
		}
		dialog := inDialog(req)
		if !dialog && req.Method == sip.BYE {
			return false // sipgo's path answers 481
		}
		req.SetTransport("UDP")
		req.SetSource(from.String())
		if tag, ok := l.b.answered.get(key); ok {
			// A retransmission of a request answered 200 (a BYE's even after its session
			// ended): it gets the same 200 again, and is not handled twice.
			t := leanServerTx{conn: c.PacketConn, to: from, key: key}
			if t.respondOK(req, tag) == nil {
				l.b.observeResponse(200)
			}
			return true
		}
		if dialog && l.b.lookup(req) == nil {
			return false // no such session: sipgo's path answers 481
		}
		l.mu.Lock()
		_, dup := l.busy[key]
		if !dup {
			l.busy[key] = struct{}{}
		}
		l.mu.Unlock()
		if dup {
			return true // a retransmission of a request being handled: it will be answered
		}
		if dialog {
			l.b.onArrival(req) // its place in the dialog's order, as sipgo's read loop gives it
		}
		h := l.onMessage
		if req.Method == sip.BYE {
			h = l.onBye
		}
		j := leanJob{req: req, h: h, tx: &leanServerTx{conn: c.PacketConn, to: from, key: key,
			remember: dialog, answered: &l.b.answered, done: make(chan struct{})}}
		select {
		case l.jobs <- j:
		default:
			go l.run(j)
		}
		return true
	}
	return false
}

// leanServerTx is the server transaction of a lean request: responses are written to the
// request's source, from the socket it came in on. Retransmissions of the request are
// absorbed while it is handled (leanUDP.busy); once it is answered 200, answered.go answers
// them. A non-2xx final response is not kept: a retransmission of a refused request is
// refused again.
type leanServerTx struct {
	conn net.PacketConn
	to   net.Addr
	key  string
	// remember: a 2xx is recorded in answered, so that a retransmission of the request
	// gets it again (in a dialog; page mode records its 200s itself, see respondPage).
	remember bool
	answered *answered

	mu          sync.Mutex
	done        chan struct{}
	ended       bool
	onTerminate []sip.FnTxTerminate
}

var _ sip.ServerTransaction = (*leanServerTx)(nil)

// Respond writes a response.
func (t *leanServerTx) Respond(res *sip.Response) error {
	var buf bytes.Buffer
	buf.Grow(512)
	res.StringWrite(&buf)
	if _, err := t.conn.WriteTo(buf.Bytes(), t.to); err != nil {
		return fmt.Errorf("write %d response to %s: %w", res.StatusCode, t.to, err)
	}
	if t.remember && res.IsSuccess() {
		tag, _ := res.To().Params.Get("tag")
		t.answered.add(t.key, tag, time.Now())
	}
	return nil
}

// respondOK writes a 200 with the To tag given, as sip.NewResponseFromRequest builds it
// (Record-Route, Via with rport answered, From, To, Call-ID, CSeq), without building a
// sip.Response.
func (t *leanServerTx) respondOK(req *sip.Request, tag string) error {
	var buf bytes.Buffer
	buf.Grow(512)
	buf.WriteString("SIP/2.0 200 OK\r\n")
	for _, h := range req.GetHeaders("Record-Route") {
		h.StringWrite(&buf)
		buf.WriteString("\r\n")
	}
	for i, h := range req.GetHeaders("Via") {
		if v, ok := h.(*sip.ViaHeader); ok && i == 0 {
			if val, has := v.Params.Get("rport"); has && val == "" {
				// RFC 3581 §4: say where the request came from.
				v = v.Clone()
				host, port, _ := net.SplitHostPort(req.Source())
				v.Params.Add("rport", port)
				v.Params.Add("received", host)
				h = v
			}
		}
		h.StringWrite(&buf)
		buf.WriteString("\r\n")
	}
	req.From().StringWrite(&buf)
	buf.WriteString("\r\n")
	req.To().StringWrite(&buf)
	if !inDialog(req) {
		buf.WriteString(";tag=")
		buf.WriteString(tag)
	}
	buf.WriteString("\r\n")
	req.CallID().StringWrite(&buf)
	buf.WriteString("\r\n")
	req.CSeq().StringWrite(&buf)
	buf.WriteString("\r\nContent-Length: 0\r\n\r\n")
	if _, err := t.conn.WriteTo(buf.Bytes(), t.to); err != nil {
		return fmt.Errorf("write 200 response to %s: %w", t.to, err)
	}
	return nil
}

// Acks returns nil: a MESSAGE has no ACK.
func (t *leanServerTx) Acks() <-chan *sip.Request { return nil }

// OnCancel reports false: a MESSAGE cannot be cancelled.
func (t *leanServerTx) OnCancel(sip.FnTxCancel) bool { return false }

// Terminate ends the transaction.
func (t *leanServerTx) Terminate() {
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return
	}
	t.ended = true
	close(t.done)
	fs := t.onTerminate
	t.onTerminate = nil
	t.mu.Unlock()
	for _, f := range fs {
		f(t.key, nil)
	}
}

// OnTerminate registers f to run when the transaction ends.
func (t *leanServerTx) OnTerminate(f sip.FnTxTerminate) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return false
	}
	t.onTerminate = append(t.onTerminate, f)
	return true
}

// Done is closed when the transaction ends.
func (t *leanServerTx) Done() <-chan struct{} { return t.done }

// Err returns nil: a lean transaction ends without a transport error of its own.
func (t *leanServerTx) Err() error { return nil }

// leanClientTx is a lean request of the bot's awaiting its final response (RFC 3261
// §17.1.2 over UDP: retransmitted at T1, doubling up to T2; at T2 once a provisional response
// came; given up at the deadline).
type leanClientTx struct {
	l      *leanUDP
	out    *udpReader
	branch string
	method sip.RequestMethod
	buf    *bytes.Buffer // the request as written, back to leanUDP.bufs once done
	to     *net.UDPAddr

	mu         sync.Mutex
	interval   time.Duration
	deadline   time.Time
	timer      *time.Timer
	proceeding bool
	res        *sip.Response
	err        error
	done       chan struct{}
}

// send writes a page-mode request that render puts into bytes, with the branch given, to
// dest, an IP address and port, and returns its transaction; errNotLean when dest is not
// one.
func (l *leanUDP) send(method sip.RequestMethod, dest string, timeout time.Duration, render func(w *bytes.Buffer, branch string)) (*leanClientTx, error) {
	out := l.out.Load()
	ap, err := netip.ParseAddrPort(dest)
	if err != nil || out == nil {
		return nil, errNotLean
	}
	branch := leanBranch + sip.GenerateTagN(16)
	buf := l.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	render(buf, branch)
	if buf.Len() > sip.UDPMTUSize-200 {
		l.bufs.Put(buf)
		return nil, sip.ErrUDPMTUCongestion // as sipgo refuses it (RFC 3261 §18.1.1)
	}
	tx := &leanClientTx{
		l: l, out: out, branch: branch, method: method, buf: buf,
		to:       net.UDPAddrFromAddrPort(ap),
		interval: sip.T1, deadline: time.Now().Add(timeout), done: make(chan struct{}),
	}
	l.mu.Lock()
	l.pending[branch] = tx
	l.mu.Unlock()
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if _, err := out.PacketConn.WriteTo(buf.Bytes(), tx.to); err != nil {
		l.forget(branch)
		return nil, fmt.Errorf("write %s to %s: %w", method, dest, err)
	}
	tx.timer = time.AfterFunc(min(tx.interval, timeout), tx.fire)
	return tx, nil
}

// renderPage writes a page-mode request of the conversation as Session.newRequest and
// sipgo's client build it (Via, From with a new tag, To, a new Call-ID and CSeq,
// Max-Forwards, Content-Type, Content-Length), without building a sip.Request.
func (s *Session) renderPage(w *bytes.Buffer, branch string, method sip.RequestMethod, contentType string, body []byte) {
	target := s.peerURI
	w.WriteString(string(method))
	w.WriteByte(' ')
	target.StringWrite(w)
	w.WriteString(" SIP/2.0\r\nVia: SIP/2.0/UDP ")
	w.WriteString(s.b.host)
	w.WriteByte(':')
	w.WriteString(strconv.Itoa(s.b.ports["udp"]))
	w.WriteString(";branch=")
	w.WriteString(branch)
	w.WriteString("\r\n")
	from := sip.FromHeader{DisplayName: s.b.cfg.DisplayName, Address: s.local, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	from.StringWrite(w)
	w.WriteString("\r\n")
	to := sip.ToHeader{Address: sip.Uri{Scheme: target.Scheme, User: target.User, Host: target.Host, Port: target.Port}}
	to.StringWrite(w)
	w.WriteString("\r\nCall-ID: ")
	w.WriteString(sip.GenerateTagN(24))
	w.WriteString("\r\nCSeq: ")
	w.WriteString(strconv.Itoa(int(rand.Uint32N(1 << 15))))
	w.WriteByte(' ')
	w.WriteString(string(method))
	w.WriteString("\r\nMax-Forwards: 70\r\n")
	renderBody(w, contentType, body)
}

// renderBody ends a rendered request: Content-Type (when there is one), Content-Length, the
// empty line and the body.
func renderBody(w *bytes.Buffer, contentType string, body []byte) {
	if contentType != "" {
		w.WriteString("Content-Type: ")
		w.WriteString(contentType)
		w.WriteString("\r\n")
	}
	w.WriteString("Content-Length: ")
	w.WriteString(strconv.Itoa(len(body)))
	w.WriteString("\r\n\r\n")
	w.Write(body)
}

// fire retransmits the request, or gives it up at its deadline.
func (t *leanClientTx) fire() {
	t.mu.Lock()
	if t.res != nil || t.err != nil {
		t.mu.Unlock()
		return
	}
	left := time.Until(t.deadline)
	if left <= 0 {
		t.mu.Unlock()
		t.finish(nil, fmt.Errorf("no final response to %s: %w", t.method, sip.ErrTransactionTimeout))
		return
	}
	_, _ = t.out.PacketConn.WriteTo(t.buf.Bytes(), t.to) // a lost write is one more retransmission
	if t.proceeding {
		t.interval = sip.T2
	} else {
		t.interval = min(2*t.interval, sip.T2)
	}
	t.timer.Reset(min(t.interval, left))
	t.mu.Unlock()
}

// finish completes the transaction once.
func (t *leanClientTx) finish(res *sip.Response, err error) {
	t.mu.Lock()
	if t.res != nil || t.err != nil {
		t.mu.Unlock()
		return
	}
	t.res, t.err = res, err
	if t.res == nil && t.err == nil {
		t.err = errors.New("transaction ended without a final response")
	}
	if t.timer != nil {
		t.timer.Stop()
	}
	close(t.done)
	t.l.bufs.Put(t.buf) // no write follows: fire sees the transaction done
	t.buf = nil
	t.mu.Unlock()
	t.l.forget(t.branch)
}

func (l *leanUDP) forget(branch string) {
	l.mu.Lock()
	delete(l.pending, branch)
	l.mu.Unlock()
}

// leanStatus is what the lean path needs of a 2xx response to one of its requests.
type leanStatus struct {
	code           int
	reason, branch string
	method         string // of the CSeq
}

// scanStatus reads a 2xx response's status, top Via branch and CSeq method without parsing
// it whole: most responses the bot gets are 200s to its own page-mode requests. It reports
// false for anything else, or anything it does not read with certainty (then the response
// is parsed whole).
func scanStatus(data []byte) (leanStatus, bool) {
	var st leanStatus
	line, rest, ok := bytes.Cut(data, []byte("\r\n"))
	if !ok || len(line) < 12 || !bytes.HasPrefix(line, []byte("SIP/2.0 ")) || line[8] != '2' || line[11] != ' ' {
		return st, false
	}
	code, err := strconv.Atoi(string(line[8:11]))
	if err != nil {
		return st, false
	}
	st.code, st.reason = code, string(line[12:])
	for len(rest) > 0 {
		line, rest, ok = bytes.Cut(rest, []byte("\r\n"))
		if !ok || len(line) == 0 {
			break // the end of the headers
		}
		if line[0] == ' ' || line[0] == '\t' {
			return st, false // a folded header line
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return st, false
		}
		name = bytes.TrimSpace(name)
		switch {
		case st.branch == "" && (bytes.EqualFold(name, []byte("Via")) || bytes.EqualFold(name, []byte("v"))):
			top, _, _ := bytes.Cut(value, []byte(","))
			sentBy, params, _ := bytes.Cut(top, []byte(";"))
			if f := bytes.Fields(sentBy); len(f) != 2 || !bytes.HasPrefix(f[0], []byte("SIP/2.0/")) ||
				!isToken(f[0][len("SIP/2.0/"):]) {
				return st, false // "SIP/2.0/UDP host:port" or left to the parser
			}
			for p := range bytes.SplitSeq(params, []byte(";")) {
				k, v, _ := bytes.Cut(bytes.TrimRight(p, " \t"), []byte("="))
				if !isToken(k) {
					return st, false // an empty parameter, spaces around a name: left to the parser
				}
				if string(k) == "branch" { // as sipgo reads it: case-sensitive
					if !isToken(v) {
						return st, false
					}
					st.branch = string(v)
				}
			}
			if st.branch == "" {
				return st, false
			}
		case st.method == "" && bytes.EqualFold(name, []byte("CSeq")):
			f := bytes.Fields(value)
			if len(f) != 2 {
				return st, false
			}
			st.method = string(f[1])
		}
	}
	return st, st.branch != "" && st.method != ""
}

// isToken reports whether b is a non-empty RFC 3261 token (§25.1), as a branch is.
func isToken(b []byte) bool {
	for _, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-.!%*_+`'~", c) >= 0) {
			return false
		}
	}
	return len(b) > 0
}

// status matches a 2xx response read by scanStatus to its lean request.
func (l *leanUDP) status(st leanStatus) {
	l.mu.Lock()
	tx := l.pending[st.branch]
	l.mu.Unlock()
	if tx == nil || st.method != string(tx.method) {
		return
	}
	tx.finish(&sip.Response{StatusCode: st.code, Reason: st.reason}, nil)
}

// response matches a response to its lean request. One that matches none (a retransmission
// of a final response already taken) is dropped.
func (l *leanUDP) response(res *sip.Response) {
	via, cseq := res.Via(), res.CSeq()
	if via == nil || cseq == nil {
		return
	}
	branch, _ := via.Params.Get("branch")
	l.mu.Lock()
	tx := l.pending[branch]
	l.mu.Unlock()
	if tx == nil || cseq.MethodName != tx.method {
		return
	}
	if res.IsProvisional() {
		tx.mu.Lock()
		tx.proceeding = true
		tx.mu.Unlock()
		return
	}
	tx.finish(res, nil)
}

// wait returns the final response, or the error that ended the request; ctx gives up
// waiting (and the request).
func (t *leanClientTx) wait(ctx context.Context) (*sip.Response, error) {
	select {
	case <-t.done:
	case <-ctx.Done():
		t.finish(nil, ctx.Err())
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.res, t.err
}
