// Package console is stopline's web console: server-rendered HTML pages,
// served from the binary with no build step and no script, for the
// people who watch and answer for governed runs.
//
// Pages: runs with filters; a run with its timeline (an inline SVG:
// steps on a time axis, cost and tokens accumulating toward their
// limits, warnings, the inflection point where a policy stopped it, and
// markers an Extension adds, such as holds), each instant of which links
// to Explain at that instant; incidents, acknowledged and resolved by
// POST forms with a CSRF token; export downloads (evidence, SOC 2,
// executive debrief, through package export); policy versions with a
// diff between two, and a form to publish one (WithPublisher, admins);
// the tenant's API tokens, revocable by admins; and the pages Extensions add (approvals, the kill
// switch). What a page shows depends on the caller's role (package
// access): a viewer reads, an auditor also exports, an operator also
// acts on incidents and extension actions, an admin also publishes
// policy sets and revokes tokens.
//
// Callers sign in with an API token (WithTokens), kept in an HttpOnly,
// SameSite=Strict cookie, or come through an authenticating proxy that
// sets the tenant and role headers (WithTrustedHeaders). Another
// tenant's run or incident is "not found", exactly as one that does not
// exist; every refused request is logged with its reason.
//
//	c, err := console.New(exp, console.WithTokens(auth))
//	mux.Handle("/console/", c)
//
// A Console is safe for concurrent use.
package console
