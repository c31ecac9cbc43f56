package imcodec

import (
	"strings"
	"testing"
	"time"
)

func BenchmarkDecodeTextPlain(b *testing.B) {
	body := []byte("It is 12:31 UTC. " + strings.Repeat("Some more text to make it realistic. ", 10))
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := DecodeText("text/plain; charset=UTF-8;msgr=WAAtAE0ATQBT", body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeTextMultipart(b *testing.B) {
	body := []byte(crlf(ocsAlternative))
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := DecodeText("multipart/alternative; boundary=b1_9d1f", body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeTextHTML(b *testing.B) {
	body := []byte(`<span style="font-family:Segoe UI;color:#000000;">It is <b>12:31</b> UTC.<br>See <a href="https://example.com/?a=1&amp;b=2">this</a> &amp; that.</span>`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := DecodeText("text/html; charset=UTF-8", body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseKeyboardActivity(b *testing.B) {
	body := KeyboardActivity(true)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseKeyboardActivity(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIsComposing(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = IsComposing(true, 60*time.Second)
	}
}

func BenchmarkParseIsComposing(b *testing.B) {
	body := []byte(linphoneIsComposing)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseIsComposing(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSplit(b *testing.B) {
	text := strings.Repeat("The quick brown fox jumps over the lazy dog.\n", 200)
	b.ReportAllocs()
	for b.Loop() {
		_ = Split(text, 1000)
	}
}
