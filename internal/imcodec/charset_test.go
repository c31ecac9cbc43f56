package imcodec

import (
	"errors"
	"testing"
	"unicode/utf8"
)

func TestDecodeCharset(t *testing.T) {
	tests := []struct {
		name    string
		charset string
		in      string
		want    string
		wantErr error
	}{
		{"empty label is utf-8", "", "héllo ✓", "héllo ✓", nil},
		{"utf-8", "UTF-8", "héllo", "héllo", nil},
		{"utf8 alias quoted", `"utf8"`, "héllo", "héllo", nil},
		{"utf-8 bom stripped", "utf-8", "\xEF\xBB\xBFhi", "hi", nil},
		{"bom stripped without label", "", "\xEF\xBB\xBFhi", "hi", nil},
		{"invalid utf-8 replaced per byte", "utf-8", "a\xffb\xc3", "a\uFFFDb\uFFFD", nil},
		{"latin1", "ISO-8859-1", "caf\xe9", "café", nil},
		{"latin1 alias", "latin1", "\xfcber", "über", nil},
		{"windows-1252 euro", "windows-1252", "\x80 5", "€ 5", nil},
		{"us-ascii", "US-ASCII", "plain", "plain", nil},
		{"us-ascii mislabelled utf-8", "us-ascii", "caf\xc3\xa9", "café", nil},
		{"us-ascii mislabelled latin1", "us-ascii", "caf\xe9", "café", nil},
		{"utf-16 BE bom", "utf-16", "\xfe\xff\x00h\x00\xe9", "hé", nil},
		{"utf-16 LE bom", "UTF-16", "\xff\xfeh\x00\xe9\x00", "hé", nil},
		{"utf-16 no bom guessed LE", "utf-16", "h\x00i\x00", "hi", nil},
		{"utf-16 no bom default BE", "utf-16", "\x00h\x00i", "hi", nil},
		{"utf-16 bom without label", "", "\xff\xfeh\x00i\x00", "hi", nil},
		{"utf-16le", "UTF-16LE", "h\x00i\x00", "hi", nil},
		{"utf-16be", "utf-16be", "\x00h\x00i", "hi", nil},
		{"utf-16le odd length", "utf-16le", "h\x00i", "h\uFFFD", nil},
		{"utf-16 lone surrogate", "utf-16be", "\xd8\x00\x00a", "\uFFFDa", nil},
		{"utf-32le", "utf-32le", "h\x00\x00\x00", "h", nil},
		{"shift_jis via htmlindex", "Shift_JIS", "\x82\xa0", "あ", nil},
		{"koi8-r via htmlindex", "koi8-r", "\xf0\xd2\xc9\xd7\xc5\xd4", "Привет", nil},
		{"gb2312 via htmlindex", "gb2312", "\xc4\xe3\xba\xc3", "你好", nil},
		{"unknown", "x-klingon", "abc", "", ErrUnsupportedType},
		{"nonsense", "utf-8; x", "abc", "", ErrUnsupportedType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeCharset(tt.charset, []byte(tt.in))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got != tt.want {
				t.Errorf("DecodeCharset(%q, %q) = %q, want %q", tt.charset, tt.in, got, tt.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("output is not valid UTF-8: %q", got)
			}
		})
	}
}
