package imcodec

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxInflate is the output limit Inflate uses when maxOut <= 0.
const DefaultMaxInflate = 1 << 20

// Inflate decodes a body sent with Content-Encoding: deflate. It accepts a
// zlib stream (RFC 1950, what Linphone sends), a raw deflate stream (RFC 1951)
// and, for robustness, a gzip stream. Output larger than maxOut bytes
// (DefaultMaxInflate if maxOut <= 0) yields an error wrapping both
// ErrTooLarge and ErrMalformed; corrupt input yields an error wrapping
// ErrMalformed.
func Inflate(b []byte, maxOut int) ([]byte, error) {
	if maxOut <= 0 {
		maxOut = DefaultMaxInflate
	}
	if len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %w", ErrMalformed, err)
		}
		return readLimited(zr, maxOut, "gzip")
	}
	zr, zerr := zlib.NewReader(bytes.NewReader(b))
	if zerr == nil {
		out, err := readLimited(zr, maxOut, "zlib")
		if err == nil {
			return out, nil
		}
		if errors.Is(err, ErrTooLarge) {
			return nil, err
		}
		zerr = err
	}
	// Not a valid zlib stream: try raw deflate.
	out, err := readLimited(flate.NewReader(bytes.NewReader(b)), maxOut, "deflate")
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: neither zlib (%v) nor raw deflate (%v)", ErrMalformed, zerr, err)
	}
	return out, nil
}

// readLimited reads r to the end, failing once more than max bytes come out.
func readLimited(r io.ReadCloser, max int, format string) ([]byte, error) {
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", format, err)
	}
	if len(out) > max {
		return nil, tooLargeError{limit: max}
	}
	return out, nil
}
