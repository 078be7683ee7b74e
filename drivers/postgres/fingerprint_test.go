package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/pgtest"
)

// fpSchema is the database the fingerprint tests copy and damage: keyed
// tables of several kinds (bigint, composite and text keys), one without a
// primary key, NULLs and empty strings, and two tables of the same shape to
// swap rows between.
const fpSchema = `
CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, amount numeric(12,2), note text, created timestamptz, tags text[]);
INSERT INTO orders SELECT 2*g, 'customer ' || (g % 97), g * 1.25,
	CASE WHEN g % 10 = 0 THEN NULL WHEN g % 10 = 1 THEN '' ELSE 'note ' || g END,
	timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute', ARRAY['a', 'b' || g]
	FROM generate_series(1, 5000) g;
CREATE TABLE lines (order_id int, line int, sku text, qty real, PRIMARY KEY (order_id, line));
INSERT INTO lines SELECT o, l, 'sku-' || (o * 7 + l) % 1000, l * 0.5 FROM generate_series(1, 1000) o, generate_series(1, 4) l;
CREATE TABLE tags (name text PRIMARY KEY, n int, raw bytea, period interval);
INSERT INTO tags SELECT 'tag' || lpad(g::text, 4, '0'), g, decode(lpad(to_hex(g), 8, '0'), 'hex'), g * interval '90 minutes' FROM generate_series(1, 2000) g;
CREATE TABLE events (at timestamptz, what text);
INSERT INTO events SELECT timestamptz '2024-01-01 00:00:00+00' + g * interval '1 hour', 'event ' || g FROM generate_series(1, 300) g;
CREATE TABLE stock_a (id int PRIMARY KEY, sku text, qty int);
CREATE TABLE stock_b (id int PRIMARY KEY, sku text, qty int);
INSERT INTO stock_a SELECT g, 'a' || g, g FROM generate_series(1, 1000) g;
INSERT INTO stock_b SELECT g, 'b' || g, g FROM generate_series(1001, 2000) g;
CREATE SCHEMA sales;
CREATE TABLE sales."Odd ""Name""" (k int PRIMARY KEY, v text);
INSERT INTO sales."Odd ""Name""" VALUES (1, 'x'), (2, NULL);
CREATE INDEX orders_customer ON orders (customer);
ANALYZE;
`

var fpCounter atomic.Int64

// fpDB is a database on the shared test cluster, dropped when the test ends.
type fpDB struct {
	c    *pgtest.Cluster
	name string
	dsn  string
}

func newFPDB(t testing.TB, c *pgtest.Cluster, setup string) *fpDB {
	t.Helper()
	d := &fpDB{c: c, name: fmt.Sprintf("dbscrub_fp_%d_%d", os.Getpid(), fpCounter.Add(1))}
	ctx := testCtx(t)
	if err := c.Exec(ctx, "postgres", "CREATE DATABASE "+pq.QuoteIdentifier(d.name)+" TEMPLATE template0"); err != nil {
		t.Fatal(err)
	}
	d.dsn = c.DSN(d.name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Exec(ctx, "postgres", "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(d.name)+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", d.name, err)
		}
	})
	if setup != "" {
		d.exec(t, setup)
	}
	return d
}

// exec runs q; without args, each statement of q (split at ";\n" or a
// final ";") runs on its own, so that VACUUM can be one of them.
func (d *fpDB) exec(t testing.TB, q string, args ...any) {
	t.Helper()
	stmts := []string{q}
	if len(args) == 0 {
		stmts = strings.Split(q, ";\n")
	}
	for _, st := range stmts {
		if strings.TrimSpace(st) == "" {
			continue
		}
		if err := d.c.Exec(testCtx(t), d.name, st, args...); err != nil {
			t.Fatal(err)
		}
	}
}

// copyDB copies src into a new database as a restore would: pg_dump -Fc
// piped into pg_restore.
func copyDB(t testing.TB, src *fpDB) *fpDB {
	t.Helper()
	dst := newFPDB(t, src.c, "")
	dump := exec.Command(filepath.Join(src.c.BinDir, "pg_dump"), "-Fc", "-d", src.dsn)
	restore := exec.Command(filepath.Join(src.c.BinDir, "pg_restore"), "--no-owner", "-d", dst.dsn)
	pipe, err := dump.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	restore.Stdin = pipe
	var dumpErr, restoreErr bytes.Buffer
	dump.Stderr, restore.Stderr = &dumpErr, &restoreErr
	if err := restore.Start(); err != nil {
		t.Fatal(err)
	}
	if err := dump.Run(); err != nil {
		t.Fatalf("pg_dump: %v: %s", err, dumpErr.String())
	}
	if err := restore.Wait(); err != nil {
		t.Fatalf("pg_restore: %v: %s", err, restoreErr.String())
	}
	return dst
}

// cloneDB copies src with CREATE DATABASE ... TEMPLATE (a file-level copy).
func cloneDB(t testing.TB, src *fpDB) *fpDB {
	t.Helper()
	dst := &fpDB{c: src.c, name: fmt.Sprintf("dbscrub_fp_%d_%d", os.Getpid(), fpCounter.Add(1))}
	if err := src.c.Exec(testCtx(t), "postgres", "CREATE DATABASE "+pq.QuoteIdentifier(dst.name)+" TEMPLATE "+pq.QuoteIdentifier(src.name)); err != nil {
		t.Fatal(err)
	}
	dst.dsn = src.c.DSN(dst.name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = src.c.Exec(ctx, "postgres", "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(dst.name)+" WITH (FORCE)")
	})
	return dst
}

func (d *fpDB) target(t testing.TB) *Target {
	t.Helper()
	tg, err := Open(d.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

func (d *fpDB) fingerprint(t testing.TB, opts ...checks.FingerprintOption) *checks.Fingerprint {
	t.Helper()
	tg := d.target(t)
	defer tg.Close() // let go of the database (CREATE DATABASE ... TEMPLATE needs that)
	fp, err := tg.Fingerprint(testCtx(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := fp.Validate(); err != nil {
		t.Fatal(err)
	}
	return fp
}

// diffRanges formats a diff as "table range rowsA/rowsB" lines, plus
// "missing table" and "extra table".
func diffRanges(d *checks.Diff) []string {
	var out []string
	for _, m := range d.Missing {
		out = append(out, "missing "+m.Name)
	}
	for _, e := range d.Extra {
		out = append(out, "extra "+e.Name)
	}
	for _, td := range d.Tables {
		for _, r := range td.Ranges {
			out = append(out, fmt.Sprintf("%s %s %d/%d", td.Name, r.KeyRange, r.RowsA, r.RowsB))
		}
	}
	return out
}

func TestFingerprintDetectsAndLocates(t *testing.T) {
	c := pgtest.Shared(t)
	src := newFPDB(t, c, fpSchema)
	// The "before" fingerprint, stored as a file would be, with small chunks.
	var stored bytes.Buffer
	if err := src.fingerprint(t, checks.WithChunkRows(500)).Write(&stored); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		damage string
		// live: the ranges found comparing the two live databases
		// (narrowed to single rows); file: those found comparing the
		// stored fingerprint with the copy (its 500-row chunks).
		live, file []string
	}{
		{name: "identical"},
		{
			name:   "deleted row",
			damage: "DELETE FROM orders WHERE id = 4242",
			live:   []string{"public.orders (4240, 4242] 1/0"},
			file:   []string{"public.orders (4000, 5000] 500/499"},
		},
		{
			name:   "inserted row",
			damage: "INSERT INTO orders (id, customer) VALUES (4243, 'new')",
			live:   []string{"public.orders (4242, 4243] 0/1"},
			file:   []string{"public.orders (4000, 5000] 500/501"},
		},
		{
			name:   "inserted row after the last key",
			damage: "INSERT INTO orders (id, customer) VALUES (100001, 'new')",
			live:   []string{"public.orders (10000, 100001] 0/1"},
			file:   []string{"public.orders (10000, +inf) 0/1"},
		},
		{
			name:   "updated value",
			damage: "UPDATE orders SET amount = amount + 0.01 WHERE id = 4242",
			live:   []string{"public.orders (4240, 4242] 1/1"},
			file:   []string{"public.orders (4000, 5000] 500/500"},
		},
		{
			name:   "NULL became empty string",
			damage: "UPDATE orders SET note = '' WHERE id = 40", // g = 20: note NULL
			live:   []string{"public.orders (38, 40] 1/1"},
			file:   []string{"public.orders (-inf, 1000] 500/500"},
		},
		{
			name:   "empty string became NULL",
			damage: "UPDATE orders SET note = NULL WHERE id = 42", // g = 21: note ''
			live:   []string{"public.orders (40, 42] 1/1"},
			file:   []string{"public.orders (-inf, 1000] 500/500"},
		},
		{
			name:   "NULL in an array became empty string",
			damage: "UPDATE orders SET tags = ARRAY['a', ''] WHERE id = 2; UPDATE orders SET tags = ARRAY['a', NULL] WHERE id = 4",
			live:   []string{"public.orders (-inf, 4] 2/2"},
			file:   []string{"public.orders (-inf, 1000] 500/500"},
		},
		{
			name:   "dropped table",
			damage: "DROP TABLE tags",
			live:   []string{"missing public.tags"},
			file:   []string{"missing public.tags"},
		},
		{
			name:   "new table",
			damage: "CREATE TABLE extra (id int PRIMARY KEY); INSERT INTO extra VALUES (1)",
			live:   []string{"extra public.extra"},
			file:   []string{"extra public.extra"},
		},
		{
			name: "two rows swapped between tables",
			damage: `WITH a AS (DELETE FROM stock_a WHERE id = 300 RETURNING *), b AS (DELETE FROM stock_b WHERE id = 1700 RETURNING *),
				ia AS (INSERT INTO stock_a SELECT * FROM b) INSERT INTO stock_b SELECT * FROM a`,
			live: []string{"public.stock_a (299, 300] 1/0", "public.stock_a (1000, 1700] 0/1", "public.stock_b (-inf, 300] 0/1", "public.stock_b (1699, 1700] 1/0"},
			file: []string{"public.stock_a (-inf, 500] 500/499", "public.stock_a (1000, +inf) 0/1", "public.stock_b (-inf, 1500] 500/501", "public.stock_b (1500, 2000] 500/499"},
		},
		{
			name:   "composite key",
			damage: "UPDATE lines SET qty = qty + 1 WHERE order_id = 700 AND line = 3",
			live:   []string{"public.lines ((700, 2), (700, 3)] 1/1"},
			file:   []string{"public.lines ((625, 4), (750, 4)] 500/500"},
		},
		{
			name:   "text key",
			damage: "DELETE FROM tags WHERE name = 'tag1234'",
			live:   []string{"public.tags ('tag1233', 'tag1234'] 1/0"},
			file:   []string{"public.tags ('tag1000', 'tag1500'] 500/499"},
		},
		{
			name:   "table without a primary key",
			damage: "UPDATE events SET what = 'changed' WHERE what = 'event 7'",
			live:   []string{"public.events (-inf, +inf) 300/300"},
			file:   []string{"public.events (-inf, +inf) 300/300"},
		},
		{
			name:   "quoted names",
			damage: `UPDATE sales."Odd ""Name""" SET v = '' WHERE k = 2`,
			live:   []string{`sales.Odd "Name" (1, 2] 1/1`},
			file:   []string{`sales.Odd "Name" (-inf, +inf) 2/2`},
		},
		{
			name:   "physical order changed: CLUSTER, VACUUM FULL, rewritten rows",
			damage: "CLUSTER orders USING orders_customer;\nVACUUM FULL lines;\nUPDATE tags SET n = n;\nVACUUM FULL tags",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cp := copyDB(t, src)
			if tt.damage != "" {
				cp.exec(t, tt.damage)
			}
			ctx := testCtx(t)
			a, b := src.target(t), cp.target(t)

			d, err := checks.CompareSources(ctx, checks.LiveSource(a), checks.LiveSource(b))
			if err != nil {
				t.Fatal(err)
			}
			if got := diffRanges(d); !slices.Equal(got, tt.live) {
				t.Errorf("live/live: %q\nwant %q", got, tt.live)
			}
			if d.Identical != (len(tt.live) == 0) {
				t.Errorf("Identical = %v", d.Identical)
			}

			fp, err := checks.ReadFingerprint(bytes.NewReader(stored.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			d, err = checks.CompareSources(ctx, checks.StoredSource(fp), checks.LiveSource(b))
			if err != nil {
				t.Fatal(err)
			}
			if got := diffRanges(d); !slices.Equal(got, tt.file) {
				t.Errorf("file/live: %q\nwant %q", got, tt.file)
			}
		})
	}
}

// TestFingerprintNormalisesSettings: a restored copy on a server (here: a
// database) with other TimeZone, DateStyle, float and bytea settings
// fingerprints the same.
func TestFingerprintNormalisesSettings(t *testing.T) {
	c := pgtest.Shared(t)
	src := newFPDB(t, c, fpSchema+`CREATE TABLE floats (id int PRIMARY KEY, f float8, r real, m money, ts timestamp, d date, iv interval);
		INSERT INTO floats SELECT g, 1.0/g, 1.0/g, g * 1.01, timestamp '2024-02-29 12:34:56.789' + g * interval '1 day 1 second', date '2024-01-01' + g, g * interval '1 day 2 hours'
		FROM generate_series(1, 500) g;`)
	cp := copyDB(t, src)
	cp.exec(t, fmt.Sprintf(`ALTER DATABASE %s SET timezone = 'Asia/Tokyo';
		ALTER DATABASE %[1]s SET datestyle = 'SQL, DMY';
		ALTER DATABASE %[1]s SET intervalstyle = 'sql_standard';
		ALTER DATABASE %[1]s SET extra_float_digits = -3;
		ALTER DATABASE %[1]s SET bytea_output = 'escape';
		ALTER DATABASE %[1]s SET search_path = sales, public`, pq.QuoteIdentifier(cp.name)))
	a, b := src.fingerprint(t), cp.fingerprint(t)
	d, err := checks.Compare(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Identical {
		t.Errorf("settings changed the fingerprint: %q", diffRanges(d))
	}
}

// TestFingerprintChunkedEqualsOneChunk: a table of a million rows
// fingerprinted in many chunks (in parallel, and sized by time) gives the
// same result as in one chunk.
func TestFingerprintChunkedEqualsOneChunk(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a million-row table")
	}
	c := pgtest.Shared(t)
	start := time.Now()
	d := newFPDB(t, c, `CREATE TABLE big (id int PRIMARY KEY, v text, n int);
		INSERT INTO big SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE md5(g::text) END, g % 1000 FROM generate_series(1, 1000000) g;
		VACUUM ANALYZE big`)
	t.Logf("built in %s", time.Since(start).Round(time.Millisecond))
	one := d.fingerprint(t, checks.WithChunkRows(math.MaxInt64))
	if n := len(one.Tables[0].Chunks); n != 1 {
		t.Fatalf("one chunk: got %d chunks", n)
	}
	fixed := map[string]*checks.Fingerprint{}
	for _, tc := range []struct {
		name string
		opts []checks.FingerprintOption
	}{
		{"fixed 37k-row chunks", []checks.FingerprintOption{checks.WithChunkRows(37_000)}},
		{"fixed chunks, 1 job", []checks.FingerprintOption{checks.WithChunkRows(50_000)}},
		{"fixed chunks, 3 jobs", []checks.FingerprintOption{checks.WithChunkRows(50_000), checks.WithFingerprintJobs(3)}},
		{"sized by time", []checks.FingerprintOption{checks.WithChunkTime(20 * time.Millisecond), checks.WithFingerprintJobs(2)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			fp := d.fingerprint(t, tc.opts...)
			tb, ob := fp.Tables[0], one.Tables[0]
			t.Logf("%d chunks in %s", len(tb.Chunks), time.Since(start).Round(time.Millisecond))
			if len(tb.Chunks) < 10 {
				t.Errorf("only %d chunks", len(tb.Chunks))
			}
			if tb.Rows != 1_000_000 || tb.Rows != ob.Rows || tb.Hash != ob.Hash {
				t.Errorf("chunked: %d rows, hash %s; one chunk: %d rows, hash %s", tb.Rows, tb.Hash, ob.Rows, ob.Hash)
			}
			if diff, err := checks.Compare(one, fp); err != nil || !diff.Identical {
				t.Errorf("Compare: %v %q", err, diffRanges(diff))
			}
			fixed[tc.name] = fp
		})
	}
	// One connection finds chunk bounds while hashing (hashNext), several
	// walk the key first (bound): the chunks are the same.
	a, b := fixed["fixed chunks, 1 job"], fixed["fixed chunks, 3 jobs"]
	if a != nil && b != nil {
		ca, cb := a.Tables[0].Chunks, b.Tables[0].Chunks
		if len(ca) != len(cb) {
			t.Fatalf("%d chunks with one job, %d with three", len(ca), len(cb))
		}
		for i := range ca {
			if !ca[i].Lower.Equal(cb[i].Lower) || !ca[i].Upper.Equal(cb[i].Upper) || ca[i].Hash != cb[i].Hash || ca[i].Rows != cb[i].Rows {
				t.Errorf("chunk %d: %s %d %s vs %s %d %s", i, ca[i].Range(), ca[i].Rows, ca[i].Hash, cb[i].Range(), cb[i].Rows, cb[i].Hash)
			}
		}
	}
}

// TestFingerprintSnapshot: every chunk, on every worker, sees the same
// snapshot. A writer moves rows from one table to another, one per
// transaction, while the fingerprint runs with small chunks; the two
// tables always hold 20,000 rows between them, so any fingerprint that
// mixes snapshots would count another total.
func TestFingerprintSnapshot(t *testing.T) {
	c := pgtest.Shared(t)
	d := newFPDB(t, c, `CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text);
		INSERT INTO a SELECT g, md5(g::text) FROM generate_series(1, 20000) g;`)
	pool, err := c.Open(d.name)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx, stop := context.WithCancel(testCtx(t))
	var wg sync.WaitGroup
	var moved atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			_, err := pool.ExecContext(ctx, `WITH m AS (DELETE FROM a WHERE id = (SELECT max(id) FROM a) RETURNING *) INSERT INTO b SELECT * FROM m`)
			if err == nil {
				moved.Add(1)
			}
		}
	}()
	for _, jobs := range []int{1, 3} {
		fp := d.fingerprint(t, checks.WithChunkRows(200), checks.WithFingerprintJobs(jobs))
		if total := fp.Rows(); total != 20000 {
			t.Errorf("jobs %d: the fingerprint counts %d rows in a and b, want 20000: it mixed snapshots", jobs, total)
		}
		if !strings.Contains(fp.Snapshot, "REPEATABLE READ") || (jobs > 1 && !strings.Contains(fp.Snapshot, "exported to 3 workers")) {
			t.Errorf("snapshot %q", fp.Snapshot)
		}
	}
	stop()
	wg.Wait()
	t.Logf("the writer moved %d rows meanwhile", moved.Load())
	if moved.Load() < 10 {
		t.Logf("the writer moved only %d rows: the test proves little", moved.Load())
	}
}

// TestFingerprintBoundsFrom: a fingerprint taken with another's bounds has
// exactly its chunks.
func TestFingerprintBoundsFrom(t *testing.T) {
	c := pgtest.Shared(t)
	src := newFPDB(t, c, fpSchema)
	a := src.fingerprint(t, checks.WithChunkRows(700))
	cp := cloneDB(t, src)
	cp.exec(t, "DELETE FROM orders WHERE id > 9000")
	b := cp.fingerprint(t, checks.WithBoundsFrom(a))
	for _, ta := range a.Tables {
		tb := b.Table(ta.Name)
		if tb == nil || len(tb.Chunks) != len(ta.Chunks) {
			t.Fatalf("%s: chunks differ", ta.Name)
		}
		for i := range ta.Chunks {
			if !ta.Chunks[i].Lower.Equal(tb.Chunks[i].Lower) || !ta.Chunks[i].Upper.Equal(tb.Chunks[i].Upper) {
				t.Errorf("%s chunk %d: %s vs %s", ta.Name, i, ta.Chunks[i].Range(), tb.Chunks[i].Range())
			}
		}
	}
	d, err := checks.Compare(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := diffRanges(d), []string{"public.orders (8400, 9800] 700/300", "public.orders (9800, +inf) 100/0"}; !slices.Equal(got, want) {
		t.Errorf("%q, want %q", got, want)
	}
}

func TestFingerprintFiltersAndPrivileges(t *testing.T) {
	c := pgtest.Shared(t)
	d := newFPDB(t, c, fpSchema)
	fp := d.fingerprint(t, checks.WithTables("stock_*", "sales.*"), checks.WithExcludeTables("public.stock_b"))
	var names []string
	for _, tb := range fp.Tables {
		names = append(names, tb.Name)
	}
	if want := []string{"public.stock_a", `sales.Odd "Name"`}; !slices.Equal(names, want) {
		t.Errorf("tables %q, want %q", names, want)
	}
	ev := d.fingerprint(t, checks.WithTables("events")).Tables[0]
	if ev.Keyed || !strings.Contains(ev.Note, "no primary key") || len(ev.Chunks) != 1 || ev.Rows != 300 {
		t.Errorf("events: %+v", ev)
	}

	ctx := testCtx(t)
	user := fmt.Sprintf("fp_reader_%d", os.Getpid())
	if err := c.CreateUser(ctx, user, "pw-"+user); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Exec(context.Background(), d.name, "DROP OWNED BY "+pq.QuoteIdentifier(user))
		_ = c.Exec(context.Background(), "postgres", "DROP ROLE IF EXISTS "+pq.QuoteIdentifier(user))
	})
	d.exec(t, "GRANT SELECT ON ALL TABLES IN SCHEMA public TO "+pq.QuoteIdentifier(user)+"; REVOKE SELECT ON tags FROM "+pq.QuoteIdentifier(user))
	tg, err := Open(c.UserDSN(user, "pw-"+user, d.name))
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	_, err = tg.Fingerprint(ctx)
	if !errors.Is(err, ErrPrivilege) || !strings.Contains(err.Error(), "public.tags") || !strings.Contains(err.Error(), "sales.") {
		t.Errorf("err = %v, want ErrPrivilege naming public.tags and the sales table", err)
	}
	if strings.Contains(err.Error(), "pw-"+user) {
		t.Errorf("the password leaked: %v", err)
	}
	fp, err = tg.Fingerprint(ctx, checks.WithExcludeTables("tags", "sales.*"))
	if err != nil {
		t.Fatalf("with the unreadable tables excluded: %v", err)
	}
	if len(fp.Tables) != 5 {
		t.Errorf("%d tables", len(fp.Tables))
	}
}

func TestFingerprintErrors(t *testing.T) {
	c := pgtest.Shared(t)
	d := newFPDB(t, c, "CREATE TABLE t (id int PRIMARY KEY)")
	tg := d.target(t)
	ctx := testCtx(t)
	if _, err := tg.Fingerprint(ctx, checks.WithChunkRows(0)); !errors.Is(err, checks.ErrInvalidOption) {
		t.Errorf("bad option: %v", err)
	}
	if _, err := tg.HashRanges(ctx, "public.nope", nil); err == nil || !strings.Contains(err.Error(), "no table public.nope") {
		t.Errorf("unknown table: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := tg.Fingerprint(cancelled); err == nil {
		t.Error("a cancelled fingerprint succeeded")
	}
	tg.Close()
	if _, err := tg.Fingerprint(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("closed: %v", err)
	}
	bad, _ := Open("postgres://nobody:Sup3rS3cret@127.0.0.1:1/x?sslmode=disable&connect_timeout=2")
	defer bad.Close()
	if _, err := bad.Fingerprint(ctx); !errors.Is(err, ErrConnect) || strings.Contains(err.Error(), "Sup3rS3cret") {
		t.Errorf("unreachable: %v", err)
	}
}

// BenchmarkFingerprintVsCopy compares fingerprinting pgbench_accounts
// (pgbench -i -s 50, 5 million rows) with
// psql -c "COPY pgbench_accounts TO STDOUT" > /dev/null on the same
// cluster, alternating runs, and reports the medians and their ratio:
//
//	DBSCRUB_BENCH=1 go test ./drivers/postgres/ -run '^$' -bench FingerprintVsCopy -benchtime 1x -timeout 1h
//
// DBSCRUB_BENCH_SCALE sets the pgbench scale (default 50),
// DBSCRUB_BENCH_ROUNDS the rounds (default 7).
func BenchmarkFingerprintVsCopy(b *testing.B) {
	if os.Getenv("DBSCRUB_BENCH") != "1" {
		b.Skip("set DBSCRUB_BENCH=1 to run the benchmarks (pgbench -i -s 50 builds 5 million rows)")
	}
	scale, rounds := "50", 7
	if v := os.Getenv("DBSCRUB_BENCH_SCALE"); v != "" {
		scale = v
	}
	if v := os.Getenv("DBSCRUB_BENCH_ROUNDS"); v != "" {
		fmt.Sscan(v, &rounds)
	}
	c := pgtest.Shared(b)
	d := newFPDB(b, c, "")
	init := exec.Command(filepath.Join(c.BinDir, "pgbench"), "-i", "-q", "-s", scale, "-d", d.dsn)
	if out, err := init.CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	tg := d.target(b)
	ctx := context.Background()
	copyRun := func() time.Duration {
		devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer devnull.Close()
		cmd := exec.Command(filepath.Join(c.BinDir, "psql"), "-X", "-q", "-d", d.dsn, "-c", "COPY pgbench_accounts TO STDOUT")
		cmd.Stdout = devnull
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("psql: %v %s", err, stderr.String())
		}
		return time.Since(start)
	}
	var want checks.Digest
	fpRun := func(jobs int) time.Duration {
		start := time.Now()
		fp, err := tg.Fingerprint(ctx, checks.WithTables("public.pgbench_accounts"), checks.WithFingerprintJobs(jobs))
		if err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		if h := fp.Tables[0].Hash; want == (checks.Digest{}) {
			want = h
		} else if h != want {
			b.Fatalf("jobs %d: hash %s, earlier %s", jobs, h, want)
		}
		return el
	}
	// Warm up: the table into the page cache, the connections.
	copyRun()
	fpRun(1)
	var copies, fp1, fp2 []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			copies = append(copies, copyRun())
			fp1 = append(fp1, fpRun(1))
			fp2 = append(fp2, fpRun(2))
		}
	}
	b.StopTimer()
	median := func(ds []time.Duration) time.Duration {
		s := slices.Clone(ds)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[len(s)/2]
	}
	mc, m1, m2 := median(copies), median(fp1), median(fp2)
	b.ReportMetric(mc.Seconds(), "copy-s")
	b.ReportMetric(m1.Seconds(), "fp-jobs1-s")
	b.ReportMetric(m2.Seconds(), "fp-jobs2-s")
	b.ReportMetric(m1.Seconds()/mc.Seconds(), "ratio-jobs1")
	b.ReportMetric(m2.Seconds()/mc.Seconds(), "ratio-jobs2")
	var rows int64
	_ = tg.db.QueryRow("SELECT count(*) FROM pgbench_accounts").Scan(&rows)
	fmt.Fprintf(os.Stderr, "pgbench -s %s: %d rows, %d rounds alternating; medians: COPY %s, fingerprint jobs=1 %s (%.2fx), jobs=2 %s (%.2fx)\n  copy %v\n  fp1  %v\n  fp2  %v\n",
		scale, rows, len(copies), mc.Round(time.Millisecond), m1.Round(time.Millisecond), m1.Seconds()/mc.Seconds(),
		m2.Round(time.Millisecond), m2.Seconds()/mc.Seconds(), copies, fp1, fp2)
}
