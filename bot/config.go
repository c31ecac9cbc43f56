package bot

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/internal/origin"
)

// Config configures a Bot. The zero value of every field is a usable default, so
// bot.New(bot.Config{}) gives a bot that listens on 127.0.0.1:5060 over UDP and TCP.
type Config struct {
	// Listen lists the addresses to listen on as URLs: "udp://127.0.0.1:5060",
	// "tcp://127.0.0.1:5060", "tls://127.0.0.1:5061", "ws://127.0.0.1:8080" or
	// "wss://127.0.0.1:8443" (WebSocket, RFC 7118, any HTTP path). Port 0 picks a free port;
	// when UDP and TCP both ask for port 0 on the same host they get the same port.
	// Default: UDP and TCP on 127.0.0.1:5060.
	Listen []string

	// TLS is the server configuration (certificate and key) for tls:// and wss:// listen
	// addresses. Required when one is listed.
	TLS *tls.Config
	// ClientTLS verifies the servers the bot connects to over TLS or WSS (the CA pool, the
	// server name). Nil uses the system's roots.
	ClientTLS *tls.Config
	// WebSocketOrigins lists the web origins whose pages may open SIP over WebSocket to the
	// bot (ws:// and wss:// listen addresses), such as "https://www.example.com", or "*"
	// for any. A browser's upgrade request from another origin gets 403 and the connection
	// is closed, so that no other site's page can talk to the bot as its visitor. Requests
	// without an Origin header (SIP clients, not browsers) are not affected. Empty: any
	// origin.
	WebSocketOrigins []string

	// Identity is the bot's address of record, such as "sip:helpdesk@example.com". It is the
	// From of every request the bot originates and the URI in its SDP answers. Default:
	// sip:imbot@<advertised host>.
	Identity string
	// DisplayName is shown to peers next to Identity. Default: none.
	DisplayName string
	// Advertise is the host (or host:port) put in the bot's Contact and Via headers, for a bot
	// behind NAT or listening on 0.0.0.0. Default: the first listen address.
	Advertise string
	// OutboundProxy, when set, receives every page-mode request the bot originates, for
	// example "sip:proxy.example.com:5060;transport=tcp" or "127.0.0.1:5060". Without it,
	// replies go straight back to the address the peer's request came from.
	OutboundProxy string
	// UserAgent is sent in the User-Agent header. Default: "imbot".
	UserAgent string

	// IdleTimeout ends a conversation that saw no message in either direction for this long:
	// a session gets a BYE, a page-mode conversation is forgotten. Default: 10 minutes.
	IdleTimeout time.Duration
	// InboxSize bounds the events waiting in one conversation; past it the peer gets 503
	// with Retry-After. Default: 64.
	InboxSize int
	// MaxWorkers bounds how many handlers run at the same time, and so the goroutines that
	// run them. Default: 256.
	MaxWorkers int
	// MaxQueued bounds the events accepted and not yet handled, across all conversations;
	// past it new messages get 503 with Retry-After instead of a 200 the bot could not
	// honour. Default: 10000.
	MaxQueued int
	// MaxQueueDelay is how long a conversation with work may wait for a worker before the bot
	// counts itself overloaded and answers new messages 503 with Retry-After. It keeps the
	// backlog to what the workers finish in about that time, so that replies stay prompt and
	// a shutdown finishes what was accepted. Default: 500ms.
	MaxQueueDelay time.Duration
	// MaxSessions bounds open IM sessions; past it new INVITEs get 503 with Retry-After.
	// Default: 100000.
	MaxSessions int
	// MaxPageConversations bounds open page-mode conversations. Past it, a peer writing for
	// the first time makes room: the least recently active conversation with no work ends
	// (EventSessionEnd with EndEvicted), as it would have at its idle timeout.
	// Default: 50000.
	MaxPageConversations int
	// MaxMessageBytes is the largest message body accepted; larger ones get 413.
	// Default: 16384.
	MaxMessageBytes int
	// MaxConnections bounds the connections open at once on each TCP, TLS or WebSocket
	// listen address. Past it a new connection is closed (with a reset) as soon as it is
	// accepted, so that a flood of connections costs the bot at most this many file
	// descriptors per address: keep their sum below the process's open-file limit
	// (ulimit -n). An accept that fails all the same (too many open files) is retried after
	// a pause, 5 ms doubling to 1 s; it never stops the bot. Default: 1024.
	MaxConnections int
	// SourceLimit limits how fast each source IP address may send requests (Kamailio's
	// pike): past it a source gets one 503 with Retry-After a second and silence for the
	// rest. Off by default, so that a load test from one address is not throttled; a bot
	// exposed to the internet should set it, such as {Rate: 50, Burst: 100}. Requests from
	// trusted proxies are exempt. See SourceLimit.
	SourceLimit SourceLimit
	// ConnectionIdleTimeout closes a TCP, TLS or WebSocket connection that carried no SIP
	// message and no keep-alive (CRLF, RFC 5626; a WebSocket ping) for this long. A client
	// that keeps its connection alive, with keep-alives every 30 seconds as is usual or with
	// its traffic, keeps it. Whatever the timeout, a connection must also move each message
	// promptly: a new one must deliver its first message within 30 seconds of connecting
	// (TLS and WebSocket handshakes included), any message must arrive whole within 30
	// seconds of its first byte, and any write of the bot must be taken within 30 seconds
	// (ConnectionIdleTimeout instead of 30 seconds, if shorter). So a peer that connects and
	// says nothing, dribbles a message that never ends or stops reading holds its connection
	// for 30 seconds, not for the idle timeout. Default: IdleTimeout plus one minute, so that
	// a browser or a client behind NAT, whose Contact the bot cannot reach, keeps the
	// connection it is answered over for as long as a conversation may stay idle on it.
	ConnectionIdleTimeout time.Duration
	// ReorderWindow is ignored.
	//
	// Deprecated: in-dialog requests are handled in the order they arrived, at once (gaps
	// in the peer's CSeq are legal, RFC 3261 §12.2.2), so nothing waits for a reorder window.
	ReorderWindow time.Duration
	// AckTimeout is how long the bot waits for the ACK of the 200 that accepted an IM
	// session (retransmitting the 200 over UDP meanwhile) before it ends the session with a
	// BYE. Messages the peer sends meanwhile are handled. An unverified caller over UDP that
	// sends nothing gets four copies of the 200 (0 to 3.5 s) and its session ends at 4
	// seconds, without a BYE. Default: 32 seconds (64·T1).
	AckTimeout time.Duration
	// RequestTimeout bounds one request the bot sends (a reply, typing, BYE). It is shorter
	// than SIP's own 32 s (timer F) so that a peer that never answers (gone, or a forged
	// source) costs one short wait: a page-mode conversation whose peer did not answer is
	// marked unreachable and the bot sends it nothing more until it writes again
	// (ErrPeerUnreachable). Toward an unverified UDP peer that has not yet answered the bot
	// the wait is at most 4 seconds (the first try and three retransmissions), so that a
	// forged source's victim gets little. Default: 10 seconds.
	RequestTimeout time.Duration
	// EventTimeout bounds the handling of one event: the handler's context is cancelled
	// after it. Default: 30 seconds.
	EventTimeout time.Duration
	// ShutdownTimeout bounds how long Run waits for handlers to finish and for BYEs to be
	// answered when its context ends. Default: 10 seconds.
	ShutdownTimeout time.Duration

	// Typing configures the typing indications the bot sends.
	Typing TypingConfig

	// Registration signs the bot in to a registrar. Without a Registrar the bot only
	// listens.
	Registration RegistrationConfig

	// Trust says how the bot knows who writes to it: trusted proxies asserting identities,
	// digest authentication of users, or (development) unverified From headers. See
	// TrustConfig; it must be set when the bot listens on anything but loopback.
	Trust TrustConfig

	// Apology is sent to the user when a handler fails before replying. "%s" (optional) is
	// replaced by the correlation ID that is also logged. Default:
	// "Sorry, something went wrong on my side (ref %s)."
	Apology string

	// Health, when set, says whether the bot is a healthy destination: an OPTIONS outside a
	// dialog (a load balancer's probe, such as Kamailio's dispatcher) is answered 200 while it
	// returns nil, and 503 with Retry-After and a Warning naming the error otherwise. A bot
	// that is shutting down answers 503 either way. imbot run passes what /readyz reports.
	Health func(ctx context.Context) error

	// Admit, when set, is asked before a new conversation is accepted. Returning nil accepts
	// it; returning a *Refusal refuses it with that SIP status, any other error with 403. Its
	// context is cancelled if the peer gives up (CANCEL). It runs on the SIP path: keep it fast.
	Admit func(ctx context.Context, peer Peer, mode Mode) error

	// Logger receives the bot's logs. Default: slog.Default().
	Logger *slog.Logger

	// Observer, when set, is told what the bot does on the wire, for metrics
	// (handlers.Metrics is one).
	Observer Observer
}

// Observer counts what the bot does on the wire. Its methods are called from many goroutines
// and must be fast.
type Observer interface {
	// ObserveSIPResponse is called for every response the bot sends to a request.
	ObserveSIPResponse(code int)
	// ObserveTypingSent is called for every typing indication the peer accepted: one call
	// per request on the wire ("active", its refreshes and "idle" each count), whether the
	// bot started typing on its own, for Responder.Typing or for WithTyping.
	ObserveTypingSent()
	// ObserveMessageOut is called for every text message the peer accepted (200 or 202),
	// whatever sent it: a reply, an apology, Session.Send or Bot.Send. A text split into
	// several messages to fit UDP counts once per message on the wire.
	ObserveMessageOut(mode Mode)
}

// TypingConfig is the typing ("is composing") policy.
type TypingConfig struct {
	// Off stops the bot from showing typing on its own. Handlers may still call
	// Responder.Typing.
	Off bool
	// Delay is how long the bot works on a message before it shows typing. Zero shows typing
	// as soon as work on a message starts; a reply sent before Delay shows no typing at all.
	Delay time.Duration
	// RefreshMS is how often "type" is repeated in the Microsoft dialect (KeyboardActivity),
	// whose clients drop it after about 5 seconds. Default: 4 seconds.
	RefreshMS time.Duration
	// Refresh is the <refresh> interval advertised in RFC 3994 isComposing; the bot repeats
	// "active" at two thirds of it. Default: 30 seconds.
	Refresh time.Duration
}

// RegistrationConfig configures REGISTER.
type RegistrationConfig struct {
	// Registrar is where the bot registers, such as "sip:example.com" or
	// "sip:127.0.0.1:5060;transport=tcp". The bot must listen on that transport.
	Registrar string
	// Username and Password answer digest challenges (MD5 or SHA-256, qop=auth), for
	// REGISTER and for requests the bot originates. Username defaults to the user part of
	// Config.Identity. Take the password from the environment, never from a file in a
	// repository; it is never logged.
	Username string
	Password string
	// Expires is the binding lifetime asked for; the bot refreshes at half of what the
	// registrar grants. Default: 1 hour.
	Expires time.Duration
	// RetryMin is the first pause after a failed attempt (unreachable registrar, timeout,
	// server error); it doubles per failure up to RetryMax. Defaults: 1 second, 5 minutes.
	RetryMin, RetryMax time.Duration
	// RetryRefused is the first pause after a refusal (wrong password, 403), doubling up to
	// RetryMax, so a wrong password never turns into a tight loop. Default: 1 minute.
	RetryRefused time.Duration
	// KeepAlive is how often a CRLF keep-alive goes to the registrar over TCP or TLS; a
	// failed one means the connection is lost and the bot registers again. Default: 30s.
	KeepAlive time.Duration
	// BindingCheck is how often, while registered, the bot checks that the registrar still
	// routes its address of record to it: an OPTIONS to its own identity through the
	// registrar, which the bot answers itself when the binding holds. A registrar that
	// restarted without its bindings (over UDP nothing else shows it) answers 404 or 480,
	// and one that is gone answers nothing: either way the bot registers again at once
	// instead of at its next refresh, and Registration() says so meanwhile. Default: 30s;
	// negative: no check.
	BindingCheck time.Duration
}

// Refusal is an error an Admit function returns to refuse a conversation with a given SIP
// status.
type Refusal struct {
	Code   int    // SIP status, 400 to 699
	Reason string // reason phrase; default from the status
}

// Error implements error.
func (r *Refusal) Error() string {
	return fmt.Sprintf("refused with %d %s", r.Code, r.Reason)
}

// listenAddr is one parsed Listen entry.
type listenAddr struct {
	network string // "udp" or "tcp"
	host    string
	port    int
}

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if len(cfg.Listen) == 0 {
		cfg.Listen = []string{"udp://127.0.0.1:5060", "tcp://127.0.0.1:5060"}
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "imbot"
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(d *int, v int) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.IdleTimeout, 10*time.Minute)
	def(&cfg.ConnectionIdleTimeout, cfg.IdleTimeout+time.Minute)
	def(&cfg.AckTimeout, 64*sip.T1)
	def(&cfg.MaxQueueDelay, 500*time.Millisecond)
	def(&cfg.RequestTimeout, 10*time.Second)
	def(&cfg.EventTimeout, 30*time.Second)
	def(&cfg.ShutdownTimeout, 10*time.Second)
	def(&cfg.Typing.RefreshMS, 4*time.Second)
	def(&cfg.Typing.Refresh, 30*time.Second)
	def(&cfg.Registration.Expires, time.Hour)
	def(&cfg.Registration.RetryMin, time.Second)
	def(&cfg.Registration.RetryMax, 5*time.Minute)
	def(&cfg.Registration.RetryRefused, time.Minute)
	def(&cfg.Registration.KeepAlive, 30*time.Second)
	if cfg.Registration.BindingCheck == 0 {
		cfg.Registration.BindingCheck = 30 * time.Second
	}
	defInt(&cfg.InboxSize, 64)
	defInt(&cfg.MaxWorkers, 256)
	defInt(&cfg.MaxSessions, 100000)
	defInt(&cfg.MaxPageConversations, 50000)
	defInt(&cfg.MaxQueued, 10000)
	defInt(&cfg.MaxMessageBytes, 16384)
	defInt(&cfg.MaxConnections, 1024)
	cfg.SourceLimit = cfg.SourceLimit.withDefaults()
	if cfg.Apology == "" {
		cfg.Apology = "Sorry, something went wrong on my side (ref %s)."
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	for _, s := range []string{cfg.Identity, cfg.DisplayName, cfg.Advertise, cfg.OutboundProxy, cfg.UserAgent,
		cfg.Registration.Registrar, cfg.Registration.Username} {
		if strings.ContainsAny(s, "\r\n") {
			return cfg, fmt.Errorf("bot config: %q contains a line break; remove it", s)
		}
	}
	return cfg, nil
}

// Validate checks a Config as New does, without opening anything: the listen addresses,
// TLS, the identity, the advertised address, the outbound proxy, the registrar and the
// trust model. It returns every problem found, joined. `imbot check` uses it, so that a
// config it accepts is one the bot starts with.
func (c Config) Validate() error {
	cfg, err := c.withDefaults()
	if err != nil {
		return err
	}
	var errs []error
	networks := map[string]bool{}
	var hosts []string
	for _, s := range cfg.Listen {
		la, err := parseListen(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("bot config: %w", err))
			continue
		}
		networks[la.network], hosts = true, append(hosts, la.host)
		if (la.network == "tls" || la.network == "wss") && cfg.TLS == nil {
			errs = append(errs, fmt.Errorf("listen on %s://%s: set Config.TLS (certificate and key)", la.network, la.host))
		}
	}
	if _, _, err := parseProxy(cfg.OutboundProxy); err != nil {
		errs = append(errs, fmt.Errorf("bot config: %w", err))
	}
	for _, o := range cfg.WebSocketOrigins {
		if err := origin.Valid(o); err != nil {
			errs = append(errs, fmt.Errorf("bot config: web socket %w", err))
		}
	}
	if _, err := newTrust(cfg.Trust, hosts); err != nil {
		errs = append(errs, fmt.Errorf("bot config: %w", err))
	}
	if cfg.Identity != "" {
		var u sip.Uri
		if err := sip.ParseUri(cfg.Identity, &u); err != nil {
			errs = append(errs, fmt.Errorf("bot config: identity %q is not a SIP URI: %w", cfg.Identity, err))
		}
	}
	if _, err := advertisedPort(cfg.Advertise); err != nil {
		errs = append(errs, err)
	}
	if r := cfg.Registration.Registrar; r != "" {
		if reg, err := parseRegistrar(r); err != nil {
			errs = append(errs, fmt.Errorf("bot config: %w", err))
		} else if !networks[reg.network] {
			errs = append(errs, fmt.Errorf("bot config: registrar %q uses %s but the bot does not listen on %s; add a %s:// listen address",
				r, reg.network, reg.network, reg.network))
		}
	}
	return errors.Join(errs...)
}

// advertisedPort returns the port of an Advertise value (0 when it names none).
func advertisedPort(adv string) (int, error) {
	if adv == "" {
		return 0, nil
	}
	_, p, err := net.SplitHostPort(adv)
	if err != nil {
		return 0, nil // a host alone
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return 0, fmt.Errorf("bot config: advertise %q: bad port", adv)
	}
	return port, nil
}

func parseListen(s string) (listenAddr, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return listenAddr{}, fmt.Errorf("listen address %q: want a URL such as udp://127.0.0.1:5060", s)
	}
	network := strings.ToLower(u.Scheme)
	switch network {
	case "udp", "tcp", "tls", "ws", "wss":
	default:
		return listenAddr{}, fmt.Errorf("listen address %q: transport %q is not supported (use udp, tcp, tls, ws or wss)", s, u.Scheme)
	}
	host, portStr, err := net.SplitHostPort(u.Host)
	if err != nil {
		host, portStr = u.Host, "5060"
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return listenAddr{}, fmt.Errorf("listen address %q: bad port %q", s, portStr)
	}
	if net.ParseIP(host) == nil {
		return listenAddr{}, fmt.Errorf("listen address %q: host must be an IP address", s)
	}
	return listenAddr{network: network, host: host, port: port}, nil
}

// parseProxy turns an OutboundProxy value into a destination host:port and transport.
func parseProxy(s string) (addr, transport string, err error) {
	if s == "" {
		return "", "", nil
	}
	if !strings.Contains(s, ":") || !strings.HasPrefix(strings.ToLower(s), "sip") {
		s = "sip:" + s
	}
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return "", "", fmt.Errorf("outbound proxy %q: %w", s, err)
	}
	port := u.Port
	if port == 0 {
		port = 5060
	}
	transport = "udp"
	if t, ok := u.UriParams.Get("transport"); ok && t != "" {
		transport = strings.ToLower(t)
	}
	return net.JoinHostPort(u.Host, strconv.Itoa(port)), transport, nil
}
