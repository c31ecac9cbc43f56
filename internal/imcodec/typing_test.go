package imcodec

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseKeyboardActivity(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    bool
		wantErr bool
	}{
		{"protocol §1.5 type", `<?xml version="1.0"?><KeyboardActivity><status status="type" /></KeyboardActivity>`, true, false},
		{"idle", `<?xml version="1.0"?><KeyboardActivity><status status="idle" /></KeyboardActivity>`, false, false},
		{"no xml decl", `<KeyboardActivity><status status="type"/></KeyboardActivity>`, true, false},
		{"whitespace and other attributes", "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<KeyboardActivity>\r\n  <status foo=\"bar\"\n status = 'Type' />\r\n</KeyboardActivity>\r\n", true, false},
		{"bom", "\xEF\xBB\xBF<KeyboardActivity><status status=\"idle\"/></KeyboardActivity>", false, false},
		{"latin1 declared", `<?xml version="1.0" encoding="ISO-8859-1"?><KeyboardActivity><status status="type"/></KeyboardActivity>`, true, false},
		{"unquoted attribute (non-strict)", `<KeyboardActivity><status status=type></KeyboardActivity>`, true, false},
		{"trailing junk after status", `<KeyboardActivity><status status="type"/>garbage<<<`, true, false},
		{"nested status", `<KeyboardActivity><x><status status="type"/></x></KeyboardActivity>`, true, false},
		{"unknown status", `<KeyboardActivity><status status="typing"/></KeyboardActivity>`, false, true},
		{"missing status attribute", `<KeyboardActivity><status/></KeyboardActivity>`, false, true},
		{"missing status element", `<KeyboardActivity></KeyboardActivity>`, false, true},
		{"wrong root", `<action xmlns="http://schemas.microsoft.com/sip/multiparty/"><RequestRM uri="sip:a" bid="1"/></action>`, false, true},
		{"iscomposing is not keyboard", `<isComposing><state>active</state></isComposing>`, false, true},
		{"empty", ``, false, true},
		{"not xml", `type`, false, true},
		{"unknown encoding", `<?xml version="1.0" encoding="x-nope"?><KeyboardActivity><status status="type"/></KeyboardActivity>`, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKeyboardActivity([]byte(tt.body))
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got != tt.want {
				t.Errorf("active = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseKeyboardActivityTokenLimit(t *testing.T) {
	body := "<KeyboardActivity>" + strings.Repeat("<x/>", maxXMLTokens) + `<status status="type"/></KeyboardActivity>`
	if _, err := ParseKeyboardActivity([]byte(body)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed for too many tokens", err)
	}
}

func TestKeyboardActivity(t *testing.T) {
	tests := []struct {
		name   string
		active bool
		want   string
	}{
		{"type", true, `<?xml version="1.0"?><KeyboardActivity><status status="type" /></KeyboardActivity>`},
		{"idle", false, `<?xml version="1.0"?><KeyboardActivity><status status="idle" /></KeyboardActivity>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := KeyboardActivity(tt.active)
			if string(got) != tt.want {
				t.Errorf("KeyboardActivity(%v) = %s, want %s", tt.active, got, tt.want)
			}
			if tt.active && len(got) != 82 { // Content-Length of the §1.5 example
				t.Errorf("len = %d, want 82", len(got))
			}
			back, err := ParseKeyboardActivity(got)
			if err != nil || back != tt.active {
				t.Errorf("round trip = %v, %v", back, err)
			}
		})
	}
}

// PROTOCOL.md §2.2.
const rfcIsComposing = `<?xml version="1.0" encoding="UTF-8"?>
<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing">
  <state>active</state>             <!-- active | idle -->
  <contenttype>text/plain</contenttype>   <!-- optional -->
  <refresh>60</refresh>             <!-- optional, seconds; only meaningful with active -->
  <lastactive>2026-11-25T12:00:00Z</lastactive>  <!-- optional, with idle -->
</isComposing>`

// liblinphone's isComposing (PROTOCOL.md §2.2).
const linphoneIsComposing = `<?xml version="1.0" encoding="UTF-8"?>
<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><state>active</state><refresh>60</refresh></isComposing>`

func TestParseIsComposing(t *testing.T) {
	last := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		body    string
		want    Composing
		wantErr bool
	}{
		{"rfc example", rfcIsComposing, Composing{Active: true, Refresh: 60 * time.Second, ContentType: "text/plain", LastActive: last}, false},
		{"linphone", linphoneIsComposing, Composing{Active: true, Refresh: 60 * time.Second}, false},
		{"idle with lastactive", `<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>idle</state><lastactive>2026-11-25T12:00:00Z</lastactive></isComposing>`,
			Composing{LastActive: last}, false},
		{"no namespace", `<isComposing><state> Active </state></isComposing>`, Composing{Active: true}, false},
		{"prefixed namespace", `<ic:isComposing xmlns:ic="urn:ietf:params:xml:ns:im-iscomposing"><ic:state>idle</ic:state><ic:refresh>5</ic:refresh></ic:isComposing>`,
			Composing{Refresh: 5 * time.Second}, false},
		{"unknown elements skipped", `<isComposing><ext><state>idle</state></ext><state>active</state></isComposing>`, Composing{Active: true}, false},
		{"invalid refresh ignored", `<isComposing><state>active</state><refresh>-3</refresh><lastactive>yesterday</lastactive></isComposing>`, Composing{Active: true}, false},
		{"huge refresh capped", `<isComposing><state>active</state><refresh>99999999999999999999999</refresh></isComposing>`, Composing{Active: true, Refresh: maxRefresh}, false},
		{"missing state", `<isComposing><refresh>60</refresh></isComposing>`, Composing{}, true},
		{"bad state", `<isComposing><state>typing</state></isComposing>`, Composing{}, true},
		{"wrong root", `<KeyboardActivity><status status="type"/></KeyboardActivity>`, Composing{}, true},
		{"empty", ``, Composing{}, true},
		{"broken xml", `<isComposing><state>active</state`, Composing{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseIsComposing([]byte(tt.body))
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got.Active != tt.want.Active || got.Refresh != tt.want.Refresh || got.ContentType != tt.want.ContentType || !got.LastActive.Equal(tt.want.LastActive) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestIsComposing(t *testing.T) {
	const head = `<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing">`
	tests := []struct {
		name    string
		active  bool
		refresh time.Duration
		want    string
	}{
		{"active with refresh", true, 60 * time.Second, head + `<state>active</state><contenttype>text/plain</contenttype><refresh>60</refresh></isComposing>`},
		{"active rounds up", true, 1500 * time.Millisecond, head + `<state>active</state><contenttype>text/plain</contenttype><refresh>2</refresh></isComposing>`},
		{"active without refresh", true, 0, head + `<state>active</state><contenttype>text/plain</contenttype></isComposing>`},
		{"idle never has refresh", false, 60 * time.Second, head + `<state>idle</state><contenttype>text/plain</contenttype></isComposing>`},
		{"huge refresh capped", true, 1000 * time.Hour, head + `<state>active</state><contenttype>text/plain</contenttype><refresh>86400</refresh></isComposing>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := IsComposing(tt.active, tt.refresh)
			if string(got) != tt.want {
				t.Errorf("IsComposing =\n%s\nwant\n%s", got, tt.want)
			}
			c, err := ParseIsComposing(got)
			if err != nil {
				t.Fatalf("round trip: %v", err)
			}
			if c.Active != tt.active || c.ContentType != TypePlain {
				t.Errorf("round trip = %+v", c)
			}
		})
	}
}
