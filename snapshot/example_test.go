package snapshot_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

// The same policy set has the same id whatever the order of its keys or
// the spelling of its numbers; a bad file is refused with the file, the
// policy and the field.
func ExampleParse() {
	kinds := prevention.Builtin() // or the runner's: runner.Kinds()
	a, _ := snapshot.Parse("a.json", []byte(`{"tenant_id":"acme","thresholds":{"max_steps":40},
		"policies":[{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}}]}`), time.Now(), kinds)
	b, _ := snapshot.Parse("b.json", []byte(`{"policies":[{"params":{"threshold":"max_steps","metric":"steps"},
		"kind":"budget","id":"steps"}],"thresholds":{"max_steps":4e1},"tenant_id":"acme"}`), time.Now(), kinds)
	fmt.Println(a.ID() == b.ID(), len(a.ID()))

	_, err := snapshot.Parse("c.json", []byte(`{"tenant_id":"acme","thresholds":{},
		"policies":[{"id":"no-ssn","kind":"content","params":{"patterns":["(\\d{3}"]}}]}`), time.Now(), kinds)
	var ve *snapshot.ValidationError
	fmt.Println(errors.As(err, &ve), ve.File, ve.PolicyID, ve.Field)

	_, err = snapshot.Parse("d.json", []byte(`{"tenant_id":"acme","thresholds":{},
		"policies":[{"id":"t","kind":"tool_denylist","enforcement":"block","Enforcement":"monitor","params":{"deny":["shell"]}}]}`), time.Now(), kinds)
	fmt.Println(err)
	// Output:
	// true 17
	// true c.json no-ssn params.patterns[0]
	// d.json: policy "t" (#0): Enforcement: duplicated key: "enforcement" and "Enforcement"
}

// Canonical JSON (RFC 8785): keys sorted, no white space, one spelling
// per number and string.
func ExampleCanonical() {
	c, _ := snapshot.Canonical([]byte(`{ "b": [1.50, 1e21, 0.000001], "a": "\u00e9\n" }`))
	fmt.Println(string(c))
	// Output:
	// {"a":"é\n","b":[1.5,1e+21,0.000001]}
}
