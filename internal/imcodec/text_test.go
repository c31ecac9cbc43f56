package imcodec

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// ocsAlternative is a multipart/alternative body as sent by OCS/Lync clients
// that render MIME alternatives (PROTOCOL.md §1.4).
const ocsAlternative = `--b1_9d1f
Content-Type: text/plain; charset=UTF-8

It is 12:31 UTC.
--b1_9d1f
Content-Type: text/html; charset=UTF-8

<span style="font-family:Segoe UI;">It is <b>12:31</b> UTC.</span>
--b1_9d1f--
`

// mkMultipart builds a multipart body with boundary "B" from raw parts (each a
// header block, blank line and content).
func mkMultipart(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString("--B\r\n" + p + "\r\n")
	}
	b.WriteString("--B--\r\n")
	return b.String()
}

func TestDecodeText(t *testing.T) {
	htmlOnly := mkMultipart("Content-Type: text/html\r\n\r\n<p>only <i>html</i></p>")
	tests := []struct {
		name    string
		ct      string
		body    string
		want    Text
		wantErr error
	}{
		{"page mode plain (§2.1)", "text/plain;charset=UTF-8", "hello, bot!", Text{Plain: "hello, bot!", MediaType: TypePlain}, nil},
		{"ocs plain with msgr (§1.4)", "text/plain; charset=UTF-8;msgr=WAAtAE0ATQBTAC0ASQBNAC0ARgBvAHIAbQBhAHQAOgAg", "It is 12:31 UTC.",
			Text{Plain: "It is 12:31 UTC.", MediaType: TypePlain}, nil},
		{"baresip plain without charset", "text/plain", "hi", Text{Plain: "hi", MediaType: TypePlain}, nil},
		{"empty content type is plain", "", "hi", Text{Plain: "hi", MediaType: TypePlain}, nil},
		{"latin1", "text/plain; charset=ISO-8859-1", "caf\xe9", Text{Plain: "café", MediaType: TypePlain}, nil},
		{"utf-8 bom", "text/plain", "\xEF\xBB\xBFhi", Text{Plain: "hi", MediaType: TypePlain}, nil},
		{"invalid utf-8", "text/plain", "a\xffb", Text{Plain: "a\uFFFDb", MediaType: TypePlain}, nil},
		{"plain kept verbatim", "text/plain", "  two\r\nlines  ", Text{Plain: "  two\r\nlines  ", MediaType: TypePlain}, nil},
		{"html", "text/html; charset=utf-8", "<b>Hi</b> &amp; bye<br>next",
			Text{Plain: "Hi & bye\nnext", HTML: "<b>Hi</b> &amp; bye<br>next", MediaType: TypeHTML}, nil},
		{"html windows-1252", "text/html;charset=windows-1252", "<p>\x80</p>", Text{Plain: "€", HTML: "<p>€</p>", MediaType: TypeHTML}, nil},
		{"ocs alternative prefers plain", "multipart/alternative; boundary=b1_9d1f", ocsAlternative,
			Text{Plain: "It is 12:31 UTC.", MediaType: TypePlain}, nil},
		{"ocs alternative CRLF", "multipart/alternative;boundary=\"b1_9d1f\"", crlf(ocsAlternative),
			Text{Plain: "It is 12:31 UTC.", MediaType: TypePlain}, nil},
		{"plain after html still preferred", "multipart/alternative; boundary=B",
			mkMultipart("Content-Type: text/html\r\n\r\n<b>rich</b>", "Content-Type: text/plain\r\n\r\nplain"),
			Text{Plain: "plain", MediaType: TypePlain}, nil},
		{"html only", "multipart/alternative; boundary=B", htmlOnly,
			Text{Plain: "only html", HTML: "<p>only <i>html</i></p>", MediaType: TypeHTML}, nil},
		{"blank plain loses to html", "multipart/alternative; boundary=B",
			mkMultipart("Content-Type: text/plain\r\n\r\n  ", "Content-Type: text/html\r\n\r\n<b>x</b>"),
			Text{Plain: "x", HTML: "<b>x</b>", MediaType: TypeHTML}, nil},
		{"blank plain when nothing else", "multipart/alternative; boundary=B",
			mkMultipart("Content-Type: text/plain\r\n\r\n "), Text{Plain: " ", MediaType: TypePlain}, nil},
		{"part without content type is plain", "multipart/alternative; boundary=B",
			mkMultipart("\r\ndefault"), Text{Plain: "default", MediaType: TypePlain}, nil},
		{"part charset", "multipart/alternative; boundary=B",
			mkMultipart("Content-Type: text/plain; charset=iso-8859-1\r\n\r\n\xfcber"), Text{Plain: "über", MediaType: TypePlain}, nil},
		{"base64 part", "multipart/alternative; boundary=B",
			mkMultipart("Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\nSGksIGFyZSB5\r\nb3UgdGhlcmU/"),
			Text{Plain: "Hi, are you there?", MediaType: TypePlain}, nil},
		{"base64 part without padding", "multipart/alternative; boundary=B",
			mkMultipart("Content-Transfer-Encoding: BASE64\r\n\r\nSGk"), Text{Plain: "Hi", MediaType: TypePlain}, nil},
		{"quoted-printable part", "multipart/alternative; boundary=B",
			mkMultipart("Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 =\r\nau lait"),
			Text{Plain: "café au lait", MediaType: TypePlain}, nil},
		{"8bit part", "multipart/alternative; boundary=B",
			mkMultipart("Content-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\n✓"), Text{Plain: "✓", MediaType: TypePlain}, nil},
		{"bad base64 part skipped", "multipart/alternative; boundary=B",
			mkMultipart("Content-Transfer-Encoding: base64\r\n\r\n!!!", "Content-Type: text/html\r\n\r\nok"),
			Text{Plain: "ok", HTML: "ok", MediaType: TypeHTML}, nil},
		{"unknown part charset skipped", "multipart/alternative; boundary=B",
			mkMultipart("Content-Type: text/plain; charset=x-nope\r\n\r\nzz", "Content-Type: text/html\r\n\r\nok"),
			Text{Plain: "ok", HTML: "ok", MediaType: TypeHTML}, nil},
		{"unknown cte skipped", "multipart/alternative; boundary=B",
			mkMultipart("Content-Transfer-Encoding: x-uuencode\r\n\r\nzz", "Content-Type: text/html\r\n\r\nok"),
			Text{Plain: "ok", HTML: "ok", MediaType: TypeHTML}, nil},
		{"image part skipped", "multipart/mixed; boundary=B",
			mkMultipart("Content-Type: image/gif\r\n\r\nGIF89a", "Content-Type: text/plain\r\n\r\ncaption"),
			Text{Plain: "caption", MediaType: TypePlain}, nil},
		{"mixed takes first text part", "multipart/mixed; boundary=B",
			mkMultipart("Content-Type: text/html\r\n\r\n<i>first</i>", "Content-Type: text/plain\r\n\r\nsecond"),
			Text{Plain: "first", HTML: "<i>first</i>", MediaType: TypeHTML}, nil},
		{"related", "multipart/related; boundary=B; type=\"text/html\"",
			mkMultipart("Content-Type: text/html\r\n\r\n<img src=cid:x>see", "Content-Type: image/png\r\n\r\nPNG"),
			Text{Plain: "see", HTML: "<img src=cid:x>see", MediaType: TypeHTML}, nil},
		{"nested alternative in mixed", "multipart/mixed; boundary=B",
			mkMultipart("Content-Type: multipart/alternative; boundary=C\r\n\r\n--C\r\nContent-Type: text/html\r\n\r\n<b>n</b>\r\n--C\r\nContent-Type: text/plain\r\n\r\nnested\r\n--C--"),
			Text{Plain: "nested", MediaType: TypePlain}, nil},
		{"LF only multipart", "multipart/alternative; boundary=B",
			"--B\nContent-Type: text/plain\n\nlf\n--B--\n", Text{Plain: "lf", MediaType: TypePlain}, nil},
		{"preamble and epilogue", "multipart/alternative; boundary=B",
			"This is a multi-part message.\r\n" + mkMultipart("Content-Type: text/plain\r\n\r\nbody") + "epilogue",
			Text{Plain: "body", MediaType: TypePlain}, nil},
		{"missing closing boundary", "multipart/alternative; boundary=B",
			"--B\r\nContent-Type: text/plain\r\n\r\ntruncated", Text{Plain: "truncated", MediaType: TypePlain}, nil},
		{"multipart without boundary", "multipart/alternative", ocsAlternative, Text{}, ErrMalformed},
		{"boundary not found", "multipart/alternative; boundary=zzz", ocsAlternative, Text{}, ErrMalformed},
		{"no text part", "multipart/mixed; boundary=B", mkMultipart("Content-Type: image/gif\r\n\r\nGIF89a"), Text{}, ErrMalformed},
		{"empty multipart", "multipart/alternative; boundary=B", "", Text{}, ErrMalformed},
		{"huge boundary", "multipart/alternative; boundary=" + strings.Repeat("x", 300), "", Text{}, ErrMalformed},
		{"unknown charset", "text/plain; charset=x-klingon", "abc", Text{}, ErrUnsupportedType},
		{"rtf", "text/rtf", "{\\rtf1 hi}", Text{}, ErrUnsupportedType},
		{"file transfer invite", "text/x-msmsgsinvite; charset=UTF-8", "Application-Name: File Transfer", Text{}, ErrUnsupportedType},
		{"iscomposing is not text", TypeIsComposing, "<isComposing/>", Text{}, ErrUnsupportedType},
		{"image", "image/gif", "GIF89a", Text{}, ErrUnsupportedType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeText(tt.ct, []byte(tt.body))
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
				t.Errorf("DecodeText = %+q, want %+q", got, tt.want)
			}
		})
	}
}

// nest wraps inner (a multipart/alternative body with boundary b<depth>) in
// depth levels of multipart/mixed.
func nest(depth int, leaf string) (contentType, body string) {
	ct := "text/plain"
	body = leaf
	for i := range depth {
		b := fmt.Sprintf("b%d", i)
		body = "--" + b + "\r\nContent-Type: " + ct + "\r\n\r\n" + body + "\r\n--" + b + "--"
		ct = "multipart/mixed; boundary=" + b
	}
	return ct, body
}

func TestDecodeTextDepthLimit(t *testing.T) {
	for depth := 1; depth <= 5; depth++ {
		t.Run(fmt.Sprintf("depth%d", depth), func(t *testing.T) {
			ct, body := nest(depth, "deep")
			got, err := DecodeText(ct, []byte(body))
			if depth <= maxDepth {
				if err != nil || got.Plain != "deep" {
					t.Fatalf("got %+v, %v; want deep", got, err)
				}
				return
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed beyond depth %d", err, maxDepth)
			}
		})
	}
}

func TestDecodeTextPartLimit(t *testing.T) {
	build := func(images int) string {
		parts := make([]string, 0, images+1)
		for range images {
			parts = append(parts, "Content-Type: image/gif\r\n\r\nx")
		}
		return mkMultipart(append(parts, "Content-Type: text/plain\r\n\r\nfound")...)
	}
	tests := []struct {
		name    string
		images  int
		wantErr bool
	}{
		{"text is part 32", maxParts - 1, false},
		{"text is part 33", maxParts, true},
		{"thousands of parts", 5000, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeText("multipart/mixed; boundary=B", []byte(build(tt.images)))
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil || got.Plain != "found" {
				t.Fatalf("got %+v, %v", got, err)
			}
		})
	}
}
