package sqlserver

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/dbscrub/dbscrub/checks"
)

// A tiny in-memory SQL Server for fingerprint tests: it answers the
// fingerprint's statements (state, listing, bound and hash queries) from
// tables of Go values, evaluating the key-range predicates from the
// statement's parameters, and hashes rows the way the T-SQL does: SHA-256
// of the row's JSON in UTF-16LE, bytes 1-8 and 9-16 as signed bigints,
// summed exactly and returned as decimal text.

type fpFakeCol struct {
	name, typ string // typ: a system type name
	pk        int64  // key ordinal; 0 = not in the key
	computed  bool
}

type fpFakeTable struct {
	id           int64
	schema, name string
	cols         []fpFakeCol
	rows         [][]any // int64, string or nil, in column order; column 0 is the key when keyed
	denied       bool
	memOptimized bool
}

type fpFakeDB struct {
	tables        []*fpFakeTable
	snapshotState int64 // 1 = ON
	rcsi          bool
	readOnly      bool
	inAG          bool
	updateability string
	version       string
	edition       int64
	// hashErr, when set, answers hash queries with it.
	hashErr *response
	// hook, when set, runs before each bound or hash statement is
	// answered; an error is returned as the exchange's error.
	hook func(ctx context.Context, query string) error
}

func newFakeDB(tables ...*fpFakeTable) *fpFakeDB {
	for i, t := range tables {
		t.id = int64(1000 + i)
	}
	return &fpFakeDB{tables: tables, snapshotState: 1, updateability: "READ_WRITE", version: "16.0.4135.4", edition: 3}
}

// install records the probe and the fingerprint's statements on f.
func (db *fpFakeDB) install(f *fakeServer) *fakeServer {
	p := defaultProbe()
	p.version = db.version
	p.engineEdition = db.edition
	p.install(f)
	f.onFunc("snapshot_isolation_state", func(context.Context, []any) (*response, error) {
		desc := map[int64]string{0: "OFF", 1: "ON", 2: "IN_TRANSITION_TO_OFF", 3: "IN_TRANSITION_TO_ON"}[db.snapshotState]
		return resp(set([]string{"database_name", "product_version", "engine_edition", "snapshot_isolation_state", "snapshot_isolation_state_desc",
			"is_read_committed_snapshot_on", "is_read_only", "is_database_snapshot", "in_availability_group", "updateability", "now_utc"},
			[]any{"Sales", db.version, db.edition, db.snapshotState, desc, db.rcsi, db.readOnly, int64(0), boolInt(db.inAG), db.updateability, nil})), nil
	})
	f.on("SET TRANSACTION ISOLATION LEVEL", &response{}, nil)
	f.on("ROLLBACK TRANSACTION", &response{}, nil)
	f.onFunc("FROM sys.tables AS t", db.list)
	// Bound and hash statements are answered by fpFakeSession.exec, which
	// sees their text; these rules only let the fake record them.
	f.on("FETCH NEXT 1 ROWS ONLY", &response{}, nil)
	f.on("HASHBYTES", &response{}, nil)
	return f
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// fpFake is a fakeServer whose bound and hash statements are answered by
// db (the fake's rules only see the parameters, these need the text).
type fpFake struct {
	*fakeServer
	db *fpFakeDB
}

func newFPFake(db *fpFakeDB) *fpFake {
	f := &fpFake{fakeServer: newFake("db"), db: db}
	db.install(f.fakeServer)
	return f
}

func (f *fpFake) session(ctx context.Context) (session, error) {
	s, err := f.fakeServer.session(ctx)
	if err != nil {
		return nil, err
	}
	return &fpFakeSession{fakeSession: s.(*fakeSession), db: f.db}, nil
}

type fpFakeSession struct {
	*fakeSession
	db *fpFakeDB
}

func (s *fpFakeSession) exec(ctx context.Context, query string, args ...any) (*response, error) {
	r, err := s.fakeSession.exec(ctx, query, args...) // records the call, honours rules
	if err != nil || !strings.Contains(query, "FETCH NEXT 1 ROWS ONLY") && !strings.Contains(query, "HASHBYTES") {
		return r, err
	}
	if s.db.hook != nil {
		if err := s.db.hook(ctx, query); err != nil {
			return &response{}, err
		}
	}
	return s.db.answer(query, args)
}

var (
	fromRe  = regexp.MustCompile(`FROM \[([^\]]*)\]\.\[([^\]]*)\] AS t`)
	lowerRe = regexp.MustCompile(`t\.\[[^\]]*\] > CONVERT\(int, @p(\d+)\)`)
	upperRe = regexp.MustCompile(`t\.\[[^\]]*\] <= CONVERT\(int, @p(\d+)\)`)
	offRe   = regexp.MustCompile(`OFFSET @p(\d+) ROWS`)
)

func (db *fpFakeDB) table(q string) *fpFakeTable {
	m := fromRe.FindStringSubmatch(q)
	if m == nil {
		return nil
	}
	for _, t := range db.tables {
		if t.schema == m[1] && t.name == m[2] {
			return t
		}
	}
	return nil
}

// answer evaluates a bound or hash statement.
func (db *fpFakeDB) answer(q string, args []any) (*response, error) {
	t := db.table(q)
	if t == nil {
		return &response{errs: []error{mssql.Error{Number: 208, Class: 16, Message: "Invalid object name."}}}, nil
	}
	if t.denied {
		return &response{errs: []error{mssql.Error{Number: 229, Class: 14, State: 5, Message: "The SELECT permission was denied on the object '" + t.name + "', database 'Sales', schema '" + t.schema + "'."}}}, nil
	}
	param := func(re *regexp.Regexp) (int64, bool, error) {
		m := re.FindStringSubmatch(q)
		if m == nil {
			return 0, false, nil
		}
		i, _ := strconv.Atoi(m[1])
		if i < 1 || i > len(args) {
			return 0, false, fmt.Errorf("fake: @p%d but %d args", i, len(args))
		}
		s, ok := args[i-1].(string)
		if !ok {
			return 0, false, fmt.Errorf("fake: key parameter @p%d is %T, want the key's text", i, args[i-1])
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return n, true, err
	}
	lo, hasLo, err := param(lowerRe)
	if err != nil {
		return nil, err
	}
	hi, hasHi, err := param(upperRe)
	if err != nil {
		return nil, err
	}
	var rows [][]any
	for _, r := range t.rows {
		k, _ := r[0].(int64)
		if (hasLo && k <= lo) || (hasHi && k > hi) {
			continue
		}
		rows = append(rows, r)
	}
	if strings.Contains(q, "FETCH NEXT 1 ROWS ONLY") {
		m := offRe.FindStringSubmatch(q)
		if m == nil {
			return nil, fmt.Errorf("fake: bound query without OFFSET")
		}
		i, _ := strconv.Atoi(m[1])
		off, ok := args[i-1].(int64)
		if !ok {
			return nil, fmt.Errorf("fake: OFFSET parameter is %T", args[i-1])
		}
		sort.Slice(rows, func(a, b int) bool { return rows[a][0].(int64) < rows[b][0].(int64) })
		out := set([]string{"k0"})
		if off < int64(len(rows)) {
			out.rows = append(out.rows, []any{strconv.FormatInt(rows[off][0].(int64), 10)})
		}
		return resp(out), nil
	}
	if db.hashErr != nil {
		cp := *db.hashErr
		return &cp, nil
	}
	n, l0, l1 := sumRows(t, rows)
	return resp(set([]string{"row_count", "lane0", "lane1"}, []any{n, l0.String(), l1.String()})), nil
}

// sumRows returns the count and the exact (unreduced) lane sums.
func sumRows(t *fpFakeTable, rows [][]any) (int64, *big.Int, *big.Int) {
	l0, l1 := new(big.Int), new(big.Int)
	for _, r := range rows {
		a, b := rowLanes(t, r)
		l0.Add(l0, big.NewInt(a))
		l1.Add(l1, big.NewInt(b))
	}
	return int64(len(rows)), l0, l1
}

// rowJSONText is what FOR JSON PATH, WITHOUT_ARRAY_WRAPPER,
// INCLUDE_NULL_VALUES makes of a row of ints and strings (computed columns
// are not hashed).
func rowJSONText(t *fpFakeTable, r []any) string {
	var b strings.Builder
	b.WriteByte('{')
	n := 0
	for i, c := range t.cols {
		if c.computed {
			continue
		}
		if n > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"c%d":`, n)
		n++
		switch v := r[i].(type) {
		case nil:
			b.WriteString("null")
		case int64:
			b.WriteString(strconv.FormatInt(v, 10))
		case string:
			j, _ := json.Marshal(v)
			b.Write(j)
		}
	}
	b.WriteByte('}')
	return b.String()
}

// rowLanes hashes a row as HASHBYTES('SHA2_256', nvarchar) does and reads
// bytes 1-8 and 9-16 as CONVERT(bigint, ...) does: big-endian, signed.
func rowLanes(t *fpFakeTable, r []any) (int64, int64) {
	sum := sha256.Sum256(utf16le(rowJSONText(t, r)))
	return int64(binary.BigEndian.Uint64(sum[:8])), int64(binary.BigEndian.Uint64(sum[8:16]))
}

func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// expectedDigest is the table's digest computed in Go, row by row.
func expectedDigest(t *fpFakeTable) checks.Digest {
	var d checks.Digest
	for _, r := range t.rows {
		sum := sha256.Sum256(utf16le(rowJSONText(t, r)))
		d = d.Add(checks.RowDigest(sum[:]))
	}
	return d
}

// list answers fpTablesSQL.
func (db *fpFakeDB) list(_ context.Context, args []any) (*response, error) {
	var only string
	if len(args) == 1 && args[0] != nil {
		only = args[0].(string)
	}
	tabs := set([]string{"object_id", "schema_name", "table_name", "is_memory_optimized", "can_select"})
	cols := set([]string{"object_id", "column_id", "column_name", "type_name", "type_schema", "is_user_defined", "is_assembly_type",
		"system_type", "max_length", "precision", "scale", "collation_name", "is_computed", "is_column_set", "key_ordinal"})
	for _, t := range db.tables {
		if only != "" && t.schema+"."+t.name != only {
			continue
		}
		tabs.rows = append(tabs.rows, []any{t.id, t.schema, t.name, t.memOptimized, boolInt(!t.denied)})
		for i, c := range t.cols {
			var ord any
			if c.pk > 0 {
				ord = c.pk
			}
			maxLen, coll := int64(4), any(nil)
			if c.typ == "nvarchar" {
				maxLen, coll = 100, "Latin1_General_CI_AS"
			}
			cols.rows = append(cols.rows, []any{t.id, int64(i + 1), c.name, c.typ, "sys", false, false, c.typ, maxLen, int64(10), int64(0), coll, c.computed, false, ord})
		}
	}
	return resp(tabs, cols), nil
}

// ordersTable returns dbo.orders (id int key, customer nvarchar, note
// nvarchar NULL) with n rows.
func ordersTable(n int) *fpFakeTable {
	t := &fpFakeTable{schema: "dbo", name: "orders", cols: []fpFakeCol{{name: "id", typ: "int", pk: 1}, {name: "customer", typ: "nvarchar"}, {name: "note", typ: "nvarchar"}}}
	for i := 1; i <= n; i++ {
		var note any
		switch i % 3 {
		case 1:
			note = fmt.Sprintf("note %d", i)
		case 2:
			note = ""
		}
		t.rows = append(t.rows, []any{int64(i * 10), fmt.Sprintf("customer %d", i%7), note})
	}
	return t
}
