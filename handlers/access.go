package handlers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/imbot-dev/imbot/bot"
)

// AccessList decides which peers may talk to the bot, from allow and deny lists of
// addresses and domains. Each entry is one of:
//
//	sip:alice@example.com   one address (also written alice@example.com or with sips:)
//	example.com             every address of one domain (or one IP address)
//	*.example.com           every address of every subdomain of example.com (not
//	                        example.com itself: list both for both)
//	*                       everyone
//
// Hosts compare case-insensitively, users exactly (SIP user parts are case-sensitive); a port
// in an entry must match, an entry without one matches any port.
//
// A peer matched by a deny entry is refused, verified or not (bot.Peer.Verified). Otherwise,
// when allow is not empty, a peer must be Verified and match an allow entry: an unverified
// peer's address is only what its From header claims, so it is refused like anyone not on
// the list, even when the address it claims is listed ("*" admits every verified peer and
// no unverified one). Since an unverified sender can claim any address, the deny list alone
// does not keep it out: set the bot's trust model (bot.TrustConfig) to know who writes.
type AccessList struct {
	allow, deny []addrPattern
}

// NewAccessList compiles allow and deny lists; it fails on an entry it cannot read.
func NewAccessList(allow, deny []string) (*AccessList, error) {
	a := &AccessList{}
	for _, l := range []struct {
		name    string
		entries []string
		dst     *[]addrPattern
	}{{"allow", allow, &a.allow}, {"deny", deny, &a.deny}} {
		for _, e := range l.entries {
			p, err := parsePattern(e)
			if err != nil {
				return nil, fmt.Errorf("handlers: access %s list: %w", l.name, err)
			}
			*l.dst = append(*l.dst, p)
		}
	}
	return a, nil
}

// AccessConfig are the lists of an AccessList, as a configuration holds them.
type AccessConfig struct {
	Allow, Deny []string
}

// Validate reports every entry of the lists that NewAccessList cannot read, each as a
// *FieldError (Field "Allow" or "Deny"; joined with errors.Join).
func (c AccessConfig) Validate() error {
	var errs []error
	for _, l := range []struct {
		field   string
		entries []string
	}{{"Allow", c.Allow}, {"Deny", c.Deny}} {
		for _, e := range l.entries {
			if _, err := parsePattern(e); err != nil {
				errs = append(errs, &FieldError{Field: l.field, Err: err})
			}
		}
	}
	return errors.Join(errs...)
}

// Access returns middleware that drops every event of a peer the lists refuse (see
// AccessList: with an allow list, unverified peers are refused): the bot says nothing and
// ends the conversation. Prefer refusing at the door
// with AccessAdmit in bot.Config.Admit (the peer gets 403); this middleware is the backstop
// for conversations admitted before a change of the lists.
func Access(allow, deny []string) (bot.Middleware, error) {
	a, err := NewAccessList(allow, deny)
	if err != nil {
		return nil, err
	}
	return a.Middleware(), nil
}

// AccessAdmit returns a function for bot.Config.Admit that refuses new conversations of peers
// the lists refuse with 403 Forbidden (see AccessList: with an allow list, unverified peers
// are refused).
func AccessAdmit(allow, deny []string) (func(ctx context.Context, peer bot.Peer, mode bot.Mode) error, error) {
	a, err := NewAccessList(allow, deny)
	if err != nil {
		return nil, err
	}
	return a.Admit, nil
}

// Allowed reports whether peer may talk to the bot: not denied, and, when there is an allow
// list, Verified and on it.
func (a *AccessList) Allowed(peer bot.Peer) bool {
	u, err := parseAddr(peer.URI)
	if err != nil {
		return false
	}
	for _, p := range a.deny {
		if p.match(u) {
			return false
		}
	}
	if len(a.allow) == 0 {
		return true
	}
	if !peer.Verified {
		return false
	}
	for _, p := range a.allow {
		if p.match(u) {
			return true
		}
	}
	return false
}

// Admit implements bot.Config.Admit: it returns a *bot.Refusal with code 403 for a peer the
// lists refuse.
func (a *AccessList) Admit(_ context.Context, peer bot.Peer, _ bot.Mode) error {
	if a.Allowed(peer) {
		return nil
	}
	return &bot.Refusal{Code: 403, Reason: "Forbidden"}
}

// Middleware returns the middleware form of the list; see Access.
func (a *AccessList) Middleware() bot.Middleware {
	return func(next bot.Handler) bot.Handler {
		return bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
			c, ok := convOf(ev)
			if !ok || a.Allowed(c.Peer) {
				return next.Handle(ctx, w, ev)
			}
			bot.SetAnswerer(w, "access")
			if ev.Kind != bot.EventSessionEnd {
				w.End()
			}
			return nil
		})
	}
}

// sipAddr is the part of a SIP URI access control and handoff compare.
type sipAddr struct {
	user, host, port string
}

func (a sipAddr) String() string {
	s := a.host
	if a.port != "" {
		s = net.JoinHostPort(a.host, a.port)
	}
	if a.user != "" {
		s = a.user + "@" + s
	}
	return "sip:" + s
}

// parseAddr reads "sip:user@host:port;params", "sips:...", "<sip:...>", "user@host" or
// "host".
func parseAddr(s string) (sipAddr, error) {
	orig := s
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '<'); i >= 0 {
		s = s[i+1:]
		if j := strings.IndexByte(s, '>'); j >= 0 {
			s = s[:j]
		}
	}
	lower := strings.ToLower(s)
	switch {
	case strings.HasPrefix(lower, "sip:"):
		s = s[4:]
	case strings.HasPrefix(lower, "sips:"):
		s = s[5:]
	}
	if i := strings.IndexAny(s, ";?"); i >= 0 {
		s = s[:i]
	}
	var a sipAddr
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		a.user, s = s[:i], s[i+1:]
	}
	a.host = s
	if h, p, err := net.SplitHostPort(s); err == nil {
		a.host, a.port = h, p
	} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		a.host = s[1 : len(s)-1]
	}
	a.host = strings.ToLower(a.host)
	if a.host == "" || strings.ContainsAny(a.host, " \t/@") {
		return sipAddr{}, fmt.Errorf("%q is not a SIP address or domain", orig)
	}
	return a, nil
}

// addrPattern is one compiled access-list entry.
type addrPattern struct {
	any    bool
	suffix string // "*.example.com": ".example.com"
	addr   sipAddr
}

func parsePattern(s string) (addrPattern, error) {
	t := strings.TrimSpace(s)
	if t == "*" {
		return addrPattern{any: true}, nil
	}
	if rest, ok := strings.CutPrefix(t, "*."); ok {
		a, err := parseAddr(rest)
		if err != nil || a.user != "" || a.port != "" || strings.Contains(a.host, "*") {
			return addrPattern{}, fmt.Errorf("%q: a wildcard entry is a domain such as *.example.com", s)
		}
		return addrPattern{suffix: "." + a.host}, nil
	}
	a, err := parseAddr(t)
	if err != nil {
		return addrPattern{}, err
	}
	if strings.Contains(a.host, "*") || strings.Contains(a.user, "*") {
		return addrPattern{}, fmt.Errorf("%q: '*' is allowed only as '*' or at the start of a domain (*.example.com)", s)
	}
	return addrPattern{addr: a}, nil
}

func (p addrPattern) match(a sipAddr) bool {
	switch {
	case p.any:
		return true
	case p.suffix != "":
		return strings.HasSuffix(a.host, p.suffix)
	}
	return a.host == p.addr.host &&
		(p.addr.user == "" || p.addr.user == a.user) &&
		(p.addr.port == "" || p.addr.port == a.port)
}

// sameAddr reports whether two addresses name the same user: user and host equal, ports
// equal when both have one.
func sameAddr(a, b sipAddr) bool {
	return a.user == b.user && a.host == b.host && (a.port == "" || b.port == "" || a.port == b.port)
}
