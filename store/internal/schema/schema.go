// Package schema holds what the SQL stores (store/sqlite, store/postgres) share: their
// numbered migration files and the decoding of conversation variables, so that both stores
// stay at one schema version and read a conversation back as it was saved.
package schema

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Migration is one numbered schema change: the file migrations/NNNN_name.sql.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

var fileName = regexp.MustCompile(`^([0-9]{4})_([a-z0-9_]+)\.sql$`)

// Load reads migrations/NNNN_name.sql from fsys, in version order; versions must run
// 1, 2, 3... without gaps or duplicates.
func Load(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var migs []Migration
	for _, n := range names {
		base := n[strings.LastIndex(n, "/")+1:]
		m := fileName.FindStringSubmatch(base)
		if m == nil {
			return nil, fmt.Errorf("store: migration file %s: name must look like 0001_init.sql", n)
		}
		v, _ := strconv.Atoi(m[1])
		body, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		migs = append(migs, Migration{Version: v, Name: m[2], SQL: string(body)})
	}
	sort.Slice(migs, func(i, j int) bool { return migs[i].Version < migs[j].Version })
	for i, m := range migs {
		if m.Version != i+1 {
			return nil, fmt.Errorf("store: migrations must be numbered 0001, 0002, ... without gaps or duplicates; found %04d_%s.sql at position %d", m.Version, m.Name, i+1)
		}
	}
	return migs, nil
}

// DecodeVars decodes the JSON object of a conversation's variables; whole numbers come back
// as int (conversation states hold ints for counters and ticket numbers), and an empty
// object as a nil map.
func DecodeVars(data []byte) (map[string]any, error) {
	switch string(data) {
	case "", "{}", "null":
		return nil, nil
	}
	var vars map[string]any
	if err := json.Unmarshal(data, &vars); err != nil {
		return nil, err
	}
	for k, v := range vars {
		vars[k] = intify(v)
	}
	if len(vars) == 0 {
		return nil, nil
	}
	return vars, nil
}

// intify turns whole JSON numbers back into ints, inside lists and maps too.
func intify(v any) any {
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) && math.Abs(x) <= 1<<53 {
			return int(x)
		}
	case []any:
		for i := range x {
			x[i] = intify(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = intify(x[k])
		}
	}
	return v
}
