// Package sqlite runs SQLite's own integrity checks against a database file
// and reports what they find as dbscrub findings.
//
// # Opening a target
//
// [Open] takes a path or a DSN and opens the file strictly read-only:
// mode=ro (SQLite never creates a missing file and never writes the
// database file), PRAGMA query_only, and a busy timeout so that a check
// waits for a writer's lock instead of failing at once:
//
//	t, err := sqlite.Open("/var/lib/app/app.db")
//	if err != nil { ... }
//	defer t.Close()
//	rep, err := checks.Gate(ctx, t) // err wraps checks.ErrCorrupt or checks.ErrNotVerified
//
// [New] wraps a *sql.DB the application already has (modernc.org/sqlite or
// another SQLite driver). The checks only run statements that read: PRAGMA
// integrity_check, PRAGMA foreign_key_check, and queries of sqlite_schema,
// sqlite_dbpage and dbstat. The pool's settings stay the caller's: dbscrub
// does not change them. Statements never nest, so a pool with a single
// connection (an in-memory database) works.
//
// Importing this package registers the pure-Go modernc.org/sqlite driver
// under the database/sql name "sqlite"; no cgo is needed.
//
// # Checks
//
// [Catalog] lists the checks. Both run by default.
//
//   - [CheckIntegrity] runs PRAGMA integrity_check (or quick_check with
//     [WithQuickCheck]) as one task for the whole file, its cost the
//     database's size (page_count × page_size). It is not split per table: SQLite's freelist and page-accounting
//     checks (pages never used, pages used twice) need one pass over every
//     b-tree at once, and the per-table form integrity_check(TABLE) of
//     SQLite ≥3.33 skips them, so per-table tasks would cover less. Each
//     problem SQLite reports becomes a corrupt finding with SQLite's words
//     as the message; the finding names the table or index (the b-tree root
//     in "Tree 5 page 9 cell 2: ..." is looked up in sqlite_schema, other
//     pages in dbstat) and puts the page and cell in its Location.
//   - [CheckForeignKeys] runs PRAGMA foreign_key_check, one task per table
//     that declares a foreign key, so that one table whose foreign key
//     cannot be checked does not hide the others. Each orphan row is a
//     corrupt finding (see [CheckForeignKeys] for why corrupt).
//
// Both stop after [WithMaxErrors] problems (100 by default) and then say so
// in a last finding: "and possibly more: integrity_check stopped after 100
// errors".
//
// # What is corruption and what is an error
//
// Statuses never lie. A file SQLite cannot read because it is damaged
// ("file is not a database", "database disk image is malformed") is
// corruption: the check reports a finding on the database, with what is
// visibly wrong with the file header when something is (no SQLite header, a
// file shorter than its header says), not a failure to check. A missing
// file, a permission problem, a lock held past the busy timeout, a hot
// journal only a writer can roll back, and a cancelled context are errors:
// dbscrub could not verify. A missing file is reported as "database file
// does not exist", never silently created and checked as an empty, healthy
// database.
//
// A zero-byte file is a valid, empty database to SQLite; the integrity
// check reports it as a warning, because a database file that should hold
// data and is empty was most likely truncated or replaced.
//
// # Side files
//
// Reading a database in WAL mode goes through its -shm file, SQLite's
// shared-memory index of the WAL, in which readers take read marks. When the
// -shm and -wal files are missing SQLite creates them next to the database
// (if the directory is writable) and leaves them there. The database file
// and the WAL are never written.
//
// # Cancellation
//
// Every statement runs under the task's context; cancelling it interrupts
// SQLite (sqlite3_interrupt) within milliseconds and the task returns an
// error wrapping the context's cause, never a healthy result.
package sqlite
