package sqlite

import (
	"context"
	"database/sql"
	"math"
	"strings"
	"testing"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/sqlitetest"
)

func TestIntegrityFinding(t *testing.T) {
	names := &schemaNames{
		byRoot: map[int64]string{1: "sqlite_schema", 2: "customers", 5: "orders_customer_idx", 9: "weird.table"},
		tables: []string{"customers", "weird", "weird.table"},
	}
	i := func(v int64) *int64 { return &v }
	tests := []struct {
		line   string
		object string
		loc    checks.Location
		remedy string
	}{
		{"Tree 2 page 11 cell 88: Rowid 89 out of order", "customers", checks.Location{Page: i(11), Offset: i(88)}, "backup"},
		{"Tree 2 page 11: btreeInitPage() returns error code 11", "customers", checks.Location{Page: i(11)}, "backup"},
		{"Tree 5 page 7 right child: Child page depth differs", "orders_customer_idx", checks.Location{Page: i(7)}, "backup"},
		{"Tree 1 page 1 cell 0: invalid page number 999", "sqlite_schema", checks.Location{Page: i(1), Offset: i(0)}, "backup"},
		{"Tree 42 page 43: free space corruption", "b-tree with root page 42", checks.Location{Page: i(43)}, "backup"},
		{"On tree page 2 cell 3: Rowid 5 out of order", "customers", checks.Location{Page: i(2), Offset: i(3)}, "backup"},
		{"On tree page 77 cell 3: Rowid 5 out of order", "app.db", checks.Location{Page: i(77), Offset: i(3)}, "backup"},
		{"On page 5 at right child: 2nd reference to page 8", "orders_customer_idx", checks.Location{Page: i(5)}, "backup"},
		{"Page 7: never used", "app.db", checks.Location{Page: i(7)}, "backup"},
		{"Page 12: pointer map referenced", "app.db", checks.Location{Page: i(12)}, "backup"},
		{"Freelist: invalid page number 4000", "freelist", checks.Location{Page: i(4000)}, "backup"},
		{"Freelist: 2nd reference to page 8", "freelist", checks.Location{Page: i(8)}, "backup"},
		{"Freelist: freelist leaf count too big on page 3", "freelist", checks.Location{Page: i(3)}, "backup"},
		{"Freelist: size is 3 but should be 4", "freelist", checks.Location{}, "backup"},
		{"Main freelist: invalid page number 4000", "freelist", checks.Location{Page: i(4000)}, "backup"},
		{"Bad ptr map entry key=5 expected=(5,0) got=(3,7)", "pointer map", checks.Location{Page: i(5)}, "backup"},
		{"Fragmentation of 0 bytes reported as 1 on page 9", "app.db", checks.Location{Page: i(9)}, "backup"},
		{"failed to get page 17", "app.db", checks.Location{Page: i(17)}, "backup"},
		{"max rootpage (7) disagrees with header (8)", "app.db", checks.Location{}, "backup"},
		{"wrong # of entries in index orders_customer_idx", "orders_customer_idx", checks.Location{}, `REINDEX "orders_customer_idx"`},
		{"row 500 missing from index orders_customer_idx", "orders_customer_idx", checks.Location{}, "REINDEX"},
		{"row 5 missing from index my index", "my index", checks.Location{}, `REINDEX "my index"`},
		{"non-unique entry in index sqlite_autoindex_customers_1", "sqlite_autoindex_customers_1", checks.Location{}, "REINDEX"},
		{"rowid not at end-of-record for row 9 of index idx", "idx", checks.Location{}, "REINDEX"},
		{"row 9 values differ from index idx", "idx", checks.Location{}, "REINDEX"},
		{"index idx stores an imprecise floating-point value for row 4", "idx", checks.Location{}, "REINDEX"},
		{"NULL value in customers.email", "customers", checks.Location{}, "constraint"},
		{"non-INTEGER value in weird.table.col", "weird.table", checks.Location{}, "constraint"},
		{"TEXT value in orders.placed_at", "orders", checks.Location{}, "constraint"},
		{"CHECK constraint failed in products", "products", checks.Location{}, "constraint"},
		{"row not in PRIMARY KEY order for order_items", "order_items", checks.Location{}, "constraint"},
		{"something new in a future SQLite", "app.db", checks.Location{}, "backup"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			f := integrityFinding(tt.line, names, "app.db")
			if f.Object != tt.object || f.Location.String() != tt.loc.String() {
				t.Errorf("object %q at %q, want %q at %q", f.Object, f.Location, tt.object, tt.loc)
			}
			if f.Severity != checks.StatusCorrupt || f.Code != "integrity_check" || f.Message != tt.line {
				t.Errorf("finding %+v", f)
			}
			if !strings.Contains(f.Remedy, tt.remedy) {
				t.Errorf("remedy %q does not contain %q", f.Remedy, tt.remedy)
			}
		})
	}
	// Without schema names (the schema could not be read), roots stay numbers.
	if f := integrityFinding("Tree 2 page 3: x", nil, "app.db"); f.Object != "b-tree with root page 2" {
		t.Errorf("object %q", f.Object)
	}
}

// TestQueryLines checks the splitting of integrity_check output: the
// b-tree checker's lines come in one row under a heading.
func TestQueryLines(t *testing.T) {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := &integrityCheck{t: &Target{db: db}}
	lines, err := c.query(context.Background(), `SELECT '*** in database main ***
Tree 2 page 5: btreeInitPage() returns error code 11
Page 9: never used' UNION ALL SELECT 'wrong # of entries in index i'`)
	if err != nil {
		t.Fatal(err)
	}
	want := "Tree 2 page 5: btreeInitPage() returns error code 11|Page 9: never used|wrong # of entries in index i"
	if got := strings.Join(lines, "|"); got != want {
		t.Errorf("lines %q\nwant  %q", got, want)
	}
	lines, err = c.query(context.Background(), "SELECT 'ok'")
	if err != nil || len(lines) != 0 {
		t.Errorf("ok: %q, %v", lines, err)
	}
}

// TestEstimatePages compares the sampled b-tree size with dbstat's exact
// count of interior and leaf pages.
func TestEstimatePages(t *testing.T) {
	p := sample(t)
	tg := open(t, p)
	tables, err := tg.childTables(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 3 {
		t.Fatalf("tables with foreign keys: %+v", tables)
	}
	sizes := tg.treeSizes(context.Background(), tables, 0)
	for i, tb := range tables {
		var exact int64
		if err := tg.db.QueryRow("SELECT sum(pgsize) FROM dbstat WHERE name = ? AND pagetype IN ('internal', 'leaf')", tb.name).Scan(&exact); err != nil {
			t.Fatal(err)
		}
		if ratio := float64(sizes[i]) / float64(exact); math.Abs(ratio-1) > 0.25 {
			t.Errorf("%s: estimated %d bytes, dbstat says %d", tb.name, sizes[i], exact)
		}
	}
}

func TestChildren(t *testing.T) {
	page := make([]byte, 512)
	page[0] = 5                     // table interior
	page[4] = 2                     // two cells
	page[11] = 9                    // right child 9
	page[12], page[13] = 0x01, 0x00 // cell at 256
	page[14], page[15] = 0x01, 0x10 // cell at 272
	page[256+3] = 3                 // left child 3
	page[272+3] = 4                 // left child 4
	kids, err := children(page, 2, 10)
	if err != nil || len(kids) != 3 || kids[0] != 3 || kids[1] != 4 || kids[2] != 9 {
		t.Fatalf("children = %v, %v", kids, err)
	}
	if _, err := children(page, 2, 5); err == nil {
		t.Error("a child beyond the page count must be refused")
	}
	page[0] = 13
	if kids, err := children(page, 2, 10); err != nil || kids != nil {
		t.Errorf("leaf: %v, %v", kids, err)
	}
	page[0] = 0x42
	if _, err := children(page, 2, 10); err == nil {
		t.Error("a page of unknown type must be refused")
	}
	if _, err := children(page[:50], 1, 10); err == nil {
		t.Error("a short page must be refused")
	}
}

// TestFindingsHaveRemedies checks every finding of a damaged database
// tells a person what to do.
func TestFindingsHaveRemedies(t *testing.T) {
	p := sample(t)
	if err := sqlitetest.DamagePage(p, rootPage(t, p, sqlitetest.SampleOrders)); err != nil {
		t.Fatal(err)
	}
	rep := run(t, context.Background(), open(t, p))
	if len(rep.Findings()) == 0 {
		t.Fatal("no findings")
	}
	for _, f := range rep.Findings() {
		if f.Remedy == "" || f.Object == "" || f.Message == "" {
			t.Errorf("incomplete finding %+v", f)
		}
	}
}
