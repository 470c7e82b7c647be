package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
)

// tenantsFor is the tenant given with --tenant, or every tenant of the
// store when none was.
func tenantsFor(ctx context.Context, st governance.Store, tenant string) ([]string, error) {
	if tenant != "" {
		return []string{tenant}, nil
	}
	return st.Tenants(ctx)
}

// findRun returns a run by id. The store keys runs by tenant; without
// --tenant every tenant is searched, and an id found under two tenants
// asks for --tenant.
func findRun(ctx context.Context, st governance.Store, tenant, runID string) (governance.RunRecord, error) {
	var found []governance.RunRecord
	err := eachTenant(ctx, st, tenant, func(t string) error {
		r, err := st.Run(ctx, t, runID)
		if err == nil {
			found = append(found, r)
		}
		return err
	})
	if err != nil {
		return governance.RunRecord{}, err
	}
	switch len(found) {
	case 0:
		return governance.RunRecord{}, fmt.Errorf("run %s%s: %w", runID, ofTenant(tenant), governance.ErrNotFound)
	case 1:
		return found[0], nil
	}
	return governance.RunRecord{}, fmt.Errorf("run %s exists under tenants %s: choose one with --tenant", runID, tenantList(len(found), func(i int) string { return found[i].TenantID }))
}

// findIncident is findRun for incidents.
func findIncident(ctx context.Context, st governance.Store, tenant, incidentID string) (incident.Incident, error) {
	var found []incident.Incident
	err := eachTenant(ctx, st, tenant, func(t string) error {
		inc, err := st.Incident(ctx, t, incidentID)
		if err == nil {
			found = append(found, inc)
		}
		return err
	})
	if err != nil {
		return incident.Incident{}, err
	}
	switch len(found) {
	case 0:
		return incident.Incident{}, fmt.Errorf("incident %s%s: %w", incidentID, ofTenant(tenant), governance.ErrNotFound)
	case 1:
		return found[0], nil
	}
	return incident.Incident{}, fmt.Errorf("incident %s exists under tenants %s: choose one with --tenant", incidentID, tenantList(len(found), func(i int) string { return found[i].TenantID }))
}

// eachTenant calls fn for each tenant; fn's ErrNotFound is not an error.
func eachTenant(ctx context.Context, st governance.Store, tenant string, fn func(tenant string) error) error {
	tenants, err := tenantsFor(ctx, st, tenant)
	if err != nil {
		return err
	}
	for _, t := range tenants {
		if err := fn(t); err != nil && !errors.Is(err, governance.ErrNotFound) {
			return err
		}
	}
	return nil
}

func ofTenant(tenant string) string {
	if tenant == "" {
		return ""
	}
	return fmt.Sprintf(" of tenant %q", tenant)
}

func tenantList(n int, at func(int) string) string {
	s := make([]string, n)
	for i := range s {
		s[i] = at(i)
	}
	return strings.Join(s, ", ")
}
