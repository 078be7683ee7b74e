// Command quickstart shows dbscrub catching a damaged SQLite database, with
// no setup and no flags:
//
//	go run ./examples/quickstart
//
// It creates a small shop database in a temporary directory and checks it
// (healthy), copies the file, zeroes one page of the copy the way a crash
// or a failing disk can, checks the copy (corrupt, with the
// findings), and shows checks.Gate refusing to go on. It removes its
// temporary directory and exits 0 when the damage was caught, 1 when it
// was not.
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/dbscrub/dbscrub/checks"
	// The SQLite driver. It also registers the pure-Go modernc.org/sqlite
	// database/sql driver as "sqlite", which the demo uses to create the
	// database.
	"github.com/dbscrub/dbscrub/drivers/sqlite"
)

func main() {
	os.Exit(run(context.Background(), demo{out: os.Stdout, damage: damagePage}))
}

// demo is what the quickstart runs, replaceable in tests.
type demo struct {
	out     io.Writer
	tempDir string // parent of the demo's directory; "" for the system's
	// damage damages the database at path and says what it did.
	damage func(ctx context.Context, path string) (string, error)
}

// run runs the demo and returns the exit code: 0 when the damaged copy was
// caught, 1 when it was not or the demo failed.
func run(ctx context.Context, d demo) int {
	caught, err := d.run(ctx)
	switch {
	case err != nil:
		fmt.Fprintln(d.out, "quickstart failed:", err)
		return 1
	case !caught:
		fmt.Fprintln(d.out, "FAIL: dbscrub did not catch the damaged copy.")
		return 1
	}
	fmt.Fprintln(d.out, "\nOK: the damaged copy was caught.")
	return 0
}

func (d demo) run(ctx context.Context) (caught bool, err error) {
	dir, err := os.MkdirTemp(d.tempDir, "dbscrub-quickstart-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	w := d.out

	// 1. A healthy database.
	shop := filepath.Join(dir, "shop.db")
	desc, err := createShop(ctx, shop)
	if err != nil {
		return false, err
	}
	fmt.Fprintf(w, "1. Created %s: %s.\n", filepath.Base(shop), desc)
	rep, err := check(ctx, shop)
	if err != nil {
		return false, err
	}
	printReport(w, rep, 0)
	if rep.Status != checks.StatusHealthy {
		return false, fmt.Errorf("the fresh database is %s, want healthy: %s", rep.Status, rep.Reason)
	}

	// 2. A damaged copy.
	damaged := filepath.Join(dir, "shop-damaged.db")
	if err := copyFile(shop, damaged); err != nil {
		return false, err
	}
	what, err := d.damage(ctx, damaged)
	if err != nil {
		return false, fmt.Errorf("damaging the copy: %w", err)
	}
	fmt.Fprintf(w, "\n2. Copied it to %s and %s.\n", filepath.Base(damaged), what)
	rep, err = check(ctx, damaged)
	if err != nil {
		return false, err
	}
	printReport(w, rep, 6)

	// 3. The one-shot gate, as before a migration or a disk move.
	t, err := sqlite.Open(damaged)
	if err != nil {
		return false, err
	}
	defer t.Close()
	_, gateErr := checks.Gate(ctx, t)
	fmt.Fprintln(w, "\n3. Gate before a migration: _, err := checks.Gate(ctx, target)")
	fmt.Fprintf(w, "   err != nil: %t, errors.Is(err, checks.ErrCorrupt): %t\n", gateErr != nil, errors.Is(gateErr, checks.ErrCorrupt))

	return rep.Status == checks.StatusCorrupt && errors.Is(gateErr, checks.ErrCorrupt), nil
}

// check runs dbscrub's default SQLite checks (integrity_check and
// foreign_key_check) on the file at path, read-only.
func check(ctx context.Context, path string) (*checks.Report, error) {
	t, err := sqlite.Open(path)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	r, err := checks.NewRunner(checks.WithJobs(2))
	if err != nil {
		return nil, err
	}
	return r.Run(ctx, t), nil
}

// printReport prints the status of each check, what it covered and, up to
// maxFindings, what it found.
func printReport(w io.Writer, rep *checks.Report, maxFindings int) {
	fmt.Fprintf(w, "   dbscrub: %s\n", strings.ToUpper(string(rep.Status)))
	for _, c := range rep.Checks {
		fmt.Fprintf(w, "   - %-13s %-8s %s\n", c.Check, c.Status, summary(c))
	}
	fs := rep.Findings()
	for i, f := range fs {
		if i == maxFindings {
			fmt.Fprintf(w, "     ... and %d more\n", len(fs)-i)
			break
		}
		where := f.Object
		if loc := f.Location.String(); loc != "" {
			where += ", " + loc
		}
		fmt.Fprintf(w, "     %s: %s\n", where, f.Message)
	}
}

// summary says in a few words what a check verified or found.
func summary(c *checks.CheckReport) string {
	cov := c.Coverage
	switch {
	case c.Status != checks.StatusHealthy && len(c.Findings) > 0:
		return plural(len(c.Findings), "finding")
	case c.Status != checks.StatusHealthy:
		return c.Reason
	case c.Check == sqlite.CheckIntegrity:
		return fmt.Sprintf("every page read: %d KiB, %s", cov.BytesVerified/1024, plural(int(cov.ObjectsVerified), "table or index", "tables and indexes"))
	case c.Check == sqlite.CheckForeignKeys:
		return "every row of " + plural(int(cov.ObjectsVerified), "table", "tables") + " with foreign keys"
	}
	return plural(cov.TasksCompleted, "task")
}

// plural returns "1 thing" or "n things" (or "n " + forms[1]).
func plural(n int, one string, many ...string) string {
	if n == 1 {
		return "1 " + one
	}
	if len(many) > 0 {
		return fmt.Sprintf("%d %s", n, many[0])
	}
	return fmt.Sprintf("%d %ss", n, one)
}

// createShop creates the demo database: customers, products and orders,
// with foreign keys from orders to both and an index on orders.
func createShop(ctx context.Context, path string) (string, error) {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return "", err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, `
		CREATE TABLE customers (
			id    INTEGER PRIMARY KEY,
			name  TEXT NOT NULL,
			email TEXT NOT NULL
		);
		CREATE TABLE products (
			id          INTEGER PRIMARY KEY,
			title       TEXT NOT NULL,
			price_cents INTEGER NOT NULL CHECK (price_cents >= 0)
		);
		CREATE TABLE orders (
			id          INTEGER PRIMARY KEY,
			customer_id INTEGER NOT NULL REFERENCES customers(id),
			product_id  INTEGER NOT NULL REFERENCES products(id),
			qty         INTEGER NOT NULL,
			note        TEXT
		);
		CREATE INDEX orders_by_customer ON orders(customer_id);

		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
		INSERT INTO customers SELECT i, 'Customer ' || i, 'customer' || i || '@example.com' FROM n;
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
		INSERT INTO products SELECT i, 'Product ' || i, i * 199 FROM n;
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
		INSERT INTO orders SELECT i, i % 200 + 1, i % 50 + 1, i % 5 + 1, 'order ' || i || ', gift wrapped' FROM n;`)
	if err != nil {
		return "", fmt.Errorf("creating the demo database: %w", err)
	}
	var size int64
	if err := db.QueryRowContext(ctx, "SELECT page_count * page_size FROM pragma_page_count, pragma_page_size").Scan(&size); err != nil {
		return "", err
	}
	return fmt.Sprintf("3 tables, 1 index, 2250 rows, %d KiB", size/1024), nil
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

// damagePage damages the database at path the way a crash or a failing
// disk can: it overwrites one whole page of the orders table with zeros.
//
// An SQLite file is a sequence of fixed-size pages (page_size bytes,
// numbered from 1); page n starts at byte (n-1) × page_size. Each table and
// index is a b-tree of pages. dbstat, a virtual table built into SQLite,
// lists which page belongs to which b-tree; the demo picks a leaf page (one
// holding rows) in the middle of the orders table and zeroes it, which
// wipes its b-tree page header and every row stored in it.
func damagePage(ctx context.Context, path string) (string, error) {
	var page, pageSize int64
	err := func() error {
		db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
		if err != nil {
			return err
		}
		defer db.Close()
		if err := db.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
			return err
		}
		return db.QueryRowContext(ctx, `SELECT pageno FROM dbstat
			WHERE name = 'orders' AND pagetype = 'leaf'
			ORDER BY pageno LIMIT 1 OFFSET 5`).Scan(&page)
	}()
	if err != nil {
		return "", fmt.Errorf("finding a page of orders: %w", err)
	}

	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return "", err
	}
	zeros := make([]byte, pageSize)
	if _, err := f.WriteAt(zeros, (page-1)*pageSize); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return fmt.Sprintf("zeroed page %d (%d bytes of table orders), as a crash or a failing disk can", page, pageSize), nil
}
