// Package postgres is dbscrub's PostgreSQL driver: it runs PostgreSQL's own
// integrity checks (the amcheck extension) and a few of its own against one
// database, as [checks.Check]s that plan small tasks for the
// [checks.Runner].
//
//	t, err := postgres.Open("postgres://scrub@db.example.com/app?sslmode=verify-full")
//	if err != nil { ... }
//	defer t.Close()
//	report, err := checks.Gate(ctx, t, checks.WithJobs(4))
//
// # Checks
//
//   - heap (default): amcheck's verify_heapam(rel, on_error_stop => false,
//     check_toast => true, skip => 'none', startblock, endblock) on every
//     table, TOAST table and materialized view: tuple headers, line
//     pointers, transaction ids, TOAST pointers. Tables larger than the chunk
//     size ([WithChunkSize], 256 MiB) are split into block ranges, one task
//     each, so several workers verify one big table at once; small relations
//     are batched into one statement. Needs PostgreSQL 14 or later.
//   - btree (default): amcheck's bt_index_check(index, heapallindexed) on
//     every valid btree index; bt_index_parent_check with [WithParentCheck]
//     (which blocks writes), heapallindexed with [WithHeapAllIndexed].
//   - crosscheck (opt-in: select it by name): counts each table's rows with
//     a sequential scan and through each btree index with an index-only
//     scan, in one REPEATABLE READ snapshot. It finds heap pages lost to a
//     torn write, a bad disk or a truncated file, which amcheck cannot see
//     (a zeroed page is a valid empty page to verify_heapam). It reads every
//     index in full, so it costs about twice the btree check (on a
//     3-million-row table with two indexes, 305 MB: crosscheck 284 ms,
//     heap + btree 201 ms, btree 144 ms, heap 65 ms, all cached); hence
//     not a default. It sees rows lost from pages the visibility map marks
//     all-visible (see VACUUM), which on a vacuumed table is most of them.
//   - checksums (default): a warning when data checksums are off;
//     corruption when pg_stat_database counted checksum failures (or more
//     than [WithChecksumFailuresBaseline], or than the count the previous
//     scheduled run recorded in the run's [checks.Counters] under
//     [CounterChecksumFailures]).
//   - settings (default): warnings for zero_damaged_pages = on,
//     ignore_checksum_failure = on, fsync = off, full_page_writes = off,
//     server-wide or set for some role or database.
//
// # Tasks and keys
//
// Task keys are built from schema-qualified names (quoted as quote_ident
// does), never from OIDs, so they survive a restore and can be stored to
// resume or track coverage:
//
//   - heap: "public.orders" (a whole relation), "public.orders:blocks:0-32767"
//     and "public.orders:blocks:32768-" (block ranges; the last one runs to
//     the end of the relation as it is when the task runs),
//     "public.orders:toast" (its TOAST table), and
//     "batch:public.a..public.k:12" (12 small relations in one statement).
//   - btree: "public.orders_pkey", "public.orders:toast-index", batches as
//     for heap.
//   - crosscheck: "public.orders" (the table and its indexes); skipped
//     indexes are listed as tasks of their own, with the reason.
//   - checksums: the database name; settings: "settings".
//
// Task costs are relation sizes in bytes (pg_relation_size, or relpages
// for a relation someone holds an exclusive lock on, so that planning never
// queues behind DDL). Each heap and btree task also carries a time
// estimate from pg_class (relpages and reltuples, as of the last VACUUM or
// ANALYZE) and a model of amcheck's cost per page, row and index entry, so
// that the runner starts a big index before the heap chunks of its table
// instead of leaving it to run alone at the end.
//
// # What each finding means
//
// Problems verify_heapam reports become findings with Code "verify_heapam"
// and the block, line pointer and attribute. An error that amcheck or a read
// raises on an object because its data is damaged — SQLSTATE XX001
// data_corrupted (including "invalid page in block N": a checksum failure),
// XX002 index_corrupted, 58P01 undefined_file (a missing data file), 58030
// io_error, "could not read block" — is a corruption finding with the
// SQLSTATE as Code, naming the object, not a failure of the task; for heap
// verification continues after the damaged block. Other errors (a lock
// timeout, a missing privilege, a statement timeout) make the task fail:
// status error, with a message that says what to do. Other codes:
// "crosscheck_count_mismatch" (an index reaches a different number of rows
// than a sequential scan finds; the message has both counts),
// "server_crash" (see Crashes), "checksum_failures", "data_checksums_off"
// (warning), "setting" and "role_setting" (warnings), and "more_findings"
// (a task lists at most 1000 findings and sums up the rest).
//
// # Crashes
//
// amcheck can crash a backend on a garbage page, and then PostgreSQL
// restarts every backend. When a task's connection dies, dbscrub waits for
// the server to accept connections again (at most [WithRecoveryWait],
// honouring the context) and classifies what happened:
//
//   - the server said the session ended because another server process
//     crashed (SQLSTATE 57P02), or because of a shutdown (57P01) or because
//     it cannot accept connections yet (57P03): the task was a victim; its
//     error wraps [checks.ErrRetryable], so the runner tries it once more.
//   - the server restarted (the postmaster start time changed, i.e. it was
//     stopped and started): retried likewise.
//   - the server reinitialized after a crash (the postmaster start time did
//     not change, but the checkpointer process was replaced and the
//     statistics were reset: pg_stat_bgwriter.stats_reset moved) and this
//     session got no 57P02 notice: its own backend is the one that died
//     while verifying the object. The task returns a corruption finding ("the server process
//     crashed while verifying <object>") together with an error wrapping
//     [ErrServerCrashed] that is not retryable, so the object is not
//     verified again (that would crash the server again).
//   - the server did not restart: a network problem or pg_terminate_backend;
//     a plain error wrapping [ErrConnectionLost].
//   - the server did not come back within the wait: an error wrapping
//     [ErrServerCrashed] saying it may have crashed on this object.
//
// The 57P02 notice is read with lib/pq (dbscrub's own pools, and pools
// opened with sql.Open("postgres", ...)). With other drivers (pgx), a task
// killed because another backend crashed cannot be told from the one that
// crashed, so both are reported as crashes.
//
// A batch of small relations that crashes the server names all of them as
// candidates ("one of ...").
//
// # Safety
//
// dbscrub never writes: every task runs in a READ ONLY transaction that is
// rolled back; the only write is CREATE EXTENSION amcheck, with
// [WithInstallAmcheck] only. Like any query, the crosscheck's scans may set
// hint bits and prune dead tuples on the pages they read (physical changes
// PostgreSQL makes on its own; verify_heapam and bt_index_check do not).
// Statement and lock timeouts are set locally in each transaction, so a
// check never waits long behind DDL and never leaks settings into a pool you
// lend with [New]. Cancelling the context cancels the statement on the
// server (lib/pq sends a cancel request).
//
// Locks: verify_heapam, bt_index_check and the crosscheck take
// AccessShareLock on what they read, which blocks only DDL (ALTER TABLE,
// DROP, TRUNCATE, VACUUM FULL, CLUSTER, REINDEX) on that object for the
// duration of the task; a task waits at most the lock timeout for its lock.
// bt_index_parent_check ([WithParentCheck]) takes ShareLock, which blocks
// writes.
package postgres
