// Package origin checks web origins (RFC 6454) against the lists of them a bot is configured
// with: the pages that may open its WebSocket (bot.Config.WebSocketOrigins) and use its web
// chat (web.Options.Origins).
package origin

import (
	"fmt"
	"net/url"
	"strings"
)

// Valid checks one entry of such a list: "*", or scheme://host[:port] with scheme http or
// https and nothing after the host.
func Valid(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("origin %q: want scheme://host[:port] such as https://www.example.com, or *", o)
	}
	return nil
}

// Listed reports whether origin (an Origin header's value) is in list, or list holds "*".
// Origins compare without case and without a trailing slash.
func Listed(list []string, origin string) bool {
	o := normal(origin)
	for _, a := range list {
		if a == "*" || normal(a) == o {
			return true
		}
	}
	return false
}

func normal(o string) string { return strings.ToLower(strings.TrimRight(strings.TrimSpace(o), "/")) }
