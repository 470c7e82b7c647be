package postgres

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Hooks for the black-box tests.

// MigrateTo applies the embedded migrations up to version v only.
func MigrateTo(ctx context.Context, pool *pgxpool.Pool, v int) error {
	_, _, err := migrateTo(ctx, pool, v)
	return err
}

// LatestVersion is the number of embedded migrations.
func LatestVersion() int {
	ms, err := dialect.Migrations()
	if err != nil {
		panic(err)
	}
	return len(ms)
}

// Unmigrated returns a Store over pool without touching its schema.
func Unmigrated(pool *pgxpool.Pool) *Store { return build(pool, false) }
