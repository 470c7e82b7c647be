// Package tenantlog is the tenant-wide transparency log: per tenant, a
// Merkle tree (RFC 6962, built with golang.org/x/mod/sumdb/tlog) of every
// run's final chain head and every checkpoint, appended by the store in
// the transaction that ends the run or stores the checkpoint (see
// governance.TenantLogStore, which store/sqlite, store/postgres and
// store/memstore implement). A tree head signed with a key held outside
// the database (SignHead, `stopline log head`) commits to every run the
// log held then: Verify (`stopline verify --log-head`) later proves that
// each of them is still in the store, unchanged, and that the log only
// grew since. A run deleted with its checkpoints, or a log rewritten
// without it, fails.
//
// # Leaves
//
// A leaf's hash is tlog.RecordHash(encoding) = SHA-256(0x00 || encoding),
// interior nodes SHA-256(0x01 || left || right). The encoding is text,
// one field per line, each line ending in "\n":
//
//	stopline/tenant-log-leaf/v1      (LeafOrigin: domain separation)
//	<tenant id, url.PathEscape>
//	<run id, url.PathEscape>
//	run_end | checkpoint
//	<seq: the seq of the record whose hash is the head, decimal>
//	<head hash: 64 lower-case hex digits>
//	<key name, url.PathEscape>       (checkpoint only)
//	<hex SHA-256 of the signed note> (checkpoint only)
//
// A run_end leaf is appended by CloseRun (seq = the run_end record's, head
// = the run's final head); a checkpoint leaf by PutCheckpoint (seq =
// size-1, head = the checkpoint's head, the key that signed it and the
// note's hash). A leaf's position is its index in the tree, not part of
// its encoding. EncodeLeaf writes it.
//
// # Tree heads
//
// A tree head is a signed note (golang.org/x/mod/sumdb/note, Ed25519, the
// keys `stopline keygen` makes, as checkpoints use) whose text is
//
//	stopline/tenant-log/v1
//	<tenant id, url.PathEscape>
//	<size: number of leaves>
//	<root: the tree hash, 64 lower-case hex digits>
//	<time, RFC 3339, UTC>
//
// in that one spelling (OpenHead refuses any other).
//
// # Smallest use
//
//	head, err := tenantlog.SignHead(ctx, store, signer, "acme", time.Now())
//	// keep head.Note outside the database; later:
//	report, err := tenantlog.Verify(ctx, store, []byte(head.Note), note.VerifierList(verifier))
//
// Every function is safe for concurrent use; none keeps state.
package tenantlog
