// Package web puts imbot on a website: a chat widget that any page adds with one script tag,
// and the HTTP endpoints it needs. The widget speaks SIP over WebSocket (RFC 7118) straight to
// the bot, in page mode, as an anonymous visitor with an address of its own; the visitor's
// token, from this package's token endpoint, vouches for that address (see Guests and
// bot.TrustConfig.Guests), so visitors cannot pose as each other or as anyone else.
//
// Handler serves, under the prefix it is mounted at (imbot run mounts it at /imbot/):
//
//	chat.js    the widget (JsSIP bundled; web/widget has its sources and build)
//	chat.css   its stylesheet
//	demo       a demo page with the widget, under a strict Content-Security-Policy
//	token      POST: a visitor's address and token (JSON), or a renewal of them
//
// A page of another site uses the widget when its origin is in Options.Origins (the token
// endpoint answers it with CORS headers, and the bot's Config.WebSocketOrigins lets its
// WebSocket in).
package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/imbot-dev/imbot/internal/origin"
)

// Options configures Handler.
type Options struct {
	// Guests issues the visitors' addresses and tokens. Required; give the same *Guests to
	// the bot (bot.TrustConfig.Guests).
	Guests *Guests
	// Bot is the bot's address, which the widget writes to, such as "sip:helpdesk@example.com".
	Bot string
	// Name is shown in the widget's header, such as "Contoso IT Helpdesk".
	Name string
	// WebSocket is where the widget connects: the bot's ws:// or wss:// listen address as
	// browsers reach it, such as "wss://chat.example.com:8443".
	WebSocket string
	// Origins lists the origins of the pages that may use the widget besides this server's
	// own, such as "https://www.example.com" ("*": any). Their token requests get CORS
	// headers; others get 403.
	Origins []string
	// Assets holds the widget: chat.js, chat.css and demo.html. Default: the widget built
	// into imbot (Assets).
	Assets fs.FS
	// TokensPerMinute bounds the tokens one client address (an IPv6 /64) gets: a page load
	// takes one, a renewal one. Default 20, with bursts of as many.
	TokensPerMinute int
	// Logger receives refused requests. Default slog.Default().
	Logger *slog.Logger
}

// maxTokenBody bounds a token request's body.
const maxTokenBody = 4 << 10

// handler is what Handler returns.
type handler struct {
	o      Options
	assets fs.FS
	csp    string
	limit  *clientLimit
	log    *slog.Logger
}

// Handler returns the widget's HTTP handler; see the package documentation.
func Handler(o Options) (http.Handler, error) {
	if o.Guests == nil {
		return nil, errors.New("web: Options.Guests is required")
	}
	if !strings.HasPrefix(o.Bot, "sip:") && !strings.HasPrefix(o.Bot, "sips:") {
		return nil, fmt.Errorf("web: the bot's address %q is not a SIP address such as sip:helpdesk@example.com", o.Bot)
	}
	ws, err := url.Parse(o.WebSocket)
	if err != nil || (ws.Scheme != "ws" && ws.Scheme != "wss") || ws.Host == "" {
		return nil, fmt.Errorf("web: WebSocket %q: want the bot's ws:// or wss:// address as browsers reach it, such as wss://chat.example.com:8443", o.WebSocket)
	}
	for _, o := range o.Origins {
		if err := origin.Valid(o); err != nil {
			return nil, fmt.Errorf("web: %w", err)
		}
	}
	assets := o.Assets
	if assets == nil {
		assets = Assets()
	}
	for _, name := range []string{"chat.js", "chat.css", "demo.html"} {
		if _, err := fs.Stat(assets, name); err != nil {
			return nil, fmt.Errorf("web: the widget's %s is missing: %w", name, err)
		}
	}
	if o.TokensPerMinute <= 0 {
		o.TokensPerMinute = 20
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	wsOrigin := ws.Scheme + "://" + ws.Host
	return &handler{
		o: o, assets: assets, log: log,
		limit: newClientLimit(float64(o.TokensPerMinute)/60, o.TokensPerMinute),
		csp: "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' " + wsOrigin +
			"; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	}, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	switch strings.TrimPrefix(r.URL.Path, "/") {
	case "chat.js":
		h.asset(w, r, "chat.js", "text/javascript; charset=utf-8")
	case "chat.css":
		h.asset(w, r, "chat.css", "text/css; charset=utf-8")
	case "LICENSES.txt":
		h.asset(w, r, "LICENSES.txt", "text/plain; charset=utf-8")
	case "demo", "demo.html":
		hdr.Set("Content-Security-Policy", h.csp)
		hdr.Set("X-Frame-Options", "DENY")
		h.asset(w, r, "demo.html", "text/html; charset=utf-8")
	case "token":
		h.token(w, r)
	default:
		http.NotFound(w, r)
	}
}

// asset serves one of the widget's files; other sites' pages load them too.
func (h *handler) asset(w http.ResponseWriter, r *http.Request, name, ctype string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	data, err := fs.ReadFile(h.assets, name)
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", ctype)
	hdr.Set("Cache-Control", "public, max-age=300")
	hdr.Set("Cross-Origin-Resource-Policy", "cross-origin")
	hdr.Set("Content-Length", strconv.Itoa(len(data)))
	if r.Method == http.MethodGet {
		_, _ = w.Write(data)
	}
}

// tokenRequest is a token request's body: a previous identity to renew, or nothing.
type tokenRequest struct {
	URI   string `json:"uri"`
	Token string `json:"token"`
}

// tokenResponse is what the widget needs to connect.
type tokenResponse struct {
	URI       string    `json:"uri"`
	Token     string    `json:"token"`
	WebSocket string    `json:"ws"`
	Bot       string    `json:"bot"`
	Name      string    `json:"name"`
	Expires   time.Time `json:"expires"`
}

func (h *handler) token(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	origin := r.Header.Get("Origin")
	if origin != "" {
		if !h.originAllowed(origin, r) {
			h.log.Info("web token refused to a page of another origin", "origin", origin, "remote", r.RemoteAddr)
			http.Error(w, "this site may not use the chat", http.StatusForbidden)
			return
		}
		hdr.Set("Access-Control-Allow-Origin", origin)
		hdr.Add("Vary", "Origin")
	}
	switch r.Method {
	case http.MethodOptions: // CORS preflight
		hdr.Set("Access-Control-Allow-Methods", "POST")
		hdr.Set("Access-Control-Allow-Headers", "Content-Type")
		hdr.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPost:
	default:
		hdr.Set("Allow", "POST, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if retry, ok := h.limit.take(clientAddr(r.RemoteAddr), time.Now()); !ok {
		hdr.Set("Retry-After", strconv.Itoa(retry))
		http.Error(w, "too many visitors from your address; try again in a minute", http.StatusTooManyRequests)
		return
	}
	var req tokenRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, maxTokenBody+1))
	if err != nil || len(body) > maxTokenBody {
		http.Error(w, "token request too large", http.StatusRequestEntityTooLarge)
		return
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, "the body must be JSON: {} or {\"uri\": ..., \"token\": ...}", http.StatusBadRequest)
			return
		}
	}
	var g Guest
	if req.URI != "" || req.Token != "" {
		g, err = h.o.Guests.Renew(req.URI, req.Token)
	}
	if g.URI == "" || err != nil {
		g = h.o.Guests.Issue() // a new visitor, or one whose token cannot be renewed
	}
	hdr.Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(tokenResponse{URI: g.URI, Token: g.Token, WebSocket: h.o.WebSocket,
		Bot: h.o.Bot, Name: h.o.Name, Expires: g.Expires.UTC()})
}

// originAllowed reports whether a page of origin o may ask for a token: this server's own
// pages, and those of Options.Origins.
func (h *handler) originAllowed(o string, r *http.Request) bool {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return origin.Listed([]string{scheme + "://" + r.Host}, o) || origin.Listed(h.o.Origins, o)
}

// clientAddr is the key of a client in the token limit: its IP address, an IPv6 one by its
// /64 (one host has a whole /64).
func clientAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// clientLimit is a token bucket per client address.
type clientLimit struct {
	rate  float64 // tokens a second
	burst float64
	mu    sync.Mutex
	m     map[netip.Addr]*bucket
	swept time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newClientLimit(rate float64, burst int) *clientLimit {
	return &clientLimit{rate: rate, burst: float64(burst), m: map[netip.Addr]*bucket{}}
}

// take takes a token for client a, or returns in how many seconds one is there.
func (l *clientLimit) take(a netip.Addr, now time.Time) (retry int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		// A full bucket is the same as none: forget those.
		for k, b := range l.m {
			if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst {
				delete(l.m, k)
			}
		}
		l.swept = now
	}
	b := l.m[a]
	if b == nil {
		b = &bucket{tokens: l.burst, at: now}
		l.m[a] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens < 1 {
		return int((1-b.tokens)/l.rate) + 1, false
	}
	b.tokens--
	return 0, true
}
