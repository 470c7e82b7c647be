package postgres_test

import (
	"context"
	"log"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/store/postgres"
)

// Open creates its own pool; every replica of the application opens the
// same database.
func ExampleOpen() {
	ctx := context.Background()
	st, err := postgres.Open(ctx, os.Getenv("DATABASE_URL"), postgres.WithMaxConns(16))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	runner, err := governance.NewRunner(st)
	if err != nil {
		log.Fatal(err)
	}
	_ = runner
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
