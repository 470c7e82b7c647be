package console

import (
	"context"
	"html/template"
	"net/url"
	"time"

	"github.com/stopline/stopline/access"
)

// Extension is a section another package adds to the console, such as
// the approvals queue or the kill switch. The console renders its nav
// entry and page inside its own layout, authenticates every request,
// checks the CSRF token of every POST and the extension's permissions,
// and scopes everything to the caller's tenant; the extension only reads
// and acts. Its methods may be called concurrently.
type Extension interface {
	// Section names the extension's page: its path under the console
	// ("approvals": /console/x/approvals), its title, and the permission
	// needed to see it.
	Section() Section
	// Page renders the section's content for the viewer. Forms post to
	// v.ActionURL(name) with v.CSRFField in them.
	Page(ctx context.Context, v Viewer, query url.Values) (template.HTML, error)
	// Act performs the named action the viewer posted (the CSRF token
	// and Section.ActPermission are checked before) and returns a message
	// to show. An error is shown to the viewer.
	Act(ctx context.Context, v Viewer, action string, form url.Values) (string, error)
}

// Section describes an Extension's page.
type Section struct {
	Path  string // one path segment: letters, digits, "-"
	Title string
	// View is the permission needed to see the page, Act the one needed
	// to post an action.
	View, Act access.Permission
}

// Marker is something an Extension shows on a run's timeline (a hold
// while it waited, a kill switch pulled): a labelled instant.
type Marker struct {
	At    time.Time
	Kind  string // "hold", "kill", ...: the marker's CSS class
	Label string
}

// RunMarkers is an optional interface of an Extension: markers for a
// run's timeline.
type RunMarkers interface {
	Markers(ctx context.Context, tenantID, runID string) ([]Marker, error)
}

// Viewer is who looks at a page: their principal, the time, and the CSRF
// field every form must carry.
type Viewer struct {
	access.Principal
	// Actor is who the viewer is recorded as.
	Actor string
	Now   time.Time
	// CSRFField is the hidden input to put in every form.
	CSRFField template.HTML
	base      string
}

// ActionURL is where a form of the extension posts action name.
func (v Viewer) ActionURL(section, name string) string {
	return v.base + "x/" + url.PathEscape(section) + "/" + url.PathEscape(name)
}
