package main

import (
	"github.com/stopline/stopline/kinds/cel"
	"github.com/stopline/stopline/prevention"
)

// commandKinds are the policy kinds the command loads and runs: the
// built-in kinds and CEL expressions.
var commandKinds = func() *prevention.Kinds {
	k, err := prevention.NewKinds(cel.Kind())
	if err != nil {
		panic(err)
	}
	return k
}()
