package export_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/stopline/stopline/export"
)

var ctx = context.Background()

// dataOf is the bytes an artifact hands out.
func dataOf(t testing.TB, a *export.Artifact) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := a.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
