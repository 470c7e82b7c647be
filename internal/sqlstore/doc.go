// Package sqlstore is the part of a SQL governance.Store that does not
// depend on the database: validation, the columns each value is stored
// in and read back from, the mapping of constraint violations to the
// governance errors, the statements both dialects spell alike, the
// tenant ledger's calendar windows, and the migrations runner. The
// SQLite store (store/sqlite) and the PostgreSQL store (store/postgres)
// are each a driver adapter, a Dialect and the code only their database
// needs, around one DB.
//
// A store gives a DB three ways to run SQL (Querier): R for reads, W for
// writes of one statement, and Tx for writes of several statements in one
// transaction. SQL is written with numbered placeholders ($1, $2, ...; a
// number may be used twice); a driver that spells them otherwise
// rewrites them in its Querier. What one dialect says otherwise (an
// upsert with casts, LATERAL, an advisory lock) is a field of the
// Dialect.
//
// Every error a DB returns starts with the dialect's name ("sqlite: ...",
// "postgres: ...") and wraps the governance sentinel it stands for, so a
// store's users see its own prefix and match with errors.Is.
//
// A DB holds no state of its own and is safe for concurrent use when its
// Queriers are.
package sqlstore
