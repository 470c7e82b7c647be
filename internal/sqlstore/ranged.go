package sqlstore

import (
	"context"
	"fmt"
	"strconv"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/trace"
)

// ReadRecords returns the records of a run with seq in [r.From, r.To) (to
// the end when r.To <= 0), in seq order, each decoded from its stored body
// with its stored prev_hash and hash, with the columns beside it and its
// body (as RecordIndexes) when r.Index, and its content (as Contents) when
// r.Content: one query over the records' primary key. An unknown run is
// governance.ErrNotFound.
func (db *DB) ReadRecords(ctx context.Context, tenantID, runID string, rr governance.RecordRange) ([]governance.StoredRecord, error) {
	q := `SELECT seq, body, prev_hash, hash`
	if rr.Index {
		q += `, kind, step_index, at_ns, status, inflection, policy_id, total_tokens, total_cost_cents`
	}
	if rr.Content {
		q += `, content`
	}
	q += ` FROM records WHERE tenant_id = $1 AND run_id = $2 AND seq >= $3`
	args := []any{tenantID, runID, int64(max(rr.From, 0))}
	n := 0
	if rr.To > 0 {
		q += ` AND seq < $4`
		args = append(args, int64(rr.To))
		n = max(rr.To-rr.From, 0)
	}
	q += ` ORDER BY seq`
	out := make([]governance.StoredRecord, 0, min(n, 1<<16))
	var (
		dec            trace.Decoder
		seq            int
		body           []byte
		prevHash, hash string
		kind           string
		at             *int64
		status, policy *string
		content        *string
		x              governance.RecordIndex
	)
	dest := []any{&seq, &body, &prevHash, &hash}
	if rr.Index {
		dest = append(dest, &kind, &x.StepIndex, &at, &status, &x.Inflection, &policy, &x.TotalTokens, &x.TotalCostCents)
	}
	if rr.Content {
		dest = append(dest, &content)
	}
	rows, err := db.R.Query(ctx, q, args...)
	err = each(rows, err, func(row Row) error {
		body, content = nil, nil
		if err := row.Scan(dest...); err != nil {
			return err
		}
		r, err := dec.Decode(body, prevHash, hash)
		if err != nil {
			return fmt.Errorf("record at seq %d: %w", seq, err)
		}
		sr := governance.StoredRecord{Record: r}
		if rr.Index {
			sr.Index = governance.RecordIndex{Seq: seq, Kind: trace.Kind(kind), StepIndex: x.StepIndex, At: TimeOf(at),
				Status: trace.Status(deref(status)), Inflection: x.Inflection, PolicyID: deref(policy),
				TotalTokens: x.TotalTokens, TotalCostCents: x.TotalCostCents, Body: body}
		}
		if content != nil {
			c, err := trace.DecodeContent([]byte(*content))
			if err != nil {
				return fmt.Errorf("content of the record at seq %d: %w", seq, err)
			}
			sr.Content = &c
		}
		out = append(out, sr)
		return nil
	})
	if err != nil {
		return nil, db.errorf("reading records %d to %s of run %s (tenant %s): %w", rr.From, endText(rr.To), runID, tenantID, err)
	}
	if len(out) == 0 {
		if err := db.RunExists(ctx, tenantID, runID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func endText(to int) string {
	if to <= 0 {
		return "the end"
	}
	return strconv.Itoa(to)
}

// ContentCount returns how many step contents are stored for a run. An
// unknown run is governance.ErrNotFound.
func (db *DB) ContentCount(ctx context.Context, tenantID, runID string) (int, error) {
	if err := db.RunExists(ctx, tenantID, runID); err != nil {
		return 0, err
	}
	var n int64
	if err := db.R.QueryRow(ctx, `SELECT count(*) FROM records WHERE tenant_id = $1 AND run_id = $2 AND content IS NOT NULL`,
		tenantID, runID).Scan(&n); err != nil {
		return 0, db.errorf("counting the contents of run %s (tenant %s): %w", runID, tenantID, err)
	}
	return int(n), nil
}
