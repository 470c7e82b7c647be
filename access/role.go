package access

import (
	"errors"
	"fmt"
)

// Role is what a token may do. The zero value is no role: it allows
// nothing, and is never stored.
type Role uint8

// The roles, each allowing what the one before it allows.
const (
	// Viewer reads runs, incidents, explanations and policy versions.
	Viewer Role = iota + 1
	// Auditor also exports bundles.
	Auditor
	// Operator also acknowledges and resolves incidents, answers
	// approvals and pulls the kill switch.
	Operator
	// Admin also manages tokens and publishes policies.
	Admin
)

// ErrUnknownRole is matched when a role name is not one of viewer,
// auditor, operator, admin.
var ErrUnknownRole = errors.New("access: unknown role")

var roleNames = [...]string{Viewer: "viewer", Auditor: "auditor", Operator: "operator", Admin: "admin"}

// String returns the role's name ("viewer", ...), or "none" for the zero
// value and "Role(N)" for an unknown one.
func (r Role) String() string {
	switch {
	case r == 0:
		return "none"
	case int(r) < len(roleNames):
		return roleNames[r]
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// Valid reports whether r is one of the four roles.
func (r Role) Valid() bool { return r >= Viewer && r <= Admin }

// ParseRole returns the role named s, or an error matching ErrUnknownRole.
func ParseRole(s string) (Role, error) {
	for r, n := range roleNames {
		if n != "" && n == s {
			return Role(r), nil
		}
	}
	return 0, fmt.Errorf("%w %q: want viewer, auditor, operator or admin", ErrUnknownRole, s)
}

// MarshalText returns the role's name; an invalid role is an error.
func (r Role) MarshalText() ([]byte, error) {
	if !r.Valid() {
		return nil, fmt.Errorf("%w: %d", ErrUnknownRole, uint8(r))
	}
	return []byte(r.String()), nil
}

// UnmarshalText reads a role's name; anything else is an error.
func (r *Role) UnmarshalText(b []byte) error {
	v, err := ParseRole(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// Permission is one thing a request may ask to do.
type Permission uint8

// The permissions, in the order the roles gain them.
const (
	// Read: runs, incidents, explanations, policy versions.
	Read Permission = iota + 1
	// Export: evidence, SOC 2 and executive-debrief bundles.
	Export
	// Operate: acknowledge and resolve incidents, answer approvals, pull
	// and release the kill switch.
	Operate
	// Administer: create and revoke tokens, publish policies.
	Administer
)

var permNames = [...]string{Read: "read", Export: "export", Operate: "operate", Administer: "administer"}

// String returns the permission's name.
func (p Permission) String() string {
	if p > 0 && int(p) < len(permNames) {
		return permNames[p]
	}
	return fmt.Sprintf("Permission(%d)", uint8(p))
}

// Valid reports whether p is one of the four permissions.
func (p Permission) Valid() bool { return p >= Read && p <= Administer }

// Allows reports whether the role allows p. An invalid role or
// permission allows nothing.
func (r Role) Allows(p Permission) bool {
	return r.Valid() && p >= Read && p <= Administer && uint8(p) <= uint8(r)
}
