package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/pdf"
	"github.com/stopline/stopline/governance"
)

// exportResult is what `stopline export --json` prints: the file written
// and the export log entry.
type exportResult struct {
	File string `json:"file"`
	governance.ExportRecord
}

func exportCmds() []*command {
	return []*command{
		exportCmd("evidence", bundle.TypeEvidence, export.FormatJSON,
			"export an incident's evidence bundle: every step, the snapshot and the hash chain",
			`The evidence bundle is what exactly happened in the incident's run, for an
engineer: the run and its incident, the whole policy snapshot it was bound to,
every step with its decision (policy, threshold, limit, observed value),
status, inflection flag and hashes, the run's whole hash chain, and totals.`),
		exportCmd("soc2", bundle.TypeSOC2, export.FormatPDF,
			"export a SOC 2 bundle: the evidence plus the compliance period, population and controls",
			`The SOC 2 bundle is for an auditor: the evidence bundle plus the compliance
period (--from/--to, by default the calendar quarter, UTC, that contains the
incident), every run of the tenant in the period (the population to sample),
the period's incidents, the policy version history, an attestation statement,
and which evidence supports which control (CC7.2, CC7.3, CC7.4, CC8.1).`),
		exportCmd("debrief", bundle.TypeExecutiveDebrief, export.FormatPDF,
			"export an executive debrief: summary, business impact, risk, time to detect, cost",
			`The executive debrief says what the incident means for the business, in plain
words generated from the records: what happened, the business impact, a risk
level by documented rules, the policy violated, when, how long it took to
detect, what it cost, and what to do next.`),
	}
}

func exportCmd(name string, typ bundle.Type, defFormat export.Format, summary, desc string) *command {
	var format, out, signKey, by, reason, tenant, from, to, notes string
	var content bool
	soc2 := typ == bundle.TypeSOC2
	synopsis := "INCIDENT_ID [--format json|pdf] [-o FILE] [--sign-key FILE] [--by NAME] [--reason TEXT]"
	if soc2 {
		synopsis += " [--from TIME --to TIME]"
	}
	examples := []string{
		fmt.Sprintf("stopline export %s INC-9d1c2b3a4f5e6d7c", name),
		fmt.Sprintf("stopline export %s INC-9d1c2b3a4f5e6d7c --format %s --sign-key export.key --by alice --reason \"postmortem\" -o out.%s",
			name, otherFormat(defFormat), otherFormat(defFormat)),
	}
	if soc2 {
		examples = append(examples, "stopline export soc2 INC-9d1c2b3a4f5e6d7c --from 2025-01-01 --to 2025-04-01 -o soc2-q1.pdf")
	}
	return &command{
		name:     "export " + name,
		section:  "Evidence and integrity",
		synopsis: synopsis,
		summary:  summary,
		desc: desc + fmt.Sprintf(`

The store's records are verified first; nothing is exported from records that
do not verify (exit 1). The JSON format is a DSSE envelope {"payload",
"payloadType","signatures"}: the payload is the bundle's canonical JSON (RFC
8785), whose SHA-256 is the bundle hash, of type
application/vnd.stopline.bundle+json; version=1, signed with --sign-key (an
ed25519 key from stopline keygen) when given; stopline verify-bundle checks it
offline, and any DSSE verifier checks its signature. The PDF shows the
bundle's hash on every page. Every export is recorded in the store's export
log.

The file is written to -o FILE (- for stdout), by default to the bundle's own
name in the current directory (%s-INCIDENT-BND-….FORMAT); its name is printed.
Without --format, a FILE ending in .json or .pdf says the format; otherwise
it is %s. A --format that contradicts the file's extension is refused.

--json prints {"file","tenant_id","bundle_id","bundle_type","format",
"bundle_hash","run_id","incident_id","key_id","exported_by","export_reason",
"created_at"}.`, typ, defFormat),
		examples: examples,
		minArgs:  1, maxArgs: 1, store: true, json: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&format, "format", "", fmt.Sprintf("json (the signed DSSE envelope) or pdf (default: from -o's extension, else %s)", defFormat))
			fs.StringVar(&out, "o", "", "write to `FILE` (- for stdout); default: the bundle's file name in the current directory")
			fs.StringVar(&signKey, "sign-key", "", "sign the bundle with this ed25519 private key `FILE` (from stopline keygen)")
			fs.StringVar(&by, "by", "", "who the bundle is exported by or for, part of the bundle (default $USER)")
			fs.StringVar(&reason, "reason", "", "why it is exported, part of the bundle")
			fs.StringVar(&tenant, "tenant", "", "the incident's tenant (`T`); needed only if the id exists under several")
			if typ != bundle.TypeExecutiveDebrief {
				fs.BoolVar(&content, "content", false, "include each step's stored input, output and metadata (may hold personal data)")
			}
			if soc2 {
				fs.StringVar(&from, "from", "", "start of the compliance period, inclusive: RFC 3339 or YYYY-MM-DD (`TIME`, UTC); with --to")
				fs.StringVar(&to, "to", "", "end of the compliance period, exclusive: RFC 3339 or YYYY-MM-DD (`TIME`, UTC); with --from")
				fs.StringVar(&notes, "notes", "", "auditor notes, part of the bundle")
			}
		},
		run: func(ctx context.Context, e *env, args []string) error {
			f, err := exportFormat(format, out, defFormat)
			if err != nil {
				return err
			}
			if out == "-" && e.jsonOut {
				return usagef("-o - writes the bundle to stdout; it cannot be combined with --json")
			}
			req := export.Request{IncidentID: args[0], ExportedBy: by, Reason: reason, IncludeContent: content, AuditorNotes: notes}
			if req.ExportedBy == "" {
				req.ExportedBy = e.getenv("USER")
			}
			if (from == "") != (to == "") {
				return usagef("--from and --to go together")
			}
			if from != "" {
				if req.From, err = parsePeriodTime(from); err != nil {
					return usagef("--from %q: want RFC 3339 or YYYY-MM-DD", from)
				}
				if req.To, err = parsePeriodTime(to); err != nil {
					return usagef("--to %q: want RFC 3339 or YYYY-MM-DD", to)
				}
			}
			var opts []export.Option
			if signKey != "" {
				key, err := bundle.ReadPrivateKeyFile(signKey)
				if err != nil {
					return fmt.Errorf("--sign-key: %w", err)
				}
				opts = append(opts, export.WithSigner(key))
			}
			if f == export.FormatPDF {
				r, err := pdf.New()
				if err != nil {
					return err
				}
				opts = append(opts, export.WithRenderer(r))
			}
			return withStore(ctx, e, true, func(st governance.Store) error {
				inc, err := findIncident(ctx, st, tenant, args[0])
				if err != nil {
					return err
				}
				req.TenantID = inc.TenantID
				exp, err := export.New(st, opts...)
				if err != nil {
					return err
				}
				if e.tty {
					fmt.Fprintf(e.stderr, "building the %s bundle of %s...", typ, inc.ID)
				}
				var (
					path = out
					wr   *export.Written
				)
				if path == "-" {
					wr, err = exp.ExportTo(ctx, e.stdout, typ, req, f)
				} else {
					path, wr, err = exportToFile(ctx, exp, out, typ, req, f)
				}
				if e.tty {
					fmt.Fprint(e.stderr, "\r\033[K")
				}
				if err != nil || out == "-" {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, exportResult{File: path, ExportRecord: wr.Record})
				}
				t := newTable(e.stdout)
				t.row("Wrote:", fmt.Sprintf("%s (%d bytes)", path, wr.Size))
				t.row("Bundle:", fmt.Sprintf("%s (%s, %s)", wr.Record.BundleID, typ, f))
				t.row("Bundle hash:", wr.Record.BundleHash)
				if k := wr.Record.KeyID; k != "" {
					t.row("Signed by:", "key "+k)
				} else {
					t.row("Signed by:", "not signed (give --sign-key FILE)")
				}
				return t.flush()
			})
		},
	}
}

// exportFormat resolves the format of an export: --format if given, else
// the extension of -o, else def. A --format that contradicts the
// extension is a usage error: evidence.pdf holding JSON would mislead
// whoever opens it.
func exportFormat(flag, out string, def export.Format) (export.Format, error) {
	var byExt export.Format
	if out != "" && out != "-" {
		switch strings.ToLower(filepath.Ext(out)) {
		case ".json":
			byExt = export.FormatJSON
		case ".pdf":
			byExt = export.FormatPDF
		}
	}
	if flag == "" {
		if byExt != "" {
			return byExt, nil
		}
		return def, nil
	}
	f, err := export.ParseFormat(flag)
	if err != nil {
		return "", usagef("--format %q: want json or pdf", flag)
	}
	if byExt != "" && byExt != f {
		return "", usagef("--format %s but -o %s names a .%s file: drop --format, or name the file .%s", f, out, byExt, f)
	}
	return f, nil
}

func otherFormat(f export.Format) export.Format {
	if f == export.FormatJSON {
		return export.FormatPDF
	}
	return export.FormatJSON
}

func parsePeriodTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// exportToFile writes an export to path (mode 0644), or, when path is
// empty, to the bundle's own file name in the current directory. It is
// written to a temporary file beside it, renamed once whole: a failed
// export leaves no file, and never a partial one under the final name.
func exportToFile(ctx context.Context, exp *export.Exporter, path string, typ bundle.Type, req export.Request, f export.Format) (string, *export.Written, error) {
	dir := "."
	if path != "" {
		dir = filepath.Dir(path)
	}
	tmp, err := os.CreateTemp(dir, ".stopline-export-*")
	if err != nil {
		return "", nil, err
	}
	wr, err := exp.ExportTo(ctx, tmp, typ, req, f)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if path == "" && err == nil {
		path = filepath.Join(dir, wr.Filename)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", nil, err
	}
	return path, wr, nil
}
