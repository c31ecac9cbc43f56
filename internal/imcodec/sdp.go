package imcodec

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
)

// maxAcceptTypes bounds the accept-types collected from one offer.
const maxAcceptTypes = 64

// Offer is what the bot needs to know about an IM INVITE's SDP.
type Offer struct {
	// Message is true when a usable session-mode-over-SIP stream exists: an
	// "m=message" or "m=x-ms-message" line whose proto is "sip".
	Message bool
	// MSDialect is true when that stream uses the LCS/OCS 2005
	// "m=x-ms-message" media name.
	MSDialect bool
	// MSRP is true when a message stream over MSRP (TCP/MSRP, TCP/TLS/MSRP)
	// is offered. Such a stream is not usable as a SIP message stream.
	MSRP bool
	// AcceptTypes are the a=accept-types values (lowercased) of the selected
	// message media section: the first sip one, else the first MSRP one.
	AcceptTypes []string
	// Port is the port of the selected media section (meaningless for
	// sip message streams, 0 if absent or unparsable).
	Port int
}

// ParseOffer parses an SDP offer leniently: lines may end in "\n" or "\r\n",
// and lines that are not "<letter>=<value>" are ignored. It returns
// ErrMalformed only when the body contains neither a v= nor an m= line.
func ParseOffer(body []byte) (Offer, error) {
	var (
		o        Offer
		sawSDP   bool
		section  = -1 // kind of the current media section, see below
		selected = -1 // kind of the section whose attributes are collected
		inSel    bool
	)
	const (
		kindOther = iota
		kindMSRP
		kindSIP
	)
	for line := range strings.Lines(string(body)) {
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 2 || line[1] != '=' {
			continue
		}
		key, val := line[0], line[2:]
		switch key {
		case 'v':
			sawSDP = true
		case 'm':
			sawSDP = true
			inSel = false
			f := strings.Fields(val)
			section = kindOther
			if len(f) < 3 {
				continue
			}
			media := strings.ToLower(f[0])
			if media != "message" && media != "x-ms-message" {
				continue
			}
			proto := strings.ToLower(f[2])
			switch {
			case proto == "sip":
				section = kindSIP
			case strings.Contains(proto, "msrp"):
				section = kindMSRP
				o.MSRP = true
			}
			if section == kindOther || section <= selected {
				continue
			}
			// A better section than the one selected so far: start over.
			selected, inSel = section, true
			o.AcceptTypes = nil
			o.Port = parsePort(f[1])
			if section == kindSIP {
				o.Message = true
				o.MSDialect = media == "x-ms-message"
			}
		case 'a':
			if !inSel {
				continue
			}
			name, v, ok := strings.Cut(val, ":")
			if !ok || !strings.EqualFold(strings.TrimSpace(name), "accept-types") {
				continue
			}
			for _, t := range strings.Fields(v) {
				if len(o.AcceptTypes) < maxAcceptTypes {
					o.AcceptTypes = append(o.AcceptTypes, strings.ToLower(t))
				}
			}
		}
	}
	if !sawSDP {
		return Offer{}, fmt.Errorf("%w: sdp: no v= or m= line", ErrMalformed)
	}
	return o, nil
}

// parsePort parses "5061" or "5061/2"; anything invalid yields 0.
func parsePort(s string) int {
	s, _, _ = strings.Cut(s, "/")
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 65535 {
		return 0
	}
	return n
}

// Answer builds the SDP answer for a session-mode IM INVITE:
//
//	v=0
//	o=- 0 0 IN IP4 <host>
//	s=session
//	c=IN IP4 <host>
//	t=0 0
//	m=message <port> sip <uri>
//	a=accept-types:<acceptTypes separated by spaces>
//
// with CRLF line ends. The address type is IP6 when host is an IPv6 literal
// (brackets are removed), else IP4 (also for host names). ms selects the
// "m=x-ms-message" media name. An empty uri is written as "null", an empty
// acceptTypes as "text/plain", and a port outside 0-65535 as 0. Whitespace and
// control characters are removed from host, uri and the types so that they
// cannot inject SDP lines. The session id and version are 0, so answering a
// re-INVITE with the same arguments yields the same SDP.
func Answer(host string, port int, uri string, acceptTypes []string, ms bool) []byte {
	host = sdpToken(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(host), "["), "]"))
	if host == "" {
		host = "0.0.0.0"
	}
	addrType := "IP4"
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
		addrType = "IP6"
	}
	if port < 0 || port > 65535 {
		port = 0
	}
	uri = sdpToken(uri)
	if uri == "" {
		uri = "null"
	}
	media := "message"
	if ms {
		media = "x-ms-message"
	}
	types := make([]string, 0, len(acceptTypes))
	for _, t := range acceptTypes {
		if t = sdpToken(t); t != "" {
			types = append(types, t)
		}
	}
	if len(types) == 0 {
		types = append(types, TypePlain)
	}
	var b strings.Builder
	b.WriteString("v=0\r\n")
	fmt.Fprintf(&b, "o=- 0 0 IN %s %s\r\n", addrType, host)
	b.WriteString("s=session\r\n")
	fmt.Fprintf(&b, "c=IN %s %s\r\n", addrType, host)
	b.WriteString("t=0 0\r\n")
	fmt.Fprintf(&b, "m=%s %d sip %s\r\n", media, port, uri)
	fmt.Fprintf(&b, "a=accept-types:%s\r\n", strings.Join(types, " "))
	return []byte(b.String())
}

// sdpToken removes whitespace and control characters.
func sdpToken(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}
