package memstore_test

import (
	"testing"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) governance.Store { return memstore.New() })
}
