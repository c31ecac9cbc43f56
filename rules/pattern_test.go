package rules

import (
	"maps"
	"testing"
	"time"
)

func TestFold(t *testing.T) {
	for in, want := range map[string]string{
		"Hello, World!":        "hello world",
		"  CAFÉ  crème brûlée": "cafe creme brulee",
		"Don't   stop":         "dont stop",
		"Straße Œuvre":         "strasse oeuvre",
		"e-mail/wi-fi?":        "e mail wi fi",
		"Ǆemal ĳ Ωμέγα":        "dzemal ij ωμεγα",
		"":                     "",
		"\xff\xfe bad":         "bad",
	} {
		if got := Fold(in); got != want {
			t.Errorf("Fold(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		name, pattern, text string
		want                bool
		caps                map[string]string
	}{
		{"exact", "hello", "Hello!", true, nil},
		{"exact accents", "cafe", "CAFÉ", true, nil},
		{"anchored", "hello", "hello there", false, nil},
		{"star anywhere", "* help *", "can you help me", true, map[string]string{"star1": "can you", "star2": "me"}},
		{"star empty", "* help *", "help", true, map[string]string{"star1": "", "star2": ""}},
		{"design example", "* forgot * password*", "I forgot my passwords", true, map[string]string{"star1": "I", "star2": "my"}},
		{"glob needs word", "* forgot * password*", "I forgot", false, nil},
		{"named capture", "my name is {name}", "My name is José María", true, map[string]string{"name": "José María"}},
		{"named needs a word", "my name is {name}", "my name is", false, nil},
		{"alternatives", "(hi|hello|good morning) *", "Good morning, bot", true, map[string]string{"star1": "bot"}},
		{"alternative misses", "(hi|hello) *", "hey you", false, nil},
		{"optional present", "[please] reset [my] password", "please reset my password", true, nil},
		{"optional absent", "[please] reset [my] password", "reset password", true, nil},
		{"glob inside", "*ing", "Shipping", true, nil},
		{"glob middle", "pa*rd", "password", true, nil},
		{"two captures", "from {from} to {to}", "from Paris to New York", true, map[string]string{"from": "Paris", "to": "New York"}},
		{"capture keeps punctuation", "order {id}", "order #A-12!", true, map[string]string{"id": "A-12"}},
		{"backtracking", "* a * b", "a a a b b a b", true, nil},
		{"apostrophe", "what's up", "Whats up?", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flats, err := parsePattern(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			toks := tokenize(tt.text, nil)
			var at [maxPatternElems + 1]int32
			got := false
			caps := map[string]string{}
			for i := range flats {
				if flats[i].match(toks, at[:]) {
					got = true
					flats[i].captures(tt.text, toks, at[:], caps)
					break
				}
			}
			if got != tt.want {
				t.Fatalf("match(%q, %q) = %v, want %v", tt.pattern, tt.text, got, tt.want)
			}
			if tt.caps != nil && !maps.Equal(caps, tt.caps) {
				t.Errorf("captures = %v, want %v", caps, tt.caps)
			}
		})
	}
}

func TestPatternErrors(t *testing.T) {
	for pat, want := range map[string]string{
		"(hi|hello":   "'(' is never closed: add ')'",
		"hi)":         "unexpected ')': it closes nothing",
		"{na me}":     `capture name "na me" is not a name: use letters, digits and _, such as {city}`,
		"{x}y":        "capture {x} must stand alone as a word: put a space after it",
		"{x} and {x}": "capture {x} appears twice in one pattern",
		"?!":          "pattern is empty",
		"(a|)":        "empty alternative in ( ): use [ ] for an optional word",
		"(a|b) (c|d) (e|f) (g|h) (i|j) (k|l) (m|n) (o|p)": "pattern has more than 128 combinations of ( ) and [ ]: split it into several patterns",
	} {
		_, err := parsePattern(pat)
		if err == nil || err.Error() != want {
			t.Errorf("parsePattern(%q) = %v, want %q", pat, err, want)
		}
	}
}

func TestBusinessHours(t *testing.T) {
	h, err := parseHours("Mon-Fri 09:00-12:30,13:30-18:00; Sat 10:00-12:00; Sun 22:00-02:00")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) bool {
		tm, err := timeParse(s)
		if err != nil {
			t.Fatal(err)
		}
		return h.open(tm)
	}
	for s, want := range map[string]bool{
		"2025-03-03T09:00:00Z": true,  // Monday
		"2025-03-03T12:45:00Z": false, // lunch
		"2025-03-07T17:59:00Z": true,  // Friday
		"2025-03-08T11:00:00Z": true,  // Saturday
		"2025-03-08T13:00:00Z": false,
		"2025-03-09T23:00:00Z": true, // Sunday night
		"2025-03-10T01:00:00Z": true, // past midnight
		"2025-03-10T02:00:00Z": false,
	} {
		if got := at(s); got != want {
			t.Errorf("open at %s = %v, want %v", s, got, want)
		}
	}
	for _, bad := range []string{"Mon-Fri", "Mo 9-17", "Funday 09:00-10:00", "Mon 25:00-26:00", "Mon 09:00-09:00"} {
		if _, err := parseHours(bad); err == nil {
			t.Errorf("parseHours(%q) succeeded", bad)
		}
	}
}

func timeParse(s string) (time.Time, error) { return time.Parse(time.RFC3339, s) }

// TestPatternErrorColumns checks the columns (rune offsets) of pattern errors in patterns
// with letters that are not ASCII, with and without spaces that are not ASCII.
func TestPatternErrorColumns(t *testing.T) {
	for _, tt := range []struct {
		pat string
		col int
		msg string
	}{
		{"café (thé|lait", 5, "'(' is never closed: add ')'"},
		{"café\u00a0(thé|lait", 5, "'(' is never closed: add ')'"},
		{"déjà vu)", 7, "unexpected ')': it closes nothing"},
		{"déjà\u2003vu)", 7, "unexpected ')': it closes nothing"},
		{"éé (a] b", 5, "']' closes '(' opened at column 4"},
		{"éé\u3000(a] b", 5, "']' closes '(' opened at column 4"},
		{"où {été}", 3, `capture name "été" is not a name: use letters, digits and _, such as {city}`},
		{"là {x} {x}", 7, "capture {x} appears twice in one pattern"},
		{"là\u00a0{x} {x}", 7, "capture {x} appears twice in one pattern"},
		{"ça (|b) c", 3, "empty alternative in ( ): use [ ] for an optional word"},
		{"ça va}", 5, "'}' closes nothing"},
		{"été (a|b) (c|d) (e|f) (g|h) (i|j) (k|l) (m|n) (o|p)", 46, "pattern has more than 128 combinations of ( ) and [ ]: split it into several patterns"},
		{"Åà {x}y", 3, "capture {x} must stand alone as a word: put a space after it"},
	} {
		_, err := parsePattern(tt.pat)
		pe, ok := err.(*patternError)
		if !ok || pe.col != tt.col || pe.msg != tt.msg {
			t.Errorf("parsePattern(%q) = %v, want %q at %d", tt.pat, err, tt.msg, tt.col)
			if ok {
				t.Logf("column %d", pe.col)
			}
		}
	}
	// Letters whose UTF-8 bytes are spaces as runes (U+0085, U+00A0) are letters.
	for _, pat := range []string{"Å à", "Åà", "ÅÅ"} {
		fps, err := parsePattern(pat)
		if err != nil || len(fps) != 1 {
			t.Errorf("parsePattern(%q) = %v, %v", pat, fps, err)
		}
	}
}
