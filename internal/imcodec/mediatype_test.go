package imcodec

import (
	"errors"
	"maps"
	"slices"
	"testing"
)

func TestMediaType(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		mt     string
		params map[string]string
	}{
		{"plain", "text/plain", "text/plain", map[string]string{}},
		{"charset", "text/plain;charset=UTF-8", "text/plain", map[string]string{"charset": "UTF-8"}},
		{"ocs msgr", "text/plain; charset=UTF-8;msgr=WAAtAE0ATQBT…", "text/plain",
			map[string]string{"charset": "UTF-8", "msgr": "WAAtAE0ATQBT…"}},
		{"upper and spaces", "  Text / HTML ;  CharSet = \"iso-8859-1\" ", "text/html",
			map[string]string{"charset": "iso-8859-1"}},
		{"quoted semicolon", `multipart/alternative; boundary="a;b=c"; x=1`, "multipart/alternative",
			map[string]string{"boundary": "a;b=c", "x": "1"}},
		{"escaped quote", `text/plain; name="a\"b"`, "text/plain", map[string]string{"name": `a"b`}},
		{"unterminated quote", `text/plain; name="abc`, "text/plain", map[string]string{"name": "abc"}},
		{"trailing semicolon", "text/plain;", "text/plain", map[string]string{}},
		{"missing value", "text/plain; flag; =x; charset=", "text/plain", map[string]string{"flag": "", "charset": ""}},
		{"duplicate keeps first", "text/plain; charset=utf-8; Charset=latin1", "text/plain", map[string]string{"charset": "utf-8"}},
		{"base64 value with padding", "text/plain; ms-body=SGk=", "text/plain", map[string]string{"ms-body": "SGk="}},
		{"junk after subtype", "text/plain garbage; a=b", "text/plain", map[string]string{"a": "b"}},
		{"no subtype", "text", "text", map[string]string{}},
		{"empty", "", "", map[string]string{}},
		{"only params", ";charset=utf-8", "", map[string]string{"charset": "utf-8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mt, params := MediaType(tt.in)
			if mt != tt.mt {
				t.Errorf("media type = %q, want %q", mt, tt.mt)
			}
			if !maps.Equal(params, tt.params) {
				t.Errorf("params = %v, want %v", params, tt.params)
			}
		})
	}
}

func TestSplitAcceptHeader(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"spec example", "text/plain, application/im-iscomposing+xml;q=0.5", []string{"text/plain", "application/im-iscomposing+xml"}},
		{"case and spaces", " Text/Plain ,MESSAGE/CPIM ", []string{"text/plain", "message/cpim"}},
		{"empty elements and dups", "text/plain,, ,text/plain;charset=utf-8", []string{"text/plain"}},
		{"q=0 dropped", "text/html;q=0, text/plain;q=0.1", []string{"text/plain"}},
		{"quoted comma", `text/plain;x="a,b", text/html`, []string{"text/plain", "text/html"}},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SplitAcceptHeader(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("SplitAcceptHeader(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestAcceptsType(t *testing.T) {
	ocs := []string{"text/plain", "text/html", "image/gif", "multipart/alternative",
		"application/im-iscomposing+xml", "application/ms-imdn+xml", "text/x-msmsgsinvite"}
	tests := []struct {
		name string
		list []string
		mt   string
		want bool
	}{
		{"exact", ocs, "text/plain", true},
		{"params on mt ignored", ocs, "text/plain;charset=UTF-8", true},
		{"case-insensitive", ocs, "Application/IM-isComposing+XML", true},
		{"absent", ocs, "message/cpim", false},
		{"wildcard", []string{"*/*"}, "message/imdn+xml", true},
		{"bare star", []string{"*"}, "text/plain", true},
		{"type wildcard", []string{"text/*"}, "text/html", true},
		{"type wildcard other type", []string{"text/*"}, "application/xml", false},
		{"header element with q", []string{"text/plain;q=0.5"}, "text/plain", true},
		{"q=0 refuses", []string{"text/plain;q=0"}, "text/plain", false},
		{"specific q=0 beats wildcard", []string{"*/*", "text/plain;q=0"}, "text/plain", false},
		{"specific beats refused wildcard", []string{"*/*;q=0", "text/plain"}, "text/plain", true},
		{"comma list in one element", []string{"text/html, text/plain"}, "text/plain", true},
		{"empty list", nil, "text/plain", false},
		{"empty mt", ocs, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AcceptsType(tt.list, tt.mt); got != tt.want {
				t.Errorf("AcceptsType(%q, %q) = %v, want %v", tt.list, tt.mt, got, tt.want)
			}
		})
	}
}

func TestErrTooLargeMatchesMalformed(t *testing.T) {
	err := error(tooLargeError{limit: 10})
	if !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("tooLargeError should match ErrTooLarge and ErrMalformed: %v", err)
	}
	if errors.Is(err, ErrUnsupportedType) {
		t.Fatal("tooLargeError must not match ErrUnsupportedType")
	}
}
