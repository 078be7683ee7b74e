package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lib/pq"

	"github.com/dbscrub/dbscrub/checks"
)

// fpSeed is the seed of the second hash lane.
const fpSeed int64 = 7046029254386353131

// fpSettings normalise how values are rendered.
var fpSettings = []setting{
	{"TimeZone", "UTC"},
	{"DateStyle", "ISO, YMD"},
	{"IntervalStyle", "postgres"},
	{"extra_float_digits", "3"},
	{"bytea_output", "hex"},
	{"lc_monetary", "C"},
	{"search_path", "pg_catalog, pg_temp"},
	{"jit", "off"}, // many short queries: compiling would cost more than it saves
}

// fpTable is one table to fingerprint.
type fpTable struct {
	schema, name string
	rel          string // quoted schema.name
	canSelect    bool
	reltuples    float64
	cols         []checks.Column
	pk           []string // key column names, in key order
	pkTypes      []string // format_type of each key column
	pkNumeric    []bool   // numeric type category: keys are JSON numbers
	maxable      bool     // a one-column key whose type has max(): see hashNext
}

func (tb *fpTable) display() string { return tb.schema + "." + tb.name }
func (tb *fpTable) keyed() bool     { return len(tb.pk) > 0 }

const fpTablesQuery = `SELECT n.nspname::text, c.relname::text,
	pg_catalog.has_table_privilege(c.oid, 'SELECT') AND pg_catalog.has_schema_privilege(n.oid, 'USAGE'),
	c.reltuples::float8,
	ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
	ARRAY(SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
	ARRAY(SELECT a.attname::text FROM pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
		WHERE k.ord <= i.indnkeyatts ORDER BY k.ord),
	ARRAY(SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
		WHERE k.ord <= i.indnkeyatts ORDER BY k.ord),
	ARRAY(SELECT ty.typcategory = 'N' FROM pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
		JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
		WHERE k.ord <= i.indnkeyatts ORDER BY k.ord),
	COALESCE(i.indnkeyatts = 1 AND (SELECT pg_catalog.to_regprocedure('pg_catalog.max(' || pg_catalog.format_type(a.atttypid, NULL) || ')') IS NOT NULL
		FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum = i.indkey[0]), false)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND i.indisprimary
WHERE c.relkind = 'r' AND c.relpersistence <> 't'
	AND n.nspname <> ALL (ARRAY['pg_catalog', 'information_schema']) AND n.nspname !~ '^pg_toast'
	AND ($1 = '' OR n.nspname || '.' || c.relname = $1)
ORDER BY 1, 2`

// fpTables lists the user tables (or the one named by only, "schema.name").
func fpTables(ctx context.Context, tx *sql.Tx, only string) ([]*fpTable, error) {
	rows, err := tx.QueryContext(ctx, fpTablesQuery, only)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*fpTable
	for rows.Next() {
		tb := &fpTable{}
		var names, types []string
		if err := rows.Scan(&tb.schema, &tb.name, &tb.canSelect, &tb.reltuples, pq.Array(&names), pq.Array(&types),
			pq.Array(&tb.pk), pq.Array(&tb.pkTypes), pq.Array(&tb.pkNumeric), &tb.maxable); err != nil {
			return nil, err
		}
		tb.rel = pq.QuoteIdentifier(tb.schema) + "." + pq.QuoteIdentifier(tb.name)
		tb.cols = make([]checks.Column, len(names))
		for i := range names {
			tb.cols[i] = checks.Column{Name: names[i], Type: types[i]}
		}
		if len(tb.pk) != len(tb.pkTypes) || len(tb.pk) != len(tb.pkNumeric) {
			return nil, fmt.Errorf("postgres: fingerprint: inconsistent primary key of %s", tb.display())
		}
		out = append(out, tb)
	}
	return out, rows.Err()
}

// keyList returns "t.k1, t.k2".
func (tb *fpTable) keyList(cast string) string {
	parts := make([]string, len(tb.pk))
	for i, k := range tb.pk {
		parts[i] = "t." + pq.QuoteIdentifier(k) + cast
	}
	return strings.Join(parts, ", ")
}

// keyCompare returns "t.k op $n::type" (or the row-wise form for a
// composite key) and appends the key's text values to args.
func (tb *fpTable) keyCompare(op string, k checks.Key, args *[]any) (string, error) {
	vals, err := decodeKey(k, len(tb.pk))
	if err != nil {
		return "", err
	}
	ph := make([]string, len(vals))
	for i, v := range vals {
		*args = append(*args, v)
		ph[i] = fmt.Sprintf("$%d::%s", len(*args), tb.pkTypes[i])
	}
	if len(vals) == 1 {
		return "t." + pq.QuoteIdentifier(tb.pk[0]) + " " + op + " " + ph[0], nil
	}
	return "(" + tb.keyList("") + ") " + op + " (" + strings.Join(ph, ", ") + ")", nil
}

// rangePred returns the WHERE clause ("" when unbounded) of a key range.
func (tb *fpTable) rangePred(r checks.KeyRange, args *[]any) (string, error) {
	return r.Where(func(op string, bound checks.Key) (string, error) { return tb.keyCompare(op, bound, args) })
}

// hashSQL returns the statement that counts and hashes the rows matching
// where.
func (tb *fpTable) hashSQL(where string) string {
	cols := make([]string, len(tb.cols))
	for i, c := range tb.cols {
		cols[i] = "t." + pq.QuoteIdentifier(c.Name)
	}
	// OFFSET 0 keeps the planner from inlining r into both hash calls,
	// which would render every row twice.
	return fmt.Sprintf(`SELECT count(*), COALESCE(sum(pg_catalog.hashtextextended(s.r, 0)), 0)::text, COALESCE(sum(pg_catalog.hashtextextended(s.r, %d)), 0)::text FROM (SELECT ROW(%s)::text COLLATE "C" AS r FROM ONLY %s AS t%s OFFSET 0) AS s`,
		fpSeed, strings.Join(cols, ", "), tb.rel, where)
}

// hashChunk hashes the rows of one key range.
func (tb *fpTable) hashChunk(ctx context.Context, tx *sql.Tx, r checks.KeyRange) (checks.ChunkFingerprint, error) {
	var args []any
	where, err := tb.rangePred(r, &args)
	if err != nil {
		return checks.ChunkFingerprint{}, err
	}
	var rows int64
	var s0, s1 string
	if err := tx.QueryRowContext(ctx, tb.hashSQL(where), args...).Scan(&rows, &s0, &s1); err != nil {
		return checks.ChunkFingerprint{}, err
	}
	l0, err := mod64(s0)
	if err != nil {
		return checks.ChunkFingerprint{}, err
	}
	l1, err := mod64(s1)
	if err != nil {
		return checks.ChunkFingerprint{}, err
	}
	return checks.ChunkFingerprint{Lower: r.Lower, Upper: r.Upper, Rows: rows, Hash: checks.Digest{l0, l1}}, nil
}

// hashNext hashes the next n rows after lower, in key order, and returns
// them as a chunk whose upper bound is the last row's key, or unbounded
// when fewer than n rows are left: chunk bounds and hash in one query, one
// pass over the rows, for a serial fingerprint of a table whose key is one
// column with a max() aggregate (otherwise bounds are found by bound).
func (tb *fpTable) hashNext(ctx context.Context, tx *sql.Tx, lower checks.Key, n int64) (checks.ChunkFingerprint, error) {
	var args []any
	where, err := tb.rangePred(checks.KeyRange{Lower: lower}, &args)
	if err != nil {
		return checks.ChunkFingerprint{}, err
	}
	args = append(args, n)
	cols := make([]string, len(tb.cols))
	for i, c := range tb.cols {
		cols[i] = "t." + pq.QuoteIdentifier(c.Name)
	}
	key := "t." + pq.QuoteIdentifier(tb.pk[0])
	q := fmt.Sprintf(`SELECT count(*), COALESCE(sum(pg_catalog.hashtextextended(s.r, 0)), 0)::text, COALESCE(sum(pg_catalog.hashtextextended(s.r, %d)), 0)::text, pg_catalog.max(s.k)::text FROM (SELECT %s AS k, ROW(%s)::text COLLATE "C" AS r FROM ONLY %s AS t%s ORDER BY %s LIMIT $%d) AS s`,
		fpSeed, key, strings.Join(cols, ", "), tb.rel, where, key, len(args))
	var rows int64
	var s0, s1 string
	var last sql.NullString
	if err := tx.QueryRowContext(ctx, q, args...).Scan(&rows, &s0, &s1, &last); err != nil {
		return checks.ChunkFingerprint{}, err
	}
	ch := checks.ChunkFingerprint{Lower: lower, Rows: rows}
	if ch.Hash[0], err = mod64(s0); err != nil {
		return ch, err
	}
	if ch.Hash[1], err = mod64(s1); err != nil {
		return ch, err
	}
	if rows == n && last.Valid {
		ch.Upper = tb.encodeKey([]string{last.String})
	}
	return ch, nil
}

var two64 = new(big.Int).Lsh(big.NewInt(1), 64)

// mod64 reduces an integer (as text) modulo 2^64.
func mod64(s string) (uint64, error) {
	x, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return 0, fmt.Errorf("postgres: fingerprint: bad sum %q", s)
	}
	return x.Mod(x, two64).Uint64(), nil
}

// bound returns the key of the n-th row after lower (and not after upper),
// in key order, or nil when there are fewer rows.
func (tb *fpTable) bound(ctx context.Context, tx *sql.Tx, r checks.KeyRange, n int64) (checks.Key, error) {
	var args []any
	where, err := tb.rangePred(r, &args)
	if err != nil {
		return nil, err
	}
	args = append(args, n-1)
	q := fmt.Sprintf("SELECT %s FROM ONLY %s AS t%s ORDER BY %s OFFSET $%d LIMIT 1", tb.keyList("::text"), tb.rel, where, tb.keyList(""), len(args))
	vals := make([]string, len(tb.pk))
	dest := make([]any, len(vals))
	for i := range vals {
		dest[i] = &vals[i]
	}
	err = tx.QueryRowContext(ctx, q, args...).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return tb.encodeKey(vals), nil
}

// encodeKey turns key column texts into a Key: JSON numbers for numeric
// types whose text is a JSON number, JSON strings otherwise.
func (tb *fpTable) encodeKey(vals []string) checks.Key {
	return checks.KeyFromText(vals, func(i int) bool { return tb.pkNumeric[i] })
}

// decodeKey returns the text of each key value.
func decodeKey(k checks.Key, n int) ([]string, error) {
	vals, err := k.Texts(n)
	if err != nil {
		return nil, fmt.Errorf("postgres: fingerprint: %w", err)
	}
	return vals, nil
}

// fpSession opens a REPEATABLE READ READ ONLY session with the fingerprint
// settings.
func (t *Target) fpSession(ctx context.Context, superuser bool) (*session, error) {
	return t.begin(ctx, sessionOpts{repeatableRead: true, superuser: superuser, guard: true, extra: fpSettings})
}

// fpCoordinator opens the session that lists tables and picks chunk
// bounds. When export is set it exports its snapshot for workers
// (pg_export_snapshot must run outside a subtransaction, so a failure
// aborts the transaction: the session is then replaced by a fresh one and
// snapshot is "").
func (t *Target) fpCoordinator(ctx context.Context, superuser, export bool) (*session, string, error) {
	s, err := t.fpSession(ctx, superuser)
	if err != nil || !export {
		return s, "", err
	}
	var snapshot string
	err = s.tx.QueryRowContext(ctx, "SELECT pg_catalog.pg_export_snapshot()").Scan(&snapshot)
	if err == nil {
		return s, snapshot, nil
	}
	s.close()
	if ctx.Err() != nil || isConnLost(err) {
		return nil, "", t.fpError("exporting the snapshot", err)
	}
	t.cfg.logger.Warn("dbscrub: fingerprint: cannot export the snapshot; hashing on one connection", "error", oneLine(err.Error()))
	s, err = t.fpSession(ctx, superuser)
	return s, "", err
}

// fpWorker opens a session that imports snapshot (SET TRANSACTION SNAPSHOT
// must be the transaction's first statement, so this does not go through
// begin, whose first statement reads settings; the settings below are the
// same ones begin sets).
func (t *Target) fpWorker(ctx context.Context, snapshot string, superuser bool) (_ *session, err error) {
	conn, err := t.db.Conn(ctx)
	if err != nil {
		return nil, t.connectError(err)
	}
	s := &session{t: t, conn: conn}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.tx, err = conn.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}); err != nil {
		return nil, t.connectError(err)
	}
	if _, err := s.tx.ExecContext(ctx, "SET TRANSACTION SNAPSHOT "+pq.QuoteLiteral(snapshot)); err != nil {
		return nil, t.scrub(fmt.Errorf("postgres: fingerprint: importing the snapshot: %s", oneLine(err.Error())))
	}
	sets := []setting{
		{"statement_timeout", ms(t.cfg.statementTimeout)},
		{"lock_timeout", ms(t.cfg.lockTimeout)},
		{"idle_in_transaction_session_timeout", idleInTransactionTimeout},
	}
	if t.setAppNm {
		sets = append(sets, setting{"application_name", defaultApplicationName})
	}
	if superuser {
		sets = append(sets, setting{"zero_damaged_pages", "off"}, setting{"ignore_checksum_failure", "off"})
	}
	sets = append(sets, fpSettings...)
	if err := s.set(ctx, sets...); err != nil {
		return nil, t.scrub(fmt.Errorf("postgres: fingerprint: %s", oneLine(err.Error())))
	}
	return s, nil
}

// fpError wraps an error of a fingerprint statement.
func (t *Target) fpError(what string, err error) error {
	if isConnLost(err) {
		return t.scrub(fmt.Errorf("postgres: %w while fingerprinting (%s): %s", ErrConnectionLost, what, oneLine(err.Error())))
	}
	msg := strings.TrimPrefix(oneLine(err.Error()), "pq: ")
	if se, ok := asServerError(err); ok && se.code == "42501" {
		return t.scrub(fmt.Errorf("postgres: %w: fingerprint (%s): %s", ErrPrivilege, what, msg))
	}
	return t.scrub(fmt.Errorf("postgres: fingerprint (%s): %s", what, msg))
}

// Fingerprint fingerprints every user table (or those the options select):
// for each, the columns, the primary key, the row count and the
// order-independent hash of every row, per primary-key range (see
// [checks.Fingerprint] and the package documentation of checks). It
// implements [checks.Fingerprinter].
//
// The whole fingerprint sees one snapshot: it runs in one REPEATABLE READ
// READ ONLY transaction, and with [checks.WithFingerprintJobs] n > 1 that
// transaction exports its snapshot (pg_export_snapshot) to n worker
// connections that hash chunks in parallel (SET TRANSACTION SNAPSHOT),
// while it picks chunk bounds. Chunks are sized by time
// ([checks.WithChunkTime]) by walking the primary key index
// (ORDER BY key OFFSET n LIMIT 1), so no query runs long. Tables without a
// primary key are hashed as one whole-table aggregate, flagged keyed:false.
//
// Ordinary tables (relkind r, partitions included; partitioned parents,
// views, materialized views, foreign and temporary tables are not) outside
// pg_catalog, information_schema and pg_toast are fingerprinted. The role
// needs SELECT on each (pg_read_all_data will do); a table it cannot read
// is an error wrapping [ErrPrivilege], never silently left out: exclude it
// with [checks.WithExcludeTables]. It needs PostgreSQL 11 or later.
//
// Each row is rendered by PostgreSQL itself, ROW(t.c1, t.c2, ...)::text:
// the record's output function writes NULL as an empty field and an empty
// string as a pair of double quotes, and quotes (and escapes) any value
// that holds a comma, a quote, a parenthesis or whitespace, so the text
// tells every row apart:
//
//	SELECT ROW(NULL::text)::text, ROW(''::text)::text, ROW('a b', NULL::int, ''::text)::text;
//	 ()  | ("") | ("a b",,"")
//
// The text is hashed with hashtextextended (PostgreSQL's 64-bit lookup3
// hash, the one hash partitioning uses, which is why it stays the same
// across versions) under two seeds, giving two independent 64-bit lanes,
// and each chunk sums them with sum(bigint) (exact, as numeric), reduced
// modulo 2^64 in Go. All of it runs in the server: one row per chunk
// crosses the network. hashtextextended was chosen over md5 by
// measurement: on pgbench_accounts, md5 of the row text plus its
// hex-to-bigint conversion cost about three times the rendering of the
// rows, hashtextextended about a tenth. Its results may differ between
// big- and little-endian servers.
//
// Values are rendered under fixed settings (SET LOCAL): TimeZone UTC,
// DateStyle ISO, IntervalStyle postgres, extra_float_digits 3 (exact
// floats), bytea_output hex, lc_monetary C, search_path pg_catalog; so
// servers and databases configured differently render the same values the
// same way. The server encoding is part of [checks.Fingerprint].Algorithm:
// a copy in another encoding is not comparable. A copy on a server whose
// collation sorts text keys differently still compares correctly table by
// table, but its chunks hold other rows, so differences in text-keyed
// tables are then not located.
func (t *Target) Fingerprint(ctx context.Context, opts ...checks.FingerprintOption) (*checks.Fingerprint, error) {
	cfg, err := checks.NewFingerprintConfig(opts...)
	if err != nil {
		return nil, err
	}
	if err := cfg.CheckBoundsEngine(Engine); err != nil {
		return nil, err
	}
	if t.isClosed() {
		return nil, t.errClosed()
	}
	caps, err := t.Probe(ctx)
	if err != nil {
		return nil, err
	}
	if caps.ServerVersionNum < 110000 {
		return nil, fmt.Errorf("postgres: %w: fingerprints need PostgreSQL 11 or later (hashtextextended); %s runs %s", ErrUnsupported, t.Info().Name, caps.ServerVersion)
	}
	start := time.Now()
	jobs := cfg.Jobs
	if maxOpen := t.db.Stats().MaxOpenConnections; maxOpen > 0 && jobs > maxOpen-1 {
		jobs = max(1, maxOpen-1) // the coordinator holds one connection
	}
	s, snapshot, err := t.fpCoordinator(ctx, caps.Superuser, jobs > 1)
	if err != nil {
		return nil, err
	}
	defer s.close()
	if snapshot == "" {
		jobs = 1
	}
	var encoding string
	var takenAt time.Time
	if err := s.tx.QueryRowContext(ctx, "SELECT pg_catalog.current_setting('server_encoding'), pg_catalog.statement_timestamp()").Scan(&encoding, &takenAt); err != nil {
		return nil, t.fpError("reading the server encoding", err)
	}
	all, err := fpTables(ctx, s.tx, "")
	if err != nil {
		return nil, t.fpError("listing tables", err)
	}
	var tables []*fpTable
	var denied []string
	for _, tb := range all {
		if !cfg.MatchTable(tb.display(), tb.name) {
			continue
		}
		if !tb.canSelect {
			denied = append(denied, tb.display())
			continue
		}
		tables = append(tables, tb)
	}
	if len(denied) > 0 {
		return nil, fmt.Errorf("postgres: %w: role %q may not read %s: a fingerprint reads every row; GRANT SELECT on them (or GRANT pg_read_all_data TO %s), or leave them out (--exclude-table)",
			ErrPrivilege, caps.User, strings.Join(denied, ", "), quoteIdent(caps.User))
	}

	fp := &checks.Fingerprint{
		SchemaVersion: checks.FingerprintSchemaVersion,
		Engine:        Engine,
		ServerVersion: caps.ServerVersion,
		Source:        t.Info().Name,
		Database:      caps.Database,
		TakenAt:       takenAt.UTC(),
		Algorithm:     fmt.Sprintf("postgresql/v1: hashtextextended(ROW(...)::text, seeds 0 and %d) summed mod 2^64; server_encoding %s", fpSeed, encoding),
		Snapshot:      "one REPEATABLE READ READ ONLY transaction",
		Tables:        []checks.TableFingerprint{},
	}
	if jobs > 1 {
		fp.Snapshot = fmt.Sprintf("one REPEATABLE READ READ ONLY transaction, its snapshot exported to %d workers (pg_export_snapshot)", jobs)
	}

	// Biggest tables first, so that parallel workers finish together.
	sort.SliceStable(tables, func(i, j int) bool { return tables[i].reltuples > tables[j].reltuples })
	res := &fpResults{chunks: map[*fpTable][]seqChunk{}}
	produce := func(emit func(fpWork) error) error {
		for _, tb := range tables {
			if jobs <= 1 && tb.maxable {
				if _, ok := cfg.Bounds(tb.display(), tb.pk); !ok {
					if err := t.hashSerial(ctx, s.tx, tb, cfg, res); err != nil {
						return err
					}
					continue
				}
			}
			if err := t.planTable(ctx, s.tx, tb, cfg, emit); err != nil {
				return err
			}
		}
		return nil
	}
	if jobs <= 1 {
		err = produce(func(w fpWork) error { return res.run(ctx, s.tx, w, t) })
	} else {
		err = t.fpParallel(ctx, jobs, snapshot, caps.Superuser, produce, res)
	}
	if err != nil {
		return nil, err
	}
	for _, tb := range tables {
		tf := checks.TableFingerprint{Name: tb.display(), Columns: tb.cols, Keyed: tb.keyed()}
		if tb.keyed() {
			tf.PrimaryKey = tb.pk
		} else {
			tf.Note = "no primary key: whole-table aggregate; differences cannot be located inside the table"
		}
		cs := res.chunks[tb]
		sort.Slice(cs, func(i, j int) bool { return cs[i].seq < cs[j].seq })
		for _, c := range cs {
			tf.Chunks = append(tf.Chunks, c.chunk)
		}
		tf.SumChunks()
		fp.Tables = append(fp.Tables, tf)
	}
	sort.Slice(fp.Tables, func(i, j int) bool { return fp.Tables[i].Name < fp.Tables[j].Name })
	fp.DurationSeconds = time.Since(start).Seconds()
	return fp, nil
}

// fpWork is one chunk to hash.
type fpWork struct {
	tb    *fpTable
	seq   int
	r     checks.KeyRange
	sizer *checks.ChunkSizer
}

type seqChunk struct {
	seq   int
	chunk checks.ChunkFingerprint
}

// fpResults collects the chunks of every table.
type fpResults struct {
	mu     sync.Mutex
	chunks map[*fpTable][]seqChunk
}

// run hashes one chunk on tx and records it.
func (res *fpResults) run(ctx context.Context, tx *sql.Tx, w fpWork, t *Target) error {
	start := time.Now()
	ch, err := w.tb.hashChunk(ctx, tx, w.r)
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return t.fpError("hashing "+w.tb.display()+" "+w.r.String(), err)
	}
	if w.sizer != nil {
		w.sizer.Observe(ch.Rows, time.Since(start))
	}
	res.add(w.tb, w.seq, ch)
	return nil
}

func (res *fpResults) add(tb *fpTable, seq int, ch checks.ChunkFingerprint) {
	res.mu.Lock()
	res.chunks[tb] = append(res.chunks[tb], seqChunk{seq: seq, chunk: ch})
	res.mu.Unlock()
}

// hashSerial hashes a table chunk after chunk with hashNext, sizing each
// chunk by time.
func (t *Target) hashSerial(ctx context.Context, tx *sql.Tx, tb *fpTable, cfg checks.FingerprintConfig, res *fpResults) error {
	sizer := cfg.NewChunkSizer()
	var lower checks.Key
	for seq := 0; ; seq++ {
		start := time.Now()
		ch, err := tb.hashNext(ctx, tx, lower, sizer.Next())
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return t.fpError("hashing "+tb.display()+" after "+lower.String(), err)
		}
		sizer.Observe(ch.Rows, time.Since(start))
		res.add(tb, seq, ch)
		if ch.Upper == nil {
			return nil
		}
		lower = ch.Upper
	}
}

// planTable cuts a table into chunks and emits them: the bounds of
// WithBoundsFrom, or bounds found by walking the key, sized by time.
func (t *Target) planTable(ctx context.Context, tx *sql.Tx, tb *fpTable, cfg checks.FingerprintConfig, emit func(fpWork) error) error {
	if !tb.keyed() {
		return emit(fpWork{tb: tb})
	}
	if ranges, ok := cfg.Bounds(tb.display(), tb.pk); ok {
		for i, r := range ranges {
			if err := emit(fpWork{tb: tb, seq: i, r: r}); err != nil {
				return err
			}
		}
		return nil
	}
	sizer := cfg.NewChunkSizer()
	var lower checks.Key
	for seq := 0; ; seq++ {
		upper, err := tb.bound(ctx, tx, checks.KeyRange{Lower: lower}, sizer.Next())
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return t.fpError("finding chunk bounds of "+tb.display(), err)
		}
		if err := emit(fpWork{tb: tb, seq: seq, r: checks.KeyRange{Lower: lower, Upper: upper}, sizer: sizer}); err != nil {
			return err
		}
		if upper == nil {
			return nil
		}
		lower = upper
	}
}

// fpParallel runs produce on the coordinator (the caller's session) and
// hashes what it emits on jobs workers that imported snapshot.
func (t *Target) fpParallel(ctx context.Context, jobs int, snapshot string, superuser bool, produce func(func(fpWork) error) error, res *fpResults) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	workers := make([]*session, 0, jobs)
	defer func() {
		for _, w := range workers {
			w.close()
		}
	}()
	for i := 0; i < jobs; i++ {
		w, err := t.fpWorker(ctx, snapshot, superuser)
		if err != nil {
			return err
		}
		workers = append(workers, w)
	}
	queue := make(chan fpWork)
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		cancel(err)
	}
	for _, w := range workers {
		wg.Add(1)
		go func(w *session) {
			defer wg.Done()
			for work := range queue {
				if ctx.Err() != nil {
					continue
				}
				if err := res.run(ctx, w.tx, work, t); err != nil {
					fail(err)
				}
			}
		}(w)
	}
	perr := produce(func(w fpWork) error {
		select {
		case queue <- w:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	})
	close(queue)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return perr
}

// fpLookup opens a fingerprint session and finds one keyed table.
func (t *Target) fpLookup(ctx context.Context, table string) (*session, *fpTable, error) {
	if t.isClosed() {
		return nil, nil, t.errClosed()
	}
	caps, err := t.Probe(ctx)
	if err != nil {
		return nil, nil, err
	}
	s, err := t.fpSession(ctx, caps.Superuser)
	if err != nil {
		return nil, nil, err
	}
	tbs, err := fpTables(ctx, s.tx, table)
	if err != nil {
		s.close()
		return nil, nil, t.fpError("looking up "+table, err)
	}
	switch {
	case len(tbs) == 0:
		s.close()
		return nil, nil, fmt.Errorf("postgres: fingerprint: no table %s in %s", table, t.Info().Name)
	case !tbs[0].keyed():
		s.close()
		return nil, nil, fmt.Errorf("postgres: %w: table %s has no primary key, so its key ranges cannot be hashed", checks.ErrUnsupported, table)
	}
	return s, tbs[0], nil
}

// HashRanges hashes the given key ranges of table ("schema.name"), in one
// REPEATABLE READ READ ONLY transaction. It implements
// [checks.RangeHasher], which [checks.Narrow] uses to locate differences.
func (t *Target) HashRanges(ctx context.Context, table string, ranges []checks.KeyRange) ([]checks.ChunkFingerprint, error) {
	s, tb, err := t.fpLookup(ctx, table)
	if err != nil {
		return nil, err
	}
	defer s.close()
	out := make([]checks.ChunkFingerprint, len(ranges))
	for i, r := range ranges {
		if out[i], err = tb.hashChunk(ctx, s.tx, r); err != nil {
			return nil, t.fpError("hashing "+table+" "+r.String(), err)
		}
	}
	return out, nil
}

// maxSplitKeys bounds the keys one SplitRange call returns.
const maxSplitKeys = 4096

// SplitRange returns the keys of the rows at positions every, 2*every, ...
// of r in table, excluding r.Upper. It implements [checks.RangeHasher].
func (t *Target) SplitRange(ctx context.Context, table string, r checks.KeyRange, every int64) ([]checks.Key, error) {
	if every < 1 {
		return nil, fmt.Errorf("postgres: %w: SplitRange: every must be at least 1, got %d", checks.ErrInvalidOption, every)
	}
	s, tb, err := t.fpLookup(ctx, table)
	if err != nil {
		return nil, err
	}
	defer s.close()
	out, err := r.Split(maxSplitKeys, func(piece checks.KeyRange) (checks.Key, error) {
		return tb.bound(ctx, s.tx, piece, every)
	})
	if err != nil {
		return nil, t.fpError("splitting "+table+" "+r.String(), err)
	}
	return out, nil
}

var (
	_ checks.Fingerprinter = (*Target)(nil)
	_ checks.RangeHasher   = (*Target)(nil)
)
