package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/export/bundle"
)

// bundleResult is what `stopline verify-bundle --json` prints.
type bundleResult struct {
	OK         bool   `json:"ok"`
	File       string `json:"file"`
	BundleID   string `json:"bundle_id,omitempty"`
	BundleType string `json:"bundle_type,omitempty"`
	BundleHash string `json:"bundle_hash,omitempty"`
	Signed     bool   `json:"signature_verified"`
	// HashMatched is set with --hash: the bundle hash is the one given.
	HashMatched *bool     `json:"hash_matched,omitempty"`
	KeyID       string    `json:"key_id,omitempty"`
	TenantID    string    `json:"tenant_id,omitempty"`
	RunID       string    `json:"run_id,omitempty"`
	IncidentID  string    `json:"incident_id,omitempty"`
	Checkpoint  *bundleCP `json:"checkpoint,omitempty"`
	Failures    []string  `json:"failures"`
}

// bundleCP is the carried checkpoint, as verify-bundle --checkpoint-key
// found it.
type bundleCP struct {
	Verified bool   `json:"verified"`
	Size     int    `json:"size"`
	Head     string `json:"head_hash"`
	KeyName  string `json:"key_name"`
}

func verifyBundleCmd() *command {
	var pubkey, cpKey, wantHash string
	return &command{
		name:     "verify-bundle",
		section:  "Evidence and integrity",
		synopsis: "FILE [--pubkey FILE] [--hash HEX] [--checkpoint-key FILE] [--json]",
		summary:  "verify an exported JSON bundle offline, without the database",
		desc: `Verifies a JSON bundle written by stopline export (or the HTTP API) without any
database: the DSSE envelope and its payload (JSON that every reader reads the
same way: no key twice, no key in another case, valid UTF-8; the payload
exactly the canonical JSON of the bundle it holds), the signature by --pubkey
(ed25519 over DSSE's PAE of the payload type and payload), the policy snapshot
against its hash, the hash chain recomputed record by record, every step
against its chain record, included content against its hash, the bundle's
facts against the chain, and the checkpoint it carries, if any: a well-formed
checkpoint of this tenant, run and chain. The bundle hash is the payload's
SHA-256; --hash requires it to be the one given (from a PDF's footer, the
export log or the X-Stopline-Bundle-Hash header), which proves an unsigned
bundle is the one that was issued.

With --checkpoint-key PUB (the .pub of stopline keygen --checkpoint), the
carried checkpoint must also be signed by that key: this proves the chain in
the bundle is the one the checkpoint key signed, even if the database it was
exported from was rewritten. A bundle without a checkpoint then fails.

Without --pubkey every check but the signature is made: that proves the bundle
is internally sound, not who issued it. Exit 1 when any check fails, with one
line on stderr per failure.

--json prints {"ok","file","bundle_id","bundle_type","bundle_hash",
"signature_verified","hash_matched","key_id","tenant_id","run_id",
"incident_id","checkpoint","failures"}, hash_matched with --hash, checkpoint
{"verified","size","head_hash","key_name"} with --checkpoint-key.`,
		examples: []string{
			"stopline verify-bundle evidence-INC-9d1c2b3a4f5e6d7c-BND-0123456789abcdef.json --pubkey export.key.pub",
			"stopline verify-bundle evidence-INC-9d1c2b3a4f5e6d7c-BND-0123456789abcdef.json --pubkey export.key.pub --checkpoint-key checkpoint.key.pub",
			"stopline verify-bundle evidence-INC-9d1c2b3a4f5e6d7c-BND-0123456789abcdef.json --hash 9b8f6e0c5d4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c",
		},
		minArgs: 1, maxArgs: 1, json: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&pubkey, "pubkey", "", "ed25519 public key `FILE` the bundle must be signed with (from stopline keygen)")
			fs.StringVar(&cpKey, "checkpoint-key", "", "checkpoint verifier key `FILE`: the carried checkpoint must be signed by it")
			fs.StringVar(&wantHash, "hash", "", "the bundle's SHA-256 must be `HEX` (64 hex digits, as the PDF and the export log show it)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if wantHash != "" && (len(wantHash) != 64 || strings.Trim(strings.ToLower(wantHash), "0123456789abcdef") != "") {
				return usagef("--hash %q: want the 64 hex digits of a SHA-256", wantHash)
			}
			var pub ed25519.PublicKey
			if pubkey != "" {
				var err error
				if pub, err = bundle.ReadPublicKeyFile(pubkey); err != nil {
					return fmt.Errorf("--pubkey: %w", err)
				}
			}
			var verifiers note.Verifiers
			if cpKey != "" {
				var err error
				if verifiers, err = readCheckpointVerifier(cpKey); err != nil {
					return err
				}
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var v *bundle.Verified
			if pub != nil {
				v, err = bundle.Verify(data, pub)
			} else {
				v, err = bundle.VerifyUnsigned(data)
			}
			res := bundleResult{OK: err == nil, File: args[0], Failures: []string{}}
			if err != nil {
				var ve *bundle.VerificationError
				if errors.As(err, &ve) {
					for _, f := range ve.Failures {
						res.Failures = append(res.Failures, oneLine(f.Error()))
					}
				} else {
					res.Failures = append(res.Failures, oneLine(err.Error()))
				}
			} else {
				res.BundleID, res.BundleType, res.BundleHash = v.Bundle.ID(), string(v.Bundle.Type()), v.Hash
				res.Signed, res.KeyID = v.KeyID != "", v.KeyID
				h := v.Header()
				res.TenantID, res.RunID, res.IncidentID = h.TenantID, h.RunID, h.IncidentID
				if wantHash != "" {
					matched := strings.EqualFold(v.Hash, wantHash)
					res.HashMatched = &matched
					if !matched {
						res.OK = false
						res.Failures = append(res.Failures, fmt.Sprintf("bundle hash %s, want %s: this is not the bundle that was issued", v.Hash, strings.ToLower(wantHash)))
					}
				}
				if verifiers != nil {
					cp, err := bundle.VerifyCheckpoint(v, verifiers)
					res.Checkpoint = &bundleCP{Verified: err == nil, Size: cp.Size, Head: cp.Head, KeyName: cp.KeyName}
					if err != nil {
						res.OK = false
						res.Failures = append(res.Failures, oneLine("checkpoint: "+err.Error()))
					}
				}
			}
			if e.jsonOut {
				if err := writeJSON(e.stdout, res); err != nil {
					return err
				}
			}
			if !res.OK {
				for _, f := range res.Failures {
					fmt.Fprintf(e.stderr, "stopline verify-bundle: %s: %s\n", args[0], f)
				}
				return errSilent
			}
			if e.jsonOut {
				return nil
			}
			fmt.Fprintf(e.stdout, "%s: verified\n", args[0])
			t := newTable(e.stdout)
			t.row("Bundle:", fmt.Sprintf("%s (%s)", res.BundleID, res.BundleType))
			t.row("Bundle hash:", res.BundleHash)
			if res.Signed {
				t.row("Signature:", "valid, key "+res.KeyID)
			} else if res.HashMatched != nil {
				t.row("Signature:", "not checked (no --pubkey); the bundle hash is the one given")
			} else {
				t.row("Signature:", "not checked (no --pubkey): the bundle is sound, its issuer unproven")
			}
			if cp := res.Checkpoint; cp != nil {
				t.row("Checkpoint:", fmt.Sprintf("valid, key %s: %d records, head %s", cp.KeyName, cp.Size, cp.Head))
			}
			t.row("Tenant:", res.TenantID)
			t.row("Run:", res.RunID)
			if res.IncidentID != "" {
				t.row("Incident:", res.IncidentID)
			}
			return t.flush()
		},
	}
}
