package sqlstoretest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
)

// Schema is one fresh, empty database of a SQL store, and what the schema
// suite does with it.
type Schema struct {
	// Latest is the number of migrations the store embeds.
	Latest int
	// Where is what the store's schema errors name the database by (its
	// file, its database name).
	Where string
	// ErrTooNew and ErrOutdated are the store's sentinels.
	ErrTooNew, ErrOutdated error
	// Open opens a Store on the database: with migrate false, with
	// WithoutMigrate. It is called from several goroutines at once.
	Open func(ctx context.Context, migrate bool) (io.Closer, error)
	// Migrate is the store's Migrate on the database.
	Migrate func(ctx context.Context) (from, to int, err error)
	// Exec runs a statement on the database, bypassing the store; Query
	// reads one row.
	Exec  func(t *testing.T, sql string)
	Query func(t *testing.T, sql string, dest ...any)
}

// SchemaOpener returns a Schema over a new, empty database for one test,
// and cleans up after it.
type SchemaOpener func(t *testing.T) Schema

// RunSchema checks a store's migrations runner: Open migrates an empty
// database and records each version once; WithoutMigrate refuses a
// database that is not current with ErrOutdated naming both versions;
// Migrate reports what it did; Opens and Migrates at once apply each
// migration once; a newer schema is refused a newer schema without writing to it.
func RunSchema(t *testing.T, open SchemaOpener) {
	ctx := context.Background()
	// versions checks that schema_migrations records 1..want once each.
	versions := func(t *testing.T, s Schema, want int) {
		t.Helper()
		var n, lo, hi, distinct int
		var at int64
		s.Query(t, `SELECT COUNT(*), COUNT(DISTINCT version), COALESCE(MIN(version), 0), COALESCE(MAX(version), 0),
			COALESCE(MIN(applied_at), 0) FROM schema_migrations`, &n, &distinct, &lo, &hi, &at)
		if n != want || distinct != want || lo != min(1, want) || hi != want || (want > 0 && at <= 0) {
			t.Errorf("schema_migrations: %d rows, %d versions %d..%d, first applied at %d; want versions 1..%d", n, distinct, lo, hi, at, want)
		}
	}
	mentions := func(t *testing.T, err error, words ...string) {
		t.Helper()
		for _, w := range words {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not name %q", err, w)
			}
		}
	}
	migrate := func(t *testing.T, s Schema, wantFrom, wantTo int) {
		t.Helper()
		from, to, err := s.Migrate(ctx)
		if err != nil || from != wantFrom || to != wantTo {
			t.Errorf("Migrate: %d → %d, %v; want %d → %d", from, to, err, wantFrom, wantTo)
		}
	}

	t.Run("OpenMigrates", func(t *testing.T) {
		s := open(t)
		st, err := s.Open(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		versions(t, s, s.Latest)
		migrate(t, s, s.Latest, s.Latest)
	})
	t.Run("WithoutMigrateRefusesOutdated", func(t *testing.T) {
		s := open(t)
		_, err := s.Open(ctx, false)
		if !errors.Is(err, s.ErrOutdated) {
			t.Fatalf("Open WithoutMigrate of an empty database: %v, want ErrSchemaOutdated", err)
		}
		mentions(t, err, "version 0", fmt.Sprintf("version %d", s.Latest), s.Where)
		migrate(t, s, 0, s.Latest) // from 0: the refused Open applied nothing
		versions(t, s, s.Latest)
		st, err := s.Open(ctx, false)
		if err != nil {
			t.Fatalf("Open WithoutMigrate after Migrate: %v", err)
		}
		st.Close()
		migrate(t, s, s.Latest, s.Latest)
	})
	t.Run("ConcurrentMigrate", func(t *testing.T) {
		s := open(t)
		var wg sync.WaitGroup
		errs := make([]error, 6)
		for i := range errs {
			wg.Go(func() {
				var to int
				if _, to, errs[i] = s.Migrate(ctx); errs[i] == nil && to != s.Latest {
					errs[i] = fmt.Errorf("left version %d", to)
				}
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("Migrate %d: %v", i, err)
			}
		}
		versions(t, s, s.Latest)
	})
	t.Run("ConcurrentOpen", func(t *testing.T) {
		s := open(t)
		var wg sync.WaitGroup
		stores := make([]io.Closer, 8)
		errs := make([]error, len(stores))
		for i := range stores {
			wg.Go(func() { stores[i], errs[i] = s.Open(ctx, true) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("Open %d: %v", i, err)
				continue
			}
			stores[i].Close()
		}
		versions(t, s, s.Latest)
	})
	t.Run("RefusesNewer", func(t *testing.T) {
		s := open(t)
		migrate(t, s, 0, s.Latest)
		s.Exec(t, `INSERT INTO schema_migrations (version, applied_at) VALUES (99, 1)`)
		for _, m := range []bool{true, false} {
			_, err := s.Open(ctx, m)
			if !errors.Is(err, s.ErrTooNew) {
				t.Fatalf("Open (migrate %v) of a newer schema: %v, want ErrSchemaTooNew", m, err)
			}
			mentions(t, err, "99", fmt.Sprintf("up to %d", s.Latest), s.Where)
		}
		if from, to, err := s.Migrate(ctx); !errors.Is(err, s.ErrTooNew) || from != 99 || to != 99 {
			t.Errorf("Migrate of a newer schema: %d → %d, %v; want 99 → 99, ErrSchemaTooNew", from, to, err)
		}
		var n int
		s.Query(t, `SELECT COUNT(*) FROM schema_migrations`, &n)
		if n != s.Latest+1 {
			t.Errorf("%d rows in schema_migrations after refusing, want %d", n, s.Latest+1)
		}
	})
}
