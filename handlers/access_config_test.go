package handlers

import (
	"slices"
	"testing"
)

func TestAccessConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cfg        AccessConfig
		wantFields []string
	}{
		{"empty", AccessConfig{}, nil},
		{"good entries", AccessConfig{Allow: []string{"*", "example.com", "*.example.com", "sip:ann@example.com"}, Deny: []string{"bob@example.com"}}, nil},
		{"bad allow", AccessConfig{Allow: []string{"example.com", "*.*"}}, []string{"Allow"}},
		{"bad deny", AccessConfig{Deny: []string{"a*b@example.com"}}, []string{"Deny"}},
		{"both", AccessConfig{Allow: []string{"sip:"}, Deny: []string{"*.x:5060", "ex ample.com"}}, []string{"Allow", "Deny", "Deny"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if got := fieldErrors(t, err); !slices.Equal(got, tc.wantFields) {
				t.Fatalf("Validate() = %v: fields %q, want %q", err, got, tc.wantFields)
			}
			_, nerr := NewAccessList(tc.cfg.Allow, tc.cfg.Deny)
			if (err == nil) != (nerr == nil) {
				t.Errorf("Validate() = %v but NewAccessList() = %v", err, nerr)
			}
		})
	}
}
