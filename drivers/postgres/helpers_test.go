package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	dropBenchDB()
	if err := pgtest.CloseShared(); err != nil {
		fmt.Fprintln(os.Stderr, "close shared cluster:", err)
		code = 1
	}
	os.Exit(code)
}

var system struct {
	once sync.Once
	dsn  string // "" when unreachable
}

// adminDSN returns a superuser DSN on a server for non-destructive tests:
// the pgtest shared cluster, or the server named by DBSCRUB_TEST_PG_DSN (a
// superuser DSN) when that is set, so that the tests never depend on a
// server the machine happens to run.
func adminDSN(t testing.TB) string {
	t.Helper()
	system.once.Do(func() {
		dsn := os.Getenv("DBSCRUB_TEST_PG_DSN")
		if dsn == "" {
			return
		}
		db, err := sql.Open("postgres", dsn)
		if err != nil {
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var super bool
		if err := db.QueryRowContext(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil || !super {
			return
		}
		system.dsn = dsn
	})
	if system.dsn != "" {
		return system.dsn
	}
	return pgtest.Shared(t).DSN("postgres")
}

// withDatabase returns dsn with its database replaced.
func withDatabase(t testing.TB, dsn, db string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + db
	return u.String()
}

var dbCounter atomic.Int64

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// testDB is a database created for one test and dropped afterwards.
type testDB struct {
	name  string
	dsn   string  // superuser DSN of the database
	admin string  // superuser DSN of the maintenance database
	db    *sql.DB // superuser pool on the database
}

// newTestDB creates a fresh database (from template0) on a server for
// non-destructive tests and installs amcheck in it unless noAmcheck.
func newTestDB(t testing.TB, noAmcheck bool) *testDB {
	t.Helper()
	admin := adminDSN(t)
	return createDB(t, admin, noAmcheck)
}

func createDB(t testing.TB, admin string, noAmcheck bool) *testDB {
	t.Helper()
	ctx := testCtx(t)
	name := fmt.Sprintf("dbscrub_pgtest_%d_%d", os.Getpid(), dbCounter.Add(1))
	adb, err := sql.Open("postgres", admin)
	if err != nil {
		t.Fatal(err)
	}
	defer adb.Close()
	if _, err := adb.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name)+" TEMPLATE template0"); err != nil {
		t.Fatalf("create database: %v", err)
	}
	td := &testDB{name: name, dsn: withDatabase(t, admin, name), admin: admin}
	t.Cleanup(func() {
		if td.db != nil {
			td.db.Close()
		}
		adb, err := sql.Open("postgres", admin)
		if err != nil {
			t.Error(err)
			return
		}
		defer adb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := adb.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(name)+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	td.db, err = sql.Open("postgres", td.dsn)
	if err != nil {
		t.Fatal(err)
	}
	if !noAmcheck {
		td.exec(t, "CREATE EXTENSION amcheck")
	}
	return td
}

func (d *testDB) exec(t testing.TB, query string, args ...any) {
	t.Helper()
	if _, err := d.db.ExecContext(testCtx(t), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func (d *testDB) queryString(t testing.TB, query string, args ...any) string {
	t.Helper()
	var s string
	if err := d.db.QueryRowContext(testCtx(t), query, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return s
}

// clusterDB creates a database on a pgtest cluster (with amcheck).
func clusterDB(t testing.TB, c *pgtest.Cluster, name string) *testDB {
	t.Helper()
	dsn, err := c.CreateDatabase(testCtx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	td := &testDB{name: name, dsn: dsn, admin: c.DSN("postgres"), db: db}
	t.Cleanup(func() { db.Close() })
	return td
}

// reopen replaces the pool (after the cluster restarted).
func (d *testDB) reopen(t testing.TB) {
	t.Helper()
	d.db.Close()
	db, err := sql.Open("postgres", d.dsn)
	if err != nil {
		t.Fatal(err)
	}
	d.db = db
}

// open returns a Target for the database, closed at the end of the test.
func (d *testDB) open(t testing.TB, opts ...Option) *Target {
	t.Helper()
	tg, err := Open(d.dsn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

// runChecks runs the named checks (all five when none) with 2 workers.
func runChecks(t testing.TB, tg checks.Target, names []string, opts ...checks.Option) *checks.Report {
	t.Helper()
	if len(names) == 0 {
		names = []string{CheckHeap, CheckBtree, CheckCrosscheck, CheckChecksums, CheckSettings}
	}
	cks, err := tg.Checks(names...)
	if err != nil {
		t.Fatal(err)
	}
	r, err := checks.NewRunner(append([]checks.Option{checks.WithJobs(2)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r.Run(testCtx(t), tg, cks...)
}

func dump(t testing.TB, rep *checks.Report) string {
	t.Helper()
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func checkReport(rep *checks.Report, name string) *checks.CheckReport {
	for _, c := range rep.Checks {
		if c.Check == name {
			return c
		}
	}
	return nil
}

// findingsFor returns the findings of check whose Object contains object.
func findingsFor(rep *checks.Report, check, object string) []checks.Finding {
	var out []checks.Finding
	for _, f := range rep.Findings() {
		if f.Check == check && strings.Contains(f.Object, object) {
			out = append(out, f)
		}
	}
	return out
}

func taskByKey(cr *checks.CheckReport, key string) *checks.TaskReport {
	for i := range cr.Tasks {
		if cr.Tasks[i].Key == key {
			return &cr.Tasks[i]
		}
	}
	return nil
}
