package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func testHandler(t *testing.T, o Options) (http.Handler, *Guests) {
	t.Helper()
	g, err := NewGuests(NewKey(), "", 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	o.Guests = g
	if o.Bot == "" {
		o.Bot = "sip:helpdesk@127.0.0.1"
	}
	if o.WebSocket == "" {
		o.WebSocket = "ws://127.0.0.1:5066"
	}
	o.Assets = fstest.MapFS{
		"chat.js":   {Data: []byte("window.ImbotChat={};")},
		"chat.css":  {Data: []byte(".imbot-x{}")},
		"demo.html": {Data: []byte("<!doctype html><script src=chat.js></script>")},
	}
	h, err := Handler(o)
	if err != nil {
		t.Fatal(err)
	}
	return h, g
}

func do(h http.Handler, method, path, origin, remote, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "http://chat.example.com"+path, strings.NewReader(body))
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if remote != "" {
		req.RemoteAddr = remote
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHandlerAssets(t *testing.T) {
	h, _ := testHandler(t, Options{})
	for _, c := range []struct {
		path, ctype string
		csp         bool
	}{
		{"/chat.js", "text/javascript; charset=utf-8", false},
		{"/chat.css", "text/css; charset=utf-8", false},
		{"/demo", "text/html; charset=utf-8", true},
	} {
		rec := do(h, http.MethodGet, c.path, "", "", "")
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != c.ctype {
			t.Errorf("GET %s: %d %q", c.path, rec.Code, rec.Header().Get("Content-Type"))
		}
		if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", c.path)
		}
		csp := rec.Header().Get("Content-Security-Policy")
		if c.csp != (csp != "") {
			t.Errorf("GET %s: CSP %q", c.path, csp)
		}
		if c.csp {
			for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self' ws://127.0.0.1:5066", "frame-ancestors 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			if strings.Contains(csp, "unsafe") {
				t.Errorf("CSP %q allows unsafe sources", csp)
			}
		}
	}
	if rec := do(h, http.MethodGet, "/other", "", "", ""); rec.Code != http.StatusNotFound {
		t.Errorf("GET /other: %d", rec.Code)
	}
	if rec := do(h, http.MethodPost, "/chat.js", "", "", ""); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /chat.js: %d", rec.Code)
	}
}

func TestHandlerToken(t *testing.T) {
	h, g := testHandler(t, Options{Origins: []string{"https://www.example.com"}, Name: "Helpdesk"})
	var first tokenResponse
	rec := do(h, http.MethodPost, "/token", "https://www.example.com", "192.0.2.1:5000", "{}")
	if rec.Code != http.StatusOK {
		t.Fatalf("token: %d %s", rec.Code, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &first); err != nil {
		t.Fatal(err)
	}
	if g.VerifyGuest(first.URI, first.Token) != nil || first.WebSocket != "ws://127.0.0.1:5066" ||
		first.Bot != "sip:helpdesk@127.0.0.1" || first.Name != "Helpdesk" {
		t.Errorf("token answer %+v", first)
	}
	if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "https://www.example.com" {
		t.Errorf("Access-Control-Allow-Origin %q", got)
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("a token answer may be cached: %q", rec.Header().Get("Cache-Control"))
	}

	// Renewal keeps the address; a forged renewal gets a new one.
	body, _ := json.Marshal(tokenRequest{URI: first.URI, Token: first.Token})
	var renewed tokenResponse
	rec = do(h, http.MethodPost, "/token", "https://www.example.com", "192.0.2.1:5000", string(body))
	_ = json.Unmarshal(rec.Body.Bytes(), &renewed)
	if renewed.URI != first.URI {
		t.Errorf("renewal gave %q, want %q", renewed.URI, first.URI)
	}
	body, _ = json.Marshal(tokenRequest{URI: first.URI, Token: "v1.guest-x.1.AAAA"})
	var forged tokenResponse
	rec = do(h, http.MethodPost, "/token", "", "192.0.2.1:5000", string(body))
	_ = json.Unmarshal(rec.Body.Bytes(), &forged)
	if forged.URI == first.URI || forged.URI == "" {
		t.Errorf("a forged renewal got %q", forged.URI)
	}

	// Same origin, a preflight, another origin, bad bodies.
	if rec := do(h, http.MethodPost, "/token", "http://chat.example.com", "192.0.2.2:5000", ""); rec.Code != http.StatusOK {
		t.Errorf("same origin: %d", rec.Code)
	}
	if rec := do(h, http.MethodOptions, "/token", "https://www.example.com", "192.0.2.2:5000", ""); rec.Code != http.StatusNoContent ||
		rec.Header().Get("Access-Control-Allow-Methods") != "POST" {
		t.Errorf("preflight: %d %v", rec.Code, rec.Header())
	}
	if rec := do(h, http.MethodPost, "/token", "https://evil.example", "192.0.2.2:5000", "{}"); rec.Code != http.StatusForbidden ||
		rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("another origin: %d %v", rec.Code, rec.Header())
	}
	if rec := do(h, http.MethodPost, "/token", "", "192.0.2.2:5000", "not json"); rec.Code != http.StatusBadRequest {
		t.Errorf("not JSON: %d", rec.Code)
	}
	if rec := do(h, http.MethodPost, "/token", "", "192.0.2.2:5000", strings.Repeat("x", maxTokenBody+1)); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("too large: %d", rec.Code)
	}
	if rec := do(h, http.MethodGet, "/token", "", "192.0.2.2:5000", ""); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET /token: %d", rec.Code)
	}
}

func TestHandlerTokenLimit(t *testing.T) {
	h, _ := testHandler(t, Options{TokensPerMinute: 3})
	for i := range 3 {
		if rec := do(h, http.MethodPost, "/token", "", "[2001:db8::1]:5000", ""); rec.Code != http.StatusOK {
			t.Fatalf("token %d: %d", i+1, rec.Code)
		}
	}
	// Another address of the same /64 shares the bucket; another /64 does not.
	rec := do(h, http.MethodPost, "/token", "", "[2001:db8::2]:5000", "")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Errorf("fourth token from the /64: %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	if rec := do(h, http.MethodPost, "/token", "", "[2001:db8:0:1::1]:5000", ""); rec.Code != http.StatusOK {
		t.Errorf("another /64: %d", rec.Code)
	}
}

// TestEmbeddedAssets: the widget built into imbot is served.
func TestEmbeddedAssets(t *testing.T) {
	g, _ := NewGuests(NewKey(), "", time.Hour)
	h, err := Handler(Options{Guests: g, Bot: "sip:helpdesk@127.0.0.1", WebSocket: "ws://127.0.0.1:5066"})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"/chat.js": "ImbotChat", "/chat.css": ".imbot-", "/demo": "chat.js", "/LICENSES.txt": "MIT"} {
		rec := do(h, http.MethodGet, path, "", "", "")
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("GET %s: %d, body without %q", path, rec.Code, want)
		}
	}
}

func TestHandlerOptions(t *testing.T) {
	g, _ := NewGuests(NewKey(), "", time.Hour)
	assets := fstest.MapFS{"chat.js": {}, "chat.css": {}, "demo.html": {}}
	for _, c := range []struct {
		name string
		o    Options
	}{
		{"no guests", Options{Bot: "sip:a@b", WebSocket: "ws://h:1", Assets: assets}},
		{"bad bot", Options{Guests: g, Bot: "a@b", WebSocket: "ws://h:1", Assets: assets}},
		{"bad websocket", Options{Guests: g, Bot: "sip:a@b", WebSocket: "http://h:1", Assets: assets}},
		{"bad origin", Options{Guests: g, Bot: "sip:a@b", WebSocket: "ws://h:1", Assets: assets, Origins: []string{"www.example.com"}}},
		{"assets without the demo", Options{Guests: g, Bot: "sip:a@b", WebSocket: "ws://h:1", Assets: fstest.MapFS{"chat.js": {}, "chat.css": {}}}},
	} {
		if _, err := Handler(c.o); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}
