// Package bench measures stopline's policy evaluation side by side with
// the engines teams write policies in — OPA (a prepared Rego query),
// cedar-go and raw cel-go — on the same 20 rules and the same step, in one
// `go test -bench` run, and reports each engine's time per step and its
// ratio to stopline's.
//
// It is a module of its own so that OPA, cedar-go and cel-go never enter
// the library's go.mod. Run it from this directory:
//
//	go test -run '^$' -bench . -count 6
package bench
