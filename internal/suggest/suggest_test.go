package suggest

import "testing"

func TestClosest(t *testing.T) {
	names := []string{"when", "match", "regex", "reply", "on", "state"}
	cases := []struct {
		in, want string
	}{
		{"whem", "when"},
		{"WHEN", "when"},   // case-insensitive
		{"mtach", "match"}, // a transposition is one edit
		{"rgx", ""},        // short names allow one edit only
		{"oh", "on"},
		{"replies", ""}, // three edits away
		{"when", ""},    // already right
		{"", ""},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			if got := Closest(c.in, names); got != c.want {
				t.Errorf("Closest(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestDistance(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "abc", 0}, {"abc", "ab", 1}, {"ab", "ba", 1},
		{"kitten", "sitting", 3}, {"état", "etat", 1},
	}
	for _, c := range cases {
		if got := Distance(c.a, c.b); got != c.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
