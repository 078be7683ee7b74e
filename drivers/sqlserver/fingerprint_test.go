package sqlserver

import (
	"bytes"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/dbscrub/dbscrub/checks"
)

// fpTarget returns a Target whose database is the connector c.
func fpTarget(t *testing.T, c connector, opts ...Option) *Target {
	t.Helper()
	cfg := defaultConfig()
	if err := cfg.apply(opts); err != nil {
		t.Fatal(err)
	}
	return &Target{
		cfg:      cfg,
		db:       c,
		database: "Sales",
		own:      true,
		secrets:  []string{"s3cret"},
		info:     checks.TargetInfo{Engine: Engine, Name: "sqlserver://sa:xxxxx@sql1:1433?database=Sales", Database: "Sales", Host: "sql1", Port: 1433},
	}
}

func mustFingerprint(t *testing.T, tg *Target, opts ...checks.FingerprintOption) *checks.Fingerprint {
	t.Helper()
	fp, err := tg.Fingerprint(ctxTimeout(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := fp.Validate(); err != nil {
		t.Fatalf("the fingerprint does not validate: %v", err)
	}
	var buf bytes.Buffer
	if err := fp.Write(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := checks.ReadFingerprint(&buf); err != nil {
		t.Fatalf("the fingerprint does not read back: %v", err)
	}
	return fp
}

// fpCalls returns the fingerprint session's statements and arguments
// (everything after the probe's).
func fpCalls(f *fakeServer) []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, c := range f.calls {
		if strings.Contains(c.query, "snapshot_isolation_state") {
			return append([]call(nil), f.calls[i-1:]...)
		}
	}
	return nil
}

const ordersHashSQL = `SELECT COUNT_BIG(*) AS row_count,
  CONVERT(varchar(40), COALESCE(SUM(CONVERT(decimal(38,0), CONVERT(bigint, SUBSTRING(r.h, 1, 8)))), 0)) AS lane0,
  CONVERT(varchar(40), COALESCE(SUM(CONVERT(decimal(38,0), CONVERT(bigint, SUBSTRING(r.h, 9, 8)))), 0)) AS lane1
FROM [dbo].[orders] AS t
CROSS APPLY (SELECT HASHBYTES('SHA2_256', (SELECT t.[id] AS [c0], t.[customer] AS [c1], t.[note] AS [c2] FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES)) AS h) AS r`

// TestFingerprintStatements pins every statement the fingerprint sends,
// in order, with its parameters: session setup, isolation options, the
// SNAPSHOT transaction, the listing, then bound and hash queries per chunk.
func TestFingerprintStatements(t *testing.T) {
	f := newFPFake(newFakeDB(ordersTable(3))) // keys 10, 20, 30
	fp := mustFingerprint(t, fpTarget(t, f), checks.WithChunkRows(2))

	bound := "SELECT CONVERT(nvarchar(4000), t.[id]) AS [k0]\nFROM [dbo].[orders] AS t"
	order := "\nORDER BY t.[id]\nOFFSET "
	want := []call{
		{query: defaultConfig().sessionSQL()},
		{query: fpStateSQL},
		{query: fpBeginSnapshotSQL},
		{query: fpTablesSQL, args: []any{nil}},
		{query: bound + order + "@p1 ROWS FETCH NEXT 1 ROWS ONLY;", args: []any{int64(1)}},
		{query: ordersHashSQL + "\nWHERE t.[id] <= CONVERT(int, @p1);", args: []any{"20"}},
		{query: bound + "\nWHERE t.[id] > CONVERT(int, @p1)" + order + "@p2 ROWS FETCH NEXT 1 ROWS ONLY;", args: []any{"20", int64(1)}},
		{query: ordersHashSQL + "\nWHERE t.[id] > CONVERT(int, @p1);", args: []any{"20"}},
		{query: fpEndSQL},
	}
	got := fpCalls(f.fakeServer)
	if len(got) != len(want) {
		for _, c := range got {
			t.Logf("sent: %s %v", firstLine(c.query), c.args)
		}
		t.Fatalf("sent %d statements, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].query != want[i].query || !reflect.DeepEqual(got[i].args, want[i].args) {
			t.Errorf("statement %d:\n%s\nargs %#v\nwant:\n%s\nargs %#v", i, got[i].query, got[i].args, want[i].query, want[i].args)
		}
	}
	if f.discarded != 0 || f.returned != 2 {
		t.Errorf("sessions: %d returned, %d discarded; want the probe's and the fingerprint's returned", f.returned, f.discarded)
	}
	for _, c := range got {
		assertReadOnlyStatement(t, c.query)
	}

	tf := fp.Table("dbo.orders")
	if tf == nil || !tf.Keyed || !reflect.DeepEqual(tf.PrimaryKey, []string{"id"}) || tf.Rows != 3 || len(tf.Chunks) != 2 {
		t.Fatalf("table = %+v", tf)
	}
	if tf.Chunks[0].Lower != nil || string(tf.Chunks[0].Upper[0]) != "20" || tf.Chunks[0].Rows != 2 || tf.Chunks[1].Upper != nil || tf.Chunks[1].Rows != 1 {
		t.Errorf("chunks = %+v", tf.Chunks)
	}
	wantCols := []checks.Column{{Name: "id", Type: "int"}, {Name: "customer", Type: "nvarchar(50)"}, {Name: "note", Type: "nvarchar(50)"}}
	if !reflect.DeepEqual(tf.Columns, wantCols) {
		t.Errorf("columns = %+v", tf.Columns)
	}
	if fp.Engine != Engine || fp.ServerVersion != "16.0.4135.4" || fp.Database != "Sales" || fp.Algorithm != fpAlgorithm ||
		!strings.HasPrefix(fp.Snapshot, "one SNAPSHOT isolation transaction") || strings.Contains(fp.Source, "s3cret") {
		t.Errorf("fingerprint header = %+v", fp)
	}
}

// TestFingerprintChunksAddUp: whatever the chunk size, the table's rows
// and hash are the same, and equal to the digest computed row by row in
// Go (so the lanes' mod 2^64 reduction of the exact signed sums is right).
func TestFingerprintChunksAddUp(t *testing.T) {
	orders := ordersTable(50)
	want := expectedDigest(orders)
	for _, opt := range []checks.FingerprintOption{
		checks.WithChunkRows(math.MaxInt64), checks.WithChunkRows(1), checks.WithChunkRows(7), checks.WithChunkRows(50), nil,
	} {
		f := newFPFake(newFakeDB(orders))
		fp := mustFingerprint(t, fpTarget(t, f), opt)
		tf := fp.Table("dbo.orders")
		if tf.Rows != 50 || tf.Hash != want {
			t.Errorf("%d chunks: rows %d hash %s, want 50 and %s", len(tf.Chunks), tf.Rows, tf.Hash, want)
		}
		// Each chunk is the exact sum of its rows.
		lo := int64(math.MinInt64)
		for _, ch := range tf.Chunks {
			hi := int64(math.MaxInt64)
			if ch.Upper != nil {
				fmt.Sscan(string(ch.Upper[0]), &hi)
			}
			var rows [][]any
			for _, r := range orders.rows {
				if k := r[0].(int64); k > lo && k <= hi {
					rows = append(rows, r)
				}
			}
			sub := &fpFakeTable{cols: orders.cols, rows: rows}
			if ch.Rows != int64(len(rows)) || ch.Hash != expectedDigest(sub) {
				t.Errorf("chunk %s: %d rows %s, want %d %s", ch.Range(), ch.Rows, ch.Hash, len(rows), expectedDigest(sub))
			}
			lo = hi
		}
	}
	// Cut into sevens: bounds at the 7th, 14th ... key.
	f := newFPFake(newFakeDB(orders))
	fp := mustFingerprint(t, fpTarget(t, f), checks.WithChunkRows(7))
	var uppers []string
	for _, ch := range fp.Table("dbo.orders").Chunks {
		uppers = append(uppers, ch.Upper.String())
	}
	if got := strings.Join(uppers, ","); got != "70,140,210,280,350,420,490," {
		t.Errorf("chunk bounds = %s", got)
	}
	// A different row changes the digest.
	changed := ordersTable(50)
	changed.rows[20][1] = "someone else"
	if expectedDigest(changed) == want {
		t.Fatal("test data: the change does not change the digest")
	}
	fp2 := mustFingerprint(t, fpTarget(t, newFPFake(newFakeDB(changed))), checks.WithChunkRows(7))
	d, err := checks.Compare(fp, fp2)
	if err != nil {
		t.Fatal(err)
	}
	if d.Identical || len(d.Tables) != 1 || len(d.Tables[0].Ranges) != 1 || d.Tables[0].Ranges[0].String() != "(140, 210]" {
		t.Errorf("diff = %+v", d.Tables)
	}
}

func TestMod64(t *testing.T) {
	two64 := new(big.Int).Lsh(big.NewInt(1), 64)
	big64 := func(s string) string {
		x, _ := new(big.Int).SetString(s, 10)
		return x.String()
	}
	tests := []struct {
		in   string
		want uint64
		err  bool
	}{
		{"0", 0, false},
		{"1", 1, false},
		{"-1", math.MaxUint64, false},
		{"9223372036854775807", math.MaxInt64, false},
		{"-9223372036854775808", 1 << 63, false},
		{two64.String(), 0, false},
		{big64("18446744073709551617"), 1, false},
		{"-18446744073709551617", math.MaxUint64, false},
		// Two rows whose first lanes are -1 and 2: exact sum 1.
		{"1", 1, false},
		// 10^19 rows of the largest lane: the largest decimal(38,0) sum.
		{"92233720368547758070000000000000000000", 0, false},
		{" 42 ", 42, false},
		{"", 0, true},
		{"1.5", 0, true},
		{"0x10", 0, true},
	}
	// The 10^19 case: 9223372036854775807 * 10^19 mod 2^64, computed.
	x, _ := new(big.Int).SetString("92233720368547758070000000000000000000", 10)
	tests[9].want = x.Mod(x, two64).Uint64()
	for _, tt := range tests {
		got, err := mod64(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("mod64(%q) = %d, %v; want %d (error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
	// Signed sums reduce to the unsigned sums of the same bytes.
	lanes := []int64{-1, math.MinInt64, math.MaxInt64, 12345, -98765}
	var unsigned uint64
	sum := new(big.Int)
	for _, l := range lanes {
		unsigned += uint64(l)
		sum.Add(sum, big.NewInt(l))
	}
	if got, _ := mod64(sum.String()); got != unsigned {
		t.Errorf("signed sum %s reduces to %d, unsigned sum is %d", sum, got, unsigned)
	}
}

// TestFingerprintNoPrimaryKey: one unbounded chunk, no bound query, and
// the note the other drivers give.
func TestFingerprintNoPrimaryKey(t *testing.T) {
	events := &fpFakeTable{schema: "audit", name: "events", cols: []fpFakeCol{{name: "at", typ: "int"}, {name: "what", typ: "nvarchar"}}}
	for i := 0; i < 5; i++ {
		events.rows = append(events.rows, []any{int64(i % 2), "same"}) // duplicates count
	}
	f := newFPFake(newFakeDB(events))
	fp := mustFingerprint(t, fpTarget(t, f), checks.WithChunkRows(2))
	tf := fp.Table("audit.events")
	if tf.Keyed || tf.PrimaryKey != nil || tf.Note != noKeyNote || len(tf.Chunks) != 1 || tf.Rows != 5 || tf.Hash != expectedDigest(events) {
		t.Errorf("table = %+v", tf)
	}
	if n := len(f.callsMatching("FETCH NEXT")); n != 0 {
		t.Errorf("%d bound queries on a table without a key", n)
	}
	hs := f.callsMatching("HASHBYTES")
	if len(hs) != 1 || strings.Contains(hs[0].query, "WHERE") || len(hs[0].args) != 0 {
		t.Errorf("hash statements = %+v", hs)
	}
	// Its ranges cannot be hashed.
	if _, err := fpTarget(t, f).HashRanges(ctxTimeout(t), "audit.events", []checks.KeyRange{{}}); !errors.Is(err, checks.ErrUnsupported) {
		t.Errorf("HashRanges of an unkeyed table: %v", err)
	}
}

// TestFingerprintNullAndEmptyDiffer: NULL is rendered null and ” as "",
// so a row with NULL and one with an empty string hash differently.
func TestFingerprintNullAndEmptyDiffer(t *testing.T) {
	mk := func(v any) *fpFakeTable {
		return &fpFakeTable{schema: "dbo", name: "t", cols: []fpFakeCol{{name: "id", typ: "int", pk: 1}, {name: "v", typ: "nvarchar"}}, rows: [][]any{{int64(1), v}}}
	}
	fpNull := mustFingerprint(t, fpTarget(t, newFPFake(newFakeDB(mk(nil)))))
	fpEmpty := mustFingerprint(t, fpTarget(t, newFPFake(newFakeDB(mk("")))))
	if fpNull.Tables[0].Hash == fpEmpty.Tables[0].Hash {
		t.Error("NULL and the empty string hash alike")
	}
	if a, b := rowJSONText(mk(nil), mk(nil).rows[0]), rowJSONText(mk(""), mk("").rows[0]); a != `{"c0":1,"c1":null}` || b != `{"c0":1,"c1":""}` {
		t.Errorf("renderings %s and %s", a, b)
	}
	// The server renders NULL as null only with INCLUDE_NULL_VALUES
	// (without it, a NULL column would vanish from the JSON).
	tb := &fpTable{rel: "[dbo].[t]", hashed: []fpColumn{{name: "v", base: "nvarchar"}}}
	if s := tb.hashSQL(""); !strings.Contains(s, "FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES") {
		t.Errorf("hash SQL = %s", s)
	}
	d, err := checks.Compare(fpNull, fpEmpty)
	if err != nil || d.Identical || d.Tables[0].Ranges[0].RowDelta != 0 {
		t.Errorf("compare NULL with empty: %+v %v", d, err)
	}
}

// TestRowExpressions pins how each type is rendered for hashing.
func TestRowExpressions(t *testing.T) {
	tests := []struct {
		col  fpColumn
		want string
	}{
		{fpColumn{name: "i", base: "int"}, "t.[i]"},
		{fpColumn{name: "s", base: "nvarchar"}, "t.[s]"},
		{fpColumn{name: "b", base: "varbinary"}, "t.[b]"},
		{fpColumn{name: "g", base: "uniqueidentifier"}, "t.[g]"},
		{fpColumn{name: "f", base: "float"}, "CONVERT(varchar(30), t.[f], 3)"},
		{fpColumn{name: "r", base: "real"}, "CONVERT(varchar(30), t.[r], 3)"},
		{fpColumn{name: "m", base: "money"}, "CONVERT(varchar(30), t.[m], 2)"},
		{fpColumn{name: "d", base: "decimal"}, "CONVERT(varchar(50), t.[d])"},
		{fpColumn{name: "dt", base: "datetime"}, "CONVERT(varchar(40), t.[dt], 121)"},
		{fpColumn{name: "dto", base: "datetimeoffset"}, "CONVERT(varchar(40), t.[dto], 121)"},
		{fpColumn{name: "x", base: "xml"}, "CONVERT(nvarchar(max), t.[x])"},
		{fpColumn{name: "tx", base: "text"}, "CONVERT(varchar(max), t.[tx])"},
		{fpColumn{name: "im", base: "image"}, "CONVERT(varbinary(max), t.[im])"},
		{fpColumn{name: "geo", typeName: "geography", assembly: true}, "CONVERT(varbinary(max), t.[geo])"},
		{fpColumn{name: "v", base: "sql_variant"}, "CASE WHEN t.[v] IS NULL THEN NULL ELSE CONCAT(CONVERT(nvarchar(128), SQL_VARIANT_PROPERTY(t.[v], 'BaseType')), N':', CONVERT(nvarchar(max), CONVERT(varbinary(8000), t.[v]), 1)) END"},
		{fpColumn{name: "we]ird", base: "int"}, "t.[we]]ird]"},
	}
	for _, tt := range tests {
		if got := tt.col.rowExpr(); got != tt.want {
			t.Errorf("%s %s: %s, want %s", tt.col.name, tt.col.base, got, tt.want)
		}
	}
	// Computed, column-set and rowversion columns are not hashed, and the
	// note says so.
	tb := &fpTable{schema: "dbo", name: "t", cols: []fpColumn{
		{name: "id", base: "int", typeName: "int", pkOrdinal: 1},
		{name: "total", base: "int", typeName: "int", computed: true},
		{name: "ver", base: "timestamp", typeName: "timestamp"},
		{name: "sparse", base: "xml", typeName: "xml", columnSet: true},
	}}
	tb.describe()
	if len(tb.hashed) != 1 || !tb.keyed() || !strings.Contains(tb.note, "[total] computed") || !strings.Contains(tb.note, "[ver] rowversion") || !strings.Contains(tb.note, "[sparse] a sparse column set") {
		t.Errorf("hashed %+v, note %q", tb.hashed, tb.note)
	}
}

// TestKeyPredicates pins the chunk predicates: parameters only, converted
// back to the key's type (with its collation or style), and the expansion
// of a composite key.
func TestKeyPredicates(t *testing.T) {
	key := func(vals ...string) checks.Key {
		k := make(checks.Key, len(vals))
		for i, v := range vals {
			k[i] = []byte(v)
		}
		return k
	}
	tests := []struct {
		name string
		pk   []fpColumn
		r    checks.KeyRange
		want string
		args []any
	}{
		{"int", []fpColumn{{name: "id", base: "int"}}, checks.KeyRange{Lower: key("10"), Upper: key("20")},
			" WHERE t.[id] > CONVERT(int, @p1) AND t.[id] <= CONVERT(int, @p2)", []any{"10", "20"}},
		{"unbounded", []fpColumn{{name: "id", base: "int"}}, checks.KeyRange{}, "", nil},
		{"varchar with collation", []fpColumn{{name: "code", base: "varchar", maxLength: 20, collation: "SQL_Latin1_General_CP1_CI_AS"}}, checks.KeyRange{Upper: key(`"O'Brien"`)},
			" WHERE t.[code] <= CONVERT(varchar(20), @p1 COLLATE SQL_Latin1_General_CP1_CI_AS)", []any{"O'Brien"}},
		{"nvarchar(max length in bytes)", []fpColumn{{name: "n", base: "nvarchar", maxLength: 100, collation: "bad; DROP"}}, checks.KeyRange{Lower: key(`"x"`)},
			" WHERE t.[n] > CONVERT(nvarchar(50), @p1)", []any{"x"}},
		{"datetime2", []fpColumn{{name: "at", base: "datetime2", scale: 7}}, checks.KeyRange{Lower: key(`"2024-01-02 03:04:05.1234567"`)},
			" WHERE t.[at] > CONVERT(datetime2(7), @p1, 121)", []any{"2024-01-02 03:04:05.1234567"}},
		{"binary", []fpColumn{{name: "h", base: "binary", maxLength: 16}}, checks.KeyRange{Lower: key(`"0x00FF"`)},
			" WHERE t.[h] > CONVERT(binary(16), @p1, 1)", []any{"0x00FF"}},
		{"float", []fpColumn{{name: "f", base: "float"}}, checks.KeyRange{Lower: key(`"1.5000000000000000e+000"`)},
			" WHERE t.[f] > CONVERT(float, @p1)", []any{"1.5000000000000000e+000"}},
		{"money", []fpColumn{{name: "m", base: "money"}}, checks.KeyRange{Lower: key("12.3400")},
			" WHERE t.[m] > CONVERT(money, @p1)", []any{"12.3400"}},
		{"decimal", []fpColumn{{name: "d", base: "decimal", precision: 10, scale: 2}}, checks.KeyRange{Lower: key("-0.50")},
			" WHERE t.[d] > CONVERT(decimal(10,2), @p1)", []any{"-0.50"}},
		{"guid", []fpColumn{{name: "g", base: "uniqueidentifier"}}, checks.KeyRange{Upper: key(`"6F9619FF-8B86-D011-B42D-00C04FC964FF"`)},
			" WHERE t.[g] <= CONVERT(uniqueidentifier, @p1)", []any{"6F9619FF-8B86-D011-B42D-00C04FC964FF"}},
		{"hierarchyid", []fpColumn{{name: "node", typeName: "hierarchyid", assembly: true}}, checks.KeyRange{Upper: key(`"/1/2/"`)},
			" WHERE t.[node] <= CONVERT(hierarchyid, @p1)", []any{"/1/2/"}},
		{"composite", []fpColumn{{name: "order_id", base: "int"}, {name: "line", base: "smallint"}}, checks.KeyRange{Lower: key("7", "2"), Upper: key("9", "1")},
			" WHERE (t.[order_id] >= CONVERT(int, @p1) AND ((t.[order_id] > CONVERT(int, @p1)) OR (t.[order_id] = CONVERT(int, @p1) AND t.[line] > CONVERT(smallint, @p2))))" +
				" AND (t.[order_id] <= CONVERT(int, @p3) AND ((t.[order_id] < CONVERT(int, @p3)) OR (t.[order_id] = CONVERT(int, @p3) AND t.[line] <= CONVERT(smallint, @p4))))",
			[]any{"7", "2", "9", "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := &fpTable{schema: "dbo", name: "t", pk: tt.pk}
			var args []any
			got, err := tb.rangePred(tt.r, &args)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || !reflect.DeepEqual(args, tt.args) {
				t.Errorf("got  %s %#v\nwant %s %#v", got, args, tt.want, tt.args)
			}
		})
	}
	// A key of the wrong width, or of a value that is neither a number nor
	// a string, is refused.
	tb := &fpTable{pk: []fpColumn{{name: "id", base: "int"}}}
	var args []any
	if _, err := tb.rangePred(checks.KeyRange{Lower: key("1", "2")}, &args); err == nil {
		t.Error("a two-value key for a one-column key was accepted")
	}
	if _, err := tb.rangePred(checks.KeyRange{Lower: key("true")}, &args); err == nil {
		t.Error("a boolean key value was accepted")
	}
	// Key texts come back as numbers for numeric types, strings otherwise.
	tb = &fpTable{pk: []fpColumn{{base: "int"}, {base: "nvarchar"}, {base: "money"}, {base: "float"}}}
	if got := tb.encodeKey([]string{"42", "42", "1.5000", "1.5000000000000000e+000"}).String(); got != "(42, '42', 1.5000, '1.5000000000000000e+000')" {
		t.Errorf("encoded key = %s", got)
	}
	// A key of a type that cannot bound a chunk makes the table unkeyed.
	tb = &fpTable{cols: []fpColumn{{name: "v", base: "sql_variant", typeName: "sql_variant", pkOrdinal: 1}}}
	tb.describe()
	if tb.keyed() || !strings.Contains(tb.note, "[v] is of type sql_variant, which cannot bound a chunk") {
		t.Errorf("sql_variant key: keyed %v, note %q", tb.keyed(), tb.note)
	}
}

func TestDeclaredTypes(t *testing.T) {
	tests := []struct {
		col  fpColumn
		want string
	}{
		{fpColumn{typeName: "nvarchar", base: "nvarchar", maxLength: 100}, "nvarchar(50)"},
		{fpColumn{typeName: "varchar", base: "varchar", maxLength: -1}, "varchar(max)"},
		{fpColumn{typeName: "decimal", base: "decimal", precision: 18, scale: 4}, "decimal(18,4)"},
		{fpColumn{typeName: "datetime2", base: "datetime2", scale: 3}, "datetime2(3)"},
		{fpColumn{typeName: "int", base: "int"}, "int"},
		{fpColumn{typeName: "Phone", typeSch: "dbo", userType: true, base: "varchar", maxLength: 20}, "dbo.Phone"},
		{fpColumn{typeName: "geography", assembly: true}, "geography"},
	}
	for _, tt := range tests {
		if got := tt.col.declaredType(); got != tt.want {
			t.Errorf("declaredType(%+v) = %s, want %s", tt.col, got, tt.want)
		}
	}
	alias := fpColumn{typeName: "Phone", userType: true, base: "varchar", maxLength: 20}
	if got := alias.keyParamExpr("@p1"); got != "CONVERT(varchar(20), @p1)" {
		t.Errorf("alias key parameter = %s", got)
	}
}

// TestFingerprintIncludeExclude: only the selected tables are listed in
// the fingerprint and read.
func TestFingerprintIncludeExclude(t *testing.T) {
	mk := func(schema, name string) *fpFakeTable {
		tb := ordersTable(2)
		tb.schema, tb.name = schema, name
		return tb
	}
	tables := func() []*fpFakeTable {
		return []*fpFakeTable{mk("dbo", "orders"), mk("dbo", "tmp_x"), mk("sales", "orders"), mk("sales", "lines")}
	}
	tests := []struct {
		opts []checks.FingerprintOption
		want string
	}{
		{nil, "dbo.orders,dbo.tmp_x,sales.lines,sales.orders"},
		{[]checks.FingerprintOption{checks.WithTables("orders")}, "dbo.orders,sales.orders"},
		{[]checks.FingerprintOption{checks.WithTables("sales.*")}, "sales.lines,sales.orders"},
		{[]checks.FingerprintOption{checks.WithExcludeTables("tmp_*")}, "dbo.orders,sales.lines,sales.orders"},
		{[]checks.FingerprintOption{checks.WithTables("sales.*"), checks.WithExcludeTables("lines")}, "sales.orders"},
	}
	for _, tt := range tests {
		f := newFPFake(newFakeDB(tables()...))
		fp := mustFingerprint(t, fpTarget(t, f), tt.opts...)
		var names []string
		for _, tf := range fp.Tables {
			names = append(names, tf.Name)
		}
		if got := strings.Join(names, ","); got != tt.want {
			t.Errorf("tables %s, want %s", got, tt.want)
		}
		read := map[string]bool{}
		for _, c := range f.callsMatching("HASHBYTES") {
			read[fromRe.FindStringSubmatch(c.query)[1]+"."+fromRe.FindStringSubmatch(c.query)[2]] = true
		}
		if len(read) != len(names) {
			t.Errorf("read %v, want only %s", read, tt.want)
		}
	}
}

// TestFingerprintSnapshotFallback: without ALLOW_SNAPSHOT_ISOLATION the
// fingerprint reads at READ COMMITTED and says it is not one snapshot.
func TestFingerprintSnapshotFallback(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*fpFakeDB)
		begin string
		note  []string
	}{
		{"snapshot on", func(*fpFakeDB) {}, fpBeginSnapshotSQL, []string{"one SNAPSHOT isolation transaction"}},
		{"snapshot off", func(db *fpFakeDB) { db.snapshotState = 0 }, fpBeginReadCommittedSQL,
			[]string{"NOT ONE SNAPSHOT", "ALLOW_SNAPSHOT_ISOLATION is OFF", "short shared row locks", "ALTER DATABASE [Sales] SET ALLOW_SNAPSHOT_ISOLATION ON"}},
		{"snapshot off, RCSI on", func(db *fpFakeDB) { db.snapshotState, db.rcsi = 0, true }, fpBeginReadCommittedSQL,
			[]string{"NOT ONE SNAPSHOT", "READ_COMMITTED_SNAPSHOT ON"}},
		{"turning on", func(db *fpFakeDB) { db.snapshotState = 3 }, fpBeginReadCommittedSQL, []string{"NOT ONE SNAPSHOT", "IN_TRANSITION_TO_ON"}},
		{"read-only database", func(db *fpFakeDB) { db.snapshotState, db.readOnly = 0, true }, fpBeginReadCommittedSQL, []string{"READ_ONLY database, which cannot change"}},
		{"readable secondary", func(db *fpFakeDB) { db.snapshotState, db.inAG, db.updateability = 0, true, "READ_ONLY" }, fpBeginReadCommittedSQL,
			[]string{"readable availability-group secondary", "SNAPSHOT isolation"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newFakeDB(ordersTable(4))
			tt.setup(db)
			f := newFPFake(db)
			fp := mustFingerprint(t, fpTarget(t, f))
			if n := len(f.callsMatching(tt.begin)); n != 1 {
				t.Errorf("%q sent %d times", tt.begin, n)
			}
			for _, w := range tt.note {
				if !strings.Contains(fp.Snapshot, w) {
					t.Errorf("snapshot note %q lacks %q", fp.Snapshot, w)
				}
			}
			if fp.Tables[0].Rows != 4 {
				t.Errorf("rows = %d", fp.Tables[0].Rows)
			}
		})
	}
}

func TestFingerprintErrors(t *testing.T) {
	t.Run("permission denied up front", func(t *testing.T) {
		secret := ordersTable(1)
		secret.name, secret.denied = "payroll", true
		_, err := fpTarget(t, newFPFake(newFakeDB(ordersTable(2), secret))).Fingerprint(ctxTimeout(t))
		if !errors.Is(err, ErrPrivilege) || !strings.Contains(err.Error(), "dbo.payroll") || !strings.Contains(err.Error(), "db_datareader") {
			t.Errorf("error = %v", err)
		}
		// Excluding it works.
		if _, err := fpTarget(t, newFPFake(newFakeDB(ordersTable(2), secret))).Fingerprint(ctxTimeout(t), checks.WithExcludeTables("payroll")); err != nil {
			t.Errorf("with the table excluded: %v", err)
		}
	})
	t.Run("permission denied by the server", func(t *testing.T) {
		db := newFakeDB(ordersTable(2))
		db.hashErr = &response{errs: []error{mssql.Error{Number: 230, Class: 14, State: 1, Message: "The SELECT permission was denied on the column 'note' of the object 'orders'."}}}
		f := newFPFake(db)
		_, err := fpTarget(t, f).Fingerprint(ctxTimeout(t))
		if !errors.Is(err, ErrPrivilege) || !strings.Contains(err.Error(), "hashing dbo.orders") || !strings.Contains(err.Error(), "Msg 230") {
			t.Errorf("error = %v", err)
		}
		if f.discarded != 1 {
			t.Errorf("discarded %d sessions, want the fingerprint's", f.discarded)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		db := newFakeDB(ordersTable(20))
		ctx, cancel := context.WithCancel(ctxTimeout(t))
		n := 0
		db.hook = func(c context.Context, q string) error {
			if n++; n == 3 {
				cancel()
				return c.Err()
			}
			return nil
		}
		f := newFPFake(db)
		fp, err := fpTarget(t, f).Fingerprint(ctx, checks.WithChunkRows(2))
		if fp != nil || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "cancelled") {
			t.Errorf("fingerprint %v, error %v", fp, err)
		}
		if f.discarded != 1 || len(f.callsMatching("ROLLBACK")) != 0 {
			t.Errorf("the cancelled session was not discarded (discarded %d)", f.discarded)
		}
	})
	t.Run("lock timeout", func(t *testing.T) {
		db := newFakeDB(ordersTable(2))
		db.hashErr = &response{errs: []error{mssql.Error{Number: 1222, Class: 16, State: 56, Message: "Lock request time out period exceeded."}}}
		_, err := fpTarget(t, newFPFake(db), WithLockTimeout(0)).Fingerprint(ctxTimeout(t))
		if !errors.Is(err, ErrLockTimeout) {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("SQL Server 2014", func(t *testing.T) {
		db := newFakeDB(ordersTable(2))
		db.version = "12.0.6024.0"
		_, err := fpTarget(t, newFPFake(db)).Fingerprint(ctxTimeout(t))
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "2016") {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("Azure SQL Database reports 12.0", func(t *testing.T) {
		db := newFakeDB(ordersTable(2))
		db.version, db.edition = "12.0.2000.8", EngineEditionAzureSQLDatabase
		mustFingerprint(t, fpTarget(t, newFPFake(db)))
	})
	t.Run("memory-optimized", func(t *testing.T) {
		mem := ordersTable(1)
		mem.name, mem.memOptimized = "sessions", true
		_, err := fpTarget(t, newFPFake(newFakeDB(ordersTable(2), mem))).Fingerprint(ctxTimeout(t))
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "dbo.sessions") {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("bounds of another engine", func(t *testing.T) {
		_, err := fpTarget(t, newFPFake(newFakeDB())).Fingerprint(ctxTimeout(t), checks.WithBoundsFrom(&checks.Fingerprint{Engine: "postgresql"}))
		if !errors.Is(err, checks.ErrIncomparable) {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("no password in errors", func(t *testing.T) {
		db := newFakeDB(ordersTable(2))
		db.hashErr = &response{errs: []error{mssql.Error{Number: 50000, Class: 16, State: 1, Message: "failed for sa with s3cret"}}}
		_, err := fpTarget(t, newFPFake(db)).Fingerprint(ctxTimeout(t))
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		tg := fpTarget(t, newFPFake(newFakeDB()))
		tg.Close()
		if _, err := tg.Fingerprint(ctxTimeout(t)); !errors.Is(err, ErrClosed) {
			t.Errorf("error = %v", err)
		}
		if _, err := tg.HashRanges(ctxTimeout(t), "dbo.orders", nil); !errors.Is(err, ErrClosed) {
			t.Errorf("HashRanges error = %v", err)
		}
	})
}

// TestFingerprintBoundsFrom: the chunks of an earlier fingerprint are
// reused, without looking for bounds.
func TestFingerprintBoundsFrom(t *testing.T) {
	before := mustFingerprint(t, fpTarget(t, newFPFake(newFakeDB(ordersTable(30)))), checks.WithChunkRows(4))
	f := newFPFake(newFakeDB(ordersTable(30)))
	after := mustFingerprint(t, fpTarget(t, f), checks.WithBoundsFrom(before))
	if n := len(f.callsMatching("FETCH NEXT")); n != 0 {
		t.Errorf("%d bound queries with WithBoundsFrom", n)
	}
	if !reflect.DeepEqual(before.Tables, after.Tables) {
		t.Errorf("same data, same bounds, different fingerprints:\n%+v\n%+v", before.Tables, after.Tables)
	}
}

// TestRangeHasherNarrowsToOneRow: two live fake databases that differ in
// one row; CompareSources fingerprints both and narrows the difference to
// that row with SplitRange and HashRanges.
func TestRangeHasherNarrowsToOneRow(t *testing.T) {
	a := ordersTable(200)
	b := ordersTable(200)
	b.rows[123][2] = "changed"                   // key 1240
	b.rows = append(b.rows[:50], b.rows[51:]...) // key 510 missing
	fa, fb := newFPFake(newFakeDB(a)), newFPFake(newFakeDB(b))
	d, err := checks.CompareSources(ctxTimeout(t), checks.LiveSource(fpTarget(t, fa)), checks.LiveSource(fpTarget(t, fb)),
		checks.WithFingerprintOptions(checks.WithChunkRows(64)))
	if err != nil {
		t.Fatal(err)
	}
	if d.Identical || len(d.Tables) != 1 {
		t.Fatalf("diff = %+v", d)
	}
	var got []string
	for _, r := range d.Tables[0].Ranges {
		got = append(got, fmt.Sprintf("%s %+d", r.KeyRange, r.RowDelta))
	}
	if s := strings.Join(got, "; "); s != "(500, 510] -1; (1230, 1240] +0" {
		t.Errorf("ranges = %s (note %s)", s, d.Tables[0].Note)
	}
	// Every narrowing session ended its transaction and was pooled.
	if fa.discarded != 0 || fb.discarded != 0 {
		t.Errorf("discarded sessions: %d, %d", fa.discarded, fb.discarded)
	}

	tg := fpTarget(t, fa)
	keys, err := tg.SplitRange(ctxTimeout(t), "dbo.orders", checks.KeyRange{Upper: checks.Key{[]byte("100")}}, 3)
	if err != nil || fmt.Sprint(keys) != "[30 60 90]" {
		t.Errorf("SplitRange = %s, %v", keys, err)
	}
	if _, err := tg.SplitRange(ctxTimeout(t), "dbo.orders", checks.KeyRange{}, 0); !errors.Is(err, checks.ErrInvalidOption) {
		t.Errorf("SplitRange every 0: %v", err)
	}
	chunks, err := tg.HashRanges(ctxTimeout(t), "dbo.orders", []checks.KeyRange{{Upper: checks.Key{[]byte("1000")}}, {Lower: checks.Key{[]byte("1000")}}})
	if err != nil || len(chunks) != 2 || chunks[0].Rows != 100 || chunks[1].Rows != 100 || chunks[0].Hash.Add(chunks[1].Hash) != expectedDigest(a) {
		t.Errorf("HashRanges = %+v, %v", chunks, err)
	}
	if _, err := tg.HashRanges(ctxTimeout(t), "dbo.nope", nil); err == nil || !strings.Contains(err.Error(), "no table dbo.nope") {
		t.Errorf("HashRanges of a missing table: %v", err)
	}
	if c := fa.callsMatching("FROM sys.tables AS t"); c[len(c)-1].args[0] != "dbo.nope" {
		t.Errorf("lookup args = %v", c[len(c)-1].args)
	}
}

func TestFingerprintStatementsAreReadOnly(t *testing.T) {
	for _, s := range []string{fpStateSQL, fpBeginSnapshotSQL, fpBeginReadCommittedSQL, fpEndSQL, fpTablesSQL} {
		assertReadOnlyStatement(t, s)
	}
}

// TestFingerprintThroughRealSeam runs a fingerprint through New and the
// real seam (sqlSession over database/sql) with the scripted driver: the
// transaction statements go as batches without parameters, key bounds as
// string parameters and the offset as a bigint one, and the result equals
// the one taken through the fake seam.
func TestFingerprintThroughRealSeam(t *testing.T) {
	db := newFakeDB(ordersTable(25))
	events := func(r *response, err error) []scriptEvent {
		if err != nil {
			return []scriptEvent{{err: err}}
		}
		var out []scriptEvent
		for _, s := range r.sets {
			ev := scriptEvent{cols: s.columns}
			for _, row := range s.rows {
				ev.rows = append(ev.rows, driverValues(row))
			}
			out = append(out, ev)
		}
		for _, e := range r.errs {
			out = append(out, scriptEvent{err: e})
		}
		return out
	}
	var mu sync.Mutex
	var sent []string
	conn := &scriptConnector{script: func(q string, nargs []driver.NamedValue) []scriptEvent {
		args := make([]any, len(nargs))
		for i, a := range nargs {
			args[i] = a.Value
		}
		mu.Lock()
		sent = append(sent, fmt.Sprintf("%s %#v", firstLine(q), args))
		mu.Unlock()
		switch {
		case strings.HasPrefix(q, "SET LOCK_TIMEOUT"), strings.HasPrefix(q, "SET TRANSACTION"), q == fpEndSQL:
			if len(args) != 0 {
				return []scriptEvent{{err: mssql.Error{Number: 50000, Class: 16, Message: "session statement sent with parameters"}}}
			}
			return nil
		case strings.Contains(q, "SERVERPROPERTY('ServerName')"):
			return []scriptEvent{{cols: []string{"server_name", "product_version", "engine_edition", "database_name", "database_id", "state_desc", "is_db_owner"},
				rows: [][]driver.Value{{"SQL1", "16.0.1000.6", int64(3), "Sales", int64(5), "ONLINE", true}}}}
		case strings.Contains(q, "availability_replicas"):
			return []scriptEvent{{cols: []string{"ag_name", "role_desc", "secondary_role_allow_connections_desc"}}}
		case strings.Contains(q, "snapshot_isolation_state"):
			return []scriptEvent{{cols: []string{"database_name", "product_version", "engine_edition", "snapshot_isolation_state", "snapshot_isolation_state_desc", "now_utc"},
				rows: [][]driver.Value{{"Sales", "16.0.1000.6", int64(3), int64(1), "ON", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}}}
		case strings.Contains(q, "FROM sys.tables AS t"):
			return events(db.list(context.Background(), args))
		case strings.Contains(q, "FETCH NEXT 1 ROWS ONLY"), strings.Contains(q, "HASHBYTES"):
			return events(db.answer(q, args))
		}
		return []scriptEvent{{err: mssql.Error{Number: 208, Class: 16, Message: "unexpected statement: " + firstLine(q)}}}
	}}
	tg, err := New(scriptDB(t, conn))
	if err != nil {
		t.Fatal(err)
	}
	fp := mustFingerprint(t, tg, checks.WithChunkRows(10))
	tf := fp.Table("dbo.orders")
	if tf == nil || tf.Rows != 25 || tf.Hash != expectedDigest(db.tables[0]) || len(tf.Chunks) != 3 {
		t.Fatalf("table = %+v", tf)
	}
	if !fp.TakenAt.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) || fp.Source != "sqlserver://SQL1?database=Sales" || !strings.HasPrefix(fp.Snapshot, "one SNAPSHOT") {
		t.Errorf("fingerprint header = %+v", fp)
	}
	joined := strings.Join(sent, "\n")
	for _, w := range []string{
		"SET TRANSACTION ISOLATION LEVEL SNAPSHOT; BEGIN TRANSACTION; []interface {}{}",
		"AS [k0] []interface {}{9}",
		`AS [k0] []interface {}{"100", 9}`,
		`SELECT COUNT_BIG(*) AS row_count, []interface {}{"100", "200"}`,
		fpEndSQL + " []interface {}{}",
	} {
		if !strings.Contains(joined, w) {
			t.Errorf("statements sent lack %q:\n%s", w, joined)
		}
	}
	if conn.closed.Load() != 0 {
		t.Error("a sound fingerprint session was closed instead of pooled")
	}
}
