package sqlite_test

import (
	"testing"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/store/sqlite"
	"github.com/stopline/stopline/store/storetest"
)

// conformance runs the conformance suite on the Stores open makes, one
// on a new file for each test, closed when the test ends.
func conformance(t *testing.T, open func(t *testing.T, path string) (*sqlite.Store, error)) {
	storetest.Run(t, func(t *testing.T) governance.Store {
		s, err := open(t, dbPath(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
		return s
	})
}

func TestConformance(t *testing.T) {
	conformance(t, func(t *testing.T, path string) (*sqlite.Store, error) { return sqlite.Open(ctx, path) })
}

// TestConformanceNew runs the suite on Stores made by New over the
// application's own *sql.DB.
func TestConformanceNew(t *testing.T) {
	conformance(t, func(t *testing.T, path string) (*sqlite.Store, error) {
		return sqlite.New(ctx, appDB(t, path, goodDSN, 1))
	})
}
