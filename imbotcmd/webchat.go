package imbotcmd

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/handlers"
	"github.com/imbot-dev/imbot/internal/netguard"
	"github.com/imbot-dev/imbot/internal/origin"
	"github.com/imbot-dev/imbot/web"
)

// webSection is the config's web section: the chat widget for websites (package web).
type webSection struct {
	Listen          string        `yaml:"listen"`
	WebSocket       string        `yaml:"websocket"`
	Origins         []string      `yaml:"origins"`
	Name            string        `yaml:"name"`
	TokenTTL        time.Duration `yaml:"token_ttl"`
	SecretEnv       string        `yaml:"secret_env"`
	Domain          string        `yaml:"domain"`
	TokensPerMinute int           `yaml:"tokens_per_minute"`
	RateLimit       struct {
		Every time.Duration `yaml:"every"`
		Burst int           `yaml:"burst"`
	} `yaml:"ratelimit"`
}

// defaultSlowDown is what a visitor past web.ratelimit is told when ratelimit.reply says
// nothing (default.yaml's ratelimit.reply).
const defaultSlowDown = "You are writing faster than I can read; give me a moment."

// Defaults of web.ratelimit: each visitor's messages, whatever the general ratelimit says.
const (
	defaultVisitorEvery = time.Second
	defaultVisitorBurst = 10
)

// visitorLimit is the rate limit of web visitors' messages (web.ratelimit), on top of the
// general one: a visitor is anonymous and a page is easy to script. Nil when the web chat is
// off or the limit is turned off (every: -1s).
func (c *fileConfig) visitorLimit(reply string, relayed func(string) bool) bot.Middleware {
	if c.Web.Listen == "" || c.Web.RateLimit.Every < 0 {
		return nil
	}
	return handlers.RateLimitWith(handlers.RateLimitConfig{
		Every: cmp.Or(c.Web.RateLimit.Every, defaultVisitorEvery),
		Burst: cmp.Or(c.Web.RateLimit.Burst, defaultVisitorBurst),
		Reply: reply, Relayed: relayed,
		Exempt: func(p bot.Peer) bool { return !p.Guest },
	})
}

// webPrefix is where imbot run serves the widget's endpoints.
const webPrefix = "/imbot/"

// defaultTokenTTL is how long a visitor's token lasts; the widget renews it before then.
const defaultTokenTTL = 30 * time.Minute

// wsListen returns the first ws:// or wss:// listen address, "" when there is none.
func wsListen(listen []string) string {
	for _, l := range listen {
		if strings.HasPrefix(l, "ws://") || strings.HasPrefix(l, "wss://") {
			return l
		}
	}
	return ""
}

// validateWeb reports the web section's errors with bad.
func (c *fileConfig) validateWeb(bad func(key, format string, args ...any)) {
	w := c.Web
	if w.Listen == "" {
		return
	}
	if _, _, err := net.SplitHostPort(w.Listen); err != nil {
		bad("web.listen", "%q: want host:port, such as 127.0.0.1:8080", w.Listen)
	}
	if w.WebSocket == "" && wsListen(c.Listen) == "" {
		bad("web.websocket", "the widget speaks SIP over WebSocket: add a ws:// (or wss://) address to listen, such as ws://127.0.0.1:5066")
	}
	if w.WebSocket != "" {
		if u, err := url.Parse(w.WebSocket); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			bad("web.websocket", "%q: want the bot's WebSocket as browsers reach it, such as wss://chat.example.com:8443", w.WebSocket)
		}
	}
	for _, o := range w.Origins {
		if err := origin.Valid(o); err != nil {
			bad("web.origins", "%v", err)
		}
	}
	if w.TokenTTL != 0 && w.TokenTTL < time.Minute {
		bad("web.token_ttl", "%v: want a minute or more (default %v)", w.TokenTTL, defaultTokenTTL)
	}
	if w.TokensPerMinute < 0 {
		bad("web.tokens_per_minute", "%d: must be positive (or left out for the default)", w.TokensPerMinute)
	}
	if w.RateLimit.Burst < 0 {
		bad("web.ratelimit.burst", "%d: must be positive (or left out for the default)", w.RateLimit.Burst)
	}
	if _, err := w.key(); err != nil {
		bad("web.secret_env", "%v", err)
	}
}

// key returns the key that signs visitors' tokens: from the environment variable SecretEnv
// names (base64 of 32 bytes or more, or 32 characters or more), else a new one for this run.
func (w webSection) key() ([]byte, error) {
	if w.SecretEnv == "" {
		return web.NewKey(), nil
	}
	v, ok := os.LookupEnv(w.SecretEnv)
	if !ok {
		return nil, fmt.Errorf("the environment variable %s is not set; set it to a random secret (openssl rand -base64 32)", w.SecretEnv)
	}
	v = strings.TrimSpace(v)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(v); err == nil && len(k) >= 32 {
			return k, nil
		}
	}
	if len(v) >= 32 {
		return []byte(v), nil
	}
	return nil, fmt.Errorf("the secret in %s is too short: use 32 random bytes or more (openssl rand -base64 32)", w.SecretEnv)
}

// webGuests makes the visitors' identities of the web section; nil when it is off.
func (c *fileConfig) webGuests() (*web.Guests, error) {
	if c.Web.Listen == "" {
		return nil, nil
	}
	key, err := c.Web.key()
	if err != nil {
		return nil, fmt.Errorf("web.secret_env: %w", err)
	}
	g, err := web.NewGuests(key, c.Web.Domain, cmp.Or(c.Web.TokenTTL, defaultTokenTTL))
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	return g, nil
}

// webOrigins are the origins whose pages may open the bot's WebSocket: the web server's
// own (by the address it listens on, and localhost for a loopback one) and web.origins.
func webOrigins(ln net.Listener, extra []string) []string {
	addr := ln.Addr().(*net.TCPAddr)
	own := []string{"http://" + addr.String()}
	if addr.IP.IsLoopback() {
		own = append(own, fmt.Sprintf("http://localhost:%d", addr.Port))
	}
	return append(own, extra...)
}

// listenWeb opens the web section's listener, and has the bot accept its visitors:
// their tokens (Trust.Guests) and the origins of their pages (WebSocketOrigins).
func (c *fileConfig) listenWeb(cfg *bot.Config, log *slog.Logger) (net.Listener, error) {
	g, err := c.webGuests()
	if err != nil || g == nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", c.Web.Listen)
	if err != nil {
		return nil, fmt.Errorf("web.listen: %w", err)
	}
	cfg.Trust.Guests = g
	cfg.WebSocketOrigins = webOrigins(ln, c.Web.Origins)
	return netguard.NewListener(ln, httpMaxConnections, log), nil
}

// webServer is the HTTP server of the widget, for a bot b that accepts its visitors (see
// listenWeb): the widget's endpoints under /imbot/, and / sends a browser to the demo page.
func (c *fileConfig) webServer(b *bot.Bot, guests *web.Guests, log *slog.Logger) (*http.Server, error) {
	ws := c.Web.WebSocket
	if ws == "" {
		l := wsListen(c.Listen)
		scheme, _, _ := strings.Cut(l, "://")
		ws = scheme + "://" + b.Addr(scheme)
	}
	h, err := web.Handler(web.Options{
		Guests: guests, Bot: b.URI(), Name: cmp.Or(c.Web.Name, c.DisplayName, "Helpdesk"), WebSocket: ws,
		Origins: c.Web.Origins, TokensPerMinute: c.Web.TokensPerMinute, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(webPrefix, http.StripPrefix(strings.TrimSuffix(webPrefix, "/"), h))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, webPrefix+"demo", http.StatusFound)
	})
	mux.HandleFunc("/favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent) // browsers ask for it: nothing to show
	})
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
	}, nil
}
