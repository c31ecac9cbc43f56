package imcodec

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"strings"
	"testing"
)

func compress(t *testing.T, format string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w interface {
		Write([]byte) (int, error)
		Close() error
	}
	switch format {
	case "zlib":
		w = zlib.NewWriter(&buf)
	case "deflate":
		fw, err := flate.NewWriter(&buf, flate.BestCompression)
		if err != nil {
			t.Fatal(err)
		}
		w = fw
	case "gzip":
		w = gzip.NewWriter(&buf)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestInflate(t *testing.T) {
	imdn := DeliveryNotification("6c1e0b2f9a", testTime)
	big := []byte(strings.Repeat("A", 1<<16))
	zlibIMDN := compress(t, "zlib", imdn)
	tests := []struct {
		name    string
		in      []byte
		max     int
		want    []byte
		wantErr error
	}{
		{"zlib (linphone imdn)", zlibIMDN, 4096, imdn, nil},
		{"raw deflate", compress(t, "deflate", imdn), 4096, imdn, nil},
		{"gzip", compress(t, "gzip", imdn), 4096, imdn, nil},
		{"exactly at limit", compress(t, "zlib", big), len(big), big, nil},
		{"default limit", compress(t, "zlib", big), 0, big, nil},
		{"over limit", compress(t, "zlib", big), len(big) - 1, nil, ErrTooLarge},
		{"raw deflate over limit", compress(t, "deflate", big), 100, nil, ErrTooLarge},
		{"bomb over default limit", compress(t, "zlib", make([]byte, DefaultMaxInflate+1)), -1, nil, ErrTooLarge},
		{"truncated zlib", zlibIMDN[:len(zlibIMDN)/2], 4096, nil, ErrMalformed},
		{"bad checksum", append(append([]byte{}, zlibIMDN[:len(zlibIMDN)-1]...), zlibIMDN[len(zlibIMDN)-1]^0xff), 4096, nil, ErrMalformed},
		{"not compressed", []byte("<imdn/>"), 4096, nil, ErrMalformed},
		{"empty", nil, 4096, nil, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Inflate(tt.in, tt.max)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v should also match ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("Inflate = %q, want %q", got, tt.want)
			}
		})
	}
}
