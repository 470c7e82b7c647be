package mcpgov

import (
	"context"
	"fmt"

	"github.com/stopline/stopline/governance"
)

// Option configures ClientMiddleware and ServerMiddleware.
type Option func(*config)

type config struct {
	run         *governance.Run
	passThrough bool
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

// WithRun binds the client middleware to run: every governed request is
// a step of run, whether or not its context carries a run. A request
// whose context carries another run (governance.ContextWithRun) is
// refused unsent, as ambiguous. A nil run binds nothing. ServerMiddleware
// refuses this option: a server resolves the run of each session with
// its RunResolver.
func WithRun(run *governance.Run) Option {
	return func(c *config) { c.run = run }
}

// WithUngovernedPassThrough lets a governed method (tools/call,
// resources/read, prompts/get) go through ungoverned, recording nothing,
// when there is no run for it: on a client, when neither WithRun nor the
// request's context gives one; on a server, when the RunResolver returns
// a nil run and no error. Without it such a request is refused. Use it
// only where requests outside any run are expected and acceptable.
func WithUngovernedPassThrough() Option {
	return func(c *config) { c.passThrough = true }
}

// clientRun returns the run of a client request: the bound one or the
// context's. nil with a nil error means "pass through ungoverned".
func (c *config) clientRun(ctx context.Context) (*governance.Run, error) {
	fromCtx, ok := governance.RunFromContext(ctx)
	switch {
	case c.run != nil && ok && fromCtx != c.run:
		return nil, fmt.Errorf("the context carries run %s, the middleware is bound to run %s", fromCtx.ID(), c.run.ID())
	case c.run != nil:
		return c.run, nil
	case ok:
		return fromCtx, nil
	case c.passThrough:
		return nil, nil
	}
	return nil, governance.ErrNoRun
}
