package bot

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imbot-dev/imbot/internal/netguard"
)

// messageTimeout bounds how long one message may take to arrive on a stream connection,
// from its first byte to its last, how long a new connection may take to deliver its first
// message, TLS and WebSocket handshakes included, and how long one write may take: a peer
// that stops reading loses its connection instead of holding the goroutine that writes to
// it. Config.ConnectionIdleTimeout caps it.
const messageTimeout = 30 * time.Second

// streamListener is a TCP, TLS or WebSocket listen address of the bot. Under sipgo's serve
// loop, which stops at the first accept error, it bounds the connections open at once and
// retries failed accepts (netguard), does the server side of TLS, and times every
// connection by message (guardConn).
type streamListener struct {
	*netguard.Listener
	network       string // tcp, tls, ws or wss
	tls           *tls.Config
	idle, message time.Duration
	log           *slog.Logger
	origins       []string // Config.WebSocketOrigins, for ws and wss
}

func newStreamListener(ln net.Listener, network string, cfg Config) *streamListener {
	l := &streamListener{
		Listener: netguard.NewListener(ln, cfg.MaxConnections, cfg.Logger.With("network", network)),
		network:  network,
		idle:     cfg.ConnectionIdleTimeout,
		message:  min(messageTimeout, cfg.ConnectionIdleTimeout),
		log:      cfg.Logger,
	}
	if network == "tls" || network == "wss" {
		l.tls = cfg.TLS
	}
	if network == "ws" || network == "wss" {
		l.origins = cfg.WebSocketOrigins
	}
	return l
}

// Accept waits for the next connection; it returns an error only once the listener is
// closed.
func (l *streamListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	g := &guardConn{
		Conn:    c,
		network: l.network,
		idle:    l.idle,
		message: l.message,
		log:     l.log,
		first:   now.Add(l.message),
	}
	g.due, g.wait = g.first, waitFirst
	if l.network == "ws" || l.network == "wss" {
		g.frame = &wsFramer{}
		g.origins = l.origins
	} else {
		g.frame = &sipFramer{}
	}
	if l.tls != nil {
		g.tls = tls.Server(c, l.tls)
		g.Conn = g.tls
	}
	return g, nil
}

// What a connection's read deadline waits for.
const (
	waitFirst   = iota // its first message
	waitMessage        // the end of the message under way
	waitIdle           // a message or a keep-alive
)

// guardConn is an accepted stream connection that closes itself when the peer sends nothing
// useful. Its read deadline is not reset by every byte that arrives, as an idle timeout
// would be (a peer dribbling a byte every few seconds would keep it forever), but by
// messages, which its framer finds in the bytes sipgo reads:
//
//   - a new connection must deliver its first message within the message timeout of being
//     accepted (TLS and WebSocket handshakes included);
//   - a message must arrive whole within the message timeout of its first byte;
//   - between messages the connection may stay silent, or send only keep-alives, for the
//     idle timeout.
//
// When one of these deadlines passes, Read returns io.EOF and sipgo closes the connection.
// A read deadline sipgo sets itself (for the WebSocket handshake) still applies when it is
// the earlier one. A write that takes longer than the message timeout closes the
// connection.
type guardConn struct {
	net.Conn           // what sipgo reads and writes: the TLS connection for tls and wss
	tls      *tls.Conn // nil without TLS
	network  string
	frame    framer
	idle     time.Duration
	message  time.Duration
	first    time.Time // deadline of the first message
	log      *slog.Logger
	origins  []string // the web origins whose upgrade requests go on (see originAllowed)
	closed   atomic.Bool

	mu         sync.Mutex
	due        time.Time // the connection's own read deadline
	wait       int       // what due waits for: waitFirst, waitMessage or waitIdle
	delivered  bool      // a message has arrived
	handshaken bool      // the TLS handshake has been done
	userRead   time.Time // the read deadline sipgo set, zero for none
	userWrite  time.Time // the write deadline sipgo set, zero for none
	applied    time.Time // the read deadline last set on Conn
}

// Read reads from the connection under the earlier of its own deadline and the reader's.
func (c *guardConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	d := earliest(c.userRead, c.due)
	if c.tls != nil && !c.handshaken {
		c.handshaken = true
		c.mu.Unlock()
		if err := c.handshake(d); err != nil {
			return 0, err
		}
		c.mu.Lock()
		c.applied = d
	}
	if !d.Equal(c.applied) {
		if err := c.Conn.SetReadDeadline(d); err != nil {
			c.mu.Unlock()
			return 0, err
		}
		c.applied = d
	}
	c.mu.Unlock()

	n, err := c.Conn.Read(p)

	c.mu.Lock()
	defer c.mu.Unlock()
	if n > 0 {
		if pr := c.observe(p[:n], time.Now()); pr.upgraded && !c.originOKLocked() {
			return 0, io.EOF // the upgrade request never reaches sipgo
		}
	}
	if err != nil && c.expiredLocked(err) {
		c.logClose()
		return n, io.EOF
	}
	return n, err
}

// handshake does the server side of TLS under deadline d, for reading and writing both.
func (c *guardConn) handshake(d time.Time) error {
	if err := c.tls.SetDeadline(d); err != nil {
		return err
	}
	err := c.tls.Handshake()
	if err == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.expiredLocked(err) {
		c.logClose()
		return io.EOF
	}
	return err
}

// originOKLocked checks the Origin of a WebSocket upgrade request that just ended against
// Config.WebSocketOrigins. A refused one is answered 403 and the connection closed.
func (c *guardConn) originOKLocked() bool {
	f, ok := c.frame.(*wsFramer)
	if !ok || originAllowed(c.origins, f.origin, f.hasOrigin) {
		return true
	}
	c.log.Info("WebSocket from a web origin that may not use the bot refused", "network", c.network,
		"remote", c.RemoteAddr().String(), "origin", f.origin)
	_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(c.Conn, "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 41\r\n\r\nthis origin may not open SIP to this bot\n")
	_ = c.Conn.Close()
	return false
}

// observe moves the deadline by what the bytes p, just read, carried, and returns it.
func (c *guardConn) observe(p []byte, now time.Time) progress {
	pr := c.frame.feed(p)
	c.delivered = c.delivered || pr.messages > 0
	switch {
	case pr.inMessage:
		if pr.began {
			c.due, c.wait = now.Add(c.message), waitMessage
		}
	case !c.delivered:
		// Only a handshake or a keep-alive so far: the first message is still due.
		c.due, c.wait = c.first, waitFirst
	case pr.messages > 0 || pr.keepAlive:
		c.due, c.wait = now.Add(c.idle), waitIdle
	}
	return pr
}

// expiredLocked reports whether err is the connection's own read deadline passing (and not
// the reader's).
func (c *guardConn) expiredLocked(err error) bool {
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		return false
	}
	return !time.Now().Before(c.due) && (c.userRead.IsZero() || !c.userRead.Before(c.due))
}

func (c *guardConn) logClose() {
	var reason string
	var after time.Duration
	switch c.wait {
	case waitFirst:
		reason, after = "no message since it connected", c.message
	case waitMessage:
		reason, after = "a message still incomplete after", c.message
	default:
		reason, after = "no message and no keep-alive for", c.idle
	}
	c.log.Debug("closing a connection: "+reason, "network", c.network,
		"remote", c.RemoteAddr().String(), "timeout", after)
}

// Write writes p with a deadline: the writer's, or the message timeout from now. A peer
// that does not read in that time loses its connection, since a message cut short leaves
// no framing to go on with.
func (c *guardConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	d, own := c.userWrite, c.userWrite.IsZero()
	c.mu.Unlock()
	if own {
		d = time.Now().Add(c.message)
	}
	if err := c.Conn.SetWriteDeadline(d); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	var ne net.Error
	if err != nil && own && errors.As(err, &ne) && ne.Timeout() {
		c.log.Debug("closing a connection: the peer does not read", "network", c.network,
			"remote", c.RemoteAddr().String(), "timeout", c.message)
		_ = c.Close()
	}
	return n, err
}

// SetDeadline sets the reader's and the writer's deadlines.
func (c *guardConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the reader's deadline; the earlier of it and the connection's own
// applies.
func (c *guardConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.userRead = t
	c.applied = earliest(t, c.due)
	return c.Conn.SetReadDeadline(c.applied)
}

// SetWriteDeadline sets the writer's deadline; without one, each write gets the message
// timeout.
func (c *guardConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.userWrite = t
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

// Close closes the connection; closing it again does nothing.
func (c *guardConn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	return c.Conn.Close()
}

// earliest returns the earlier of two deadlines, where zero means none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
