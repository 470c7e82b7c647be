package mcpgov_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/faultstore"
	"github.com/stopline/stopline/mcpgov"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

// faultRun starts a run on a store whose n-th step write fails.
func faultRun(t *testing.T, n int) *governance.Run {
	t.Helper()
	fs := faultstore.New(memstore.New(), faultstore.Fault{})
	r, err := governance.NewRunner(fs)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.Parse("policies.json", []byte(policies), time.Now(), r.Kinds())
	if err != nil {
		t.Fatal(err)
	}
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	fs.SetFault(faultstore.Fault{N: n, Mode: faultstore.Transient, Methods: []string{"AppendStep"}})
	return run
}

// TestClientStoreFailure: a call whose tool_call step cannot be recorded
// is not sent; a result whose tool_result step cannot be recorded is not
// returned.
func TestClientStoreFailure(t *testing.T) {
	s := newServer(t)
	cs := connect(t, s.Server, "agent", mcpgov.ClientMiddleware())

	run := faultRun(t, 1)
	_, err := cs.CallTool(governance.ContextWithRun(ctx, run), &mcp.CallToolParams{Name: "weather", Arguments: cityArgs{"Lyon"}})
	if !errors.Is(err, governance.ErrRecordFailed) || !errors.Is(err, mcpgov.ErrNotSent) || s.received() != 0 {
		t.Fatalf("call not recorded: %v; the server received %d", err, s.received())
	}

	run = faultRun(t, 2)
	res, err := cs.CallTool(governance.ContextWithRun(ctx, run), &mcp.CallToolParams{Name: "weather", Arguments: cityArgs{"Lyon"}})
	if !errors.Is(err, governance.ErrRecordFailed) || errors.Is(err, mcpgov.ErrNotSent) || res != nil || s.count("weather") != 1 {
		t.Fatalf("result not recorded: %+v %v", res, err)
	}
	if !run.Ended() {
		t.Error("the run goes on after a step it could not record")
	}
}

// TestServerStoreFailure: the same on a server: the handler does not
// run, or its result is not sent.
func TestServerStoreFailure(t *testing.T) {
	s := newServer(t)
	var run atomic.Pointer[governance.Run]
	mw, _ := mcpgov.ServerMiddleware(func(context.Context, *mcp.ServerSession, *mcp.RequestExtra) (*governance.Run, error) {
		return run.Load(), nil
	})
	s.AddReceivingMiddleware(mw)
	cs := connect(t, s.Server, "agent")

	run.Store(faultRun(t, 1))
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "weather", Arguments: cityArgs{"Lyon"}}); wireCode(err) != mcpgov.CodeRefused || s.count("weather") != 0 {
		t.Fatalf("call not recorded: %v", err)
	}
	run.Store(faultRun(t, 2))
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "weather", Arguments: cityArgs{"Lyon"}}); wireCode(err) != mcpgov.CodeRefused || res != nil || s.count("weather") != 1 {
		t.Fatalf("result not recorded: %+v %v", res, err)
	}
}
