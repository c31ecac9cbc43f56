package imcodec

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestStripHTML(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"plain text", "hello", "hello"},
		{"lync span", `<span style="font-family:Segoe UI;color:#000000;">It is <b>12:31</b> UTC.</span>`, "It is 12:31 UTC."},
		{"br variants", "a<br>b<BR/>c<br />d", "a\nb\nc\nd"},
		{"paragraphs", "<p>one</p><p>two</p>", "one\ntwo"},
		{"divs with source newlines", "<div>a</div>\n   <div>b</div>\n", "a\nb"},
		{"text before block", "intro<div>more</div>after", "intro\nmore\nafter"},
		{"list", "<ul><li>x</li><li>y</li></ul>", "x\ny"},
		{"table rows and cells", "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc"},
		{"blank lines collapsed", "a<br><br><br><br>b", "a\n\nb"},
		{"whitespace collapsed", "  a \t\r\n  b  ", "a b"},
		{"entities", "Tom &amp; Jerry &lt;3 &quot;x&quot; &#233;&#x263A; &eacute;", `Tom & Jerry <3 "x" é☺ é`},
		{"nbsp becomes space", "a&nbsp;&nbsp;b", "a b"},
		{"escaped tag stays text", "&lt;b&gt;not bold&lt;/b&gt;", "<b>not bold</b>"},
		{"script and style dropped", "<style>p{color:red}</style>x<script>alert('<b>')</script>y", "xy"},
		{"script case-insensitive", "a<SCRIPT type=x>1</ScRiPt >b", "ab"},
		{"head dropped", "<html><head><title>T</title><meta charset=utf-8></head><body>hi</body></html>", "hi"},
		{"head without end tag", "<html><head><title>T</title><body>hi", "hi"},
		{"comment", "a<!-- <b>hidden</b> -->b", "ab"},
		{"doctype and pi", "<!DOCTYPE html><?xml version=\"1.0\"?>x", "x"},
		{"attribute with >", `<a title="a>b" href='x>y'>link</a>`, "link"},
		{"literal less-than", "1 < 2 and 3<4", "1 < 2 and 3<4"},
		{"empty end tag", "a</>b", "ab"},
		{"lone less-than at end", "a <", "a <"},
		{"unterminated tag drops rest", "a<b class=", "a"},
		{"unterminated quote drops rest", `a<b title="x>y`, "a"},
		{"unterminated comment drops rest", "a<!-- b", "a"},
		{"unterminated script drops rest", "a<script>b", "a"},
		{"invalid utf-8 replaced", "a\xffb", "a\uFFFDb"},
		{"numeric ref to newline", "a&#10;b", "a\nb"},
		{"only tags", "<p></p><br>", ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := StripHTML(tt.in)
			if got != tt.want {
				t.Errorf("StripHTML(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("invalid UTF-8 output %q", got)
			}
		})
	}
}

func TestStripHTMLPathologicalInput(t *testing.T) {
	// Inputs that would take quadratic time with naive rescanning (about
	// 2.6 MB each). Linear scanning handles each in milliseconds.
	const n = 200000
	tests := []struct {
		name, in, want string
	}{
		{"many heads without body", strings.Repeat("<head></head>", n), ""},
		{"unclosed scripts", "x" + strings.Repeat("<script>", n), "x"},
		{"unclosed quotes", "x" + strings.Repeat("<a x='", n), "x"},
		{"unclosed comments", "x" + strings.Repeat("<!--", n), "x"},
		{"literal less-thans", strings.Repeat("< ", n), strings.TrimSpace(strings.Repeat("< ", n))},
		{"many blocks", strings.Repeat("<p>", n) + "y", "y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			got := StripHTML(tt.in)
			if got != tt.want {
				t.Errorf("StripHTML = %.40q..., want %.40q...", got, tt.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v: not linear", d)
			}
		})
	}
}
