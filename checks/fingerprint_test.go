package checks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// memDB is an in-memory database with integer keys: a Fingerprinter and a
// RangeHasher, to test comparison and narrowing without an engine.
type memDB struct {
	engine string
	tables map[string]*memTable
	calls  int // HashRanges and SplitRange calls
}

type memTable struct {
	keyed bool
	rows  map[int64]string
}

func newMemDB(tables map[string]int) *memDB {
	db := &memDB{engine: "mem", tables: map[string]*memTable{}}
	for name, n := range tables {
		t := &memTable{keyed: true, rows: map[int64]string{}}
		for i := int64(1); i <= int64(n); i++ {
			t.rows[i*10] = "v" + strconv.FormatInt(i, 10)
		}
		db.tables[name] = t
	}
	return db
}

func (db *memDB) clone() *memDB {
	c := &memDB{engine: db.engine, tables: map[string]*memTable{}}
	for n, t := range db.tables {
		nt := &memTable{keyed: t.keyed, rows: map[int64]string{}}
		for k, v := range t.rows {
			nt.rows[k] = v
		}
		c.tables[n] = nt
	}
	return c
}

func memKey(k int64) Key { return Key{json.RawMessage(strconv.FormatInt(k, 10))} }

func memKeyVal(k Key) int64 {
	v, _ := strconv.ParseInt(string(k[0]), 10, 64)
	return v
}

func (t *memTable) keys() []int64 {
	var ks []int64
	for k := range t.rows {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func (t *memTable) in(r KeyRange, k int64) bool {
	return (r.Lower == nil || k > memKeyVal(r.Lower)) && (r.Upper == nil || k <= memKeyVal(r.Upper))
}

func (t *memTable) hash(r KeyRange) ChunkFingerprint {
	ch := ChunkFingerprint{Lower: r.Lower, Upper: r.Upper}
	for k, v := range t.rows {
		if t.in(r, k) {
			sum := sha256.Sum256([]byte(strconv.FormatInt(k, 10) + "\x00" + v))
			ch.Hash = ch.Hash.Add(RowDigest(sum[:]))
			ch.Rows++
		}
	}
	return ch
}

func (db *memDB) Fingerprint(ctx context.Context, opts ...FingerprintOption) (*Fingerprint, error) {
	cfg, err := NewFingerprintConfig(opts...)
	if err != nil {
		return nil, err
	}
	fp := &Fingerprint{SchemaVersion: FingerprintSchemaVersion, Engine: db.engine, Source: "mem://db", Algorithm: "mem/v1", TakenAt: time.Unix(0, 0).UTC(), Tables: []TableFingerprint{}}
	var names []string
	for n := range db.tables {
		if cfg.MatchTable(n, n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		t := db.tables[n]
		tf := TableFingerprint{Name: n, Columns: []Column{{"id", "int"}, {"v", "text"}}, Keyed: t.keyed}
		switch {
		case !t.keyed:
			tf.Chunks = []ChunkFingerprint{t.hash(KeyRange{})}
		default:
			tf.PrimaryKey = []string{"id"}
			ranges, ok := cfg.Bounds(n, tf.PrimaryKey)
			if !ok {
				per := cfg.ChunkRows
				if per == 0 {
					per = 3
				}
				var lower Key
				ks := t.keys()
				for i := int(per) - 1; i < len(ks); i += int(per) {
					ranges = append(ranges, KeyRange{Lower: lower, Upper: memKey(ks[i])})
					lower = memKey(ks[i])
				}
				ranges = append(ranges, KeyRange{Lower: lower})
			}
			for _, r := range ranges {
				tf.Chunks = append(tf.Chunks, t.hash(r))
			}
		}
		tf.SumChunks()
		fp.Tables = append(fp.Tables, tf)
	}
	return fp, nil
}

func (db *memDB) HashRanges(ctx context.Context, table string, ranges []KeyRange) ([]ChunkFingerprint, error) {
	db.calls++
	t := db.tables[table]
	if t == nil {
		return nil, fmt.Errorf("no table %s", table)
	}
	out := make([]ChunkFingerprint, len(ranges))
	for i, r := range ranges {
		out[i] = t.hash(r)
	}
	return out, nil
}

func (db *memDB) SplitRange(ctx context.Context, table string, r KeyRange, every int64) ([]Key, error) {
	db.calls++
	t := db.tables[table]
	var in []int64
	for _, k := range t.keys() {
		if t.in(r, k) {
			in = append(in, k)
		}
	}
	var out []Key
	for i := int(every) - 1; i < len(in); i += int(every) {
		if r.Upper != nil && in[i] == memKeyVal(r.Upper) {
			break
		}
		out = append(out, memKey(in[i]))
	}
	return out, nil
}

func mustFP(t *testing.T, db *memDB, opts ...FingerprintOption) *Fingerprint {
	t.Helper()
	fp, err := db.Fingerprint(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

// rangesOf formats a table's differing ranges.
func rangesOf(d *Diff, table string) []string {
	var out []string
	for _, td := range d.Tables {
		if td.Name == table {
			for _, r := range td.Ranges {
				out = append(out, fmt.Sprintf("%s %d/%d", r.KeyRange, r.RowsA, r.RowsB))
			}
		}
	}
	return out
}

func TestCompareDetectsAndLocates(t *testing.T) {
	tests := []struct {
		name   string
		damage func(db *memDB)
		// want maps a table to its differing ranges: narrowed on two live
		// databases, and at the chunk granularity (3 rows) against a file.
		live, file map[string][]string
		missing    []string
		extra      []string
	}{
		{name: "identical", damage: func(*memDB) {}},
		{
			name:   "deleted row",
			damage: func(db *memDB) { delete(db.tables["orders"].rows, 50) },
			live:   map[string][]string{"orders": {"(40, 50] 1/0"}},
			file:   map[string][]string{"orders": {"(30, 60] 3/2"}},
		},
		{
			name:   "inserted row",
			damage: func(db *memDB) { db.tables["orders"].rows[55] = "new" },
			live:   map[string][]string{"orders": {"(50, 55] 0/1"}},
			file:   map[string][]string{"orders": {"(30, 60] 3/4"}},
		},
		{
			name:   "inserted row after the last key",
			damage: func(db *memDB) { db.tables["orders"].rows[1000] = "new" },
			live:   map[string][]string{"orders": {"(200, 1000] 0/1"}},
			file:   map[string][]string{"orders": {"(180, +inf) 2/3"}},
		},
		{
			name:   "updated value",
			damage: func(db *memDB) { db.tables["orders"].rows[120] = "changed" },
			live:   map[string][]string{"orders": {"(110, 120] 1/1"}},
			file:   map[string][]string{"orders": {"(90, 120] 3/3"}},
		},
		{
			name:    "dropped table",
			damage:  func(db *memDB) { delete(db.tables, "items") },
			missing: []string{"items"},
		},
		{
			name:   "new table",
			damage: func(db *memDB) { db.tables["audit"] = &memTable{keyed: true, rows: map[int64]string{1: "x"}} },
			extra:  []string{"audit"},
		},
		{
			name: "rows swapped between tables",
			damage: func(db *memDB) {
				o, i := db.tables["orders"].rows, db.tables["items"].rows
				o[30], i[30] = i[30], o[30]
				o[30] += "-from-items"
				i[30] += "-from-orders"
			},
			live: map[string][]string{"orders": {"(20, 30] 1/1"}, "items": {"(20, 30] 1/1"}},
			file: map[string][]string{"orders": {"(-inf, 30] 3/3"}, "items": {"(-inf, 30] 3/3"}},
		},
		{
			name: "two distant changes",
			damage: func(db *memDB) {
				db.tables["orders"].rows[20] = "x"
				db.tables["orders"].rows[170] = "y"
			},
			live: map[string][]string{"orders": {"(10, 20] 1/1", "(160, 170] 1/1"}},
			file: map[string][]string{"orders": {"(-inf, 30] 3/3", "(150, 180] 3/3"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := newMemDB(map[string]int{"orders": 20, "items": 5})
			cp := orig.clone()
			tt.damage(cp)
			ctx := context.Background()

			check := func(mode string, d *Diff, want map[string][]string) {
				t.Helper()
				identical := len(want) == 0 && len(tt.missing) == 0 && len(tt.extra) == 0
				if d.Identical != identical {
					t.Errorf("%s: Identical = %v, want %v: %+v", mode, d.Identical, identical, d)
				}
				var missing, extra []string
				for _, m := range d.Missing {
					missing = append(missing, m.Name)
				}
				for _, e := range d.Extra {
					extra = append(extra, e.Name)
				}
				if !slices.Equal(missing, tt.missing) || !slices.Equal(extra, tt.extra) {
					t.Errorf("%s: missing %v extra %v, want %v and %v", mode, missing, extra, tt.missing, tt.extra)
				}
				if len(d.Tables) != len(want) {
					t.Errorf("%s: %d differing tables, want %d: %+v", mode, len(d.Tables), len(want), d.Tables)
				}
				for table, w := range want {
					if got := rangesOf(d, table); !slices.Equal(got, w) {
						t.Errorf("%s: %s ranges %q, want %q", mode, table, got, w)
					}
				}
			}

			// Two live databases: narrowed by bisection.
			d, err := CompareSources(ctx, LiveSource(orig), LiveSource(cp))
			if err != nil {
				t.Fatal(err)
			}
			check("live/live", d, tt.live)

			// A stored fingerprint and the live copy: the file's chunks.
			stored := mustFP(t, orig)
			d, err = CompareSources(ctx, StoredSource(stored), LiveSource(cp))
			if err != nil {
				t.Fatal(err)
			}
			check("file/live", d, tt.file)
			if len(tt.file) > 0 && !strings.Contains(strings.Join(d.Notes, " "), "stored fingerprint") {
				t.Errorf("file/live: no note on the file's granularity: %q", d.Notes)
			}

			// Two files taken with the same bounds compare chunk by chunk.
			after := mustFP(t, cp, WithBoundsFrom(stored))
			d, err = CompareSources(ctx, StoredSource(stored), StoredSource(after))
			if err != nil {
				t.Fatal(err)
			}
			check("file/file", d, tt.file)
			if len(tt.file) > 0 && !strings.Contains(strings.Join(d.Notes, " "), "A and B are stored fingerprints") {
				t.Errorf("file/file: notes %q", d.Notes)
			}
		})
	}
}

func TestCompareAlignsDifferentBounds(t *testing.T) {
	orig := newMemDB(map[string]int{"orders": 30})
	cp := orig.clone()
	cp.tables["orders"].rows[130] = "changed"
	a := mustFP(t, orig, WithChunkRows(4)) // bounds 40, 80, 120, 160, ...
	b := mustFP(t, cp, WithChunkRows(6))   // bounds 60, 120, 180, ...
	d, err := Compare(a, b)
	if err != nil {
		t.Fatal(err)
	}
	// Common bounds: 120, 240: the change at 130 lies in (120, 240].
	if got, want := rangesOf(d, "orders"), []string{"(120, 240] 12/12"}; !slices.Equal(got, want) {
		t.Errorf("ranges %q, want %q", got, want)
	}
	// The totals decide sameness whatever the bounds.
	same := mustFP(t, orig, WithChunkRows(7))
	if d, _ := Compare(a, same); !d.Identical {
		t.Errorf("same data with other bounds compares different: %+v", d)
	}
}

func TestCompareUnkeyedAndSchema(t *testing.T) {
	orig := newMemDB(map[string]int{"log": 5})
	orig.tables["log"].keyed = false
	cp := orig.clone()
	cp.tables["log"].rows[20] = "changed"
	a, b := mustFP(t, orig), mustFP(t, cp)
	d, err := Compare(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Tables) != 1 || d.Tables[0].Keyed || !strings.Contains(d.Tables[0].Note, "no primary key") {
		t.Fatalf("unkeyed table: %+v", d.Tables)
	}
	if got := rangesOf(d, "log"); !slices.Equal(got, []string{"(-inf, +inf) 5/5"}) {
		t.Errorf("ranges %q", got)
	}

	b2 := mustFP(t, orig)
	b2.Tables[0].Columns = append(b2.Tables[0].Columns, Column{"extra", "int"})
	d, _ = Compare(a, b2)
	if len(d.Tables) != 1 || d.Tables[0].ColumnsB == nil {
		t.Fatalf("column change not reported: %+v", d.Tables)
	}
	if fs := d.Findings("fingerprint"); len(fs) != 1 || fs[0].Code != "fingerprint_columns_differ" {
		t.Errorf("findings %+v", fs)
	}
}

func TestCompareIncomparable(t *testing.T) {
	a := mustFP(t, newMemDB(map[string]int{"t": 3}))
	b := mustFP(t, newMemDB(map[string]int{"t": 3}))
	b.Engine = "other"
	if _, err := Compare(a, b); !errors.Is(err, ErrIncomparable) {
		t.Errorf("different engines: %v", err)
	}
	b.Engine, b.Algorithm = a.Engine, "mem/v2"
	if _, err := Compare(a, b); !errors.Is(err, ErrIncomparable) {
		t.Errorf("different algorithms: %v", err)
	}
}

func TestNarrowStopsAtMaxRanges(t *testing.T) {
	orig := newMemDB(map[string]int{"orders": 200})
	cp := orig.clone()
	// One chunk: narrowing does all the work.
	whole := WithFingerprintOptions(WithChunkRows(1 << 40))
	// 50 scattered changes.
	for k := int64(10); k <= 2000; k += 40 {
		cp.tables["orders"].rows[k] = "changed"
	}
	d, err := CompareSources(context.Background(), LiveSource(orig), LiveSource(cp), WithMaxRanges(10), whole)
	if err != nil {
		t.Fatal(err)
	}
	td := d.Tables[0]
	if len(td.Ranges) > 10 || !strings.Contains(td.Note, "stopped narrowing") {
		t.Errorf("%d ranges, note %q", len(td.Ranges), td.Note)
	}
	var a, b int64
	for _, r := range td.Ranges {
		a += r.RowsA
		b += r.RowsB
	}
	if a != 200 || b != 200 {
		t.Errorf("ranges cover %d/%d rows, want the whole table", a, b)
	}

	// The default narrows every change to its row, merging neighbours.
	d, err = CompareSources(context.Background(), LiveSource(orig), LiveSource(cp), whole)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(d.Tables[0].Ranges); n != 50 {
		t.Errorf("%d ranges, want 50: %v", n, rangesOf(d, "orders"))
	}
	// Ranges come out in key order.
	var last int64 = -1
	for _, r := range d.Tables[0].Ranges {
		if k := memKeyVal(r.Upper); k <= last {
			t.Errorf("ranges out of order: %v", rangesOf(d, "orders"))
			break
		} else {
			last = k
		}
	}

	// WithMinChunkRows stops early.
	d, err = CompareSources(context.Background(), LiveSource(orig), LiveSource(cp), WithMinChunkRows(1000), whole)
	if err != nil {
		t.Fatal(err)
	}
	if got := rangesOf(d, "orders"); len(got) != 1 || got[0] != "(-inf, +inf) 200/200" {
		t.Errorf("min 1000 rows: %q", got)
	}
}

func TestNarrowMergesAdjacent(t *testing.T) {
	orig := newMemDB(map[string]int{"orders": 64})
	cp := orig.clone()
	for k := int64(100); k <= 140; k += 10 {
		delete(cp.tables["orders"].rows, k)
	}
	d, err := CompareSources(context.Background(), LiveSource(orig), LiveSource(cp))
	if err != nil {
		t.Fatal(err)
	}
	if got := rangesOf(d, "orders"); !slices.Equal(got, []string{"(90, 140] 5/0"}) {
		t.Errorf("ranges %q", got)
	}
}

func TestFingerprintJSON(t *testing.T) {
	fp := mustFP(t, newMemDB(map[string]int{"orders": 10, "items": 4}))
	var buf bytes.Buffer
	if err := fp.Write(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"schema_version": 1`, `"engine": "mem"`, `"tables": [`, `"primary_key": [`, `"keyed": true`, `"chunks": [`, `"lower": null`, `"upper": [`, `"hash": "`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("JSON lacks %s:\n%s", want, buf.String())
		}
	}
	back, err := ReadFingerprint(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := Compare(fp, back); err != nil || !d.Identical {
		t.Errorf("round trip: %v %+v", err, d)
	}

	tamper := []struct{ name, from, to string }{
		{"chunk rows", `"rows": 3,`, `"rows": 2,`},
		{"schema version", `"schema_version": 1`, `"schema_version": 99`},
		{"no engine", `"engine": "mem"`, `"engine": ""`},
		{"bad hash", `"hash": "`, `"hash": "zz`},
	}
	for _, tt := range tamper {
		s := strings.Replace(buf.String(), tt.from, tt.to, 1)
		if s == buf.String() {
			t.Fatalf("%s: nothing replaced", tt.name)
		}
		if _, err := ReadFingerprint(strings.NewReader(s)); !errors.Is(err, ErrInvalidFingerprint) {
			t.Errorf("%s: err = %v, want ErrInvalidFingerprint", tt.name, err)
		}
	}
	if _, err := ReadFingerprint(strings.NewReader("SQLite format 3\x00")); !errors.Is(err, ErrInvalidFingerprint) {
		t.Errorf("not JSON: %v", err)
	}
}

func TestDigestAndKeys(t *testing.T) {
	d := Digest{1<<63 + 5, 7}
	b, _ := d.MarshalText()
	if string(b) != "80000000000000050000000000000007" {
		t.Errorf("digest text %s", b)
	}
	var back Digest
	if err := back.UnmarshalText(b); err != nil || back != d {
		t.Errorf("round trip %v %v", back, err)
	}
	if s := d.Add(Digest{1 << 63, ^uint64(0)}); s != (Digest{5, 6}) {
		t.Errorf("Add does not wrap: %v", s)
	}
	k := Key{json.RawMessage(`7`), json.RawMessage(`"it's"`)}
	if k.String() != "(7, 'it''s')" {
		t.Errorf("key %s", k)
	}
	if !k.Equal(Key{json.RawMessage(` 7 `), json.RawMessage(`"it's"`)}) || k.Equal(nil) || Key(nil).Equal(k) || !Key(nil).Equal(nil) {
		t.Error("Key.Equal")
	}
	if s := (KeyRange{Upper: memKey(5)}).String(); s != "(-inf, 5]" {
		t.Error(s)
	}
	if s := (KeyRange{Lower: memKey(5)}).String(); s != "(5, +inf)" {
		t.Error(s)
	}
}

func TestFingerprintOptions(t *testing.T) {
	bad := []FingerprintOption{WithChunkTime(0), WithChunkRows(0), WithFingerprintJobs(0), WithTables(), WithExcludeTables(""), WithBoundsFrom(nil)}
	for i, o := range bad {
		if _, err := NewFingerprintConfig(o); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("option %d: err = %v", i, err)
		}
	}
	for i, o := range []CompareOption{WithMinChunkRows(0), WithMaxRanges(0), WithFingerprintOptions(WithFingerprintJobs(-1))} {
		if _, err := CompareSources(context.Background(), StoredSource(&Fingerprint{}), StoredSource(&Fingerprint{}), o); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("compare option %d: err = %v", i, err)
		}
	}
	if _, err := CompareSources(context.Background(), Source{}, StoredSource(&Fingerprint{})); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("empty source: %v", err)
	}

	cfg, _ := NewFingerprintConfig(WithTables("public.order*", "items"), WithExcludeTables("*_old"))
	for name, want := range map[[2]string]bool{
		{"public.orders", "orders"}:         true,
		{"public.orders_old", "orders_old"}: false,
		{"sales.orders", "orders"}:          false,
		{"sales.items", "items"}:            true,
		{"public.users", "users"}:           false,
	} {
		if got := cfg.MatchTable(name[0], name[1]); got != want {
			t.Errorf("MatchTable(%s) = %v", name[0], got)
		}
	}
}

func TestChunkSizer(t *testing.T) {
	cfg, _ := NewFingerprintConfig(WithChunkTime(100 * time.Millisecond))
	s := cfg.NewChunkSizer()
	if s.Next() != InitialChunkRows {
		t.Fatalf("first chunk %d rows", s.Next())
	}
	// A table hashed at 1M rows/s: chunks converge to ~100k rows.
	for i := 0; i < 30; i++ {
		n := s.Next()
		s.Observe(n, time.Duration(float64(n)/1e6*float64(time.Second)))
	}
	if n := s.Next(); n < 90_000 || n > 110_000 {
		t.Errorf("converged to %d rows, want about 100000", n)
	}
	fixed, _ := NewFingerprintConfig(WithChunkRows(42))
	fs := fixed.NewChunkSizer()
	fs.Observe(42, time.Hour)
	if fs.Next() != 42 {
		t.Errorf("fixed chunk rows: %d", fs.Next())
	}
}

func TestCompareCheck(t *testing.T) {
	orig := newMemDB(map[string]int{"orders": 20, "items": 5})
	stored := mustFP(t, orig)

	rep := mustRun(t, CompareCheck(orig, stored))
	if rep.Status != StatusHealthy {
		t.Fatalf("unchanged database: %s (%s)", rep.Status, rep.Reason)
	}

	cp := orig.clone()
	delete(cp.tables["orders"].rows, 70)
	delete(cp.tables, "items")
	rep = mustRun(t, CompareCheck(cp, stored))
	if rep.Status != StatusCorrupt {
		t.Fatalf("damaged database: %s (%s)", rep.Status, rep.Reason)
	}
	var codes []string
	for _, f := range rep.Findings() {
		codes = append(codes, f.Code+" "+f.Object)
		if f.Check != CheckFingerprint || f.Severity != StatusCorrupt || f.Remedy == "" {
			t.Errorf("finding %+v", f)
		}
	}
	slices.Sort(codes)
	if want := []string{"fingerprint_mismatch orders", "fingerprint_table_missing items"}; !slices.Equal(codes, want) {
		t.Errorf("findings %q, want %q", codes, want)
	}
	if msg := rep.Findings()[1].Message + rep.Findings()[0].Message; !strings.Contains(msg, "orders: the rows with id in (60, 90] differ: 3 rows in A, 2 in B (-1) (A: mem://db, B: mem://db)") {
		t.Errorf("the finding does not give the key range: %s", msg)
	}

	// Primary against restored copy: narrowed to the row.
	rep = mustRun(t, CompareLiveCheck(orig, cp))
	found := false
	for _, f := range rep.Findings() {
		if f.Code == "fingerprint_mismatch" && strings.Contains(f.Message, "(60, 70]") {
			found = true
		}
	}
	if !found {
		t.Errorf("live check findings %+v", rep.Findings())
	}

	// A failure while narrowing keeps the proven difference.
	rep = mustRun(t, CompareLiveCheck(orig, brokenRanges{cp}))
	if rep.Status != StatusCorrupt || len(rep.Findings()) != 2 {
		t.Errorf("narrowing failed: %s %+v", rep.Status, rep.Findings())
	}

	// A failing side is an error, not a pass.
	rep = mustRun(t, CompareCheck(failingFP{}, stored))
	if rep.Status != StatusError {
		t.Errorf("failing fingerprint: %s", rep.Status)
	}
}

type brokenRanges struct{ *memDB }

func (brokenRanges) HashRanges(context.Context, string, []KeyRange) ([]ChunkFingerprint, error) {
	return nil, errors.New("connection lost")
}

type failingFP struct{}

func (failingFP) Fingerprint(context.Context, ...FingerprintOption) (*Fingerprint, error) {
	return nil, errors.New("server unreachable")
}

func mustRun(t *testing.T, c Check) *Report {
	t.Helper()
	r, err := NewRunner()
	if err != nil {
		t.Fatal(err)
	}
	return r.Run(context.Background(), &fakeTarget{}, c)
}

type infoMem struct{ *memDB }

func (infoMem) Info() TargetInfo { return TargetInfo{Engine: "sqlite"} }

func TestCompareSourcesEngineMismatch(t *testing.T) {
	stored := mustFP(t, newMemDB(map[string]int{"t": 3})) // engine "mem"
	_, err := CompareSources(context.Background(), StoredSource(stored), LiveSource(infoMem{newMemDB(map[string]int{"t": 3})}))
	if !errors.Is(err, ErrIncomparable) || !strings.Contains(err.Error(), "a mem fingerprint cannot be compared with a sqlite database") {
		t.Errorf("err = %v", err)
	}
	cfg, _ := NewFingerprintConfig(WithBoundsFrom(stored))
	if err := cfg.CheckBoundsEngine("postgresql"); !errors.Is(err, ErrIncomparable) {
		t.Errorf("CheckBoundsEngine: %v", err)
	}
	if err := cfg.CheckBoundsEngine("mem"); err != nil {
		t.Errorf("CheckBoundsEngine same engine: %v", err)
	}
}
