// Package sqlstoretest holds what the tests of the SQL stores
// (store/sqlite, store/postgres) share beyond store/storetest: the schema
// suite every store built on internal/sqlstore passes (RunSchema), and
// the benchmarks' fixtures.
package sqlstoretest
