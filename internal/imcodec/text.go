package imcodec

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"mime/quotedprintable"
	"strings"
)

// Limits on multipart bodies.
const (
	// maxParts is the number of MIME parts read from one body, counting
	// nested ones.
	maxParts = 32
	// maxDepth is the deepest multipart nesting decoded (the outer multipart
	// is depth 1).
	maxDepth = 3
	// maxBoundary is the longest boundary accepted (RFC 2046 allows 70).
	maxBoundary = 200
)

// Text is the decoded text of a message body.
type Text struct {
	// Plain is the text to act on, always valid UTF-8 (invalid input bytes
	// are replaced with U+FFFD).
	Plain string
	// HTML is the original HTML, decoded to UTF-8, when Plain came from a
	// text/html body or part; otherwise "".
	HTML string
	// MediaType is the media type of the body or part used: TypePlain or
	// TypeHTML.
	MediaType string
}

// DecodeText decodes a message body of the given Content-Type into text.
//
//   - text/plain: the charset parameter is honoured (see [DecodeCharset]).
//     An empty Content-Type is treated as text/plain (the MIME default).
//   - text/html: decoded likewise, then reduced to text by [StripHTML]; the
//     decoded HTML is kept in Text.HTML.
//   - multipart/alternative: the first non-blank text/plain part is
//     preferred, else the first non-blank text/html part, else a blank one.
//     multipart/related and multipart/mixed yield their first text part.
//     Each part's Content-Type charset and Content-Transfer-Encoding (7bit,
//     8bit, binary, base64, quoted-printable) are honoured; parts without a
//     Content-Type are text/plain. Nested multiparts are followed up to
//     depth 3, and at most 32 parts are read in all.
//
// Any other media type, or an unknown charset, yields an error wrapping
// ErrUnsupportedType. A multipart body without a boundary or without a usable
// text part yields an error wrapping ErrMalformed. A UTF-8 byte order mark is
// removed.
func DecodeText(contentType string, body []byte) (Text, error) {
	mt, params := MediaType(contentType)
	if mt == "" {
		mt = TypePlain
	}
	budget := maxParts
	return decodeEntity(mt, params, body, 0, &budget)
}

// decodeEntity decodes a body (or part) of media type mt. depth is the
// multipart nesting of the entity (0 for a top-level body).
func decodeEntity(mt string, params map[string]string, body []byte, depth int, budget *int) (Text, error) {
	switch mt {
	case TypePlain:
		s, err := DecodeCharset(params["charset"], body)
		if err != nil {
			return Text{}, err
		}
		return Text{Plain: s, MediaType: TypePlain}, nil
	case TypeHTML:
		s, err := DecodeCharset(params["charset"], body)
		if err != nil {
			return Text{}, err
		}
		return Text{Plain: StripHTML(s), HTML: s, MediaType: TypeHTML}, nil
	case TypeMultipartAlt, "multipart/related", "multipart/mixed":
		if depth >= maxDepth {
			return Text{}, fmt.Errorf("%w: multipart nested deeper than %d", ErrMalformed, maxDepth)
		}
		return decodeMultipart(mt, params["boundary"], body, depth+1, budget)
	}
	return Text{}, fmt.Errorf("%w: %q", ErrUnsupportedType, mt)
}

// decodeMultipart picks the text of a multipart body; see DecodeText.
func decodeMultipart(mt, boundary string, body []byte, depth int, budget *int) (Text, error) {
	if boundary == "" {
		return Text{}, fmt.Errorf("%w: %s without boundary", ErrMalformed, mt)
	}
	if len(boundary) > maxBoundary {
		return Text{}, fmt.Errorf("%w: %s boundary longer than %d bytes", ErrMalformed, mt, maxBoundary)
	}
	alternative := mt == TypeMultipartAlt
	var (
		best     Text
		bestRank int // 0 none, 1 blank html, 2 blank plain, 3 html, 4 plain
		lastErr  error
	)
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for {
		if *budget <= 0 {
			lastErr = fmt.Errorf("more than %d parts", maxParts)
			break
		}
		p, err := mr.NextRawPart()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				lastErr = err
			}
			break
		}
		*budget--
		data, err := io.ReadAll(p)
		truncated := false
		if err != nil {
			// A missing closing boundary: use what was read, then stop.
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				lastErr = err
				break
			}
			truncated = true
		}
		t, err := decodePart(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), data, depth, budget)
		if err != nil {
			lastErr = err
		} else {
			rank := 3
			if t.MediaType == TypePlain {
				rank = 4
			}
			if strings.TrimSpace(t.Plain) == "" {
				rank -= 2
			}
			if !alternative || rank == 4 {
				return t, nil
			}
			if rank > bestRank {
				best, bestRank = t, rank
			}
		}
		if truncated {
			break
		}
	}
	if bestRank > 0 {
		return best, nil
	}
	if lastErr != nil {
		return Text{}, fmt.Errorf("%w: %s: no usable text part: %v", ErrMalformed, mt, lastErr)
	}
	return Text{}, fmt.Errorf("%w: %s: no usable text part", ErrMalformed, mt)
}

// decodePart decodes one MIME part.
func decodePart(contentType, cte string, data []byte, depth int, budget *int) (Text, error) {
	mt, params := MediaType(contentType)
	if mt == "" {
		mt = TypePlain
	}
	switch mt {
	case TypePlain, TypeHTML, TypeMultipartAlt, "multipart/related", "multipart/mixed":
	default:
		return Text{}, fmt.Errorf("%w: part %q", ErrUnsupportedType, mt)
	}
	raw, err := decodeTransfer(cte, data)
	if err != nil {
		return Text{}, err
	}
	return decodeEntity(mt, params, raw, depth, budget)
}

// decodeTransfer undoes a Content-Transfer-Encoding.
func decodeTransfer(cte string, data []byte) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "", "7bit", "8bit", "binary":
		return data, nil
	case "base64":
		return decodeBase64(data)
	case "quoted-printable":
		out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(data)))
		if err != nil {
			return nil, fmt.Errorf("%w: quoted-printable: %w", ErrMalformed, err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: content-transfer-encoding %q", ErrUnsupportedType, cte)
}

// decodeBase64 decodes base64 leniently: whitespace is ignored and padding is
// optional.
func decodeBase64(data []byte) ([]byte, error) {
	clean := make([]byte, 0, len(data))
	for _, c := range data {
		switch c {
		case ' ', '\t', '\r', '\n', '\f', '\v':
		default:
			clean = append(clean, c)
		}
	}
	clean = bytes.TrimRight(clean, "=")
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
	n, err := base64.RawStdEncoding.Decode(out, clean)
	if err != nil {
		return nil, fmt.Errorf("%w: base64: %w", ErrMalformed, err)
	}
	return out[:n], nil
}
