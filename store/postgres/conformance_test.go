package postgres_test

import (
	"testing"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/store/postgres"
	"github.com/stopline/stopline/store/storetest"
)

// TestConformance runs the conformance suite, each test on a database of
// its own.
func TestConformance(t *testing.T) {
	serverURL(t)
	t.Parallel()
	storetest.Run(t, func(t *testing.T) governance.Store {
		s, err := postgres.Open(ctx, newDatabase(t), postgres.WithMaxConns(8))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
