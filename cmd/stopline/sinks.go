package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/sink"
)

// webhookSecretEnv names the variable the webhook's secret is read from
// when --webhook-secret-file is not given. The secret is never a flag:
// a command line is seen by every user of the machine (ps, /proc).
const webhookSecretEnv = "STOPLINE_WEBHOOK_SECRET"

// sinkFlags are the flags of run and serve that choose where incidents
// and run ends are delivered.
type sinkFlags struct {
	webhook, secretFile string
	wait                time.Duration // run: how long to wait for the run's deliveries
	bundles             bool          // serve: incidents carry their evidence bundle
}

func (f *sinkFlags) register(fs *flag.FlagSet, run bool) {
	fs.StringVar(&f.webhook, "webhook", "", "deliver incidents and run ends to this `URL` (Standard Webhooks signed; secret from $"+webhookSecretEnv+" or --webhook-secret-file)")
	fs.StringVar(&f.secretFile, "webhook-secret-file", "", "read the webhook's whsec_ secret from `FILE`")
	if run {
		fs.DurationVar(&f.wait, "deliver-wait", 30*time.Second, "wait up to `DURATION` for the run's deliveries before exiting (what is left stays in the outbox)")
	} else {
		fs.BoolVar(&f.bundles, "webhook-bundles", false, "send each incident's evidence bundle (sealed JSON, signed with --sign-key) in its webhook")
	}
}

// sinks returns the sinks the flags name (none without --webhook).
func (f *sinkFlags) sinks(e *env) ([]sink.Sink, error) {
	if f.webhook == "" {
		if f.secretFile != "" || f.bundles {
			return nil, usagef("--webhook-secret-file and --webhook-bundles need --webhook")
		}
		return nil, nil
	}
	secret := e.getenv(webhookSecretEnv)
	if f.secretFile != "" {
		b, err := os.ReadFile(f.secretFile)
		if err != nil {
			return nil, fmt.Errorf("--webhook-secret-file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	if secret == "" {
		return nil, usagef("--webhook needs its secret in $%s or --webhook-secret-file FILE", webhookSecretEnv)
	}
	var opts []sink.WebhookOption
	if f.bundles {
		opts = append(opts, sink.WithBundle())
	}
	hook, err := sink.NewWebhook(f.webhook, secret, opts...)
	if err != nil {
		return nil, fmt.Errorf("--webhook: %w", err)
	}
	return []sink.Sink{hook}, nil
}

// dispatcher runs a sink.Dispatcher over st while a command works, logging
// through the command's logger. stop ends it and waits for it.
type dispatcher struct {
	*sink.Dispatcher
	stop func()
}

// startDispatcher starts delivering the outbox of st to sinks; nil when
// there are none.
func startDispatcher(ctx context.Context, tel *telemetry, st governance.Store, sinks []sink.Sink, opts ...sink.Option) (*dispatcher, error) {
	if len(sinks) == 0 {
		return nil, nil
	}
	d, err := sink.NewDispatcher(st, sinks, append([]sink.Option{sink.WithLogger(tel.log)}, opts...)...)
	if err != nil {
		return nil, err
	}
	c, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.Run(c); err != nil {
			tel.log.Error("outbox: dispatcher", "error", err.Error())
		}
	}()
	tel.log.Debug("outbox: delivering", "sinks", strings.Join(d.Sinks(), ","))
	return &dispatcher{Dispatcher: d, stop: func() { cancel(); <-done }}, nil
}

// awaitRun waits up to wait for the deliveries of one run to leave the
// pending state, and says on stderr what is left.
func (d *dispatcher) awaitRun(ctx context.Context, tel *telemetry, st governance.Store, tenant, runID string, wait time.Duration) {
	ob := st.(governance.OutboxStore) // NewDispatcher checked it
	deadline := time.Now().Add(wait)
	for {
		ds, err := ob.Deliveries(ctx, governance.DeliveryFilter{TenantID: tenant, RunID: runID, State: governance.DeliveryPending})
		if err != nil {
			tel.log.Error("outbox: reading the run's deliveries", "error", err.Error())
			return
		}
		if len(ds) == 0 {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			tel.log.Warn("outbox: deliveries still pending; stopline serve (or a later run) delivers them",
				"run_id", runID, "pending", len(ds), "last_error", ds[0].LastError)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// evidenceBundles builds, with exp, the sealed evidence bundle (JSON) of a
// run, recorded in the export log as handed to the webhook.
func evidenceBundles(exp *export.Exporter) sink.BundleFunc {
	return func(ctx context.Context, tenant, run string) ([]byte, error) {
		a, err := exp.Export(ctx, bundle.TypeEvidence, export.Request{TenantID: tenant, RunID: run,
			ExportedBy: "webhook", Reason: "incident delivered to the webhook"}, export.FormatJSON)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if _, err := a.WriteTo(&buf); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
}

// errNoOutbox is returned by the outbox commands for a store without one.
var errNoOutbox = errors.New("this database keeps no outbox")

// outboxView is one delivery as `stopline outbox list --json` prints it:
// the payload is left out (its events are what `show` and `incidents`
// print).
type outboxView struct {
	TenantID      string     `json:"tenant_id"`
	ID            string     `json:"delivery_id"`
	Sink          string     `json:"sink"`
	Event         string     `json:"event"`
	RunID         string     `json:"run_id"`
	IncidentID    string     `json:"incident_id,omitempty"`
	State         string     `json:"state"`
	Attempts      int        `json:"attempts"`
	CreatedAt     time.Time  `json:"created_at"`
	NextAttemptAt time.Time  `json:"next_attempt_at"`
	LastError     string     `json:"last_error,omitempty"`
	DeliveredAt   *time.Time `json:"delivered_at,omitempty"`
	DeadAt        *time.Time `json:"dead_at,omitempty"`
}

func outboxStore(st governance.Store) (governance.OutboxStore, error) {
	ob, ok := st.(governance.OutboxStore)
	if !ok {
		return nil, errNoOutbox
	}
	return ob, nil
}

func outboxListCmd() *command {
	var tenant, state, run, sinkName string
	var limit int
	return &command{
		name:     "outbox list",
		section:  "Runs",
		synopsis: "[--tenant T] [--state pending|delivered|dead] [--run ID] [--sink NAME] [--limit N] [--json]",
		summary:  "list the deliveries of incidents and run ends to sinks, dead ones included",
		desc: `Lists the outbox: the deliveries of incidents and run ends to sinks (a
webhook), newest first, with their state (pending, delivered, dead), attempts,
next attempt and last error. A delivery is dead after its last attempt; retry
it with stopline outbox retry.

--json prints an array of {"tenant_id","delivery_id","sink","event","run_id",
"incident_id","state","attempts","created_at","next_attempt_at","last_error",
"delivered_at","dead_at"}.`,
		examples: []string{
			"stopline outbox list --state dead",
			"stopline outbox list --run RUN-9d1c2b3a4f5e6d7c --json",
		},
		maxArgs: 0, store: true, json: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&tenant, "tenant", "", "only this tenant (`T`); default: every tenant")
			fs.StringVar(&state, "state", "", "only deliveries in this `STATE`: pending, delivered or dead")
			fs.StringVar(&run, "run", "", "only the deliveries of this run `ID`")
			fs.StringVar(&sinkName, "sink", "", "only the deliveries to this sink `NAME`")
			fs.IntVar(&limit, "limit", 100, "at most `N` deliveries per tenant (0: all)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			switch governance.DeliveryState(state) {
			case "", governance.DeliveryPending, governance.DeliveryDelivered, governance.DeliveryDead:
			default:
				return usagef("--state %q: want pending, delivered or dead", state)
			}
			if limit < 0 {
				return usagef("--limit %d is negative", limit)
			}
			return withStore(ctx, e, true, func(st governance.Store) error {
				ob, err := outboxStore(st)
				if err != nil {
					return err
				}
				tenants, err := tenantsFor(ctx, st, tenant)
				if err != nil {
					return err
				}
				out := []outboxView{}
				for _, t := range tenants {
					ds, err := ob.Deliveries(ctx, governance.DeliveryFilter{TenantID: t, RunID: run, Sink: sinkName,
						State: governance.DeliveryState(state), Limit: limit})
					if err != nil {
						return err
					}
					for _, d := range ds {
						out = append(out, outboxView{TenantID: d.TenantID, ID: d.ID, Sink: d.Sink, Event: d.Event, RunID: d.RunID,
							IncidentID: d.IncidentID, State: string(d.State()), Attempts: d.Attempts, CreatedAt: d.CreatedAt,
							NextAttemptAt: d.NextAttemptAt, LastError: d.LastError, DeliveredAt: d.DeliveredAt, DeadAt: d.DeadAt})
					}
				}
				if e.jsonOut {
					return writeJSON(e.stdout, out)
				}
				if len(out) == 0 {
					fmt.Fprintf(e.stdout, "No deliveries%s.\n", ofTenant(tenant))
					return nil
				}
				t := newTable(e.stdout)
				t.row("TENANT", "DELIVERY", "SINK", "EVENT", "RUN", "STATE", "ATTEMPTS", "CREATED", "LAST ERROR")
				for _, d := range out {
					t.row(d.TenantID, d.ID, d.Sink, d.Event, d.RunID, d.State, fmt.Sprint(d.Attempts), fmtTime(d.CreatedAt), orDash(d.LastError))
				}
				return t.flush()
			})
		},
	}
}

func outboxRetryCmd() *command {
	var tenant string
	return &command{
		name:     "outbox retry",
		section:  "Runs",
		synopsis: "--tenant T DELIVERY...",
		summary:  "make dead deliveries due again",
		desc: `Makes dead deliveries (see stopline outbox list --state dead) due again now,
their attempts kept: a dispatcher (stopline serve --webhook, a program's
sink.Dispatcher) delivers them. A delivery that is not dead is left as it is.`,
		examples: []string{"stopline outbox retry --tenant acme msg_5aa72f481d99d63d132f6f7bc94030c9"},
		minArgs:  1, maxArgs: -1, store: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&tenant, "tenant", "", "the deliveries' tenant `T` (required)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if tenant == "" {
				return usagef("--tenant is required")
			}
			return withStore(ctx, e, true, func(st governance.Store) error {
				ob, err := outboxStore(st)
				if err != nil {
					return err
				}
				now := time.Now().UTC()
				for _, id := range args {
					if err := ob.RetryDelivery(ctx, tenant, id, now); err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "%s: due again\n", id)
				}
				return nil
			})
		},
	}
}
