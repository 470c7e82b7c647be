package postgres_test

import (
	"context"
	"errors"
	"log"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/store/postgres"
)

// Open creates its own pool; every replica of the application opens the
// same database. These replicas leave the schema to the operator: a
// database that was not migrated for this version is refused, not
// changed.
func ExampleOpen() {
	ctx := context.Background()
	st, err := postgres.Open(ctx, os.Getenv("DATABASE_URL"), postgres.WithMaxConns(16), postgres.WithoutMigrate())
	switch {
	case errors.Is(err, postgres.ErrSchemaOutdated):
		log.Fatalf("run `stopline migrate` on the database first: %v", err)
	case err != nil:
		log.Fatal(err)
	}
	defer st.Close()
	if _, err := governance.NewRunner(st); err != nil {
		log.Fatal(err)
	}
}

// New uses the application's own pool, which Close leaves open.
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	st, err := postgres.New(ctx, pool)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
}

// An operator's migration, run before the replicas, which open the
// database WithoutMigrate, are deployed; it says which versions it
// applied.
func ExampleMigrate() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	if from, to, err := postgres.Migrate(ctx, pool); err != nil {
		log.Fatal(err)
	} else if from != to {
		log.Printf("migrated the schema from version %d to %d", from, to)
	}
	// A replica, later:
	st, err := postgres.New(ctx, pool, postgres.WithoutMigrate())
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
}
