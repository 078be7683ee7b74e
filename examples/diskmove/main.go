// Command diskmove shows how to prove that a copy of a database holds every
// row of the original, the way you would around a migration, a disk move or
// a restore:
//
//	go run ./examples/diskmove                                   # SQLite files, no setup
//	go run ./examples/diskmove --dsn postgres://me@localhost/postgres   # PostgreSQL
//
// It creates a small shop database, takes its fingerprint (what
// `dbscrub fingerprint -o before.json` writes), copies the database (on
// PostgreSQL with pg_dump | pg_restore into a second database on the same
// server; on SQLite by copying the file, as a disk move does), and compares
// the copy with the fingerprint: identical. Then it changes one value in one
// row of the copy, as silent damage or a faulty copy job would, and
// compares again: the fingerprint file locates the damage to its chunk, and
// comparing the two live databases narrows it down to exactly that row
// (`dbscrub compare before.json COPY`, `dbscrub compare ORIGINAL COPY`).
//
// With --dsn (or DBSCRUB_DSN) it needs a PostgreSQL role that may create
// databases; it creates two scratch databases and drops them at the end.
// pg_dump and pg_restore are taken from --pg-bin, else from PATH. Without a
// DSN it uses SQLite files in a temporary directory. It exits 0 when the
// damaged row was located exactly, 1 otherwise.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/drivers/postgres"
	"github.com/dbscrub/dbscrub/drivers/sqlite"
)

func main() {
	var d demo
	flag.StringVar(&d.dsn, "dsn", os.Getenv("DBSCRUB_DSN"), "PostgreSQL server (postgres://...) where the demo may create two scratch databases; default: SQLite files")
	flag.StringVar(&d.pgBin, "pg-bin", "", "directory holding pg_dump and pg_restore (default: PATH)")
	flag.Parse()
	d.out = os.Stdout
	d.damage = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	os.Exit(run(ctx, d))
}

// demo is what the example runs, configurable in tests.
type demo struct {
	out     io.Writer
	dsn     string // "" for SQLite
	pgBin   string
	tempDir string // parent of the demo's directory; "" for the system's
	damage  bool   // damage the copy (tests turn it off to see the demo fail)
}

// damagedKey is the order whose amount the demo changes in the copy.
const damagedKey = 4242

// shop is one side of the demo: a database to fill, fingerprint and open.
type shop interface {
	// exec runs statements on a read-write connection.
	exec(ctx context.Context, stmts ...string) error
	// target opens it for dbscrub (read-only).
	target() (fingerprinter, error)
	name() string
}

type fingerprinter interface {
	checks.Fingerprinter
	checks.RangeHasher
	Close() error
}

func run(ctx context.Context, d demo) int {
	located, err := d.run(ctx)
	switch {
	case err != nil:
		fmt.Fprintln(d.out, "diskmove failed:", err)
		return 1
	case !located:
		fmt.Fprintln(d.out, "FAIL: the comparison did not locate the damaged row.")
		return 1
	}
	fmt.Fprintln(d.out, "\nOK: the damaged row was located exactly.")
	return 0
}

func (d demo) run(ctx context.Context) (bool, error) {
	dir, err := os.MkdirTemp(d.tempDir, "dbscrub-diskmove-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	w := d.out

	var orig, cp shop
	var copyDesc string
	var copyFn func(ctx context.Context) error
	if d.dsn == "" {
		o, c := sqliteShop(filepath.Join(dir, "shop.db")), sqliteShop(filepath.Join(dir, "moved.db"))
		orig, cp = o, c
		copyDesc = "Copied the file to " + c.name() + " (a disk move)"
		copyFn = func(context.Context) error { return copyFile(string(o), string(c)) }
	} else {
		o, c, cleanup, err := pgShops(ctx, d.dsn)
		if err != nil {
			return false, err
		}
		defer cleanup()
		orig, cp = o, c
		copyDesc = "Copied it with pg_dump | pg_restore into database " + c.name()
		copyFn = func(ctx context.Context) error { return pgCopy(ctx, d.pgBin, o, c) }
	}

	// 1. The original, and its fingerprint, stored as a file.
	if err := fillShop(ctx, orig); err != nil {
		return false, err
	}
	origT, err := orig.target()
	if err != nil {
		return false, err
	}
	defer origT.Close()
	// Chunks of 1,000 rows: the finest grain a comparison with the file can
	// locate differences to (`dbscrub fingerprint --chunk-rows 1000`). By
	// default chunks are sized by time (half a second of work each).
	fp, err := origT.Fingerprint(ctx, checks.WithChunkRows(1000))
	if err != nil {
		return false, err
	}
	fpPath := filepath.Join(dir, "before.json")
	if err := writeFingerprint(fpPath, fp); err != nil {
		return false, err
	}
	fmt.Fprintf(w, "1. Created %s (%s) and took its fingerprint: %d tables, %d rows, written to %s.\n",
		orig.name(), fp.Engine, len(fp.Tables), fp.Rows(), filepath.Base(fpPath))

	// 2. The move.
	if err := copyFn(ctx); err != nil {
		return false, err
	}
	cpT, err := cp.target()
	if err != nil {
		return false, err
	}
	defer cpT.Close()
	stored, err := readFingerprint(fpPath)
	if err != nil {
		return false, err
	}
	diff, err := checks.CompareSources(ctx, checks.StoredSource(stored), checks.LiveSource(cpT))
	if err != nil {
		return false, err
	}
	fmt.Fprintf(w, "2. %s; compared with %s: %s.\n", copyDesc, filepath.Base(fpPath), verdict(diff))
	if !diff.Identical {
		return false, fmt.Errorf("the undamaged copy differs: %v", ranges(diff))
	}

	// 3. One changed value in one row of the copy.
	if d.damage {
		if err := cp.exec(ctx, fmt.Sprintf("UPDATE orders SET amount = amount + 0.01 WHERE id = %d", damagedKey)); err != nil {
			return false, err
		}
		fmt.Fprintf(w, "3. Changed the amount of order %d in the copy by one cent.\n", damagedKey)
	} else {
		fmt.Fprintln(w, "3. Left the copy alone.")
	}

	diff, err = checks.CompareSources(ctx, checks.StoredSource(stored), checks.LiveSource(cpT))
	if err != nil {
		return false, err
	}
	fmt.Fprintf(w, "4. Compared %s with the copy: %s.\n", filepath.Base(fpPath), verdict(diff))
	for _, r := range ranges(diff) {
		fmt.Fprintln(w, "     ", r)
	}
	diff, err = checks.CompareSources(ctx, checks.LiveSource(origT), checks.LiveSource(cpT))
	if err != nil {
		return false, err
	}
	fmt.Fprintf(w, "5. Compared the original with the copy, both live (narrowed by bisection): %s.\n", verdict(diff))
	for _, r := range ranges(diff) {
		fmt.Fprintln(w, "     ", r)
	}
	return locatedExactly(diff), nil
}

// locatedExactly reports whether the diff is the one damaged row and
// nothing else.
func locatedExactly(d *checks.Diff) bool {
	if len(d.Missing)+len(d.Extra) != 0 || len(d.Tables) != 1 {
		return false
	}
	t := d.Tables[0]
	if !strings.HasSuffix(t.Name, "orders") || len(t.Ranges) != 1 {
		return false
	}
	r := t.Ranges[0]
	return r.RowsA == 1 && r.RowsB == 1 && r.Upper.String() == fmt.Sprint(damagedKey) && r.Lower.String() == fmt.Sprint(damagedKey-1)
}

func rows(n int64) string {
	if n == 1 {
		return "1 row"
	}
	return fmt.Sprintf("%d rows", n)
}

func verdict(d *checks.Diff) string {
	if d.Identical {
		return fmt.Sprintf("IDENTICAL (%d tables, %d rows)", d.TablesCompared, d.A.Rows)
	}
	return fmt.Sprintf("DIFFERENT (%d missing, %d extra, %d changed tables)", len(d.Missing), len(d.Extra), len(d.Tables))
}

func ranges(d *checks.Diff) []string {
	var out []string
	for _, t := range d.Tables {
		for _, r := range t.Ranges {
			out = append(out, fmt.Sprintf("%s: %s in %s: %s in the original, %d in the copy",
				t.Name, checks.KeyColumns(t.PrimaryKey), r.KeyRange, rows(r.RowsA), r.RowsB))
		}
	}
	return out
}

// fillShop creates the tables: orders (with NULL and empty notes), order
// lines (a composite key) and an audit log without a primary key.
func fillShop(ctx context.Context, s shop) error {
	gen := func(n int, body string) string {
		if _, ok := s.(sqliteShop); ok {
			return fmt.Sprintf("WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < %d) %s FROM g", n, body)
		}
		return body + fmt.Sprintf(" FROM generate_series(1, %d) AS g(n)", n)
	}
	return s.exec(ctx,
		"CREATE TABLE orders (id integer PRIMARY KEY, customer text NOT NULL, amount numeric(12,2) NOT NULL, note text)",
		gen(10000, `INSERT INTO orders SELECT n, 'customer ' || (n % 300), (n % 977) * 1.5,
			CASE WHEN n % 10 = 0 THEN NULL WHEN n % 10 = 1 THEN '' ELSE 'gift wrap' END`),
		"CREATE TABLE order_lines (order_id integer, line integer, sku text, qty integer, PRIMARY KEY (order_id, line))",
		gen(10000, "INSERT INTO order_lines SELECT n, 1, 'SKU-' || (n % 500), 1 + n % 4"),
		"CREATE TABLE audit_log (at text, message text)",
		gen(500, "INSERT INTO audit_log SELECT 'day ' || n, 'nightly job ran'"),
	)
}

func writeFingerprint(path string, fp *checks.Fingerprint) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := fp.Write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readFingerprint(path string) (*checks.Fingerprint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return checks.ReadFingerprint(f)
}

// sqliteShop is an SQLite file.
type sqliteShop string

func (s sqliteShop) name() string { return filepath.Base(string(s)) }

func (s sqliteShop) exec(ctx context.Context, stmts ...string) error {
	db, err := sql.Open("sqlite", string(s)) // the modernc.org/sqlite driver, registered by drivers/sqlite
	if err != nil {
		return err
	}
	defer db.Close()
	for _, st := range stmts {
		if _, err := db.ExecContext(ctx, st); err != nil {
			return fmt.Errorf("%s: %w", s.name(), err)
		}
	}
	return nil
}

func (s sqliteShop) target() (fingerprinter, error) { return sqlite.Open(string(s)) }

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// pgShop is a scratch PostgreSQL database.
type pgShop struct{ db, dsn string }

func (s pgShop) name() string { return s.db }

func (s pgShop) exec(ctx context.Context, stmts ...string) error {
	db, err := sql.Open("postgres", s.dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, st := range stmts {
		if _, err := db.ExecContext(ctx, st); err != nil {
			return fmt.Errorf("%s: %w", s.db, err)
		}
	}
	return nil
}

func (s pgShop) target() (fingerprinter, error) { return postgres.Open(s.dsn) }

// pgShops creates two scratch databases on the server of dsn and returns
// them with a function that drops them.
func pgShops(ctx context.Context, dsn string) (pgShop, pgShop, func(), error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return pgShop{}, pgShop{}, nil, errors.New("--dsn must be a postgres:// URL")
	}
	admin, err := sql.Open("postgres", dsn)
	if err != nil {
		return pgShop{}, pgShop{}, nil, err
	}
	prefix := fmt.Sprintf("dbscrub_diskmove_%d", os.Getpid())
	var shops []pgShop
	cleanup := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, s := range shops {
			_, _ = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(s.db)+" WITH (FORCE)")
		}
		admin.Close()
	}
	for _, suffix := range []string{"_original", "_copy"} {
		name := prefix + suffix
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name)+" TEMPLATE template0"); err != nil {
			cleanup()
			return pgShop{}, pgShop{}, nil, fmt.Errorf("creating scratch database %s (the role needs CREATEDB): %w", name, err)
		}
		v := *u
		v.Path = "/" + name
		shops = append(shops, pgShop{db: name, dsn: v.String()})
	}
	return shops[0], shops[1], cleanup, nil
}

// pgCopy runs pg_dump -Fc ORIGINAL | pg_restore -d COPY.
func pgCopy(ctx context.Context, bin string, from, to pgShop) error {
	prog := func(name string) string {
		if bin != "" {
			return filepath.Join(bin, name)
		}
		return name
	}
	dump := exec.CommandContext(ctx, prog("pg_dump"), "-Fc", "-d", from.dsn)
	restore := exec.CommandContext(ctx, prog("pg_restore"), "--no-owner", "-d", to.dsn)
	pipe, err := dump.StdoutPipe()
	if err != nil {
		return err
	}
	restore.Stdin = pipe
	var dumpErr, restoreErr strings.Builder
	dump.Stderr, restore.Stderr = &dumpErr, &restoreErr
	if err := restore.Start(); err != nil {
		return fmt.Errorf("pg_restore: %w (use --pg-bin)", err)
	}
	if err := dump.Run(); err != nil {
		_ = restore.Wait()
		return fmt.Errorf("pg_dump: %w: %s", err, dumpErr.String())
	}
	if err := restore.Wait(); err != nil {
		return fmt.Errorf("pg_restore: %w: %s", err, restoreErr.String())
	}
	return nil
}
