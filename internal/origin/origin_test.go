package origin

import "testing"

func TestValid(t *testing.T) {
	for _, c := range []struct {
		o  string
		ok bool
	}{
		{"*", true}, {"https://www.example.com", true}, {"http://127.0.0.1:8080", true}, {"https://a.example/", true},
		{"www.example.com", false}, {"ftp://example.com", false}, {"https://example.com/path", false},
		{"https://example.com?q=1", false}, {"https://user@example.com", false}, {"https://", false},
	} {
		if err := Valid(c.o); (err == nil) != c.ok {
			t.Errorf("Valid(%q) = %v, want ok %v", c.o, err, c.ok)
		}
	}
}

func TestListed(t *testing.T) {
	list := []string{"https://www.example.com/", "http://127.0.0.1:8080"}
	for _, c := range []struct {
		o  string
		ok bool
	}{
		{"https://www.example.com", true}, {"HTTPS://WWW.EXAMPLE.COM", true}, {"http://127.0.0.1:8080", true},
		{"https://www.example.com:8443", false}, {"https://evil.example", false}, {"", false},
	} {
		if got := Listed(list, c.o); got != c.ok {
			t.Errorf("Listed(%q) = %v, want %v", c.o, got, c.ok)
		}
	}
	if !Listed([]string{"*"}, "https://anything.example") {
		t.Error("* does not list every origin")
	}
}
