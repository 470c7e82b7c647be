package sqlstoretest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stopline/stopline/governance"
)

// ErrorsNameTheStore checks that errors of the shared SQL layer reach the
// store's users starting with the store's name ("sqlite: ...") and
// matching the governance sentinels.
func ErrorsNameTheStore(t *testing.T, st governance.Store, name string) {
	ctx := context.Background()
	_, errRun := st.Run(ctx, "acme", "RUN-x")
	_, errInc := st.Incident(ctx, "acme", "INC-x")
	_, errRecs := st.Records(ctx, "acme", "RUN-x")
	errExp := st.RecordExport(ctx, governance.ExportRecord{TenantID: "acme"})
	for _, err := range []error{errRun, errInc, errRecs, errExp} {
		if err == nil || !strings.HasPrefix(err.Error(), name+": ") {
			t.Errorf("%v: want an error starting %s:", err, name)
		}
	}
	for _, err := range []error{errRun, errInc, errRecs} {
		if !errors.Is(err, governance.ErrNotFound) {
			t.Errorf("%v: want governance.ErrNotFound", err)
		}
	}
}
