package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dbscrub/dbscrub/checks"
)

// fpSetup builds the database the fingerprint tests copy and damage.
var fpSetup = []string{
	`CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, amount REAL, note TEXT, created DATETIME, data BLOB)`,
	`WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 5000)
	 INSERT INTO orders SELECT 2 * n, 'customer ' || (n % 97), n * 1.25,
		CASE WHEN n % 10 = 0 THEN NULL WHEN n % 10 = 1 THEN '' ELSE 'note ' || n END,
		datetime('2024-01-01', '+' || n || ' minutes'), CASE WHEN n % 3 = 0 THEN x'' ELSE x'00ff' END FROM g`,
	`CREATE TABLE lines (order_id INTEGER NOT NULL, line INTEGER NOT NULL, sku TEXT, qty REAL, PRIMARY KEY (order_id, line)) WITHOUT ROWID`,
	`WITH RECURSIVE o(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM o WHERE n < 1000), l(m) AS (VALUES (1), (2), (3), (4))
	 INSERT INTO lines SELECT n, m, 'sku-' || ((n * 7 + m) % 1000), m * 0.5 FROM o, l`,
	`CREATE TABLE tags (name TEXT PRIMARY KEY, n INTEGER, v)`,
	`WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 2000)
	 INSERT INTO tags SELECT 'tag' || substr('0000' || n, -4), n, CASE n % 4 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 0 ELSE x'' END FROM g`,
	`CREATE TABLE events (at TEXT, what TEXT)`,
	`WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 300) INSERT INTO events SELECT datetime('2024-01-01', '+' || n || ' hours'), 'event ' || n FROM g`,
	`CREATE TABLE stock_a (id INTEGER PRIMARY KEY, sku TEXT, qty INTEGER)`,
	`CREATE TABLE stock_b (id INTEGER PRIMARY KEY, sku TEXT, qty INTEGER)`,
	`WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 1000) INSERT INTO stock_a SELECT n, 'a' || n, n FROM g`,
	`WITH RECURSIVE g(n) AS (SELECT 1001 UNION ALL SELECT n + 1 FROM g WHERE n < 2000) INSERT INTO stock_b SELECT n, 'b' || n, n FROM g`,
	`CREATE TABLE "odd ""name""" (k REAL PRIMARY KEY, v TEXT)`,
	`INSERT INTO "odd ""name""" VALUES (0.5, 'x'), (1.5, NULL), (2.0, 'z')`,
	`CREATE TABLE blobs (k BLOB PRIMARY KEY, v TEXT)`,
	`INSERT INTO blobs VALUES (x'00', 'a'), (x'0001', 'b'), (x'ff', 'c')`,
	`CREATE INDEX orders_customer ON orders (customer)`,
}

// fpFile creates the sample database in a new directory.
func fpFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.db")
	exec(t, path, fpSetup...)
	return path
}

// copyFile copies a database file as a disk move would.
func copyFile(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy.db")
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

func fpOpen(t testing.TB, path string) *Target {
	t.Helper()
	tg, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

func fpTake(t testing.TB, path string, opts ...checks.FingerprintOption) *checks.Fingerprint {
	t.Helper()
	fp, err := fpOpen(t, path).Fingerprint(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := fp.Validate(); err != nil {
		t.Fatal(err)
	}
	return fp
}

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
	src := fpFile(t)
	var stored bytes.Buffer
	if err := fpTake(t, src, checks.WithChunkRows(500)).Write(&stored); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		damage     []string
		live, file []string
	}{
		{name: "identical copy"},
		{
			name:   "deleted row",
			damage: []string{"DELETE FROM orders WHERE id = 4242"},
			live:   []string{"orders (4240, 4242] 1/0"},
			file:   []string{"orders (4000, 5000] 500/499"},
		},
		{
			name:   "inserted row",
			damage: []string{"INSERT INTO orders (id, customer) VALUES (4243, 'new')"},
			live:   []string{"orders (4242, 4243] 0/1"},
			file:   []string{"orders (4000, 5000] 500/501"},
		},
		{
			name:   "updated value",
			damage: []string{"UPDATE orders SET amount = amount + 0.01 WHERE id = 4242"},
			live:   []string{"orders (4240, 4242] 1/1"},
			file:   []string{"orders (4000, 5000] 500/500"},
		},
		{
			name:   "NULL became empty string",
			damage: []string{"UPDATE orders SET note = '' WHERE id = 40"},
			live:   []string{"orders (38, 40] 1/1"},
			file:   []string{"orders (-inf, 1000] 500/500"},
		},
		{
			name: "NULL, '', 0 and X'' told apart",
			damage: []string{
				"UPDATE tags SET v = '' WHERE name = 'tag0004'",   // was NULL
				"UPDATE tags SET v = 0 WHERE name = 'tag0005'",    // was ''
				"UPDATE tags SET v = x'' WHERE name = 'tag0006'",  // was 0
				"UPDATE tags SET v = NULL WHERE name = 'tag0007'", // was X''
			},
			live: []string{"tags ('tag0003', 'tag0007'] 4/4"},
			file: []string{"tags (-inf, 'tag0500'] 500/500"},
		},
		{
			name:   "integer became real", // v has no type affinity, so 0.0 stays REAL
			damage: []string{"UPDATE tags SET v = 0.0 WHERE name = 'tag0006'", "UPDATE tags SET n = 5.0 WHERE name = 'tag0005'"},
			live:   []string{"tags ('tag0005', 'tag0006'] 1/1"},
			file:   []string{"tags (-inf, 'tag0500'] 500/500"},
		},
		{
			name:   "dropped table",
			damage: []string{"DROP TABLE tags"},
			live:   []string{"missing tags"},
			file:   []string{"missing tags"},
		},
		{
			name: "two rows swapped between tables",
			damage: []string{
				"INSERT INTO stock_b SELECT * FROM stock_a WHERE id = 300", "DELETE FROM stock_a WHERE id = 300",
				"INSERT INTO stock_a SELECT * FROM stock_b WHERE id = 1700", "DELETE FROM stock_b WHERE id = 1700",
			},
			live: []string{"stock_a (299, 300] 1/0", "stock_a (1000, 1700] 0/1", "stock_b (-inf, 300] 0/1", "stock_b (1699, 1700] 1/0"},
			file: []string{"stock_a (-inf, 500] 500/499", "stock_a (1000, +inf) 0/1", "stock_b (-inf, 1500] 500/501", "stock_b (1500, 2000] 500/499"},
		},
		{
			name:   "composite key",
			damage: []string{"UPDATE lines SET qty = qty + 1 WHERE order_id = 700 AND line = 3"},
			live:   []string{"lines ((700, 2), (700, 3)] 1/1"},
			file:   []string{"lines ((625, 4), (750, 4)] 500/500"},
		},
		{
			name:   "real and blob keys",
			damage: []string{`UPDATE "odd ""name""" SET v = '' WHERE k = 1.5`, "DELETE FROM blobs WHERE k = x'0001'"},
			live:   []string{`blobs ({"blob":"00"}, {"blob":"0001"}] 1/0`, `odd "name" (0.5, 1.5] 1/1`},
			file:   []string{`blobs (-inf, +inf) 3/2`, `odd "name" (-inf, +inf) 3/3`},
		},
		{
			name:   "table without a primary key",
			damage: []string{"UPDATE events SET what = 'changed' WHERE what = 'event 7'"},
			live:   []string{"events (-inf, +inf) 300/300"},
			file:   []string{"events (-inf, +inf) 300/300"},
		},
		{
			name:   "physical order changed: VACUUM, rewritten rows, a new index",
			damage: []string{"DELETE FROM orders WHERE id < 100", "INSERT INTO orders SELECT * FROM orders WHERE 0", "VACUUM", "CREATE INDEX tags_n ON tags (n)", "REINDEX"},
			live:   []string{"orders (-inf, 98] 49/0"},
			file:   []string{"orders (-inf, 1000] 500/451"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cp := copyFile(t, src)
			exec(t, cp, tt.damage...)
			ctx := context.Background()
			a, b := fpOpen(t, src), fpOpen(t, cp)
			d, err := checks.CompareSources(ctx, checks.LiveSource(a), checks.LiveSource(b))
			if err != nil {
				t.Fatal(err)
			}
			if got := diffRanges(d); !slices.Equal(got, tt.live) {
				t.Errorf("live/live: %q\nwant %q", got, tt.live)
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

// TestFingerprintReorderedStorage: the same rows inserted in another order
// (another rowid order, other pages) fingerprint the same.
func TestFingerprintReorderedStorage(t *testing.T) {
	src := fpFile(t)
	cp := filepath.Join(t.TempDir(), "reordered.db")
	stmts := slices.Clone(fpSetup)
	for i, s := range stmts { // insert in reverse key order where the order is set by the generator
		stmts[i] = strings.Replace(s, "FROM g`", "FROM g ORDER BY n DESC`", 1)
	}
	stmts = append(stmts, "INSERT INTO events SELECT * FROM events WHERE 0")
	exec(t, cp, stmts...)
	exec(t, cp, "CREATE TEMP TABLE e AS SELECT * FROM events ORDER BY random()", "DELETE FROM events", "INSERT INTO events SELECT * FROM e", "VACUUM")
	d, err := checks.Compare(fpTake(t, src), fpTake(t, cp))
	if err != nil {
		t.Fatal(err)
	}
	if !d.Identical {
		t.Errorf("reordered storage compares different: %q", diffRanges(d))
	}
}

func TestFingerprintNullableKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "legacy.db")
	exec(t, path, "CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)", "INSERT INTO t VALUES ('a', 1), ('b', 2)",
		"CREATE TABLE u (k TEXT PRIMARY KEY, v INTEGER)", "INSERT INTO u VALUES ('a', 1), (NULL, 2), (NULL, 3)")
	fp := fpTake(t, path)
	if tb := fp.Table("t"); tb == nil || !tb.Keyed || tb.Rows != 2 {
		t.Errorf("t: %+v", tb)
	}
	if tb := fp.Table("u"); tb == nil || tb.Keyed || tb.Rows != 3 || !strings.Contains(tb.Note, "holds NULL") {
		t.Errorf("u (NULL in the key): %+v", tb)
	}
}

// TestFingerprintChunkedEqualsOneChunk: chunks add up to the one-chunk
// fingerprint whatever their size.
func TestFingerprintChunkedEqualsOneChunk(t *testing.T) {
	n := 200_000
	if testing.Short() {
		n = 20_000
	}
	path := filepath.Join(t.TempDir(), "big.db")
	exec(t, path, "CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT, n INTEGER)",
		fmt.Sprintf(`WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < %d)
			INSERT INTO big SELECT n, CASE WHEN n %% 7 = 0 THEN NULL ELSE hex(randomblob(16)) END, n %% 1000 FROM g`, n))
	start := time.Now()
	one := fpTake(t, path, checks.WithChunkRows(math.MaxInt64))
	t.Logf("%d rows in one chunk: %s", n, time.Since(start).Round(time.Millisecond))
	for _, opts := range [][]checks.FingerprintOption{
		{checks.WithChunkRows(7_777)},
		{checks.WithChunkTime(5 * time.Millisecond)},
	} {
		start := time.Now()
		fp := fpTake(t, path, opts...)
		tb := fp.Tables[0]
		t.Logf("%d chunks: %s", len(tb.Chunks), time.Since(start).Round(time.Millisecond))
		if len(tb.Chunks) < 5 || tb.Rows != int64(n) || tb.Hash != one.Tables[0].Hash {
			t.Errorf("%d chunks, %d rows, hash %s; one chunk: hash %s", len(tb.Chunks), tb.Rows, tb.Hash, one.Tables[0].Hash)
		}
	}
}

func TestFingerprintNewAndErrors(t *testing.T) {
	path := fpFile(t)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tg, err := New(db)
	if err != nil {
		t.Fatal(err)
	}
	viaPool, err := tg.Fingerprint(context.Background(), checks.WithTables("orders", "tags"))
	if err != nil {
		t.Fatal(err)
	}
	viaOpen := fpTake(t, path, checks.WithExcludeTables("lines", "events", "stock_*", "odd*", "blobs"))
	if d, err := checks.Compare(viaOpen, viaPool); err != nil || !d.Identical {
		t.Errorf("New and Open differ: %v %q", err, diffRanges(d))
	}
	if len(viaPool.Tables) != 2 {
		t.Errorf("tables %d", len(viaPool.Tables))
	}

	missing, _ := Open(filepath.Join(t.TempDir(), "nope.db"))
	defer missing.Close()
	if _, err := missing.Fingerprint(context.Background()); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := tg.Fingerprint(context.Background(), checks.WithChunkTime(-1)); !errors.Is(err, checks.ErrInvalidOption) {
		t.Errorf("bad option: %v", err)
	}
	if _, err := tg.HashRanges(context.Background(), "events", []checks.KeyRange{{}}); !errors.Is(err, checks.ErrUnsupported) {
		t.Errorf("HashRanges on a table without a key: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tg.Fingerprint(ctx); err == nil {
		t.Error("a cancelled fingerprint succeeded")
	}
}

func TestFingerprintKeyEncoding(t *testing.T) {
	vals := []any{int64(-5), 2.0, 0.1, "tag'1", "\xff\xfe", []byte{0, 1}, math.Inf(1)}
	k, err := encodeKey(vals)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(k.String()); got != `(-5, 2.0, 0.1, 'tag''1', {"text_hex":"fffe"}, {"blob":"0001"}, {"real":"+Inf"})` {
		t.Errorf("key %s", got)
	}
	back, err := decodeKey(k, len(vals))
	if err != nil {
		t.Fatal(err)
	}
	for i := range vals {
		if fmt.Sprintf("%T %v", back[i], back[i]) != fmt.Sprintf("%T %v", vals[i], vals[i]) {
			t.Errorf("value %d: %T %v, want %T %v", i, back[i], back[i], vals[i], vals[i])
		}
	}
}
