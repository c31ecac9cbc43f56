package imbotcmd

import (
	"strings"
	"testing"
	"time"
)

// TestHandoffOfferConfig: handoff.offer_mode and handoff.offer_timeout are read, and a bad
// mode is an error at its position.
func TestHandoffOfferConfig(t *testing.T) {
	cases := []struct {
		name     string
		yaml     string
		wantErr  string
		wantMode string
		wantWait time.Duration
	}{
		{"left out", "", "", "", 0}, // NewHandoff's defaults: one at a time, 30s
		{"all", "handoff:\n  offer_mode: all\n", "", "all", 0},
		{"timeout", "handoff:\n  offer_timeout: 10s\n", "", "", 10 * time.Second},
		{"timeout off", "handoff:\n  offer_timeout: -1s\n", "", "", -time.Second},
		{"bad mode", "handoff:\n  offer_mode: some\n", "cfg.yaml:2:15: handoff.offer_mode: \"some\": want one", "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fc, err := parseConfig("cfg.yaml", []byte(c.yaml))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fc.Handoff.OfferMode != c.wantMode || fc.Handoff.OfferTimeout != c.wantWait {
				t.Errorf("offer_mode %q offer_timeout %v, want %q %v", fc.Handoff.OfferMode, fc.Handoff.OfferTimeout, c.wantMode, c.wantWait)
			}
		})
	}
	fc, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if fc.Handoff.OfferMode != "one" || fc.Handoff.OfferTimeout != 30*time.Second {
		t.Errorf("default config: offer_mode %q offer_timeout %v", fc.Handoff.OfferMode, fc.Handoff.OfferTimeout)
	}
}
