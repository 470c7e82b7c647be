package faultstore_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/faultstore"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

var ctx = context.Background()

func TestMethodListsCoverTheStore(t *testing.T) {
	var all []string
	typ := reflect.TypeFor[governance.Store]()
	for i := range typ.NumMethod() {
		all = append(all, typ.Method(i).Name)
	}
	listed := append(slices.Clone(faultstore.WriteMethods), faultstore.ReadMethods...)
	slices.Sort(all)
	slices.Sort(listed)
	if !slices.Equal(all, listed) {
		t.Errorf("governance.Store methods %v, listed %v", all, listed)
	}
}

func snap(t *testing.T) *snapshot.PolicySnapshot {
	s, err := snapshot.Parse("p.json", []byte(`{"tenant_id":"acme","thresholds":{"m":1},"policies":[{"id":"p","kind":"budget","params":{"metric":"steps","threshold":"m"}}]}`), time.Unix(0, 0), prevention.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestModes(t *testing.T) {
	boom := errors.New("disk full")
	tests := []struct {
		name  string
		fault faultstore.Fault
		// outcome of 4 PutSnapshot calls and one Snapshot read: failed?
		want []bool
	}{
		{"off", faultstore.Fault{}, []bool{false, false, false, false, false}},
		{"transient 2", faultstore.Fault{N: 2, Mode: faultstore.Transient}, []bool{false, true, false, false, false}},
		{"persistent 2", faultstore.Fault{N: 2, Mode: faultstore.Persistent}, []bool{false, true, true, true, true}},
		{"persistent writes 3", faultstore.Fault{N: 3, Mode: faultstore.Persistent, Methods: faultstore.WriteMethods, Err: boom},
			[]bool{false, false, true, true, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := faultstore.New(memstore.New(), tc.fault)
			s := snap(t)
			var got []bool
			for range 4 {
				got = append(got, fs.PutSnapshot(ctx, s) != nil)
			}
			_, err := fs.Snapshot(ctx, "acme", s.ID())
			got = append(got, err != nil && errors.Is(err, faultstore.ErrInjected))
			if !slices.Equal(got, tc.want) {
				t.Errorf("failed calls %v, want %v", got, tc.want)
			}
			if tc.fault.Err != nil {
				if err := fs.PutSnapshot(ctx, s); !errors.Is(err, boom) || !errors.Is(err, faultstore.ErrInjected) {
					t.Errorf("cause not reported: %v", err)
				}
			}
			fs.Heal()
			if err := fs.PutSnapshot(ctx, s); err != nil {
				t.Errorf("after Heal: %v", err)
			}
		})
	}
}

func TestAfterAppliesThenFails(t *testing.T) {
	inner := memstore.New()
	fs := faultstore.New(inner, faultstore.Fault{N: 1, Mode: faultstore.Persistent, After: true})
	s := snap(t)
	err := fs.PutSnapshot(ctx, s)
	var fe *faultstore.FaultError
	if !errors.As(err, &fe) || !fe.Applied || fe.Method != "PutSnapshot" {
		t.Fatalf("got %v, want an applied FaultError", err)
	}
	if _, err := inner.Snapshot(ctx, "acme", s.ID()); err != nil {
		t.Errorf("the call was not applied: %v", err)
	}
	// Only call N goes through; later persistent failures do not.
	if _, err := fs.PublishPolicy(ctx, s, governance.PolicyVersion{}); !errors.As(err, &fe) || fe.Applied {
		t.Errorf("second call: %v", err)
	}
	if vs, _ := inner.PolicyVersions(ctx, "acme"); len(vs) != 0 {
		t.Errorf("a failed call that was not applied reached the store: %v", vs)
	}
	calls := fs.Calls()
	if len(calls) != 2 || !calls[0].Applied || calls[1].Applied || fs.Failures() != 2 {
		t.Errorf("calls %+v", calls)
	}
}
