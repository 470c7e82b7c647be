package bundle_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"testing"

	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/snapshot"
)

var ctx = context.Background()

// sentinels are every verification sentinel; a failure is described by
// the set of those it matches.
var sentinels = []struct {
	name string
	err  error
}{
	{"ErrMalformed", bundle.ErrMalformed}, {"ErrTrailingData", bundle.ErrTrailingData}, {"ErrAmbiguous", bundle.ErrAmbiguous},
	{"ErrSignature", bundle.ErrSignature}, {"ErrUnsigned", bundle.ErrUnsigned}, {"ErrKeyMismatch", bundle.ErrKeyMismatch},
	{"ErrSnapshot", bundle.ErrSnapshot},
	{"ErrChain", bundle.ErrChain}, {"ErrRecordChanged", bundle.ErrRecordChanged}, {"ErrRecordMissing", bundle.ErrRecordMissing},
	{"ErrRecordsReordered", bundle.ErrRecordsReordered},
	{"ErrStepMismatch", bundle.ErrStepMismatch}, {"ErrContent", bundle.ErrContent}, {"ErrInconsistent", bundle.ErrInconsistent},
	{"ErrCheckpoint", bundle.ErrCheckpoint},
}

func matched(err error) []string {
	var out []string
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			out = append(out, s.name)
		}
	}
	return out
}

// env is a DSSE envelope whose payload, the bundle, is decoded as
// generic JSON, for tampering.
type env struct {
	top map[string]any // the envelope
	b   map[string]any // the payload
}

func decodeJSON(t testing.TB, data []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		t.Fatal(err)
	}
}

func decodeEnv(t testing.TB, data []byte) *env {
	t.Helper()
	e := &env{}
	decodeJSON(t, data, &e.top)
	decodeJSON(t, e.payload(t), &e.b)
	return e
}

func (e *env) payload(t testing.TB) []byte {
	t.Helper()
	p, err := base64.StdEncoding.DecodeString(e.top["payload"].(string))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (e *env) bundle() map[string]any { return e.b }

func (e *env) list(key string) []any { return e.b[key].([]any) }

func (e *env) item(key string, i int) map[string]any { return e.list(key)[i].(map[string]any) }

func (e *env) record(i int) map[string]any { return e.item("chain", i)["record"].(map[string]any) }

// encode writes the (changed) bundle back as the payload, in canonical
// JSON, as anyone can; the signatures are left as they are.
func (e *env) encode(t testing.TB) {
	t.Helper()
	raw, err := json.Marshal(e.b)
	if err != nil {
		t.Fatal(err)
	}
	canon, err := snapshot.Canonical(raw)
	if err != nil {
		t.Fatal(err)
	}
	e.setPayload(canon)
}

func (e *env) setPayload(p []byte) { e.top["payload"] = base64.StdEncoding.EncodeToString(p) }

// resign signs the payload as it is with keys, replacing the signatures,
// as the key's holder (or a thief of the key) can.
func (e *env) resign(t testing.TB, keys ...ed25519.PrivateKey) {
	t.Helper()
	sigs := []any{}
	for _, k := range keys {
		sig := ed25519.Sign(k, pae(e.top["payloadType"].(string), e.payload(t)))
		sigs = append(sigs, map[string]any{"keyid": bundle.KeyID(k.Public().(ed25519.PublicKey)), "sig": base64.StdEncoding.EncodeToString(sig)})
	}
	e.top["signatures"] = sigs
}

func (e *env) bytes(t testing.TB) []byte {
	t.Helper()
	b, err := json.Marshal(e.top)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pae is DSSE's pre-authentication encoding, written here from the
// specification: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body.
func pae(payloadType string, payload []byte) []byte {
	return append([]byte("DSSEv1 "+strconv.Itoa(len(payloadType))+" "+payloadType+" "+strconv.Itoa(len(payload))+" "), payload...)
}

// exportJSON exports a bundle as JSON with exp, and returns its bytes
// and the artifact.
func exportJSON(t testing.TB, exp *export.Exporter, typ bundle.Type, req export.Request) ([]byte, *export.Artifact) {
	t.Helper()
	a, err := exp.Export(ctx, typ, req, export.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := a.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), a
}

// inc1 asks for the bundles of INC-0001, acme's run stopped by its tool
// allowlist.
func inc1(by string) export.Request {
	return export.Request{TenantID: "acme", IncidentID: "INC-0001", ExportedBy: by}
}
