package sqlitetest

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sample creates a fresh sample database in a temp dir.
func sample(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sample.db")
	if err := CreateSample(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// pragma runs a checking pragma on a new connection and returns its rows
// joined by "; ". A failing pragma is reported as its error text.
func pragma(t *testing.T, path, query string) string {
	t.Helper()
	db, err := open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(query)
	if err != nil {
		return "error: " + err.Error()
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var fields []string
		for _, v := range vals {
			switch v := v.(type) {
			case nil:
				fields = append(fields, "NULL")
			case []byte:
				fields = append(fields, string(v))
			default:
				fields = append(fields, strings.ReplaceAll(fmt.Sprint(v), "\n", " "))
			}
		}
		out = append(out, strings.Join(fields, "|"))
	}
	if err := rows.Err(); err != nil {
		return "error: " + err.Error()
	}
	return strings.Join(out, "; ")
}

func count(t *testing.T, path, query string) int {
	t.Helper()
	db, err := open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestCreateSample(t *testing.T) {
	path := sample(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() < 300<<10 {
		t.Errorf("sample is only %d bytes, want a few hundred KB", fi.Size())
	}
	for _, check := range []string{"PRAGMA integrity_check", "PRAGMA quick_check"} {
		if got := pragma(t, path, check); got != "ok" {
			t.Errorf("%s on a fresh sample: %s", check, got)
		}
	}
	if got := pragma(t, path, "PRAGMA foreign_key_check"); got != "" {
		t.Errorf("foreign_key_check on a fresh sample: %s", got)
	}
	for table, want := range map[string]int{
		SampleCustomers:   SampleCustomerRows,
		SampleProducts:    SampleProductRows,
		SampleOrders:      SampleOrderRows,
		SampleOrderItems:  SampleOrderItemRows,
		SampleAttachments: SampleAttachmentRows,
	} {
		if got := count(t, path, "SELECT count(*) FROM "+table); got != want {
			t.Errorf("%s has %d rows, want %d", table, got, want)
		}
	}
	if n := count(t, path, "SELECT count(*) FROM dbstat WHERE name = 'orders_customer_idx'"); n < 3 {
		t.Errorf("index %s spans %d pages, want several", SampleIndex, n)
	}
	if n := count(t, path, "SELECT count(*) FROM dbstat WHERE pagetype = 'overflow'"); n == 0 {
		t.Error("sample has no overflow pages")
	}
	if n := count(t, path, "SELECT count(*) FROM pragma_foreign_key_list('order_items')"); n != 2 {
		t.Errorf("order_items has %d foreign keys, want 2", n)
	}
	if err := CreateSample(path); err == nil {
		t.Error("CreateSample overwrote an existing file")
	}
	if got := pragma(t, path, "PRAGMA journal_mode"); got != "delete" {
		t.Errorf("journal_mode = %s, want delete", got)
	}
}

// pageOf returns a page of the given dbstat type that belongs to name.
func pageOf(t *testing.T, path, name, pagetype string) int {
	t.Helper()
	db, err := open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var pg int
	err = db.QueryRow("SELECT pageno FROM dbstat WHERE name = ? AND pagetype = ? ORDER BY pageno LIMIT 1 OFFSET 1", name, pagetype).Scan(&pg)
	if err == sql.ErrNoRows {
		t.Fatalf("no %s page of %s", pagetype, name)
	}
	if err != nil {
		t.Fatal(err)
	}
	return pg
}

func TestDamagePage(t *testing.T) {
	cases := []struct {
		name string
		page func(t *testing.T, path string) int
	}{
		{"table root (interior)", func(t *testing.T, path string) int {
			pg, err := RootPage(path, SampleOrders)
			if err != nil {
				t.Fatal(err)
			}
			return pg
		}},
		{"table leaf", func(t *testing.T, path string) int { return pageOf(t, path, SampleOrders, "leaf") }},
		{"index root", func(t *testing.T, path string) int {
			pg, err := RootPage(path, SampleIndex)
			if err != nil {
				t.Fatal(err)
			}
			return pg
		}},
		{"index leaf", func(t *testing.T, path string) int { return pageOf(t, path, SampleIndex, "leaf") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := sample(t)
			pg := tc.page(t, path)
			if err := DamagePage(path, pg); err != nil {
				t.Fatal(err)
			}
			for _, check := range []string{"PRAGMA integrity_check", "PRAGMA quick_check"} {
				got := pragma(t, path, check)
				if got == "ok" || strings.HasPrefix(got, "error") || !strings.Contains(got, "Fragmentation of") {
					t.Errorf("%s after damaging page %d: %s", check, pg, got)
				} else {
					t.Logf("%s: %.200s", check, got)
				}
			}
			// The header is intact: the database opens and its schema reads.
			if n := count(t, path, "SELECT count(*) FROM sqlite_schema"); n < 6 {
				t.Errorf("schema has %d entries after damage", n)
			}
		})
	}

	t.Run("refused pages", func(t *testing.T) {
		path := sample(t)
		overflow := pageOf(t, path, SampleAttachments, "overflow")
		for _, pg := range []int{0, 1, 1 << 20, overflow} {
			if err := DamagePage(path, pg); err == nil {
				t.Errorf("DamagePage(%d) succeeded", pg)
			} else {
				t.Logf("DamagePage(%d): %v", pg, err)
			}
		}
		if got := pragma(t, path, "PRAGMA integrity_check"); got != "ok" {
			t.Errorf("refused damage changed the file: %s", got)
		}
		if err := os.WriteFile(path+"-wal", []byte("pending"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := DamagePage(path, overflow-1); err == nil || !strings.Contains(err.Error(), "WAL") {
			t.Errorf("DamagePage with a non-empty WAL: got %v, want a WAL error", err)
		}
	})

	t.Run("not a database", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "junk.db")
		if err := os.WriteFile(path, make([]byte, 8192), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := DamagePage(path, 2); err == nil {
			t.Error("DamagePage on a non-database succeeded")
		}
	})
}

func TestDamageIndex(t *testing.T) {
	for _, index := range []string{SampleIndex, "sqlite_autoindex_customers_1", "sqlite_autoindex_order_items_1"} {
		t.Run(index, func(t *testing.T) {
			path := sample(t)
			if err := DamageIndex(path, index); err != nil {
				t.Fatal(err)
			}
			got := pragma(t, path, "PRAGMA integrity_check")
			if !strings.Contains(got, "missing from index "+index) && !strings.Contains(got, "wrong # of entries in index "+index) {
				t.Errorf("integrity_check after damaging %s: %s", index, got)
			} else {
				t.Logf("integrity_check: %.300s", got)
			}
			t.Logf("quick_check (does not compare index and table): %.200s", pragma(t, path, "PRAGMA quick_check"))
		})
	}
	t.Run("unknown index", func(t *testing.T) {
		path := sample(t)
		if err := DamageIndex(path, "no_such_index"); err == nil {
			t.Error("DamageIndex of a missing index succeeded")
		}
	})
}

func TestBreakForeignKey(t *testing.T) {
	path := sample(t)
	if err := BreakForeignKey(path); err != nil {
		t.Fatal(err)
	}
	got := pragma(t, path, "PRAGMA foreign_key_check")
	if !strings.HasPrefix(got, "orders|") || !strings.Contains(got, "|customers|") {
		t.Errorf("foreign_key_check after BreakForeignKey: %q", got)
	}
	t.Logf("foreign_key_check: %s", got)
	if got := pragma(t, path, "PRAGMA integrity_check"); got != "ok" {
		t.Errorf("integrity_check should still pass: %s", got)
	}

	if err := BreakForeignKey(filepath.Join(t.TempDir(), "empty.db")); err == nil {
		t.Error("BreakForeignKey on a database without the sample schema succeeded")
	}
}
