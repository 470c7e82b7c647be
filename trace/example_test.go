package trace_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/trace"
)

// A chain of three records, sealed one after the other; Verify recomputes
// it and returns its head. An edited record is found, by position.
func ExampleVerify() {
	at := time.Date(2026, 1, 20, 9, 0, 0, 0, time.UTC)
	records := []trace.Record{
		{TenantID: "acme", RunID: "RUN-1", Seq: 0, Kind: trace.KindRunStart, At: at, SnapshotID: "SNAP-000000000001", StepIndex: -1},
		{TenantID: "acme", RunID: "RUN-1", Seq: 1, Kind: trace.KindStep, At: at.Add(time.Second), SnapshotID: "SNAP-000000000001",
			StepIndex: 0, StepType: prevention.StepLLMResponse, Tokens: 120, TotalTokens: 120, Status: trace.StatusOK,
			Decision: &prevention.Decision{Action: prevention.Allow}},
		{TenantID: "acme", RunID: "RUN-1", Seq: 2, Kind: trace.KindRunEnd, At: at.Add(2 * time.Second), SnapshotID: "SNAP-000000000001",
			StepIndex: -1, RunStatus: "succeeded", Reason: prevention.ReasonCompleted, TotalTokens: 120},
	}
	prev := trace.GenesisHash
	for i := range records {
		trace.Seal(&records[i], prev, nil) // sets PrevHash and Hash
		prev = records[i].Hash
	}
	head, err := trace.Verify(records)
	fmt.Println(head == records[2].Hash, err)

	records[1].TotalTokens = 12 // an edit, without recomputing the hashes
	_, err = trace.Verify(records)
	var ce *trace.ChainError
	fmt.Println(errors.As(err, &ce), ce.Seq, errors.Is(err, trace.ErrChainBroken))
	// Output:
	// true <nil>
	// true 1 true
}
