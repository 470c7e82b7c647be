package mcpgov_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/mcpgov"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/trace"
)

type issueQuery struct {
	Query string `json:"query"`
}

type repoArgs struct {
	Repo string `json:"repo"`
}

// githubServer is an MCP server with a harmless tool and a dangerous one.
func githubServer() *mcp.Server {
	server := mcp.NewServer(&mcp.Implementation{Name: "github", Version: "1"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "search_issues"}, func(_ context.Context, _ *mcp.CallToolRequest, in issueQuery) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "2 issues match " + in.Query}}}, nil, nil
	})
	mcp.AddTool(server, &mcp.Tool{Name: "delete_repo"}, func(_ context.Context, _ *mcp.CallToolRequest, in repoArgs) (*mcp.CallToolResult, any, error) {
		fmt.Println("server: deleting", in.Repo) // never reached
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "deleted"}}}, nil, nil
	})
	return server
}

// printSteps prints what the store holds of a run's steps.
func printSteps(ctx context.Context, store governance.Store, run governance.RunRecord) {
	recs, _ := store.Records(ctx, run.TenantID, run.RunID)
	contents, _ := store.Contents(ctx, run.TenantID, run.RunID)
	for _, r := range recs {
		if r.Kind == trace.KindStep {
			c := contents[r.StepIndex]
			fmt.Println(r.StepIndex, r.StepType, r.Tool, r.Status, c.Input+c.Output)
		}
	}
}

// An agent's MCP client, governed by a policy file that denies a tool:
// the allowed tool runs, its call and result recorded; the denied one
// never reaches the server, and the run stops there.
func Example() {
	ctx := context.Background()
	store := memstore.New()
	runner, _ := governance.NewRunner(store)
	snap, _ := snapshot.Parse("policies.json", []byte(`{"tenant_id":"acme","thresholds":{},
		"policies":[{"id":"tools","kind":"tool_denylist","params":{"deny":["delete_repo"]}}]}`), time.Time{}, runner.Kinds())

	client := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil)
	client.AddSendingMiddleware(mcpgov.ClientMiddleware())

	clientTransport, serverTransport := mcp.NewInMemoryTransports()
	serverSession, _ := githubServer().Connect(ctx, serverTransport, nil)
	defer serverSession.Wait()
	session, _ := client.Connect(ctx, clientTransport, nil)
	defer session.Close()

	rec, err := runner.Run(ctx, governance.StartOptions{Snapshot: snap}, func(ctx context.Context, run *governance.Run) error {
		ctx = governance.ContextWithRun(ctx, run)
		res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "search_issues", Arguments: issueQuery{"flaky test"}})
		if err != nil {
			return err
		}
		fmt.Println(res.Content[0].(*mcp.TextContent).Text)
		_, err = session.CallTool(ctx, &mcp.CallToolParams{Name: "delete_repo", Arguments: repoArgs{"acme/prod"}})
		return err
	})
	var v *governance.Violation
	if errors.As(err, &v) {
		fmt.Println("not sent:", errors.Is(err, mcpgov.ErrNotSent), "- step", v.StepIndex, "blocked by", v.PolicyID())
	}
	fmt.Println(rec.Status, rec.TerminationReason)
	printSteps(ctx, store, rec)
	// Output:
	// 2 issues match flaky test
	// not sent: true - step 2 blocked by tools
	// failed_policy policy_block
	// 0 tool_call search_issues ok {"query":"flaky test"}
	// 1 tool_result search_issues ok 2 issues match flaky test
	// 2 tool_call delete_repo violation {"repo":"acme/prod"}
}

// A server that governs the calls it receives, with a run per session:
// here the run is chosen by the name the client gave when it connected.
// A denied call is answered with a JSON-RPC error, its handler not run.
func ExampleServerMiddleware() {
	ctx := context.Background()
	store := memstore.New()
	runner, _ := governance.NewRunner(store)
	snap, _ := snapshot.Parse("policies.json", []byte(`{"tenant_id":"acme","thresholds":{},
		"policies":[{"id":"tools","kind":"tool_denylist","params":{"deny":["delete_repo"]}}]}`), time.Time{}, runner.Kinds())
	run, _ := runner.Start(ctx, governance.StartOptions{Snapshot: snap, Labels: map[string]string{"client": "triage-bot"}})

	server := githubServer()
	mw, err := mcpgov.ServerMiddleware(func(_ context.Context, ss *mcp.ServerSession, _ *mcp.RequestExtra) (*governance.Run, error) {
		if p := ss.InitializeParams(); p != nil && p.ClientInfo != nil && p.ClientInfo.Name == "triage-bot" {
			return run, nil
		}
		return nil, nil // any other client is refused
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	server.AddReceivingMiddleware(mw)

	clientTransport, serverTransport := mcp.NewInMemoryTransports()
	serverSession, _ := server.Connect(ctx, serverTransport, nil)
	defer serverSession.Wait()
	client := mcp.NewClient(&mcp.Implementation{Name: "triage-bot", Version: "1"}, nil)
	session, _ := client.Connect(ctx, clientTransport, nil)
	defer session.Close()

	res, _ := session.CallTool(ctx, &mcp.CallToolParams{Name: "search_issues", Arguments: issueQuery{"flaky test"}})
	fmt.Println(res.Content[0].(*mcp.TextContent).Text)
	_, err = session.CallTool(ctx, &mcp.CallToolParams{Name: "delete_repo", Arguments: repoArgs{"acme/prod"}})
	var refusal *jsonrpc.Error
	if errors.As(err, &refusal) {
		fmt.Println(refusal.Code == mcpgov.CodeRefused)
	}
	printSteps(ctx, store, run.Record())
	// Output:
	// 2 issues match flaky test
	// true
	// 0 tool_call search_issues ok {"query":"flaky test"}
	// 1 tool_result search_issues ok 2 issues match flaky test
	// 2 tool_call delete_repo violation {"repo":"acme/prod"}
}
