package imcodec

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// maxAcceptTypes bounds the accept-types collected from one offer.
const maxAcceptTypes = 64

// maxMedia bounds the m= lines of one offer: an answer repeats every one of them.
const maxMedia = 64

// maxFormats bounds the formats kept of one m= line.
const maxFormats = 32

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
	// Media are the offer's m= lines in order. An answer has one line for
	// each of them (RFC 3264 §6), see [AnswerOffer].
	Media []Media
}

// Media is one m= line of an SDP offer: "m=<Type> <Port> <Proto> <Formats>".
// Control characters are removed from the fields; a field the line lacks is
// empty.
type Media struct {
	// Type is the media type as written: "audio", "message", "x-ms-message"...
	Type string
	// Port is the port, 0 if absent or unparsable.
	Port int
	// Proto is the transport protocol as written: "RTP/AVP", "sip", "TCP/MSRP"...
	Proto string
	// Formats are the formats as written, at most 32 of them.
	Formats []string
}

// sipMessage reports whether m is a session-mode-over-SIP message stream.
func (m Media) sipMessage() bool {
	t := strings.ToLower(m.Type)
	return (t == "message" || t == "x-ms-message") && strings.EqualFold(m.Proto, "sip")
}

// ParseOffer parses an SDP offer leniently: lines may end in "\n" or "\r\n",
// and lines that are not "<letter>=<value>" are ignored. It returns
// ErrMalformed when the body contains neither a v= nor an m= line, and when
// it has more than 64 m= lines (too many to answer).
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
			if len(o.Media) == maxMedia {
				return Offer{}, fmt.Errorf("%w: sdp: more than %d m= lines", ErrMalformed, maxMedia)
			}
			m := parseMedia(val)
			o.Media = append(o.Media, m)
			section = kindOther
			media := strings.ToLower(m.Type)
			if m.Proto == "" || (media != "message" && media != "x-ms-message") {
				continue
			}
			proto := strings.ToLower(m.Proto)
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
			o.Port = m.Port
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

// parseMedia parses the value of an m= line.
func parseMedia(val string) Media {
	var f []string
	for _, field := range strings.Fields(val) {
		if field = sdpToken(field); field != "" {
			f = append(f, field)
		}
	}
	var m Media
	if len(f) > 0 {
		m.Type = f[0]
	}
	if len(f) > 1 {
		m.Port = parsePort(f[1])
	}
	if len(f) > 2 {
		m.Proto = f[2]
	}
	if len(f) > 3 {
		m.Formats = slices.Clone(f[3:min(len(f), 3+maxFormats)])
	}
	return m
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
//
// Answer has a single m= line, so it answers only an offer with a single
// message stream; it also serves as the offer of an INVITE the bot sends.
// [AnswerOffer] answers any offer.
func Answer(host string, port int, uri string, acceptTypes []string, ms bool) []byte {
	media := Media{Type: "message", Proto: "sip"}
	if ms {
		media.Type = "x-ms-message"
	}
	return answer(host, port, uri, acceptTypes, []Media{media}, 0)
}

// AnswerOffer builds the SDP answer to offer (RFC 3264 §6): it has one m= line
// for each of offer.Media, in the same order. The first sip message stream
// (the one offer.Message reports) is accepted: its line is the one [Answer]
// writes from port, uri and acceptTypes, under the offered media name
// ("message" or "x-ms-message"). Every other line, further message streams
// included, is rejected: it is written with port 0 and the offered media
// type, protocol and formats, a field missing from the offer as "-". An offer
// without a sip message stream gets an answer that rejects every line. The
// session part and the sanitising of host, port, uri and acceptTypes are those
// of [Answer].
func AnswerOffer(offer Offer, host string, port int, uri string, acceptTypes []string) []byte {
	return answer(host, port, uri, acceptTypes, offer.Media, slices.IndexFunc(offer.Media, Media.sipMessage))
}

// answer writes an SDP answer with one m= line for each of media: the line at
// index accept is the accepted sip message stream, the others are rejected.
func answer(host string, port int, uri string, acceptTypes []string, media []Media, accept int) []byte {
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
	for i, m := range media {
		if i == accept {
			fmt.Fprintf(&b, "m=%s %d sip %s\r\n", strings.ToLower(m.Type), port, uri)
			fmt.Fprintf(&b, "a=accept-types:%s\r\n", strings.Join(types, " "))
			continue
		}
		formats := make([]string, 0, len(m.Formats))
		for _, f := range m.Formats {
			if f = sdpToken(f); f != "" {
				formats = append(formats, f)
			}
		}
		fmt.Fprintf(&b, "m=%s 0 %s %s\r\n", orDash(sdpToken(m.Type)), orDash(sdpToken(m.Proto)), orDash(strings.Join(formats, " ")))
	}
	return []byte(b.String())
}

// orDash returns s, or "-" when s is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
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
