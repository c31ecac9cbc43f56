package imcodec

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// crlf converts a LF-only literal to CRLF line ends.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// PROTOCOL.md §1.3: the offer of OC/Lync-class clients.
const ocsOffer = `v=0
o=- 0 0 IN IP4 192.0.2.10
s=session
c=IN IP4 192.0.2.10
t=0 0
m=message 5061 sip null
a=accept-types:text/plain text/html image/gif multipart/alternative application/im-iscomposing+xml application/ms-imdn+xml text/x-msmsgsinvite
`

// PROTOCOL.md §2.4: an MSRP offer.
const msrpOffer = `v=0
o=- 1 1 IN IP4 192.0.2.30
s=-
c=IN IP4 192.0.2.30
t=0 0
m=message 2855 TCP/MSRP *
a=accept-types:message/cpim text/plain application/im-iscomposing+xml
a=path:msrp://192.0.2.30:2855/s9dk3k2;tcp
a=setup:active
`

func TestParseOffer(t *testing.T) {
	ocsTypes := []string{"text/plain", "text/html", "image/gif", "multipart/alternative",
		"application/im-iscomposing+xml", "application/ms-imdn+xml", "text/x-msmsgsinvite"}
	tests := []struct {
		name    string
		body    string
		want    Offer
		wantErr bool
	}{
		{"ocs offer CRLF", crlf(ocsOffer), Offer{Message: true, AcceptTypes: ocsTypes, Port: 5061}, false},
		{"ocs offer LF", ocsOffer, Offer{Message: true, AcceptTypes: ocsTypes, Port: 5061}, false},
		{"lcs x-ms-message", "v=0\r\nm=x-ms-message 5060 sip null\r\na=accept-types:text/plain\r\n",
			Offer{Message: true, MSDialect: true, AcceptTypes: []string{"text/plain"}, Port: 5060}, false},
		{"proto case-insensitive", "v=0\nm=message 5061 SIP sip:alice@example.com\n",
			Offer{Message: true, Port: 5061}, false},
		{"msrp only", msrpOffer, Offer{MSRP: true, Port: 2855,
			AcceptTypes: []string{"message/cpim", "text/plain", "application/im-iscomposing+xml"}}, false},
		{"msrp then sip: sip section selected", msrpOffer + "m=message 5061 sip null\na=accept-types:text/plain\n",
			Offer{Message: true, MSRP: true, Port: 5061, AcceptTypes: []string{"text/plain"}}, false},
		{"audio only", "v=0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n", Offer{}, false},
		{"accept-types of audio ignored", "v=0\nm=audio 4000 RTP/AVP 0\na=accept-types:text/plain\nm=message 1 sip null\n",
			Offer{Message: true, Port: 1}, false},
		{"session-level accept-types ignored", "v=0\na=accept-types:text/html\nm=message 9 sip null\na=accept-types:text/plain\n",
			Offer{Message: true, Port: 9, AcceptTypes: []string{"text/plain"}}, false},
		{"several accept-types lines", "m=message 9 sip null\na=accept-types:text/plain\na=ACCEPT-TYPES: Text/HTML\n",
			Offer{Message: true, Port: 9, AcceptTypes: []string{"text/plain", "text/html"}}, false},
		{"junk lines", "hello\n\nv=0\nthis is junk\n=x\nm=message 5061/2 sip null\n\x00\x01\n",
			Offer{Message: true, Port: 5061}, false},
		{"bad port", "v=0\nm=message 99999 sip null\n", Offer{Message: true}, false},
		{"short m line", "v=0\nm=message 5061\n", Offer{}, false},
		{"empty", "", Offer{}, true},
		{"no v or m", "o=- 0 0 IN IP4 1.2.3.4\ns=x\n", Offer{}, true},
		{"not sdp", "<?xml version=\"1.0\"?><x/>", Offer{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOffer([]byte(tt.body))
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got.Message != tt.want.Message || got.MSDialect != tt.want.MSDialect || got.MSRP != tt.want.MSRP || got.Port != tt.want.Port {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if !slices.Equal(got.AcceptTypes, tt.want.AcceptTypes) {
				t.Errorf("AcceptTypes = %q, want %q", got.AcceptTypes, tt.want.AcceptTypes)
			}
		})
	}
}

func TestParseOfferBoundsAcceptTypes(t *testing.T) {
	body := "v=0\nm=message 1 sip null\na=accept-types:" + strings.Repeat("text/plain ", 1000) + "\n"
	o, err := ParseOffer([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(o.AcceptTypes) != maxAcceptTypes {
		t.Fatalf("len(AcceptTypes) = %d, want %d", len(o.AcceptTypes), maxAcceptTypes)
	}
}

func TestAnswer(t *testing.T) {
	tests := []struct {
		name  string
		host  string
		port  int
		uri   string
		types []string
		ms    bool
		want  string
	}{
		{"protocol example", "192.0.2.20", 5061, "sip:bot@example.com",
			[]string{"text/plain", "text/html", "multipart/alternative", "application/im-iscomposing+xml"}, false,
			crlf(`v=0
o=- 0 0 IN IP4 192.0.2.20
s=session
c=IN IP4 192.0.2.20
t=0 0
m=message 5061 sip sip:bot@example.com
a=accept-types:text/plain text/html multipart/alternative application/im-iscomposing+xml
`)},
		{"ms dialect ipv6 brackets", "[2001:db8::1]", 5060, "sip:bot@example.com", []string{"text/plain"}, true,
			crlf(`v=0
o=- 0 0 IN IP6 2001:db8::1
s=session
c=IN IP6 2001:db8::1
t=0 0
m=x-ms-message 5060 sip sip:bot@example.com
a=accept-types:text/plain
`)},
		{"hostname defaults", "bot.example.com", -1, "", nil, false,
			crlf(`v=0
o=- 0 0 IN IP4 bot.example.com
s=session
c=IN IP4 bot.example.com
t=0 0
m=message 0 sip null
a=accept-types:text/plain
`)},
		{"injection removed", "1.2.3.4\r\na=evil", 5060, "sip:bot@x\r\nm=audio 1 RTP/AVP 0", []string{"text/plain\r\na=x", " "}, false,
			crlf(`v=0
o=- 0 0 IN IP4 1.2.3.4a=evil
s=session
c=IN IP4 1.2.3.4a=evil
t=0 0
m=message 5060 sip sip:bot@xm=audio1RTP/AVP0
a=accept-types:text/plaina=x
`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(Answer(tt.host, tt.port, tt.uri, tt.types, tt.ms))
			if got != tt.want {
				t.Errorf("Answer =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestAnswerRoundTrip(t *testing.T) {
	for _, ms := range []bool{false, true} {
		types := []string{"text/plain", "application/im-iscomposing+xml"}
		o, err := ParseOffer(Answer("192.0.2.20", 5061, "sip:bot@example.com", types, ms))
		if err != nil {
			t.Fatal(err)
		}
		if !o.Message || o.MSDialect != ms || o.Port != 5061 || !slices.Equal(o.AcceptTypes, types) {
			t.Errorf("ms=%v: round trip = %+v", ms, o)
		}
	}
}

// audioMessageOffer offers audio and an IM stream, in that order.
const audioMessageOffer = `v=0
o=alice 1 1 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
m=audio 49170 RTP/AVP 0 8
a=rtpmap:0 PCMU/8000
m=message 5060 sip sip:alice@example.com
a=accept-types:text/plain
`

func TestParseOfferMedia(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []Media
	}{
		{"audio and message", audioMessageOffer, []Media{
			{Type: "audio", Port: 49170, Proto: "RTP/AVP", Formats: []string{"0", "8"}},
			{Type: "message", Port: 5060, Proto: "sip", Formats: []string{"sip:alice@example.com"}},
		}},
		{"no m line", "v=0\n", nil},
		{"short lines", "v=0\nm=\nm=message 5061\nm=video x RTP/AVP\n", []Media{
			{}, {Type: "message", Port: 5061}, {Type: "video", Proto: "RTP/AVP"},
		}},
		{"control characters removed", "m=au\x00dio 1 RTP/\x7fAVP \x01 0\x02\n", []Media{
			{Type: "audio", Port: 1, Proto: "RTP/AVP", Formats: []string{"0"}},
		}},
		{"formats bounded", "m=audio 1 RTP/AVP" + strings.Repeat(" 9", 100) + "\n", []Media{
			{Type: "audio", Port: 1, Proto: "RTP/AVP", Formats: slices.Repeat([]string{"9"}, maxFormats)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOffer([]byte(tt.body))
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !slices.EqualFunc(got.Media, tt.want, func(a, b Media) bool {
				return a.Type == b.Type && a.Port == b.Port && a.Proto == b.Proto && slices.Equal(a.Formats, b.Formats)
			}) {
				t.Errorf("Media = %#v, want %#v", got.Media, tt.want)
			}
		})
	}
}

func TestParseOfferBoundsMedia(t *testing.T) {
	line := "m=audio 1 RTP/AVP 0\n"
	if o, err := ParseOffer([]byte("v=0\n" + strings.Repeat(line, maxMedia))); err != nil || len(o.Media) != maxMedia {
		t.Fatalf("%d m= lines: %d parsed, err %v", maxMedia, len(o.Media), err)
	}
	if _, err := ParseOffer([]byte("v=0\n" + strings.Repeat(line, maxMedia+1))); !errors.Is(err, ErrMalformed) {
		t.Fatalf("%d m= lines: err = %v, want ErrMalformed", maxMedia+1, err)
	}
}

func TestAnswerOffer(t *testing.T) {
	const session = "v=0\no=- 0 0 IN IP4 192.0.2.20\ns=session\nc=IN IP4 192.0.2.20\nt=0 0\n"
	const accepted = "m=message 5061 sip sip:bot@example.com\na=accept-types:text/plain\n"
	tests := []struct {
		name  string
		offer string
		want  string // LF line ends
	}{
		{"single message stream", ocsOffer, session + accepted},
		{"audio then message", audioMessageOffer, session +
			"m=audio 0 RTP/AVP 0 8\n" + accepted},
		{"message then audio and video", "v=0\nm=message 9 sip null\nm=audio 4000 RTP/AVP 0\nm=video 4002 RTP/AVP 31 34\n", session +
			accepted + "m=audio 0 RTP/AVP 0\nm=video 0 RTP/AVP 31 34\n"},
		{"ms dialect beside audio", "v=0\nm=audio 4000 RTP/SAVP 0\nm=X-MS-Message 5060 SIP null\n", session +
			"m=audio 0 RTP/SAVP 0\nm=x-ms-message 5061 sip sip:bot@example.com\na=accept-types:text/plain\n"},
		{"several message streams: the first is accepted", "v=0\nm=message 1 sip null\nm=message 2 sip sip:alice@example.com\nm=x-ms-message 3 sip null\n", session +
			accepted + "m=message 0 sip sip:alice@example.com\nm=x-ms-message 0 sip null\n"},
		{"msrp before sip", msrpOffer + "m=message 5060 sip null\n", session +
			"m=message 0 TCP/MSRP *\n" + accepted},
		{"no message stream: all rejected", "v=0\nm=audio 4000 RTP/AVP 0 8\nm=message 2855 TCP/MSRP *\n", session +
			"m=audio 0 RTP/AVP 0 8\nm=message 0 TCP/MSRP *\n"},
		{"malformed lines", "v=0\nm=\nm=video 5\nm=message 7 sip\n", session +
			"m=- 0 - -\nm=video 0 - -\nm=message 5061 sip sip:bot@example.com\na=accept-types:text/plain\n"},
		{"no m line", "v=0\n", session},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseOffer([]byte(tt.offer))
			if err != nil {
				t.Fatal(err)
			}
			got := string(AnswerOffer(o, "192.0.2.20", 5061, "sip:bot@example.com", []string{"text/plain"}))
			if want := crlf(tt.want); got != want {
				t.Errorf("AnswerOffer =\n%q\nwant\n%q", got, want)
			}
		})
	}
}

func TestAnswerOfferMatchesAnswer(t *testing.T) {
	// For an offer with one message stream, AnswerOffer says what Answer says.
	for _, ms := range []bool{false, true} {
		types := []string{"text/plain", "application/im-iscomposing+xml"}
		o, err := ParseOffer(Answer("192.0.2.10", 5060, "null", nil, ms))
		if err != nil {
			t.Fatal(err)
		}
		got := AnswerOffer(o, "192.0.2.20", 5061, "sip:bot@example.com", types)
		if want := Answer("192.0.2.20", 5061, "sip:bot@example.com", types, ms); string(got) != string(want) {
			t.Errorf("ms=%v: AnswerOffer =\n%q\nAnswer =\n%q", ms, got, want)
		}
	}
}
