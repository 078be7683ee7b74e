// Package sqlitetest creates sample SQLite databases and damages them in
// controlled ways, so that integrity checks (PRAGMA integrity_check,
// quick_check, foreign_key_check) can be shown to detect real corruption.
//
// The damage helpers edit the database file directly; no connection may be
// open on it while they run. They refuse databases with a non-empty WAL,
// whose pages could hide the damage.
package sqlitetest

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Names in the database made by CreateSample.
const (
	// SampleCustomers has an INTEGER PRIMARY KEY and a UNIQUE email column
	// (index sqlite_autoindex_customers_1).
	SampleCustomers = "customers"
	// SampleProducts has a UNIQUE sku column.
	SampleProducts = "products"
	// SampleOrders references customers(id) and is indexed by SampleIndex.
	SampleOrders = "orders"
	// SampleOrderItems references orders(id) and products(id).
	SampleOrderItems = "order_items"
	// SampleAttachments references orders(id) and holds blobs large enough
	// to need overflow pages.
	SampleAttachments = "attachments"
	// SampleIndex is the index on orders(customer_id).
	SampleIndex = "orders_customer_idx"

	// Row counts in the sample database.
	SampleCustomerRows   = 500
	SampleProductRows    = 200
	SampleOrderRows      = 3000
	SampleOrderItemRows  = 6000
	SampleAttachmentRows = 10
)

const sampleSchema = `
CREATE TABLE customers (
	id    INTEGER PRIMARY KEY,
	name  TEXT NOT NULL,
	email TEXT NOT NULL UNIQUE
);
CREATE TABLE products (
	id          INTEGER PRIMARY KEY,
	sku         TEXT NOT NULL UNIQUE,
	title       TEXT NOT NULL,
	price_cents INTEGER NOT NULL CHECK (price_cents >= 0)
);
CREATE TABLE orders (
	id          INTEGER PRIMARY KEY,
	customer_id INTEGER NOT NULL REFERENCES customers(id),
	placed_at   TEXT NOT NULL,
	note        TEXT
);
CREATE INDEX orders_customer_idx ON orders(customer_id);
CREATE TABLE order_items (
	order_id   INTEGER NOT NULL REFERENCES orders(id),
	product_id INTEGER NOT NULL REFERENCES products(id),
	qty        INTEGER NOT NULL,
	PRIMARY KEY (order_id, product_id)
);
CREATE TABLE attachments (
	id       INTEGER PRIMARY KEY,
	order_id INTEGER NOT NULL REFERENCES orders(id),
	body     BLOB NOT NULL
);
`

// open opens the SQLite database at path with the given pragmas applied to
// every connection.
func open(path string, pragmas ...string) (*sql.DB, error) {
	q := url.Values{}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	dsn := path
	if len(q) > 0 {
		dsn += "?" + q.Encode()
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlitetest: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// CreateSample creates a new SQLite database at path (which must not exist)
// with the tables customers, products, orders, order_items and attachments,
// foreign keys between them, the index orders_customer_idx and enough
// deterministic rows to span many pages (several hundred KB, including
// overflow pages). The database uses a rollback journal, so the whole
// database is in the file once CreateSample returns.
func CreateSample(path string) (err error) {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("sqlitetest: create sample: %s already exists", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sqlitetest: create sample: %w", err)
	}
	db, err := open(path, "foreign_keys(1)", "journal_mode(delete)")
	if err != nil {
		return err
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("sqlitetest: create sample: close: %w", cerr)
		}
	}()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlitetest: create sample: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if err := fillSample(ctx, tx); err != nil {
		return fmt.Errorf("sqlitetest: create sample %s: %w", path, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlitetest: create sample: commit: %w", err)
	}
	return nil
}

func fillSample(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, sampleSchema); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	inserts := []struct {
		sql  string
		rows int
		args func(i int) []any
	}{{
		"INSERT INTO customers (id, name, email) VALUES (?, ?, ?)", SampleCustomerRows,
		func(i int) []any {
			return []any{i, fmt.Sprintf("Customer %04d", i), fmt.Sprintf("customer%04d@example.com", i)}
		},
	}, {
		"INSERT INTO products (id, sku, title, price_cents) VALUES (?, ?, ?, ?)", SampleProductRows,
		func(i int) []any {
			return []any{i, fmt.Sprintf("SKU-%05d", i), fmt.Sprintf("Product number %d", i), i * 137 % 10000}
		},
	}, {
		"INSERT INTO orders (id, customer_id, placed_at, note) VALUES (?, ?, ?, ?)", SampleOrderRows,
		func(i int) []any {
			return []any{i, (i*7919)%SampleCustomerRows + 1,
				fmt.Sprintf("2024-%02d-%02dT%02d:%02d:00Z", i%12+1, i%28+1, i%24, i%60),
				fmt.Sprintf("order %d: %s", i, strings.Repeat(string(rune('a'+i%26)), 60+i%40))}
		},
	}, {
		"INSERT INTO order_items (order_id, product_id, qty) VALUES (?, ?, ?)", SampleOrderItemRows,
		func(i int) []any {
			return []any{(i-1)/2 + 1, (i*31)%SampleProductRows + 1, i%5 + 1}
		},
	}, {
		"INSERT INTO attachments (id, order_id, body) VALUES (?, ?, ?)", SampleAttachmentRows,
		func(i int) []any {
			body := make([]byte, 12000+i*100)
			for j := range body {
				body[j] = byte(i*j + j>>8)
			}
			return []any{i, i * 3, body}
		},
	}}
	for _, ins := range inserts {
		stmt, err := tx.PrepareContext(ctx, ins.sql)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", ins.sql, err)
		}
		for i := 1; i <= ins.rows; i++ {
			if _, err := stmt.ExecContext(ctx, ins.args(i)...); err != nil {
				stmt.Close()
				return fmt.Errorf("%q row %d: %w", ins.sql, i, err)
			}
		}
		if err := stmt.Close(); err != nil {
			return err
		}
	}
	return nil
}

// RootPage returns the root b-tree page (1-based) of the table or index
// called name, from sqlite_schema.
func RootPage(path, name string) (int, error) {
	db, err := open(path, "query_only(1)")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var root int
	err = db.QueryRow("SELECT rootpage FROM sqlite_schema WHERE name = ? AND type IN ('table', 'index')", name).Scan(&root)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("sqlitetest: %s: no table or index %q", path, name)
	}
	if err != nil {
		return 0, fmt.Errorf("sqlitetest: %s: root page of %q: %w", path, name, err)
	}
	if root < 2 {
		return 0, fmt.Errorf("sqlitetest: %s: %q has no b-tree of its own (rootpage %d)", path, name, root)
	}
	return root, nil
}

// DamagePage damages b-tree page page (1-based; page 1, which holds the file
// header and the schema, is refused) so that PRAGMA integrity_check and
// quick_check report errors (as result rows; the pragmas do not fail), while
// the file header stays intact and the database still opens. It swaps the
// first and last cell pointers, putting the page's keys out of order
// (integrity_check: "Rowid N out of order" on table pages, "row N missing
// from index X" on index pages), and misstates the page's count of
// fragmented bytes (both pragmas: "Fragmentation of N bytes reported as M on
// page P").
func DamagePage(path string, page int) error {
	f, err := openFile(path)
	if err != nil {
		return err
	}
	err = f.editPage(page, func(p []byte) error {
		kind := p[0]
		if !isBtreePage(kind) {
			return fmt.Errorf("not a b-tree page (type byte 0x%02x)", kind)
		}
		n := int(binary.BigEndian.Uint16(p[3:]))
		if btreeHeaderSize(kind)+2*n > len(p) {
			return fmt.Errorf("cell count %d does not fit the page", n)
		}
		if n > 1 {
			// Swap the first and last cell pointers: keys out of order.
			ptrs := p[btreeHeaderSize(kind):]
			first, last := ptrs[0:2], ptrs[2*(n-1):2*n]
			first[0], first[1], last[0], last[1] = last[0], last[1], first[0], first[1]
		}
		// Misstate the number of fragmented free bytes.
		p[7]++
		return nil
	})
	return errors.Join(err, f.close())
}

// DamageIndex corrupts one entry of the named index so that PRAGMA
// integrity_check reports it ("row N missing from index X"): in the first
// entry of the index's leftmost leaf page, the trailing rowid is changed to a
// value no row has (its sign bit is flipped). The page stays structurally
// valid, so quick_check, which does not compare indexes with their tables,
// may not notice. The index must belong to a rowid table.
func DamageIndex(path, index string) error {
	db, err := open(path, "query_only(1)")
	if err != nil {
		return err
	}
	var root int
	err = db.QueryRow("SELECT rootpage FROM sqlite_schema WHERE type = 'index' AND name = ?", index).Scan(&root)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlitetest: damage index: %s has no index %q", path, index)
	}
	if err != nil {
		return fmt.Errorf("sqlitetest: damage index %q: %w", index, err)
	}

	f, err := openFile(path)
	if err != nil {
		return err
	}
	err = f.damageIndex(root)
	if err != nil {
		err = fmt.Errorf("sqlitetest: damage index %q: %w", index, err)
	}
	return errors.Join(err, f.close())
}

func (f *dbFile) damageIndex(root int) error {
	pg := root
	for depth := 0; ; depth++ {
		if depth > 64 {
			return errors.New("index b-tree deeper than 64 levels")
		}
		p, err := f.readPage(pg)
		if err != nil {
			return err
		}
		hdr := pageHeaderOffset(pg)
		switch kind := p[hdr]; kind {
		case interiorIndexPage:
			if binary.BigEndian.Uint16(p[hdr+3:]) == 0 {
				return fmt.Errorf("interior index page %d has no cells", pg)
			}
			cell := int(binary.BigEndian.Uint16(p[hdr+12:]))
			if cell+4 > len(p) {
				return fmt.Errorf("page %d: cell offset %d out of range", pg, cell)
			}
			pg = int(binary.BigEndian.Uint32(p[cell:])) // left child
		case leafIndexPage:
			return f.editPage(pg, func(p []byte) error { return f.breakIndexCell(p) })
		default:
			return fmt.Errorf("page %d is not an index b-tree page (type byte 0x%02x)", pg, kind)
		}
	}
}

// breakIndexCell changes the rowid of the first cell on a leaf index page
// (p starts at the b-tree page header).
func (f *dbFile) breakIndexCell(p []byte) error {
	if binary.BigEndian.Uint16(p[3:]) == 0 {
		return errors.New("leaf index page has no cells")
	}
	cell := int(binary.BigEndian.Uint16(p[8:])) - f.headerOffset
	if cell < 0 || cell >= len(p) {
		return fmt.Errorf("cell offset %d out of range", cell)
	}
	payload, n := varint(p[cell:])
	if n == 0 || payload > uint64(f.maxLocalIndex()) {
		return errors.New("first index entry is malformed or spills to overflow pages")
	}
	rec := p[cell+n : cell+n+int(payload)]
	hdrSize, n := varint(rec)
	if n == 0 || hdrSize > uint64(len(rec)) {
		return errors.New("malformed index record header")
	}
	// Walk the serial types; the last column is the rowid.
	var lastType uint64
	lastTypeAt, body, bodyAt := -1, int(hdrSize), 0
	for i := n; i < int(hdrSize); {
		st, m := varint(rec[i:int(hdrSize)])
		if m == 0 {
			return errors.New("malformed serial type")
		}
		size, ok := serialSize(st)
		if !ok {
			return fmt.Errorf("unsupported serial type %d", st)
		}
		lastType, lastTypeAt, bodyAt = st, i, body
		body += size
		i += m
	}
	if lastTypeAt < 0 || body > len(rec) {
		return errors.New("malformed index record")
	}
	switch {
	case lastType >= 1 && lastType <= 6: // big-endian two's-complement integer
		rec[bodyAt] ^= 0x80
	case lastType == 8 || lastType == 9: // the constants 0 and 1
		rec[lastTypeAt] ^= 8 ^ 9
	default:
		return fmt.Errorf("last column of the index entry is not an integer rowid (serial type %d)", lastType)
	}
	return nil
}

// BreakForeignKey inserts, with foreign_keys=OFF, an order that references
// a customer that does not exist, so PRAGMA foreign_key_check reports it
// (table "orders", parent "customers"). The database must have been made by
// CreateSample.
func BreakForeignKey(path string) (err error) {
	db, err := open(path, "foreign_keys(0)")
	if err != nil {
		return err
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("sqlitetest: break foreign key: close: %w", cerr)
		}
	}()
	_, err = db.Exec(`INSERT INTO orders (customer_id, placed_at, note)
		VALUES ((SELECT coalesce(max(id), 0) + 1000 FROM customers), '2024-01-01T00:00:00Z', 'orphan')`)
	if err != nil {
		return fmt.Errorf("sqlitetest: break foreign key in %s (made by CreateSample?): %w", path, err)
	}
	return nil
}

// SQLite b-tree page types.
const (
	interiorIndexPage = 0x02
	interiorTablePage = 0x05
	leafIndexPage     = 0x0A
	leafTablePage     = 0x0D
)

func isBtreePage(kind byte) bool {
	switch kind {
	case interiorIndexPage, interiorTablePage, leafIndexPage, leafTablePage:
		return true
	}
	return false
}

func btreeHeaderSize(kind byte) int {
	if kind == interiorIndexPage || kind == interiorTablePage {
		return 12
	}
	return 8
}

// pageHeaderOffset is where the b-tree header starts: page 1 begins with the
// 100-byte database header.
func pageHeaderOffset(page int) int {
	if page == 1 {
		return 100
	}
	return 0
}

// dbFile is an SQLite database file opened for editing.
type dbFile struct {
	path         string
	f            *os.File
	pageSize     int
	usable       int // page size minus reserved bytes
	pages        int
	headerOffset int // of the page being edited; see editPage
}

func openFile(path string) (*dbFile, error) {
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		return nil, fmt.Errorf("sqlitetest: %s has a non-empty WAL; checkpoint it and close all connections first", path)
	}
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("sqlitetest: %w", err)
	}
	f := &dbFile{path: path, f: fh}
	if err := f.readHeader(); err != nil {
		fh.Close()
		return nil, fmt.Errorf("sqlitetest: %s: %w", path, err)
	}
	return f, nil
}

func (f *dbFile) readHeader() error {
	var hdr [100]byte
	if _, err := f.f.ReadAt(hdr[:], 0); err != nil {
		return fmt.Errorf("read database header: %w", err)
	}
	if string(hdr[:16]) != "SQLite format 3\x00" {
		return errors.New("not an SQLite 3 database")
	}
	f.pageSize = int(binary.BigEndian.Uint16(hdr[16:]))
	if f.pageSize == 1 {
		f.pageSize = 65536
	}
	if f.pageSize < 512 || f.pageSize&(f.pageSize-1) != 0 {
		return fmt.Errorf("invalid page size %d", f.pageSize)
	}
	f.usable = f.pageSize - int(hdr[20])
	fi, err := f.f.Stat()
	if err != nil {
		return err
	}
	f.pages = int(fi.Size() / int64(f.pageSize))
	return nil
}

// maxLocalIndex is the largest payload an index b-tree cell stores without
// overflow pages.
func (f *dbFile) maxLocalIndex() int { return (f.usable-12)*64/255 - 23 }

func (f *dbFile) readPage(page int) ([]byte, error) {
	if page < 1 || page > f.pages {
		return nil, fmt.Errorf("page %d out of range 1..%d", page, f.pages)
	}
	p := make([]byte, f.pageSize)
	if _, err := f.f.ReadAt(p, int64(page-1)*int64(f.pageSize)); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read page %d: %w", page, err)
	}
	return p, nil
}

// editPage lets edit change page (page 1 is refused to keep the header and
// schema intact); edit sees the page from its b-tree header on.
func (f *dbFile) editPage(page int, edit func(p []byte) error) error {
	if page < 2 || page > f.pages {
		return fmt.Errorf("sqlitetest: %s: page %d out of range 2..%d (page 1 holds the header and schema)", f.path, page, f.pages)
	}
	p, err := f.readPage(page)
	if err != nil {
		return fmt.Errorf("sqlitetest: %s: %w", f.path, err)
	}
	f.headerOffset = pageHeaderOffset(page)
	if err := edit(p[f.headerOffset:]); err != nil {
		return fmt.Errorf("sqlitetest: %s: page %d: %w", f.path, page, err)
	}
	if _, err := f.f.WriteAt(p, int64(page-1)*int64(f.pageSize)); err != nil {
		return fmt.Errorf("sqlitetest: %s: write page %d: %w", f.path, page, err)
	}
	return nil
}

func (f *dbFile) close() error {
	err := errors.Join(f.f.Sync(), f.f.Close())
	if err != nil {
		return fmt.Errorf("sqlitetest: %s: %w", f.path, err)
	}
	return nil
}

// varint decodes an SQLite varint, returning the value and its length (0 if
// b is too short).
func varint(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < 9 && i < len(b); i++ {
		if i == 8 {
			return v<<8 | uint64(b[i]), 9
		}
		v = v<<7 | uint64(b[i]&0x7F)
		if b[i]&0x80 == 0 {
			return v, i + 1
		}
	}
	return 0, 0
}

// serialSize is the size in bytes of a value with the given record serial
// type.
func serialSize(st uint64) (int, bool) {
	switch {
	case st <= 4:
		return int(st), true // NULL, 1-4 byte integers
	case st == 5:
		return 6, true
	case st == 6 || st == 7:
		return 8, true
	case st == 8 || st == 9:
		return 0, true
	case st >= 12:
		return int((st - 12) / 2), true // blob or text
	}
	return 0, false // 10, 11: reserved
}
