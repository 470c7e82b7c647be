package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"

	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/governance"
)

type keygenResult struct {
	PrivateKeyFile string `json:"private_key_file"`
	PublicKeyFile  string `json:"public_key_file"`
	KeyID          string `json:"key_id,omitempty"`   // bundle-signing keys
	KeyName        string `json:"key_name,omitempty"` // checkpoint keys
}

func keygenCmd() *command {
	var prefix, checkpoint string
	return &command{
		name:     "keygen",
		section:  "Evidence and integrity",
		synopsis: "-o PREFIX [--checkpoint NAME] [--json]",
		summary:  "write an ed25519 key pair for signing bundles (or checkpoints)",
		desc: `Writes a new ed25519 key pair: the private key to PREFIX (mode 0600) and the
public key to PREFIX.pub (mode 0644). Existing files are never overwritten.

By default the pair signs exported bundles: PEM files, for stopline export
--sign-key PREFIX and stopline verify-bundle --pubkey PREFIX.pub (the key id,
printed, is on every signature and PDF page).

With --checkpoint NAME the pair signs checkpoints of run chains instead, in the
signed-note format of golang.org/x/mod/sumdb/note, the key named NAME: for
stopline checkpoint --key PREFIX, stopline run --checkpoint-key PREFIX and
stopline verify --checkpoint-key PREFIX.pub. Keep private keys outside the
database.

--json prints {"private_key_file","public_key_file","key_id"} (or "key_name").`,
		examples: []string{
			"stopline keygen -o export.key",
			"stopline keygen -o checkpoint.key --checkpoint stopline-acme-2026",
		},
		maxArgs: 0, json: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&prefix, "o", "", "write the private key to `PREFIX` and the public key to PREFIX.pub (required)")
			fs.StringVar(&checkpoint, "checkpoint", "", "make a checkpoint-signing key named `NAME` instead of a bundle-signing key")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if prefix == "" {
				return usagef("-o PREFIX is required")
			}
			res := keygenResult{PrivateKeyFile: prefix, PublicKeyFile: prefix + ".pub"}
			if checkpoint != "" {
				skey, vkey, err := governance.GenerateCheckpointKey(checkpoint)
				if err != nil {
					return fmt.Errorf("--checkpoint %q: %w", checkpoint, err)
				}
				if err := writeNewFile(res.PublicKeyFile, vkey+"\n", 0o644, ""); err != nil {
					return err
				}
				if err := writeNewFile(res.PrivateKeyFile, skey+"\n", 0o600, res.PublicKeyFile); err != nil {
					return err
				}
				res.KeyName = checkpoint
			} else {
				pub, priv, err := bundle.GenerateKey(nil)
				if err != nil {
					return err
				}
				if err := bundle.WriteKeyFiles(prefix, priv); err != nil {
					return err
				}
				res.KeyID = bundle.KeyID(pub)
			}
			if e.jsonOut {
				return writeJSON(e.stdout, res)
			}
			t := newTable(e.stdout)
			t.row("Private key:", res.PrivateKeyFile+" (keep it secret, outside the database)")
			t.row("Public key:", res.PublicKeyFile)
			if res.KeyID != "" {
				t.row("Key id:", res.KeyID)
			} else {
				t.row("Key name:", res.KeyName)
			}
			return t.flush()
		},
	}
}

// writeNewFile writes a file that must not exist yet. If it fails,
// cleanup (a file written just before, if any) is removed.
func writeNewFile(path, data string, perm os.FileMode, cleanup string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		if cleanup != "" {
			os.Remove(cleanup)
		}
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists; not overwriting it", path)
		}
		return err
	}
	_, err = f.WriteString(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
