package storetest_test

import (
	"testing"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/store/storetest"
)

// A store's author runs the suite from the store's own tests, with a
// function that opens a new, empty store for each test and closes it
// when the test ends (t.Cleanup). Here the store is memstore; a SQL store
// opens a new file or database in the function.
func ExampleRun() {
	testConformance := func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) governance.Store {
			st := memstore.New()
			t.Cleanup(func() { /* close st's connections */ })
			return st
		})
	}
	_ = testConformance // func TestConformance(t *testing.T) in mystore_test.go
}
