// Command loadgen is the load client of scripts/load.sh (modes capacity and latency) and
// scripts/soak.sh. It speaks SIP over UDP from a few plain sockets with hand-written request
// text, so that it can time every ping exactly and tell what happened to it, which sipp
// cannot do for page mode (sipp matches messages to calls by Call-ID: the bot's reply is a
// new request with its own Call-ID, so it lands in an out-of-call scenario that knows
// nothing of the ping it answers).
//
//	loadgen -mode page    -target 127.0.0.1:PORT -rate 2000 -count 10000 -typing
//	loadgen -mode session -target 127.0.0.1:PORT -rate 1000 -count 5000 -typing -cseq-gap 4
//	loadgen -mode soak    -target 127.0.0.1:PORT -rate 1500 -count 100000 -pid PID
//
// Every ping is a text "lg RUN N": the echo server sends the same text back, and the reply
// is matched to ping N by that token, whatever Call-ID or socket it comes in on.
//
// page: every ping is an out-of-dialog MESSAGE (its own Call-ID; From user uN, or
// u(N mod -users) with -users). With -typing it carries "Accept: text/plain,
// application/im-iscomposing+xml", so the server may show typing (an RFC 3994 isComposing
// MESSAGE) before its reply. Every MESSAGE the server sends is answered 200 at once, typing
// and replies alike, and retransmissions of them too.
//
// session: every session is INVITE (m=message SDP offer; with -typing its accept-types list
// isComposing) / 200 / ACK, then one MESSAGE with CSeq 1+cseq-gap (a gap, as RFC 3261
// allows: CSeq only has to grow), the server's reply in the dialog, then BYE (CSeq one more).
// The ping is the MESSAGE: its latency is MESSAGE sent -> reply received.
//
// soak: sessions as in session mode but held open after the reply. With -pid it reads the
// server's VmRSS and VmHWM (/proc/PID/status) before the load, when the number of
// established sessions (reply received) reaches each of -milestones, once all are open, after
// -settle (sipgo keeps each INVITE transaction about 32 s after it ends), then it sends BYE to
// every session at -rate and reads them again after another -settle.
//
// Requests are retransmitted as RFC 3261 UDP clients do (T1 = 500 ms doubling, non-INVITE
// capped at T2 = 4 s; until a final response, INVITE until any response; at most 32 s), so a
// datagram the server's socket dropped costs the ping 500 ms, not its reply. Latency is
// measured from the first transmission.
//
// Output: a summary on stderr and one machine-readable line on stdout, "RESULT k=v ...", plus
// "RSS k=v ..." lines in soak mode; scripts/load.sh and scripts/soak.sh read them. Latencies
// are in milliseconds; a percentile that falls on pings without a reply is "inf".
//
// It binds 127.0.0.1 ports chosen by the kernel (never 5060), sends only to -target (which
// must be a loopback address) and stops by itself: every phase is bounded by -count, -drain,
// -settle and -max-time.
package main

import (
	"bytes"
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	t1 = 500 * time.Millisecond
	t2 = 4 * time.Second
	// giveUp is timer B/F: no retransmission after this long.
	giveUp = 32 * time.Second
)

type config struct {
	mode       string
	target     *net.UDPAddr
	targetStr  string
	service    string
	rate       int
	count      int
	sockets    int
	typing     bool
	users      int
	cseqGap    int
	deadline   time.Duration
	drain      time.Duration
	settle     time.Duration
	pid        int
	milestones []int
	maxTime    time.Duration
	retrans    bool
}

func main() {
	var c config
	var target, milestones string
	flag.StringVar(&c.mode, "mode", "page", "page, session or soak")
	flag.StringVar(&target, "target", "", "the server's UDP address, 127.0.0.1:PORT (required; loopback only)")
	flag.StringVar(&c.service, "service", "echo", "user part of the server's URI")
	flag.IntVar(&c.rate, "rate", 1000, "pings (page) or sessions (session, soak) started per second")
	flag.IntVar(&c.count, "count", 5000, "pings or sessions in the run")
	flag.IntVar(&c.sockets, "sockets", 4, "UDP sockets to send from (ping or session N uses socket N mod sockets)")
	flag.BoolVar(&c.typing, "typing", true, "tell the server that isComposing is accepted (page: Accept header; session: SDP accept-types)")
	flag.IntVar(&c.users, "users", 0, "page mode: 0 = a new From user (a new conversation) per ping; N = a pool of N users, round robin")
	flag.IntVar(&c.cseqGap, "cseq-gap", 4, "session and soak modes: the MESSAGE's CSeq is the INVITE's (1) plus this")
	flag.DurationVar(&c.deadline, "deadline", time.Second, "a reply within this long after its ping counts as in time")
	flag.DurationVar(&c.drain, "drain", 5*time.Second, "after the last ping or session is started, wait at most this long for what is outstanding")
	flag.DurationVar(&c.settle, "settle", 35*time.Second, "soak mode: pause before the settled RSS readings")
	flag.IntVar(&c.pid, "pid", 0, "soak mode: the server's process ID, for its RSS")
	flag.StringVar(&milestones, "milestones", "10000,25000,50000,100000", "soak mode: established-session counts at which the server's RSS is read")
	flag.DurationVar(&c.maxTime, "max-time", 0, "hard limit on the whole run (0: computed from the other flags)")
	flag.BoolVar(&c.retrans, "retrans", true, "retransmit requests over UDP as RFC 3261 clients do")
	cpuprofile := flag.String("cpuprofile", "", "write the client's own CPU profile to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	if err := c.check(target, milestones); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.maxTime)
	defer cancel()
	if err := run(ctx, &c); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func (c *config) check(target, milestones string) error {
	switch c.mode {
	case "page", "session", "soak":
	default:
		return fmt.Errorf("-mode must be page, session or soak, not %q", c.mode)
	}
	addr, err := net.ResolveUDPAddr("udp4", target)
	if err != nil || target == "" {
		return fmt.Errorf("-target %q: want 127.0.0.1:PORT", target)
	}
	if !addr.IP.IsLoopback() || addr.Port == 0 || addr.Port == 5060 {
		return fmt.Errorf("-target %q: must be a loopback address, port not 0 or 5060", target)
	}
	c.target, c.targetStr = addr, addr.String()
	if c.rate < 1 || c.count < 1 || c.sockets < 1 || c.sockets > 64 || c.users < 0 || c.cseqGap < 1 {
		return errors.New("-rate, -count and -cseq-gap must be positive, -sockets 1..64, -users >= 0")
	}
	for _, f := range strings.Split(milestones, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return fmt.Errorf("-milestones: bad count %q", f)
		}
		c.milestones = append(c.milestones, n)
	}
	slices.Sort(c.milestones)
	if c.maxTime <= 0 {
		open := time.Duration(float64(c.count) / float64(c.rate) * float64(time.Second))
		c.maxTime = open + c.drain + time.Minute
		if c.mode == "soak" {
			c.maxTime = 2*(open+c.drain+c.settle) + 2*time.Minute
		}
	}
	return nil
}

// sock is one of the client's UDP sockets.
type sock struct {
	conn *net.UDPConn
	addr string // host:port, for Via, From and Contact
	port int
}

// txn is a request that is retransmitted until it is answered.
type txn struct {
	data   []byte
	s      *sock
	invite bool
	done   atomic.Bool
	first  int64 // first transmission, ns since start
	round  int
	due    int64
}

// txnHeap orders pending retransmissions by due time.
type txnHeap []*txn

func (h txnHeap) Len() int           { return len(h) }
func (h txnHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h txnHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *txnHeap) Push(x any)        { *h = append(*h, x.(*txn)) }
func (h *txnHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

// ping is one page-mode MESSAGE, or the MESSAGE of one session.
type ping struct {
	sent  atomic.Int64 // first transmission, ns since start; 0: not sent
	code  atomic.Int32 // first final response
	reply atomic.Int64 // first reply received, ns since start; 0: none
	tx    atomic.Pointer[txn]
}

// session is one IM session (session and soak modes).
type session struct {
	mu         sync.Mutex
	s          *sock
	state      int
	toTag      string
	target     string // Request-URI of in-dialog requests: the server's Contact
	ack        []byte
	invite     *txn
	bye        *txn
	inviteSent int64
	answered   int64 // 200 to INVITE, ns since start
	inviteCode int
	byeCode    int
	serverBye  bool
}

const (
	stNew = iota
	stInviting
	stMessaging // ACK and MESSAGE sent
	stReplied
	stClosing // BYE sent
	stClosed
	stFailed
)

type loadgen struct {
	c     *config
	run   string
	start time.Time
	socks []*sock

	pings    []ping
	sessions []session

	rmu     sync.Mutex
	pending txnHeap
	retrans atomic.Int64

	typingIn    atomic.Int64 // isComposing MESSAGEs received (first transmissions and repeats)
	unknownIn   atomic.Int64 // requests whose body or Call-ID matched nothing of this run
	established atomic.Int64 // soak: sessions whose reply arrived
	closedN     atomic.Int64 // sessions whose BYE got a final response, or that failed
	openDone    atomic.Int64 // sessions that got their reply, or will not get one
	msMu        sync.Mutex   // soak: serialises milestone readings
	nextMS      int          // soak: index of the next milestone
}

func (g *loadgen) now() int64 { return int64(time.Since(g.start)) }

func run(ctx context.Context, c *config) error {
	var rb [4]byte
	_, _ = rand.Read(rb[:])
	g := &loadgen{c: c, run: hex.EncodeToString(rb[:]), start: time.Now()}
	for range c.sockets {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetReadBuffer(4 << 20)
		_ = conn.SetWriteBuffer(4 << 20)
		la := conn.LocalAddr().(*net.UDPAddr)
		g.socks = append(g.socks, &sock{conn: conn, addr: la.String(), port: la.Port})
	}
	g.pings = make([]ping, c.count)
	if c.mode != "page" {
		g.sessions = make([]session, c.count)
		for i := range g.sessions {
			g.sessions[i].s = g.socks[i%len(g.socks)]
		}
	}
	var wg sync.WaitGroup
	rctx, stopReaders := context.WithCancel(context.Background())
	for _, s := range g.socks {
		wg.Add(1)
		go func() { defer wg.Done(); g.read(rctx, s) }()
	}
	if c.retrans {
		wg.Add(1)
		go func() { defer wg.Done(); g.retransmit(rctx) }()
	}
	defer func() {
		stopReaders()
		for _, s := range g.socks {
			_ = s.conn.SetReadDeadline(time.Now())
		}
		wg.Wait()
	}()

	udp0 := udpErrors()
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	fmt.Fprintf(os.Stderr, "loadgen: %s mode, %d at %d/s to %s from %d sockets (run %s, typing %v)\n",
		c.mode, c.count, c.rate, c.targetStr, len(g.socks), g.run, c.typing)

	var res []string
	switch c.mode {
	case "page":
		lag, sendDur := g.pace(ctx, c.count, g.sendPing)
		g.wait(ctx, c.drain, g.pageDone)
		res = g.pageResult(lag, sendDur)
	case "session":
		lag, sendDur := g.pace(ctx, c.count, g.sendInvite)
		g.wait(ctx, c.drain, func() bool { return g.closedN.Load() >= int64(c.count) })
		res = g.sessionResult(lag, sendDur)
	case "soak":
		res = g.soak(ctx)
	}
	udp1 := udpErrors()
	srvDrops, cliDrops := g.sockDrops()
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
	res = append(res,
		"retrans="+strconv.FormatInt(g.retrans.Load(), 10),
		"udp_rcvbuf_errors="+strconv.FormatInt(udp1-udp0, 10),
		"srv_drops="+srvDrops, "cli_drops="+cliDrops,
		"client_cpu_s="+strconv.FormatFloat(cpu.Seconds(), 'f', 2, 64),
		"wall_s="+strconv.FormatFloat(time.Since(g.start).Seconds(), 'f', 2, 64))
	if ctx.Err() != nil {
		res = append(res, "aborted=1")
	}
	fmt.Println("RESULT " + strings.Join(res, " "))
	fmt.Fprintln(os.Stderr, "loadgen: "+strings.Join(res, " "))
	return nil
}

// pace calls send(i) for i in [0, n) at c.rate per second, in bursts of at most a
// millisecond's worth. It returns the worst lateness of a send behind its schedule and
// how long sending took.
func (g *loadgen) pace(ctx context.Context, n int, send func(i int)) (lag, took time.Duration) {
	t0 := time.Now()
	per := float64(time.Second) / float64(g.c.rate)
	for i := 0; i < n; {
		if ctx.Err() != nil {
			break
		}
		el := time.Since(t0)
		due := min(int(float64(el)/per)+1, n)
		if i >= due {
			// Sleep until the next send is due, but at least a millisecond: a burst of
			// a millisecond's worth costs less than a wake-up per send at high rates.
			time.Sleep(max(time.Duration(float64(i)*per)-el, time.Millisecond))
			continue
		}
		for ; i < due; i++ {
			if l := el - time.Duration(float64(i)*per); l > lag {
				lag = l
			}
			send(i)
		}
	}
	return lag, time.Since(t0)
}

// wait polls done every 10 ms for at most d.
func (g *loadgen) wait(ctx context.Context, d time.Duration, done func() bool) {
	end := time.Now().Add(d)
	for !done() && time.Now().Before(end) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
}

func (g *loadgen) pageDone() bool {
	for i := range g.pings {
		p := &g.pings[i]
		if p.reply.Load() != 0 {
			continue
		}
		if c := p.code.Load(); c == 0 || (c >= 200 && c < 300) {
			return false
		}
	}
	return true
}

// send transmits a request and, with retransmissions on, schedules it. The transaction is
// stored in *slot (when not nil) before the request goes out, so that its answer finds it.
func (g *loadgen) send(s *sock, data []byte, invite bool, slot *atomic.Pointer[txn]) *txn {
	t := &txn{data: data, s: s, invite: invite, first: g.now()}
	if slot != nil {
		slot.Store(t)
	}
	if g.c.retrans {
		t.due = t.first + int64(t1)
		g.rmu.Lock()
		heap.Push(&g.pending, t)
		g.rmu.Unlock()
	}
	g.write(s, data)
	return t
}

func (g *loadgen) write(s *sock, data []byte) {
	_, _ = s.conn.WriteToUDP(data, g.c.target)
}

// retransmit resends every request that is still unanswered when its timer fires.
func (g *loadgen) retransmit(ctx context.Context) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := g.now()
		var due []*txn
		g.rmu.Lock()
		for len(g.pending) > 0 && g.pending[0].due <= now {
			due = append(due, heap.Pop(&g.pending).(*txn))
		}
		g.rmu.Unlock()
		for _, t := range due {
			if t.done.Load() || now-t.first > int64(giveUp) {
				continue
			}
			g.write(t.s, t.data)
			g.retrans.Add(1)
			t.round++
			iv := t1 << t.round
			if !t.invite && iv > t2 {
				iv = t2
			}
			t.due = now + int64(iv)
			g.rmu.Lock()
			heap.Push(&g.pending, t)
			g.rmu.Unlock()
		}
	}
}

// --- requests ---

func (g *loadgen) body(i int) []byte {
	return strconv.AppendInt([]byte("lg "+g.run+" "), int64(i), 10)
}

func (g *loadgen) sendPing(i int) {
	s := g.socks[i%len(g.socks)]
	user := i
	if g.c.users > 0 {
		user = i % g.c.users
		s = g.socks[user%len(g.socks)]
	}
	u := "u" + strconv.Itoa(user)
	body := g.body(i)
	var b bytes.Buffer
	b.Grow(512)
	b.WriteString("MESSAGE sip:" + g.c.service + "@" + g.c.targetStr + " SIP/2.0\r\n")
	b.WriteString("Via: SIP/2.0/UDP " + s.addr + ";branch=z9hG4bK" + g.run + "p" + strconv.Itoa(i) + "\r\n")
	b.WriteString("Max-Forwards: 70\r\n")
	b.WriteString("From: <sip:" + u + "@" + s.addr + ">;tag=f" + strconv.Itoa(i) + "\r\n")
	b.WriteString("To: <sip:" + g.c.service + "@" + g.c.targetStr + ">\r\n")
	b.WriteString("Call-ID: p" + strconv.Itoa(i) + "." + g.run + "\r\n")
	b.WriteString("CSeq: 1 MESSAGE\r\n")
	if g.c.typing {
		b.WriteString("Accept: text/plain, application/im-iscomposing+xml\r\n")
	}
	b.WriteString("Content-Type: text/plain;charset=UTF-8\r\n")
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	b.Write(body)
	g.pings[i].sent.Store(g.now())
	g.send(s, b.Bytes(), false, &g.pings[i].tx)
}

func (g *loadgen) sendInvite(i int) {
	ss := &g.sessions[i]
	s := ss.s
	var sdp bytes.Buffer
	sdp.WriteString("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=session\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n")
	sdp.WriteString("m=message " + strconv.Itoa(s.port) + " sip null\r\n")
	if g.c.typing {
		sdp.WriteString("a=accept-types:text/plain application/im-iscomposing+xml\r\n")
	} else {
		sdp.WriteString("a=accept-types:text/plain\r\n")
	}
	var b bytes.Buffer
	b.Grow(768)
	b.WriteString("INVITE sip:" + g.c.service + "@" + g.c.targetStr + " SIP/2.0\r\n")
	b.WriteString("Via: SIP/2.0/UDP " + s.addr + ";branch=" + g.branch('i', i) + "\r\n")
	b.WriteString("Max-Forwards: 70\r\n")
	g.dialogHeaders(&b, i, "")
	b.WriteString("CSeq: 1 INVITE\r\n")
	b.WriteString("Contact: <sip:u" + strconv.Itoa(i) + "@" + s.addr + ";transport=udp>\r\n")
	b.WriteString("Content-Type: application/sdp\r\n")
	b.WriteString("Content-Length: " + strconv.Itoa(sdp.Len()) + "\r\n\r\n")
	b.Write(sdp.Bytes())
	ss.mu.Lock()
	ss.state = stInviting
	ss.inviteSent = g.now()
	ss.invite = g.send(s, b.Bytes(), true, nil)
	ss.mu.Unlock()
}

func (g *loadgen) branch(kind byte, i int) string {
	return "z9hG4bK" + g.run + string(kind) + strconv.Itoa(i)
}

// dialogHeaders writes From, To (with the server's tag when known) and Call-ID of session i.
func (g *loadgen) dialogHeaders(b *bytes.Buffer, i int, toTag string) {
	s := g.sessions[i].s
	b.WriteString("From: <sip:u" + strconv.Itoa(i) + "@" + s.addr + ">;tag=f" + strconv.Itoa(i) + "\r\n")
	b.WriteString("To: <sip:" + g.c.service + "@" + g.c.targetStr + ">")
	if toTag != "" {
		b.WriteString(";tag=" + toTag)
	}
	b.WriteString("\r\nCall-ID: s" + strconv.Itoa(i) + "." + g.run + "\r\n")
}

// inDialog builds an in-dialog request of session i; the caller holds its lock.
func (g *loadgen) inDialog(i int, method string, kind byte, cseq int, ctype string, body []byte) []byte {
	ss := &g.sessions[i]
	var b bytes.Buffer
	b.Grow(512)
	b.WriteString(method + " " + ss.target + " SIP/2.0\r\n")
	b.WriteString("Via: SIP/2.0/UDP " + ss.s.addr + ";branch=" + g.branch(kind, i) + "\r\n")
	b.WriteString("Max-Forwards: 70\r\n")
	g.dialogHeaders(&b, i, ss.toTag)
	b.WriteString("CSeq: " + strconv.Itoa(cseq) + " " + method + "\r\n")
	if ctype != "" {
		b.WriteString("Content-Type: " + ctype + "\r\n")
	}
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	b.Write(body)
	return b.Bytes()
}

// sendBye ends session i if it is established; the caller holds its lock.
func (g *loadgen) sendByeLocked(i int) {
	ss := &g.sessions[i]
	if ss.state != stReplied && ss.state != stMessaging {
		return
	}
	ss.state = stClosing
	ss.bye = g.send(ss.s, g.inDialog(i, "BYE", 'b', 2+g.c.cseqGap, "", nil), false, nil)
}

// --- receiving ---

// msg is a parsed SIP message; its slices point into the read buffer.
type msg struct {
	isReq      bool
	method     []byte
	code       int
	callID     []byte
	cseqMethod []byte
	ctype      []byte
	toVal      []byte
	contact    []byte
	body       []byte
	copyLines  [][]byte // Via, From, To, Call-ID and CSeq lines, for a response
	toIdx      int      // index of the To line in copyLines
}

func (g *loadgen) read(ctx context.Context, s *sock) {
	buf := make([]byte, 65536)
	out := make([]byte, 0, 2048)
	var m msg
	for ctx.Err() == nil {
		n, from, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return
			}
			continue
		}
		if !parse(buf[:n], &m) {
			continue
		}
		if m.isReq {
			out = g.onRequest(s, from, &m, out[:0])
		} else {
			g.onResponse(&m)
		}
	}
}

// parse reads the start line and the headers loadgen needs.
func parse(b []byte, m *msg) bool {
	*m = msg{copyLines: m.copyLines[:0], toIdx: -1}
	head, body, ok := bytes.Cut(b, []byte("\r\n\r\n"))
	if !ok {
		head, body, ok = bytes.Cut(b, []byte("\n\n"))
		if !ok {
			if len(bytes.TrimSpace(b)) == 0 {
				return false // keep-alive
			}
			head = b
		}
	}
	m.body = body
	line, rest, _ := bytes.Cut(head, []byte("\n"))
	line = bytes.TrimRight(line, "\r")
	if bytes.HasPrefix(line, []byte("SIP/2.0 ")) {
		if len(line) < 11 {
			return false
		}
		code, err := strconv.Atoi(string(line[8:11]))
		if err != nil {
			return false
		}
		m.code = code
	} else {
		sp := bytes.IndexByte(line, ' ')
		if sp < 1 {
			return false
		}
		m.isReq, m.method = true, line[:sp]
	}
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		line = bytes.TrimRight(line, "\r")
		name, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		val = bytes.TrimSpace(val)
		switch {
		case eq(name, "via", "v"):
			m.copyLines = append(m.copyLines, line)
		case eq(name, "from", "f"):
			m.copyLines = append(m.copyLines, line)
		case eq(name, "to", "t"):
			m.toIdx = len(m.copyLines)
			m.copyLines = append(m.copyLines, line)
			m.toVal = val
		case eq(name, "call-id", "i"):
			m.copyLines = append(m.copyLines, line)
			m.callID = val
		case eq(name, "cseq", ""):
			m.copyLines = append(m.copyLines, line)
			if _, meth, ok := bytes.Cut(val, []byte(" ")); ok {
				m.cseqMethod = bytes.TrimSpace(meth)
			}
		case eq(name, "content-type", "c"):
			m.ctype = val
		case eq(name, "contact", "m"):
			m.contact = val
		case eq(name, "content-length", "l"):
			if n, err := strconv.Atoi(string(val)); err == nil && n >= 0 && n <= len(m.body) {
				m.body = m.body[:n]
			}
		}
	}
	return true
}

func eq(name []byte, long, short string) bool {
	return bytes.EqualFold(name, []byte(long)) || (short != "" && bytes.EqualFold(name, []byte(short)))
}

// onRequest answers a request of the server (200, at once) and records what it brings.
func (g *loadgen) onRequest(s *sock, from *net.UDPAddr, m *msg, out []byte) []byte {
	method := string(m.method)
	if method == "ACK" {
		return out
	}
	code := "200 OK"
	if method == "INVITE" {
		code = "488 Not Acceptable Here"
	}
	out = append(out, "SIP/2.0 "+code+"\r\n"...)
	for i, l := range m.copyLines {
		out = append(out, l...)
		if i == m.toIdx && !bytes.Contains(m.toVal, []byte(";tag=")) {
			out = append(out, ";tag=lg"+g.run...)
		}
		out = append(out, "\r\n"...)
	}
	out = append(out, "Content-Length: 0\r\n\r\n"...)
	_, _ = s.conn.WriteToUDP(out, from)

	switch method {
	case "MESSAGE", "INFO":
		if bytes.Contains(m.ctype, []byte("im-iscomposing")) || bytes.Contains(m.ctype, []byte("application/xml")) {
			g.typingIn.Add(1)
			return out
		}
		i, ok := g.token(m.body)
		if !ok {
			g.unknownIn.Add(1)
			return out
		}
		now := g.now()
		if !g.pings[i].reply.CompareAndSwap(0, now) {
			return out // a retransmission
		}
		if g.c.mode != "page" {
			ss := &g.sessions[i]
			ss.mu.Lock()
			replied := ss.state == stMessaging
			if replied {
				ss.state = stReplied
				if g.c.mode == "session" {
					g.sendByeLocked(i)
				}
			}
			ss.mu.Unlock()
			if replied && g.c.mode == "soak" {
				g.openDone.Add(1)
				g.reached(g.established.Add(1))
			}
		}
	case "BYE":
		if i, ok := g.sessionOf(m.callID); ok {
			ss := &g.sessions[i]
			ss.mu.Lock()
			if ss.state != stClosed && ss.state != stFailed {
				ss.serverBye = true
				ss.state = stClosed
				g.closedN.Add(1)
			}
			ss.mu.Unlock()
		}
	}
	return out
}

// token finds N in a body "lg RUN N" of this run.
func (g *loadgen) token(body []byte) (int, bool) {
	rest, ok := bytes.CutPrefix(bytes.TrimSpace(body), []byte("lg "+g.run+" "))
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(string(rest))
	if err != nil || i < 0 || i >= len(g.pings) {
		return 0, false
	}
	return i, true
}

// sessionOf finds N in a Call-ID "sN.RUN".
func (g *loadgen) sessionOf(callID []byte) (int, bool) {
	return g.idOf(callID, 's', len(g.sessions))
}

func (g *loadgen) idOf(callID []byte, kind byte, n int) (int, bool) {
	if len(callID) < 2 || callID[0] != kind {
		return 0, false
	}
	num, run, ok := bytes.Cut(callID[1:], []byte("."))
	if !ok || string(run) != g.run {
		return 0, false
	}
	i, err := strconv.Atoi(string(num))
	if err != nil || i < 0 || i >= n {
		return 0, false
	}
	return i, true
}

func (g *loadgen) onResponse(m *msg) {
	if m.callID == nil {
		return
	}
	if g.c.mode == "page" {
		i, ok := g.idOf(m.callID, 'p', len(g.pings))
		if !ok || m.code < 200 {
			return
		}
		g.pings[i].code.CompareAndSwap(0, int32(m.code))
		if t := g.pings[i].tx.Load(); t != nil {
			t.done.Store(true)
		}
		return
	}
	i, ok := g.sessionOf(m.callID)
	if !ok {
		return
	}
	ss := &g.sessions[i]
	ss.mu.Lock()
	defer ss.mu.Unlock()
	switch string(m.cseqMethod) {
	case "INVITE":
		if ss.invite != nil {
			ss.invite.done.Store(true)
		}
		switch {
		case m.code < 200:
		case m.code < 300:
			if ss.state != stInviting {
				if ss.ack != nil {
					g.write(ss.s, ss.ack) // the 200 again: our ACK was lost
				}
				return
			}
			ss.inviteCode = m.code
			ss.answered = g.now()
			ss.toTag = tagOf(m.toVal)
			ss.target = uriOf(m.contact)
			if ss.target == "" {
				ss.target = "sip:" + g.c.service + "@" + g.c.targetStr
			}
			ss.ack = g.inDialog(i, "ACK", 'a', 1, "", nil)
			g.write(ss.s, ss.ack)
			ss.state = stMessaging
			body := g.body(i)
			g.pings[i].sent.Store(g.now())
			g.send(ss.s, g.inDialog(i, "MESSAGE", 'm', 1+g.c.cseqGap, "text/plain;charset=UTF-8", body), false, &g.pings[i].tx)
		default:
			// A refusal: ACK it in the INVITE's transaction (same branch).
			var b bytes.Buffer
			b.WriteString("ACK sip:" + g.c.service + "@" + g.c.targetStr + " SIP/2.0\r\n")
			b.WriteString("Via: SIP/2.0/UDP " + ss.s.addr + ";branch=" + g.branch('i', i) + "\r\n")
			b.WriteString("Max-Forwards: 70\r\n")
			g.dialogHeaders(&b, i, tagOf(m.toVal))
			b.WriteString("CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
			g.write(ss.s, b.Bytes())
			if ss.state == stInviting {
				ss.inviteCode = m.code
				ss.state = stFailed
				g.closedN.Add(1)
				g.openDone.Add(1)
			}
		}
	case "MESSAGE":
		if m.code >= 200 {
			first := g.pings[i].code.CompareAndSwap(0, int32(m.code))
			if t := g.pings[i].tx.Load(); t != nil {
				t.done.Store(true)
			}
			if first && m.code >= 300 && ss.state == stMessaging {
				// Refused: no reply will come.
				if g.c.mode == "session" {
					g.sendByeLocked(i)
				} else {
					g.openDone.Add(1)
				}
			}
		}
	case "BYE":
		if m.code >= 200 && ss.bye != nil {
			ss.bye.done.Store(true)
			if ss.state == stClosing {
				ss.byeCode = m.code
				ss.state = stClosed
				g.closedN.Add(1)
			}
		}
	}
}

func tagOf(to []byte) string {
	_, t, ok := bytes.Cut(to, []byte(";tag="))
	if !ok {
		return ""
	}
	if i := bytes.IndexAny(t, ";> \t"); i >= 0 {
		t = t[:i]
	}
	return string(t)
}

func uriOf(contact []byte) string {
	if i := bytes.IndexByte(contact, '<'); i >= 0 {
		if j := bytes.IndexByte(contact[i:], '>'); j > 0 {
			return string(contact[i+1 : i+j])
		}
	}
	if i := bytes.IndexByte(contact, ';'); i >= 0 {
		contact = contact[:i]
	}
	return string(bytes.TrimSpace(contact))
}

// --- results ---

// stats turns latencies (ns) of the replies received out of total pings into percentiles;
// pings without a reply count as infinitely late.
type stats struct {
	vals  []int64
	total int
}

func (d *stats) pct(p float64) string {
	if d.total == 0 {
		return "n/a"
	}
	slices.Sort(d.vals)
	k := max(int(math.Ceil(p*float64(d.total)))-1, 0)
	if k >= len(d.vals) {
		return "inf"
	}
	return ms(d.vals[k])
}

func (d *stats) max() string {
	if len(d.vals) == 0 {
		return "n/a"
	}
	return ms(slices.Max(d.vals))
}

func ms(ns int64) string { return strconv.FormatFloat(float64(ns)/1e6, 'f', 2, 64) }

func kv(k string, v any) string { return fmt.Sprintf("%s=%v", k, v) }

// pingCounts summarises the pings (page pings, or the sessions' MESSAGEs).
func (g *loadgen) pingCounts() []string {
	var sent, ok, busy, other, none, within, late, never, okNoReply int
	lat := stats{}
	dl := int64(g.c.deadline)
	for i := range g.pings {
		p := &g.pings[i]
		st := p.sent.Load()
		if st == 0 {
			continue
		}
		sent++
		code := p.code.Load()
		switch {
		case code == 0:
			none++
		case code >= 200 && code < 300:
			ok++
		case code == 503:
			busy++
		default:
			other++
		}
		r := p.reply.Load()
		switch {
		case r == 0:
			never++
			if code >= 200 && code < 300 {
				okNoReply++
			}
		case r-st <= dl:
			within++
			lat.vals = append(lat.vals, r-st)
		default:
			late++
			lat.vals = append(lat.vals, r-st)
		}
	}
	lat.total = sent
	pass := 0
	if sent > 0 && within*100 >= 99*sent {
		pass = 1
	}
	return []string{kv("pings", sent), kv("ok2xx", ok), kv("r503", busy), kv("rother", other), kv("rnone", none),
		kv("within", within), kv("late", late), kv("never", never), kv("ok_noreply", okNoReply),
		kv("typing", g.typingIn.Load()), kv("unknown_in", g.unknownIn.Load()),
		kv("p50_ms", lat.pct(0.50)), kv("p90_ms", lat.pct(0.90)), kv("p99_ms", lat.pct(0.99)), kv("max_ms", lat.max()),
		kv("pass", pass)}
}

func (g *loadgen) sendFigures(lag, took time.Duration, n int) []string {
	rate := 0.0
	if took > 0 {
		rate = float64(n) / took.Seconds()
	}
	return []string{kv("send_rate", strconv.FormatFloat(rate, 'f', 0, 64)), kv("lag_ms", ms(int64(lag)))}
}

func (g *loadgen) pageResult(lag, took time.Duration) []string {
	res := []string{kv("mode", "page"), kv("rate", g.c.rate), kv("count", g.c.count)}
	res = append(res, g.sendFigures(lag, took, g.c.count)...)
	return append(res, g.pingCounts()...)
}

// sessionCounts summarises the sessions' INVITEs and BYEs.
func (g *loadgen) sessionCounts() []string {
	var invited, inv2xx, inv503, invOther, invNone, byeOK, byeOther, serverBye, open int
	setup := stats{}
	for i := range g.sessions {
		ss := &g.sessions[i]
		ss.mu.Lock()
		if ss.state != stNew {
			invited++
			switch c := ss.inviteCode; {
			case c == 0:
				invNone++
			case c < 300:
				inv2xx++
				setup.vals = append(setup.vals, ss.answered-ss.inviteSent)
			case c == 503:
				inv503++
			default:
				invOther++
			}
		}
		switch {
		case ss.serverBye:
			serverBye++
		case ss.byeCode >= 200 && ss.byeCode < 300:
			byeOK++
		case ss.byeCode != 0:
			byeOther++
		}
		if ss.state == stReplied || ss.state == stMessaging {
			open++
		}
		ss.mu.Unlock()
	}
	setup.total = invited
	return []string{kv("sessions", invited), kv("inv2xx", inv2xx), kv("inv503", inv503), kv("invother", invOther),
		kv("invnone", invNone), kv("setup_p50_ms", setup.pct(0.50)), kv("setup_p99_ms", setup.pct(0.99)),
		kv("bye_ok", byeOK), kv("bye_other", byeOther), kv("server_bye", serverBye), kv("still_open", open)}
}

func (g *loadgen) sessionResult(lag, took time.Duration) []string {
	res := []string{kv("mode", "session"), kv("rate", g.c.rate), kv("count", g.c.count), kv("cseq_gap", g.c.cseqGap)}
	res = append(res, g.sendFigures(lag, took, g.c.count)...)
	res = append(res, g.sessionCounts()...)
	return append(res, g.pingCounts()...)
}

// soak opens the sessions, holds them, reads the server's memory, then ends them.
func (g *loadgen) soak(ctx context.Context) []string {
	c := g.c
	g.rss("idle", 0)
	lag, took := g.pace(ctx, c.count, g.sendInvite)
	g.wait(ctx, c.drain, func() bool { return g.openDone.Load() >= int64(c.count) })
	est := g.established.Load()
	g.rss("open", est)
	fmt.Fprintf(os.Stderr, "loadgen: %d sessions open in %.1f s; holding them %s\n", est, took.Seconds(), c.settle)
	sleep(ctx, c.settle)
	g.rss("held", g.established.Load())
	res := []string{kv("mode", "soak"), kv("rate", c.rate), kv("count", c.count), kv("cseq_gap", c.cseqGap),
		kv("established", est), kv("open_s", strconv.FormatFloat(took.Seconds(), 'f', 1, 64))}
	res = append(res, g.sendFigures(lag, took, c.count)...)

	var open []int
	for i := range g.sessions {
		ss := &g.sessions[i]
		ss.mu.Lock()
		if ss.state == stReplied || ss.state == stMessaging {
			open = append(open, i)
		}
		ss.mu.Unlock()
	}
	closed0 := g.closedN.Load()
	_, byeTook := g.pace(ctx, len(open), func(k int) {
		ss := &g.sessions[open[k]]
		ss.mu.Lock()
		g.sendByeLocked(open[k])
		ss.mu.Unlock()
	})
	g.wait(ctx, c.drain, func() bool { return g.closedN.Load()-closed0 >= int64(len(open)) })
	g.rss("closed", 0)
	fmt.Fprintf(os.Stderr, "loadgen: %d BYEs sent in %.1f s; waiting %s\n", len(open), byeTook.Seconds(), c.settle)
	sleep(ctx, c.settle)
	g.rss("after", 0)
	res = append(res, kv("bye_s", strconv.FormatFloat(byeTook.Seconds(), 'f', 1, 64)))
	res = append(res, g.sessionCounts()...)
	return append(res, g.pingCounts()...)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// reached reads the server's memory when the established sessions reach the next milestone.
func (g *loadgen) reached(n int64) {
	g.msMu.Lock()
	defer g.msMu.Unlock()
	for g.nextMS < len(g.c.milestones) && n >= int64(g.c.milestones[g.nextMS]) {
		g.nextMS++
		g.rssLocked("milestone", n)
	}
}

func (g *loadgen) rss(stage string, n int64) {
	g.msMu.Lock()
	defer g.msMu.Unlock()
	g.rssLocked(stage, n)
}

// rssLocked prints one reading of the server's memory: "RSS stage=S sessions=N vmrss_kb=...
// vmhwm_kb=... threads=... t_s=...".
func (g *loadgen) rssLocked(stage string, n int64) {
	if g.c.pid == 0 {
		return
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(g.c.pid) + "/status")
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: server status: %v\n", err)
		return
	}
	vals := map[string]string{}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k {
		case "VmRSS", "VmHWM", "Threads":
			vals[k] = strings.TrimSuffix(strings.TrimSpace(v), " kB")
		}
	}
	line := fmt.Sprintf("RSS stage=%s sessions=%d vmrss_kb=%s vmhwm_kb=%s threads=%s t_s=%.1f",
		stage, n, vals["VmRSS"], vals["VmHWM"], vals["Threads"], time.Since(g.start).Seconds())
	fmt.Println(line)
	fmt.Fprintln(os.Stderr, "loadgen: "+line)
}

// udpErrors is the host's count of UDP datagrams dropped for a full receive buffer
// (/proc/net/snmp Udp RcvbufErrors): every socket on the machine, server's included.
func udpErrors() int64 {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0
	}
	var names []string
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				v, _ := strconv.ParseInt(f[i], 10, 64)
				return v
			}
		}
	}
	return 0
}

// sockDrops reads the datagrams dropped by the server's socket (the one at -target) and by the
// client's sockets since they were opened (/proc/net/udp "drops"; "?" when unknown).
func (g *loadgen) sockDrops() (srv, cli string) {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return "?", "?"
	}
	local := func(port int) string { return fmt.Sprintf("0100007F:%04X", port) }
	mine := map[string]bool{}
	for _, s := range g.socks {
		mine[local(s.port)] = true
	}
	target := local(g.c.target.Port)
	var sd, cd int64
	found := false
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 13 || !strings.HasSuffix(f[0], ":") {
			continue
		}
		d, err := strconv.ParseInt(f[len(f)-1], 10, 64)
		if err != nil {
			continue
		}
		switch {
		case f[1] == target:
			sd += d
			found = true
		case mine[f[1]]:
			cd += d
		}
	}
	srv = "?"
	if found {
		srv = strconv.FormatInt(sd, 10)
	}
	return srv, strconv.FormatInt(cd, 10)
}
