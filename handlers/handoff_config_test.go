package handlers

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// fieldErrors returns the fields of the *FieldErrors joined in err, in order.
func fieldErrors(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var fields []string
	for _, e := range errs {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a *FieldError", e)
		}
		fields = append(fields, fe.Field)
	}
	return fields
}

func TestAgentValidate(t *testing.T) {
	for _, tc := range []struct {
		uri     string
		wantErr string
	}{
		{"sip:bob@example.com", ""},
		{"sips:bob@example.com", ""},
		{"sip:bob@example.com;transport=tcp", ""},
		{"", `URI: "" is not a SIP address`},
		{"bob", `URI: "bob" is not a SIP address`},
		{"sip:example.com", `URI: "sip:example.com" is not a SIP address`},
		{"mailto:bob@example.com", "is not a SIP address"},
		{"bob@example.com", "is not a SIP address"},
		{"SIP:bob@example.com", ""},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			err := Agent{URI: tc.uri}.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate() = %v, want %q", err, tc.wantErr)
			}
			if got := fieldErrors(t, err); !slices.Equal(got, []string{"URI"}) {
				t.Errorf("fields %q, want URI", got)
			}
		})
	}
}

func TestHandoffConfigValidate(t *testing.T) {
	bob, ann := Agent{URI: "sip:bob@example.com"}, Agent{URI: "sip:ann@example.com"}
	for _, tc := range []struct {
		name       string
		cfg        HandoffConfig
		wantErrs   []string // each in the error, in order
		wantFields []string
	}{
		{"one agent", HandoffConfig{Agents: []Agent{bob}}, nil, nil},
		{"two agents, no dialer", HandoffConfig{Agents: []Agent{bob, ann}}, nil, nil},
		{"no agents", HandoffConfig{}, []string{"Agents: at least one agent is needed"}, []string{"Agents"}},
		{"bad agent", HandoffConfig{Agents: []Agent{bob, {URI: "ann"}}},
			[]string{`Agents: agent 2: URI: "ann" is not a SIP address`}, []string{"Agents"}},
		{"listed twice", HandoffConfig{Agents: []Agent{bob, ann, {URI: "sip:bob@EXAMPLE.com"}}},
			[]string{`Agents: agent 3: "sip:bob@EXAMPLE.com" is listed twice`}, []string{"Agents"}},
		{"every problem", HandoffConfig{Agents: []Agent{{URI: "x"}, bob, bob}},
			[]string{"agent 1: URI", "agent 3: \"sip:bob@example.com\" is listed twice"}, []string{"Agents", "Agents"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if got := fieldErrors(t, err); !slices.Equal(got, tc.wantFields) {
				t.Fatalf("Validate() = %v: fields %q, want %q", err, got, tc.wantFields)
			}
			for _, w := range tc.wantErrs {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want %q in it", err, w)
				}
			}
		})
	}
}

func TestNewHandoffValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  HandoffConfig
		want string
	}{
		{"no dialer", HandoffConfig{Agents: []Agent{{URI: "sip:bob@example.com"}}}, "needs a Dialer"},
		{"no agents", HandoffConfig{Dialer: newFakeDialer()}, "handlers: handoff: Agents: at least one agent"},
		{"bad agent", HandoffConfig{Dialer: newFakeDialer(), Agents: []Agent{{URI: "bob"}}}, "handlers: handoff: Agents: agent 1: URI"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewHandoff(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewHandoff() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestHandoffConfigDefaults(t *testing.T) {
	for _, tc := range []struct {
		name         string
		triggers     []string
		wantTriggers []string
	}{
		{"nil triggers", nil, []string{"agent", "human"}},
		{"no triggers", []string{}, []string{}},
		{"own triggers", []string{"help me"}, []string{"help me"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := HandoffConfig{Triggers: tc.triggers}.withDefaults()
			if !slices.Equal(c.Triggers, tc.wantTriggers) || (c.Triggers == nil) != (tc.wantTriggers == nil) {
				t.Errorf("Triggers = %#v, want %#v", c.Triggers, tc.wantTriggers)
			}
			if c.AnswerTimeout != DefaultAnswerTimeout || c.OfferTimeout != DefaultOfferTimeout ||
				c.DoneCommand != DefaultDoneCommand || c.TranscriptLines != DefaultTranscriptLines ||
				c.UnverifiedAgent != DefaultUnverifiedAgentText {
				t.Errorf("defaults not set: %+v", c)
			}
		})
	}
	if got := DefaultHandoffTriggers(); !slices.Equal(got, []string{"agent", "human"}) {
		t.Errorf("DefaultHandoffTriggers() = %q", got)
	}
	c := HandoffConfig{OfferTimeout: -time.Second, AnswerTimeout: time.Minute}.withDefaults()
	if c.OfferTimeout != -time.Second || c.AnswerTimeout != time.Minute {
		t.Errorf("set values changed: %+v", c)
	}
}

func TestParseOfferMode(t *testing.T) {
	for _, tc := range []struct {
		mode      string
		broadcast bool
		wantErr   string
	}{
		{"", false, ""},
		{"one", false, ""},
		{"all", true, ""},
		{"some", false, `"some": want one (to one agent at a time) or all`},
		{"ALL", false, `"ALL": want one`},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			b, err := ParseOfferMode(tc.mode)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseOfferMode(%q) = %v, want %q", tc.mode, err, tc.wantErr)
				}
				return
			}
			if err != nil || b != tc.broadcast {
				t.Fatalf("ParseOfferMode(%q) = %v, %v, want %v", tc.mode, b, err, tc.broadcast)
			}
		})
	}
}

func TestRateLimitConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cfg        RateLimitConfig
		wantFields []string
	}{
		{"zero: no limit", RateLimitConfig{}, nil},
		{"set", RateLimitConfig{Every: time.Second, Burst: 5}, nil},
		{"negative every", RateLimitConfig{Every: -time.Second, Burst: 5}, []string{"Every"}},
		{"negative burst", RateLimitConfig{Every: time.Second, Burst: -1}, []string{"Burst"}},
		{"both", RateLimitConfig{Every: -time.Second, Burst: -1}, []string{"Every", "Burst"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fieldErrors(t, tc.cfg.Validate()); !slices.Equal(got, tc.wantFields) {
				t.Errorf("fields %q, want %q", got, tc.wantFields)
			}
		})
	}
}
