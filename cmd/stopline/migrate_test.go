package main_test

import (
	"database/sql"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3"
)

// migrateOutput is `stopline migrate --json`.
type migrateOutput struct {
	Database string `json:"database"`
	From     int    `json:"from"`
	To       int    `json:"to"`
	Migrated bool   `json:"migrated"`
}

func TestMigrateSQLite(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	out := c.ok("migrate")
	if !strings.HasPrefix(out, "migrated "+c.db+" from schema version 0 to ") {
		t.Errorf("migrate of a new file: %q", out)
	}
	var again migrateOutput
	c.okJSON(&again, "migrate")
	if again.Database != c.db || again.From != again.To || again.From == 0 || again.Migrated {
		t.Errorf("migrate of a current file: %+v", again)
	}
	if out := c.ok("migrate"); !strings.Contains(out, "nothing to do") {
		t.Errorf("migrate of a current file: %q", out)
	}
	// The other commands use the migrated file as it is.
	c.runSteps("budget_steps", "budget_steps")
	c.ok("verify")

	// A file migrated by a newer binary is refused and left alone.
	db, err := sql.Open("sqlite3", c.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (99, 1)`); err != nil {
		t.Fatal(err)
	}
	c.fails(1, []string{"stopline migrate:", "newer than this binary", "99"}, "migrate")
	c.fails(1, []string{"newer than this binary"}, "runs")
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM schema_migrations WHERE version > ?`, again.To).Scan(&n); err != nil || n != 1 {
		t.Errorf("schema_migrations after the refusal: %d rows past %d, %v", n, again.To, err)
	}
}

func TestMigratePostgres(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.db = postgresDatabase(t, "stopline_cli_migrate_")
	var first, again migrateOutput
	c.okJSON(&first, "migrate")
	if first.From != 0 || first.To == 0 || !first.Migrated || !strings.Contains(first.Database, "stopline_cli_migrate_") {
		t.Errorf("migrate of a new database: %+v", first)
	}
	c.okJSON(&again, "migrate")
	if again.From != first.To || again.To != first.To || again.Migrated {
		t.Errorf("migrate of a current database: %+v", again)
	}
	c.runSteps("budget_steps", "budget_steps")
}
