package schema

import (
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoadMigrations(t *testing.T) {
	tests := map[string]struct {
		files fstest.MapFS
		err   string
	}{
		"ok": {files: fstest.MapFS{
			"migrations/0002_b.sql": {Data: []byte("x")},
			"migrations/0001_a.sql": {Data: []byte("x")},
		}},
		"gap": {files: fstest.MapFS{
			"migrations/0001_a.sql": {Data: []byte("x")},
			"migrations/0003_c.sql": {Data: []byte("x")},
		}, err: "without gaps"},
		"duplicate": {files: fstest.MapFS{
			"migrations/0001_a.sql": {Data: []byte("x")},
			"migrations/0001_b.sql": {Data: []byte("x")},
		}, err: "without gaps"},
		"bad name": {files: fstest.MapFS{
			"migrations/init.sql": {Data: []byte("x")},
		}, err: "0001_init.sql"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			migs, err := Load(tt.files)
			if tt.err == "" {
				if err != nil || len(migs) != 2 || migs[0].Version != 1 || migs[1].Version != 2 {
					t.Errorf("Load = %v, %v", migs, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("error = %v, want one containing %q", err, tt.err)
			}
		})
	}
}

func TestDecodeVars(t *testing.T) {
	tests := map[string]struct {
		in   string
		want map[string]any
		err  bool
	}{
		"empty":   {in: "", want: nil},
		"null":    {in: "null", want: nil},
		"no vars": {in: "{}", want: nil},
		"spaced":  {in: "{ }", want: nil},
		"whole numbers are ints, nested too": {
			in:   `{"n": 3, "ratio": 0.5, "list": [1, 2.5], "m": {"k": 1001}, "s": "x", "ok": true}`,
			want: map[string]any{"n": 3, "ratio": 0.5, "list": []any{1, 2.5}, "m": map[string]any{"k": 1001}, "s": "x", "ok": true},
		},
		"too large for an exact int stays float": {in: `{"big": 1e300}`, want: map[string]any{"big": 1e300}},
		"not JSON":                               {in: `{"n":`, err: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := DecodeVars([]byte(tt.in))
			if (err != nil) != tt.err {
				t.Fatalf("error = %v, want error %v", err, tt.err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DecodeVars(%s) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}
