package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dbscrub/dbscrub/checks"
)

// execSQL runs statements on a writable connection to the SQLite file path.
func execSQL(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func copyOf(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestFingerprintAndCompare(t *testing.T) {
	orig := sample(t)
	fpFile := filepath.Join(t.TempDir(), "before.json")
	code, stdout, stderr := runCLI(t, "fingerprint", "--dsn", orig, "-o", fpFile, "--chunk-rows", "100")
	if code != exitOK || stdout != "" || !strings.Contains(stderr, "fingerprinted 5 tables") || !strings.Contains(stderr, fpFile) {
		t.Fatalf("fingerprint: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if st, err := os.Stat(fpFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("file mode: %v %v", st.Mode(), err)
	}
	f, err := os.Open(fpFile)
	if err != nil {
		t.Fatal(err)
	}
	fp, err := checks.ReadFingerprint(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if fp.Engine != "sqlite" || fp.Table("orders") == nil || !fp.Table("orders").Keyed || len(fp.Table("orders").Chunks) < 3 {
		t.Errorf("fingerprint: %+v", fp)
	}

	// To stdout, with a table filter.
	code, stdout, _ = runCLI(t, "fingerprint", "--dsn", orig, "--table", "orders,customers")
	var partial checks.Fingerprint
	if code != exitOK || json.Unmarshal([]byte(stdout), &partial) != nil || len(partial.Tables) != 2 {
		t.Errorf("fingerprint to stdout: exit %d, %d tables\n%s", code, len(partial.Tables), stdout)
	}

	// An identical copy.
	cp := copyOf(t, orig)
	code, stdout, stderr = runCLI(t, "compare", fpFile, cp)
	if code != exitOK || !strings.Contains(stdout, "IDENTICAL: 5 tables") {
		t.Errorf("identical copy: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}

	// A damaged copy: one row changed, one deleted.
	execSQL(t, cp, "UPDATE orders SET note = '' WHERE id = 123", "DELETE FROM customers WHERE id = 7")
	code, stdout, stderr = runCLI(t, "compare", fpFile, cp)
	if code != exitCorrupt {
		t.Errorf("damaged copy against the file: exit %d, want 2\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"DIFFERS  orders:", "id in (100, 200]: 100 rows in A, 100 in B (same count, different contents)",
		"DIFFERS  customers:", "(-1)", "stored fingerprint", "DIFFERENT: 0 missing, 0 extra, 2 of 5 tables"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("file/live output lacks %q:\n%s", want, stdout)
		}
	}
	// Two live databases: narrowed to the rows; flags after the arguments.
	code, stdout, _ = runCLI(t, "compare", orig, cp, "--format", "text")
	for _, want := range []string{"id in (122, 123]: 1 row in A, 1 in B (same count, different contents)", "id in (6, 7]: 1 row in A, 0 in B (-1)"} {
		if code != exitCorrupt || !strings.Contains(stdout, want) {
			t.Errorf("live/live: exit %d, output lacks %q:\n%s", code, want, stdout)
		}
	}
	// JSON.
	code, stdout, _ = runCLI(t, "compare", "--format", "json", orig, cp)
	var d checks.Diff
	if err := json.Unmarshal([]byte(stdout), &d); err != nil || code != exitCorrupt || d.Identical || len(d.Tables) != 2 || !d.A.Live {
		t.Errorf("json: exit %d, err %v, %+v\n%s", code, err, d, stdout)
	}
	// --no-narrow stops at the chunks.
	code, stdout, _ = runCLI(t, "compare", orig, cp, "--no-narrow", "--chunk-rows", "1000")
	if code != exitCorrupt || !strings.Contains(stdout, "(-inf, 1000]") {
		t.Errorf("--no-narrow: exit %d\n%s", code, stdout)
	}
	// A file on stdin... two files.
	after := filepath.Join(t.TempDir(), "after.json")
	if code, _, stderr := runCLI(t, "fingerprint", "--dsn", cp, "-o", after, "--bounds-from", fpFile); code != exitOK {
		t.Fatalf("--bounds-from: %s", stderr)
	}
	code, stdout, _ = runCLI(t, "compare", fpFile, after)
	if code != exitCorrupt || !strings.Contains(stdout, "(100, 200]: 100 rows") {
		t.Errorf("file/file: exit %d\n%s", code, stdout)
	}
}

func TestCompareBadInput(t *testing.T) {
	orig := sample(t)
	good := filepath.Join(t.TempDir(), "fp.json")
	if code, _, stderr := runCLI(t, "fingerprint", "--dsn", orig, "-o", good); code != exitOK {
		t.Fatal(stderr)
	}
	b, _ := os.ReadFile(good)
	tampered := filepath.Join(t.TempDir(), "tampered.json")
	os.WriteFile(tampered, bytes.Replace(b, []byte(`"rows": 500`), []byte(`"rows": 499`), 1), 0o600)
	pgFile := filepath.Join(t.TempDir(), "pg.json")
	os.WriteFile(pgFile, bytes.Replace(b, []byte(`"engine": "sqlite"`), []byte(`"engine": "postgresql"`), 1), 0o600)

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"fingerprint without dsn", []string{"fingerprint"}, "no database given"},
		{"fingerprint stray argument", []string{"fingerprint", "--dsn", orig, "postgres://u:" + secret + "@h/db"}, "unexpected argument"},
		{"fingerprint bad chunk time", []string{"fingerprint", "--dsn", orig, "--chunk-time", "0s"}, "chunk time must be positive"},
		{"fingerprint bad jobs", []string{"fingerprint", "--dsn", orig, "--jobs", "0"}, "jobs must be at least 1"},
		{"fingerprint missing file", []string{"fingerprint", "--dsn", "/nonexistent/app.db"}, "does not exist"},
		{"fingerprint unreachable", []string{"fingerprint", "--dsn", "postgres://u:" + secret + "@127.0.0.1:1/db?connect_timeout=2&sslmode=disable"}, "cannot connect"},
		{"fingerprint sql server unreachable", []string{"fingerprint", "--dsn", "sqlserver://sa:" + secret + "@127.0.0.1:1?database=x"}, "cannot connect to SQL Server"},
		{"compare one argument", []string{"compare", good}, "want two arguments"},
		{"compare three arguments", []string{"compare", good, good, good}, "want two arguments"},
		{"compare bad format", []string{"compare", good, good, "--format", "xml"}, "--format must be text or json"},
		{"compare bad min rows", []string{"compare", good, good, "--min-chunk-rows", "0"}, "min chunk rows must be at least 1"},
		{"compare two stdins", []string{"compare", "-", "-"}, "only one of A and B"},
		{"compare tampered file", []string{"compare", good, tampered}, "invalid fingerprint"},
		{"compare engines", []string{"compare", good, pgFile}, "same engine only"},
		{"compare file and database of other engines", []string{"compare", pgFile, orig}, "a postgresql fingerprint cannot be compared with a sqlite database"},
		{"fingerprint bounds of another engine", []string{"fingerprint", "--dsn", orig, "--bounds-from", pgFile}, "is of postgresql, this database is sqlite"},
		{"compare unreachable", []string{"compare", pgFile, "postgres://u:" + secret + "@127.0.0.1:1/db?connect_timeout=2&sslmode=disable"}, "cannot connect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != exitError || !strings.Contains(stdout+stderr, tt.want) {
				t.Errorf("exit %d, want 1 and %q\nstdout: %s\nstderr: %s", code, tt.want, stdout, stderr)
			}
		})
	}
	if code, _, stderr := runCLI(t, "compare", "-h"); code != exitOK || !strings.Contains(stderr, "Usage: dbscrub compare A B") {
		t.Errorf("compare -h: %d %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, "fingerprint", "--help"); code != exitOK || !strings.Contains(stderr, "--chunk-time") {
		t.Errorf("fingerprint --help: %d %s", code, stderr)
	}
	t.Setenv("DBSCRUB_DSN", orig)
	if code, stdout, stderr := runCLI(t, "fingerprint"); code != exitOK || !strings.Contains(stdout, `"engine": "sqlite"`) {
		t.Errorf("DBSCRUB_DSN: %d %s", code, stderr)
	}
}

func TestIsFingerprintFile(t *testing.T) {
	orig := sample(t)
	js := filepath.Join(t.TempDir(), "fp.json")
	os.WriteFile(js, []byte("\n  {\"schema_version\": 1}"), 0o600)
	for arg, want := range map[string]bool{"-": true, js: true, orig: false, "postgres://h/db": false, "/nonexistent": false} {
		if got := isFingerprintFile(arg); got != want {
			t.Errorf("isFingerprintFile(%s) = %v", arg, got)
		}
	}
	if thousands(1234567) != "1,234,567" || thousands(-1000) != "-1,000" || thousands(12) != "12" {
		t.Error("thousands")
	}
}
