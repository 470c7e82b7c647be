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

func TestTamper(t *testing.T) {
	storetest.RunTamper(t, func(t *testing.T) (governance.Store, storetest.Tamper) {
		s := memstore.New()
		return s, memstore.Tamper{S: s}
	})
}

func TestTenantLogTamper(t *testing.T) {
	storetest.RunTenantLogTamper(t, func(t *testing.T) (governance.Store, storetest.LogTamper) {
		s := memstore.New()
		return s, memstore.Tamper{S: s}
	})
}
