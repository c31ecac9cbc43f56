package bot_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

// These tests attack the bot's TCP, TLS and WebSocket listeners from outside, the way the
// security report did: floods of connections, connections that dribble or say nothing.

// closeWait is how long a test waits for the bot to close a connection whose timeout is a
// few hundred milliseconds: generous, and shorter than any timeout the bot had before it
// timed connections (sipgo's 10 s for a WebSocket handshake).
const closeWait = 5 * time.Second

// silent is a handler that answers nothing: the 200 the bot sends for a MESSAGE is all
// these tests read.
var silent = bot.HandlerFunc(func(context.Context, bot.Responder, *bot.Event) error { return nil })

var rawSeq atomic.Int64

// rawMessage is a page-mode MESSAGE as a client on c writes it.
func rawMessage(network string, c net.Conn, text string) string {
	n := rawSeq.Add(1)
	return fmt.Sprintf("MESSAGE sip:bot@127.0.0.1 SIP/2.0\r\n"+
		"Via: SIP/2.0/%s %s;branch=z9hG4bK-guard-%d\r\n"+
		"Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a%d\r\nTo: <sip:bot@127.0.0.1>\r\n"+
		"Call-ID: guard-%d\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s",
		strings.ToUpper(network), c.LocalAddr(), n, n, n, len(text), text)
}

// rawConn is a client connection to the bot over tcp, tls, ws or wss that writes requests
// by hand and reads the status of the responses.
type rawConn struct {
	net.Conn
	network string
	r       *bufio.Reader
}

// dialRaw connects to the bot; over TLS it completes the handshake, over WebSocket the
// upgrade.
func dialRaw(t *testing.T, network, addr string, clientTLS *tls.Config) *rawConn {
	t.Helper()
	var c net.Conn
	var br *bufio.Reader
	var err error
	switch network {
	case "tcp":
		c, err = net.DialTimeout("tcp", addr, deadline)
	case "tls":
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: deadline}, "tcp", addr, clientTLS)
	case "ws", "wss":
		d := ws.Dialer{Protocols: []string{"sip"}, TLSConfig: clientTLS, Timeout: deadline}
		c, br, _, err = d.Dial(testCtx(t), network+"://"+addr)
	}
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { c.Close() })
	if br == nil {
		br = bufio.NewReader(c)
	}
	return &rawConn{Conn: c, network: network, r: br}
}

// send writes one request: over WebSocket as one text message.
func (c *rawConn) send(msg string) error {
	if c.network == "ws" || c.network == "wss" {
		return wsutil.WriteClientText(c.Conn, []byte(msg))
	}
	_, err := io.WriteString(c.Conn, msg)
	return err
}

// status reads the next response and returns its status code; CRLF keep-alive answers
// before it are skipped.
func (c *rawConn) status() (int, error) {
	_ = c.SetReadDeadline(time.Now().Add(deadline))
	defer c.SetReadDeadline(time.Time{})
	var head []byte
	if c.network == "ws" || c.network == "wss" {
		for len(bytes.Trim(head, "\r\n")) == 0 {
			msg, _, err := wsutil.ReadServerData(struct {
				io.Reader
				io.Writer
			}{c.r, c.Conn})
			if err != nil {
				return 0, err
			}
			head = msg
		}
	} else {
		for {
			b, err := c.r.Peek(1)
			if err != nil {
				return 0, err
			}
			if b[0] != '\r' && b[0] != '\n' {
				break
			}
			_, _ = c.r.Discard(1)
		}
		length := 0
		for {
			line, err := c.r.ReadString('\n')
			if err != nil {
				return 0, err
			}
			head = append(head, line...)
			line = strings.TrimSpace(line)
			if line == "" {
				break
			}
			if name, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(name), "content-length") {
				length, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		if _, err := c.r.Discard(length); err != nil {
			return 0, err
		}
	}
	first, _, _ := strings.Cut(string(head), "\r\n")
	f := strings.Fields(first)
	if len(f) < 2 || f[0] != "SIP/2.0" {
		return 0, fmt.Errorf("not a response: %q", first)
	}
	return strconv.Atoi(f[1])
}

// do sends a MESSAGE and returns the status of its response.
func (c *rawConn) do(text string) (int, error) {
	if err := c.send(rawMessage(c.network, c.Conn, text)); err != nil {
		return 0, err
	}
	return c.status()
}

// doFresh sends a MESSAGE over a new TCP connection to addr and returns the status of its
// response.
func doFresh(addr, text string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, deadline)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return (&rawConn{Conn: c, network: "tcp", r: bufio.NewReader(c)}).do(text)
}

// waitClosed reads from c until the bot closes it (EOF or a reset) and fails the test if it
// is still open after wait.
func waitClosed(t *testing.T, c net.Conn, wait time.Duration, what string) {
	t.Helper()
	if err := closedWithin(c, wait); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func closedWithin(c net.Conn, wait time.Duration) error {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 512)
	for {
		_, err := c.Read(buf)
		var ne net.Error
		switch {
		case err == nil:
		case errors.As(err, &ne) && ne.Timeout():
			return fmt.Errorf("still open after %v", wait)
		default:
			return nil // EOF, reset: closed by the bot
		}
	}
}

// A flood of idle connections past MaxConnections: the ones past the limit are closed at
// once, the bot keeps serving UDP and the connections it accepted, a new connection gets
// in once a place frees, and Run goes on.
func TestConnectionFlood(t *testing.T) {
	const limit, flood = 20, 40
	r := startBot(t, bot.Config{MaxConnections: limit}, silent)
	addr := r.Addr("tcp")
	conns := make([]net.Conn, flood)
	watched := make([]chan struct{}, flood) // closed when the watch on conns[i] ends
	closed := make(chan int, flood)
	for i := range conns {
		c, err := net.DialTimeout("tcp", addr, deadline)
		if errors.Is(err, syscall.ECONNRESET) {
			closed <- i // refused before the dial returned
			continue
		}
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i], watched[i] = c, make(chan struct{})
		go func() {
			defer close(watched[i])
			if closedWithin(c, deadline) == nil {
				closed <- i
			}
		}()
	}
	refused := map[int]bool{}
	timeout := time.After(deadline)
	for len(refused) < flood-limit {
		select {
		case i := <-closed:
			refused[i] = true
		case <-timeout:
			t.Fatalf("%d of %d connections past a limit of %d were closed", len(refused), flood-limit, limit)
		}
	}

	p := newPeer(t, r, "udp", bottest.Options{})
	if res, err := p.SendPage(testCtx(t), "over UDP during the flood"); err != nil || res.StatusCode != 200 {
		t.Fatalf("MESSAGE over UDP during the flood: %v, %v", res, err)
	}
	// The accepted connections are served.
	var held []int
	for i := range conns {
		if !refused[i] {
			held = append(held, i)
		}
	}
	// Stop watching one of them, to use it.
	_ = conns[held[0]].SetReadDeadline(time.Now())
	<-watched[held[0]]
	first := &rawConn{Conn: conns[held[0]], network: "tcp", r: bufio.NewReader(conns[held[0]])}
	if code, err := first.do("on an accepted connection"); code != 200 {
		t.Fatalf("MESSAGE on a connection within the limit: %d, %v", code, err)
	}
	// While the bot is full, a new connection is closed at once.
	if extra, err := net.DialTimeout("tcp", addr, deadline); err == nil {
		waitClosed(t, extra, closeWait, "a new connection while the bot is full")
		extra.Close()
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatal(err)
	}

	// Places free up when clients close theirs.
	for _, i := range held[1:6] {
		conns[i].Close()
	}
	ctx := testCtx(t)
	for {
		code, err := doFresh(addr, "on a fresh connection")
		if code == 200 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("a fresh connection after places freed: %d, %v", code, err)
		}
		// The bot has not seen the closes yet: try again shortly.
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	select {
	case err := <-r.done:
		t.Fatalf("Run returned during the flood: %v", err)
	default:
	}
}

// dribbler writes prefix, then one byte of body every 50 ms (200 at most), until the
// connection fails or the test ends.
func dribble(t *testing.T, c net.Conn, prefix, body string) {
	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		if prefix != "" {
			if _, err := io.WriteString(c, prefix); err != nil {
				return
			}
		}
		if body == "" {
			return
		}
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 200; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := c.Write([]byte{body[i%len(body)]}); err != nil {
				return
			}
		}
	}()
}

// wsFrameHeader is the header of a masked client text frame of n bytes (126 <= n < 65536).
func wsFrameHeader(n int) string {
	return string([]byte{0x81, 0x80 | 126, byte(n >> 8), byte(n), 1, 2, 3, 4})
}

// A connection that dribbles a request that never ends, or says nothing, is closed after
// the message timeout (ConnectionIdleTimeout when shorter than 30 s), although bytes keep
// arriving far more often than that.
func TestSlowConnectionsClosed(t *testing.T) {
	serverTLS, clientTLS := selfSigned(t)
	const head = "MESSAGE sip:bot@127.0.0.1 SIP/2.0\r\nSubject: "
	cases := []struct {
		name    string
		network string
		open    func(t *testing.T, addr string) (c net.Conn, prefix, body string)
	}{
		{"tcp: silent", "tcp", func(t *testing.T, addr string) (net.Conn, string, string) {
			return dialRaw(t, "tcp", addr, nil), "", ""
		}},
		{"tcp: a dribbled request", "tcp", func(t *testing.T, addr string) (net.Conn, string, string) {
			return dialRaw(t, "tcp", addr, nil), head, "a"
		}},
		{"tcp: a dribbled request after a good one", "tcp", func(t *testing.T, addr string) (net.Conn, string, string) {
			c := dialRaw(t, "tcp", addr, nil)
			if code, err := c.do("hello"); code != 200 {
				t.Fatalf("first MESSAGE: %d, %v", code, err)
			}
			return c, head, "a"
		}},
		{"tls: no handshake", "tls", func(t *testing.T, addr string) (net.Conn, string, string) {
			return dialRaw(t, "tcp", addr, nil), "", ""
		}},
		{"tls: a dribbled handshake", "tls", func(t *testing.T, addr string) (net.Conn, string, string) {
			return dialRaw(t, "tcp", addr, nil), "\x16\x03\x01\x02\x00", "\x00"
		}},
		{"tls: a dribbled request", "tls", func(t *testing.T, addr string) (net.Conn, string, string) {
			return dialRaw(t, "tls", addr, clientTLS), head, "a"
		}},
		{"ws: a dribbled upgrade", "ws", func(t *testing.T, addr string) (net.Conn, string, string) {
			return dialRaw(t, "tcp", addr, nil), "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ", "a"
		}},
		{"ws: a dribbled frame", "ws", func(t *testing.T, addr string) (net.Conn, string, string) {
			return dialRaw(t, "ws", addr, nil), wsFrameHeader(1000), "a"
		}},
		{"wss: a dribbled frame", "wss", func(t *testing.T, addr string) (net.Conn, string, string) {
			return dialRaw(t, "wss", addr, clientTLS), wsFrameHeader(1000), "a"
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := startBot(t, bot.Config{Listen: []string{c.network + "://127.0.0.1:0"}, TLS: serverTLS,
				ConnectionIdleTimeout: 300 * time.Millisecond}, silent)
			conn, prefix, body := c.open(t, r.Addr(c.network))
			dribble(t, conn, prefix, body)
			waitClosed(t, conn, closeWait, "the slow connection")
		})
	}
}

// A client that sends CRLF keep-alives (RFC 5626) well within ConnectionIdleTimeout keeps
// its connection, while a silent one beside it loses its own.
func TestKeepAliveKeepsConnection(t *testing.T) {
	serverTLS, clientTLS := selfSigned(t)
	for _, network := range []string{"tcp", "tls", "ws"} {
		t.Run(network, func(t *testing.T) {
			r := startBot(t, bot.Config{Listen: []string{network + "://127.0.0.1:0"}, TLS: serverTLS,
				ConnectionIdleTimeout: time.Second}, silent)
			addr := r.Addr(network)
			alive, idle := dialRaw(t, network, addr, clientTLS), dialRaw(t, network, addr, clientTLS)
			for _, c := range []*rawConn{alive, idle} {
				if code, err := c.do("hello"); code != 200 {
					t.Fatalf("MESSAGE: %d, %v", code, err)
				}
			}
			stop, stopped := make(chan struct{}), make(chan error, 1)
			go func() {
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						stopped <- nil
						return
					case <-tick.C:
					}
					if err := alive.send("\r\n\r\n"); err != nil {
						stopped <- err
						return
					}
				}
			}()
			waitClosed(t, idle, deadline, "the silent connection")
			close(stop)
			if err := <-stopped; err != nil {
				t.Fatalf("keep-alive: %v", err)
			}
			if code, err := alive.do("still here"); code != 200 {
				t.Fatalf("MESSAGE after keep-alives, on the same connection: %d, %v", code, err)
			}
		})
	}
}

// A peer that stops reading loses its connection once a write of the bot has waited for
// the message timeout: the reply that could not be written fails, instead of holding its
// handler.
func TestSlowReaderClosed(t *testing.T) {
	replied := make(chan error, 1)
	h := bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		if ev.Kind == bot.EventMessage {
			// Far more than the socket buffers of both ends hold.
			replied <- w.Reply(ctx, strings.Repeat("x", 16<<20))
		}
		return nil
	})
	r := startBot(t, bot.Config{Listen: []string{"tcp://127.0.0.1:0"}, ConnectionIdleTimeout: 300 * time.Millisecond,
		RequestTimeout: time.Minute}, h)
	c := dialRaw(t, "tcp", r.Addr("tcp"), nil)
	if err := c.Conn.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	if code, err := c.do("send me a lot"); code != 200 {
		t.Fatalf("MESSAGE: %d, %v", code, err)
	}
	// The client reads no more.
	select {
	case err := <-replied:
		if err == nil {
			t.Fatal("a reply nobody read was reported as sent")
		}
	case <-time.After(closeWait):
		t.Fatal("the reply to a peer that does not read is still being written")
	}
}
