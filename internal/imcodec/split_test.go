package imcodec

import (
	"slices"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		name string
		text string
		max  int
		want []string
	}{
		{"fits", "hello world", 20, []string{"hello world"}},
		{"fits exactly", "hello", 5, []string{"hello"}},
		{"trimmed", "  hello \n", 20, []string{"hello"}},
		{"empty", "", 10, nil},
		{"only whitespace", " \n\t ", 10, nil},
		{"at spaces", "aaa bbb ccc", 7, []string{"aaa bbb", "ccc"}},
		{"space exactly at max", "aaaa bbbb", 4, []string{"aaaa", "bbbb"}},
		{"collapses whitespace at the cut", "aaa     bbb", 4, []string{"aaa", "bbb"}},
		{"prefers late newline", "first line\nsecond part", 20, []string{"first line", "second part"}},
		{"newline in first half loses to space", "ab\ncdefgh ijklmn opq", 16, []string{"ab\ncdefgh ijklmn", "opq"}},
		{"inner whitespace kept", "a  b\n\nc d", 100, []string{"a  b\n\nc d"}},
		{"long word cut", "abcdefghij", 4, []string{"abcd", "efgh", "ij"}},
		{"long word after short", "a bcdefgh", 4, []string{"a", "bcde", "fgh"}},
		{"rune boundary", "ééééé", 5, []string{"éé", "éé", "é"}},
		{"four byte runes", "😀😀", 5, []string{"😀", "😀"}},
		{"max below 4 treated as 4", "abcdefgh", 1, []string{"abcd", "efgh"}},
		{"negative max", "abcdefgh", -10, []string{"abcd", "efgh"}},
		{"unicode space", "aaa\u3000bbb", 5, []string{"aaa", "bbb"}},
		{"invalid utf-8 bytes", "\xff\xff\xff\xff\xff\xff", 4, []string{"\xff\xff\xff\xff", "\xff\xff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Split(tt.text, tt.max)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Split(%q, %d) = %q, want %q", tt.text, tt.max, got, tt.want)
			}
			checkSplit(t, tt.text, tt.max, got)
		})
	}
}

func TestSplitLongMessage(t *testing.T) {
	// A reply over the 1300-byte UDP budget (PROTOCOL.md §4.4).
	text := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 100)
	chunks := Split(text, 1000)
	if len(chunks) != 5 {
		t.Fatalf("got %d chunks, want 5", len(chunks))
	}
	checkSplit(t, text, 1000, chunks)
}

// checkSplit verifies the invariants promised by Split.
func checkSplit(t *testing.T, text string, maxBytes int, chunks []string) {
	t.Helper()
	limit := max(maxBytes, 4)
	for i, c := range chunks {
		if c == "" || len(c) > limit {
			t.Errorf("chunk %d has %d bytes (max %d): %q", i, len(c), limit, c)
		}
		if strings.TrimSpace(c) != c {
			t.Errorf("chunk %d not trimmed: %q", i, c)
		}
	}
	var words []string
	for _, c := range chunks {
		words = append(words, strings.Fields(c)...)
	}
	if got, want := strings.Join(words, ""), strings.Join(strings.Fields(text), ""); got != want {
		t.Errorf("non-space content changed: %q, want %q", got, want)
	}
	longWord := false
	for _, w := range strings.Fields(text) {
		if len(w) > limit {
			longWord = true
		}
	}
	if !longWord && !slices.Equal(strings.Fields(strings.Join(chunks, " ")), strings.Fields(text)) {
		t.Errorf("words not preserved: %q from %q", chunks, text)
	}
}
