package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/sqlitetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if slow.dir != "" {
		os.RemoveAll(slow.dir)
	}
	os.Exit(code)
}

// sample returns the path of a new sample database (internal/sqlitetest).
func sample(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sample.db")
	if err := sqlitetest.CreateSample(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// rootPage returns the root page of a table or index of a sample database.
func rootPage(t testing.TB, path, name string) int {
	t.Helper()
	r, err := sqlitetest.RootPage(path, name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// exec runs statements on a writable connection to path.
func exec(t testing.TB, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// open opens a target and closes it when the test ends.
func open(t testing.TB, dsn string, opts ...Option) *Target {
	t.Helper()
	tg, err := Open(dsn, opts...)
	if err != nil {
		t.Fatalf("Open(%q): %v", dsn, err)
	}
	t.Cleanup(func() {
		if err := tg.Close(); err != nil {
			t.Error(err)
		}
	})
	return tg
}

// run runs the named checks (the defaults when none) and returns the report.
func run(t testing.TB, ctx context.Context, tg *Target, names ...string) *checks.Report {
	t.Helper()
	cks, err := tg.Checks(names...)
	if err != nil {
		t.Fatal(err)
	}
	r, err := checks.NewRunner(checks.WithJobs(2))
	if err != nil {
		t.Fatal(err)
	}
	return r.Run(ctx, tg, cks...)
}

// snapshot fingerprints everything a check could change: the bytes and
// modification time of every file in the database's directory, and which
// files there are.
func snapshot(t testing.TB, path string) string {
	t.Helper()
	dir := filepath.Dir(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, e := range entries {
		parts = append(parts, fileSum(t, filepath.Join(dir, e.Name())))
	}
	sort.Strings(parts)
	return strings.Join(parts, "\n")
}

// fileSum fingerprints one file: size, modification time and content.
func fileSum(t testing.TB, path string) string {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s size=%d mtime=%s sha256=%x", filepath.Base(path), st.Size(), st.ModTime().Format("2006-01-02T15:04:05.000000000"), sha256.Sum256(b))
}

func dump(rep *checks.Report) string {
	b, _ := json.MarshalIndent(rep, "", "  ")
	if len(b) > 8000 {
		b = append(b[:8000], "\n..."...)
	}
	return string(b)
}

// slow is a database whose integrity check takes a few seconds (about 3s on
// a laptop): 200,000 rows and 8 indexes on random keys, 40 MB. It is made
// once per test binary and shared.
var slow struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func slowDB(t testing.TB) string {
	t.Helper()
	slow.once.Do(func() {
		slow.dir, slow.err = os.MkdirTemp("", "dbscrub-sqlite-slow-")
		if slow.err != nil {
			return
		}
		slow.path = filepath.Join(slow.dir, "slow.db")
		db, err := sql.Open("sqlite", slow.path)
		if err != nil {
			slow.err = err
			return
		}
		defer db.Close()
		db.SetMaxOpenConns(1)
		stmts := []string{
			"PRAGMA journal_mode = OFF", "PRAGMA synchronous = OFF", "PRAGMA cache_size = -65536",
			"CREATE TABLE t(id INTEGER PRIMARY KEY, a BLOB, b BLOB, c BLOB, d BLOB)",
			"WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 200000) INSERT INTO t SELECT x, randomblob(8), randomblob(8), randomblob(8), randomblob(8) FROM n",
		}
		for i, cols := range []string{"a", "b", "c", "d", "a, b", "b, c", "c, d", "d, a"} {
			stmts = append(stmts, fmt.Sprintf("CREATE INDEX t_%d ON t(%s)", i, cols))
		}
		stmts = append(stmts, "PRAGMA journal_mode = DELETE")
		for _, s := range stmts {
			if _, err := db.Exec(s); err != nil {
				slow.err = fmt.Errorf("%s: %w", s, err)
				return
			}
		}
	})
	if slow.err != nil {
		t.Fatalf("making the slow database: %v", slow.err)
	}
	return slow.path
}
