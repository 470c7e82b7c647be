package sqlstore

import (
	"strings"
	"testing"
	"testing/fstest"
)

// Migrations are numbered 1, 2, ... without gaps; anything else is
// refused naming the file and the dialect.
func TestMigrationsNumbering(t *testing.T) {
	sql := &fstest.MapFile{Data: []byte("CREATE TABLE t (x INTEGER);")}
	for _, tc := range []struct {
		name  string
		files []string
		want  string // "" for success
	}{
		{"in order", []string{"0001_init.sql", "0002_more.sql"}, ""},
		{"none", nil, ""},
		{"gap", []string{"0001_init.sql", "0003_more.sql"}, "test: migration 0003_more.sql is not number 2"},
		{"from zero", []string{"0000_init.sql"}, "test: migration 0000_init.sql is not number 1"},
		{"no number", []string{"init.sql"}, "test: migration init.sql is not number 1"},
		{"twice", []string{"0001_a.sql", "0001_b.sql"}, "test: migration 0001_b.sql is not number 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for _, f := range tc.files {
				fsys["migrations/"+f] = sql
			}
			ms, err := (&Dialect{Name: "test", Schema: fsys}).Migrations()
			switch {
			case tc.want == "" && (err != nil || len(ms) != len(tc.files)):
				t.Errorf("Migrations: %d, %v; want %d", len(ms), err, len(tc.files))
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
				t.Errorf("Migrations: %v, want an error starting %q", err, tc.want)
			}
			for i, m := range ms {
				if m.Version != i+1 || m.SQL == "" {
					t.Errorf("migration %d: %+v", i, m)
				}
			}
		})
	}
}
