// Package e2e drives stopline's web console in a real browser: headless
// Chromium under chromedp, against the console over a real SQLite file.
// It is a module of its own, so that chromedp never reaches the library's
// users. The tests skip when no Chromium is installed, and fail instead
// when STOPLINE_REQUIRE_BROWSER=1 (as in CI):
//
//	cd e2e && STOPLINE_REQUIRE_BROWSER=1 go test ./...
//
// STOPLINE_WRITE_SCREENSHOT=1 also writes the run page's screenshot to
// ../docs/console.png, the README's picture.
package e2e
