package imcodec

import "strings"

// MSBody extracts the first message of an OCS/Lync conversation from the
// value of an INVITE's ms-text-format header, e.g.
//
//	text/plain; charset=UTF-8;msgr=WAAtAE0ATQBT...;ms-body=SGksIGFyZSB5b3UgdGhlcmU/
//
// The ms-body parameter is base64 (padding optional) of the message bytes in
// the header's charset (UTF-8 if absent). ok is false when ms-body is absent,
// empty, not base64, in an unknown charset, or decodes to nothing. For
// text/html the tags are stripped.
func MSBody(msTextFormat string) (text string, ok bool) {
	mt, params := MediaType(msTextFormat)
	enc := strings.TrimSpace(params["ms-body"])
	if enc == "" {
		return "", false
	}
	raw, err := decodeBase64([]byte(enc))
	if err != nil {
		return "", false
	}
	s, err := DecodeCharset(params["charset"], raw)
	if err != nil {
		return "", false
	}
	if mt == TypeHTML {
		s = StripHTML(s)
	}
	if s == "" {
		return "", false
	}
	return s, true
}
