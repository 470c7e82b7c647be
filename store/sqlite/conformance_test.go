package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/store/sqlite"
	"github.com/stopline/stopline/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) governance.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "stopline.db"))
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
