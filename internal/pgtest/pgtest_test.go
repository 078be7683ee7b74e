package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lib/pq"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := CloseShared(); err != nil {
		fmt.Fprintln(os.Stderr, "close shared cluster:", err)
		code = 1
	}
	if injCluster != nil {
		if err := injCluster.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "close injector cluster:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func mustExec(t *testing.T, c *Cluster, db, query string, args ...any) {
	t.Helper()
	if err := c.Exec(testCtx(t), db, query, args...); err != nil {
		t.Fatal(err)
	}
}

func mustInt(t *testing.T, c *Cluster, db, query string, args ...any) int64 {
	t.Helper()
	v, err := c.QueryInt(testCtx(t), db, query, args...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustString(t *testing.T, c *Cluster, db, query string, args ...any) string {
	t.Helper()
	v, err := c.QueryString(testCtx(t), db, query, args...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// heapProblems runs verify_heapam (with TOAST checks) and returns its
// messages.
func heapProblems(t *testing.T, c *Cluster, db, table string) []string {
	t.Helper()
	return queryStrings(t, c, db,
		"SELECT format('block %s offnum %s attnum %s: %s', blkno, offnum, attnum, msg) FROM verify_heapam($1::regclass, check_toast => true)",
		table)
}

func queryStrings(t *testing.T, c *Cluster, db, query string, args ...any) []string {
	t.Helper()
	pool, err := c.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	rows, err := pool.QueryContext(testCtx(t), query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return out
}

// createTable creates a table with an int primary key and a text column
// holding n rows (about 60 rows per 8 kB page).
func createTable(t *testing.T, c *Cluster, db, table string, n int) {
	t.Helper()
	mustExec(t, c, db, fmt.Sprintf(
		`CREATE TABLE %[1]s (id int PRIMARY KEY, v text NOT NULL);
		 INSERT INTO %[1]s SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, %[2]d) g`, table, n))
}

func TestFindBinDir(t *testing.T) {
	dir, err := FindBinDir()
	if err != nil {
		t.Fatalf("FindBinDir on a machine with PostgreSQL: %v", err)
	}
	if err := hasServer(dir); err != nil {
		t.Fatalf("FindBinDir returned %s: %v", dir, err)
	}

	t.Setenv("DBSCRUB_PG_BINDIR", filepath.Join(t.TempDir(), "nope"))
	if _, err := FindBinDir(); !errors.Is(err, ErrServerNotFound) {
		t.Fatalf("FindBinDir with a bogus DBSCRUB_PG_BINDIR: got %v, want ErrServerNotFound", err)
	}
	if _, err := Start(); !errors.Is(err, ErrServerNotFound) {
		t.Fatalf("Start with a bogus DBSCRUB_PG_BINDIR: got %v, want ErrServerNotFound", err)
	}
}

// fakeTB records Skip/Fatal calls instead of ending the test.
type fakeTB struct {
	testing.TB
	skipped, fatal string
}

func (f *fakeTB) Helper()                          {}
func (f *fakeTB) Skipf(format string, args ...any) { f.skipped = fmt.Sprintf(format, args...) }
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
}

func TestUnavailableSkipsOrFailsInCI(t *testing.T) {
	t.Setenv("DBSCRUB_PG_BINDIR", "/nonexistent/pg/bin")
	for _, ci := range []string{"", "true"} {
		t.Run("CI="+ci, func(t *testing.T) {
			t.Setenv("CI", ci)
			tb := &fakeTB{TB: t}
			if c := Fresh(tb); c != nil {
				t.Fatal("Fresh returned a cluster without a server")
			}
			got, other := tb.skipped, tb.fatal
			if ci == "true" {
				got, other = tb.fatal, tb.skipped
			}
			if other != "" {
				t.Errorf("unexpected extra call: %q", other)
			}
			if strings.Contains(got, "\n") || !strings.Contains(got, "/nonexistent/pg/bin") || !strings.Contains(got, "not found") {
				t.Errorf("message should be one loud line naming what is missing, got %q", got)
			}
		})
	}
}

func TestSharedCluster(t *testing.T) {
	c := Shared(t)
	if c2 := Shared(t); c2 != c {
		t.Fatal("Shared returned different clusters")
	}
	ctx := testCtx(t)

	for setting, want := range map[string]string{
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": c.DataDir,
		"data_checksums":          "on",
		"shared_buffers":          "32MB",
		"fsync":                   "on",
		"autovacuum":              "off",
		"port":                    fmt.Sprint(c.Port),
	} {
		if got := mustString(t, c, "postgres", "SELECT current_setting($1)", setting); got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}
	if v := mustInt(t, c, "postgres", "SELECT current_setting('server_version_num')::int / 10000"); v != int64(c.Version) {
		t.Errorf("server major version %d, Cluster.Version %d", v, c.Version)
	}

	withAmcheck, withoutAmcheck := uniqueName("with_amcheck"), uniqueName("without_amcheck")
	dsn, err := c.CreateDatabase(ctx, withAmcheck)
	if err != nil {
		t.Fatal(err)
	}
	if dsn != c.DSN(withAmcheck) || !strings.HasPrefix(dsn, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?", c.Port, withAmcheck)) {
		t.Errorf("unexpected DSN %q", dsn)
	}
	if _, err := c.CreateDatabaseWithoutAmcheck(ctx, withoutAmcheck); err != nil {
		t.Fatal(err)
	}
	const hasAmcheck = "SELECT count(*) FROM pg_extension WHERE extname = 'amcheck'"
	if n := mustInt(t, c, withAmcheck, hasAmcheck); n != 1 {
		t.Errorf("database from template1 has %d amcheck extensions, want 1", n)
	}
	if n := mustInt(t, c, withoutAmcheck, hasAmcheck); n != 0 {
		t.Errorf("database from template0 has %d amcheck extensions, want 0", n)
	}

	// A freshly created table and index verify clean.
	createTable(t, c, withAmcheck, "clean", 2000)
	mustExec(t, c, withAmcheck, "CREATE TABLE clean_toast (id int, v text); ALTER TABLE clean_toast ALTER v SET STORAGE EXTERNAL; INSERT INTO clean_toast SELECT g, repeat('x', 10000) FROM generate_series(1, 5) g")
	for _, table := range []string{"clean", "clean_toast"} {
		if p := heapProblems(t, c, withAmcheck, table); len(p) != 0 {
			t.Errorf("verify_heapam(%s) on a clean table: %q", table, p)
		}
	}
	mustExec(t, c, withAmcheck, "SELECT bt_index_check('clean_pkey', true)")
	mustExec(t, c, withAmcheck, "SELECT bt_index_parent_check('clean_pkey', true)")

	path, err := c.RelationPath(ctx, withAmcheck, "clean")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 || !strings.HasPrefix(path, c.DataDir) {
		t.Errorf("RelationPath = %s (stat: %v)", path, err)
	}
	if err := c.Checkpoint(ctx, withAmcheck); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RelationPath(ctx, withAmcheck, "no_such_table"); err == nil {
		t.Error("RelationPath of a missing table succeeded")
	}
	if !strings.Contains(c.Log(), "database system is ready to accept connections") {
		t.Errorf("server log lacks the ready message:\n%s", tail(c.Log(), 10))
	}
}

func TestPasswords(t *testing.T) {
	c := Shared(t)
	ctx := testCtx(t)
	alice := uniqueName("alice")
	if err := c.CreateUser(ctx, alice, "s3cret'pw"); err != nil {
		t.Fatal(err)
	}
	ping := func(dsn string) error {
		db, err := sql.Open("postgres", dsn)
		if err != nil {
			return err
		}
		defer db.Close()
		return db.PingContext(ctx)
	}
	if err := ping(c.UserDSN(alice, "s3cret'pw", "postgres")); err != nil {
		t.Errorf("right password: %v", err)
	}
	err := ping(c.UserDSN(alice, "wrong", "postgres"))
	var pqErr *pq.Error
	if !errors.As(err, &pqErr) || pqErr.Code != "28P01" {
		t.Errorf("wrong password: got %v, want SQLSTATE 28P01 (invalid_password)", err)
	}
	if err := ping(c.DSN("postgres")); err != nil {
		t.Errorf("superuser without password: %v", err)
	}
}

// TestPageChecksum checks the Go checksum implementation against pages the
// server wrote, and that pg_checksums agrees after a clean shutdown.
func TestPageChecksum(t *testing.T) {
	c, db := injectorCluster(t)
	ctx := testCtx(t)
	createTable(t, c, db, "cksum", 1000)
	mustExec(t, c, db, "CREATE INDEX cksum_v ON cksum (v)")
	var paths []string
	for _, rel := range []string{"cksum", "cksum_pkey", "cksum_v"} {
		p, err := c.RelationPath(ctx, db, rel)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	if err := c.Checkpoint(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	})

	checked := 0
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) < 3*PageSize || len(data)%PageSize != 0 {
			t.Fatalf("%s: %d bytes, want several whole pages", path, len(data))
		}
		for blk := 0; blk < len(data)/PageSize; blk++ {
			p := page(data[blk*PageSize : (blk+1)*PageSize])
			if p.isNew() {
				continue
			}
			got, err := PageChecksum(p, uint32(blk))
			if err != nil {
				t.Fatal(err)
			}
			if want := p.checksum(); got != want {
				t.Errorf("%s block %d: computed checksum %d, server wrote %d", filepath.Base(path), blk, got, want)
			}
			if other, _ := PageChecksum(p, uint32(blk)+1); other == got {
				t.Errorf("%s block %d: checksum does not depend on the block number", filepath.Base(path), blk)
			}
			checked++
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d pages", checked)
	}
	t.Logf("computed checksums match the server's on %d pages", checked)
	if _, err := PageChecksum(make([]byte, 100), 0); err == nil {
		t.Error("PageChecksum accepted a short page")
	}

	for _, path := range paths {
		if bad, out := pgChecksums(t, c, "--filenode", filepath.Base(path)); bad != 0 {
			t.Errorf("pg_checksums found %d bad checksums in clean relation %s:\n%s", bad, path, out)
		}
	}
}

var badChecksumsRE = regexp.MustCompile(`Bad checksums:\s+(\d+)`)

// pgChecksums runs pg_checksums --check on the stopped cluster and returns
// the number of bad checksums and its output.
func pgChecksums(t *testing.T, c *Cluster, args ...string) (int, string) {
	t.Helper()
	out, _ := c.command("pg_checksums", append([]string{"--check", "-D", c.DataDir}, args...)...).CombinedOutput()
	m := badChecksumsRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("pg_checksums output lacks a summary:\n%s", out)
	}
	var n int
	fmt.Sscan(string(m[1]), &n)
	return n, string(out)
}

var injCluster *Cluster

var nameSeq atomic.Int64

// uniqueName returns prefix with a process-unique suffix, so tests can be
// repeated (-count) against long-lived clusters.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s_%d", prefix, nameSeq.Add(1))
}

// injectorCluster returns the cluster (with checksums) dedicated to this
// package's injector tests, and a new database in it for the calling test.
// TestMain closes the cluster. Tests using it must not run in parallel.
func injectorCluster(t *testing.T) (*Cluster, string) {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() && injCluster != nil {
			t.Logf("tail of server log:\n%s", tail(injCluster.Log(), 40))
		}
	})
	if injCluster == nil {
		c, err := Start()
		if err != nil {
			unavailable(t, err)
			return nil, ""
		}
		injCluster = c
	}
	db := uniqueName("inj")
	if _, err := injCluster.CreateDatabase(testCtx(t), db); err != nil {
		t.Fatal(err)
	}
	return injCluster, db
}
