package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/sqlitetest"
)

const secret = "Sup3rS3cret"

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	if strings.Contains(out.String()+errb.String(), secret) {
		t.Errorf("the password leaked: stdout=%q stderr=%q", out.String(), errb.String())
	}
	return code, out.String(), errb.String()
}

func sample(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "shop.db")
	if err := sqlitetest.CreateSample(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "Usage"},
		{"unknown command", []string{"chekc"}, `unknown command "chekc"`},
		{"no dsn", []string{"check"}, "no database given"},
		{"malformed dsn", []string{"check", "--dsn", "postgres://u:" + secret + "@host:notaport/db"}, "invalid DSN"},
		{"unknown scheme", []string{"check", "--dsn", "mongodb://u:" + secret + "@host/db"}, `unknown DSN scheme "mongodb://"`},
		{"unknown check", []string{"check", "--dsn", "sqlite:///tmp/x.db", "--checks", "heap"}, "unknown check"},
		{"negative jobs", []string{"check", "--dsn", "x.db", "--jobs", "-1"}, "--jobs must be at least 1"},
		{"zero timeout", []string{"check", "--dsn", "x.db", "--timeout", "0s"}, "--timeout must be positive"},
		{"bad duration", []string{"check", "--dsn", "x.db", "--timeout", "soon"}, "invalid value"},
		{"bad format", []string{"check", "--dsn", "x.db", "--format", "xml"}, "--format must be text or json"},
		{"flag of another engine", []string{"check", "--dsn", "x.db", "--heapallindexed"}, "--heapallindexed does not apply to SQLite"},
		{"stray argument", []string{"check", "--dsn", "x.db", "postgres://u:" + secret + "@h/db"}, "unexpected argument"},
		{"missing sqlite file", []string{"check", "--dsn", "/nonexistent/dir/app.db"}, "does not exist"},
		{"sqlserver unreachable", []string{"check", "--dsn", "sqlserver://sa:" + secret + "@127.0.0.1:1?database=x&dial+timeout=2", "--checks", "page_verify"}, "NOT VERIFIED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != exitError {
				t.Errorf("exit code %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			if !strings.Contains(stdout+stderr, tt.want) {
				t.Errorf("output does not contain %q\nstdout: %s\nstderr: %s", tt.want, stdout, stderr)
			}
			if stdout == "" && strings.Count(strings.TrimSpace(stderr), "\n") > 0 && tt.args != nil && tt.name != "unknown command" {
				t.Errorf("want one error line, got:\n%s", stderr)
			}
		})
	}
}

func TestCheckSQLite(t *testing.T) {
	clean := sample(t)
	damaged := sample(t)
	if err := sqlitetest.DamageIndex(damaged, sqlitetest.SampleIndex); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"healthy", []string{"check", "--dsn", clean}, exitOK, []string{"integrity", "HEALTHY", "OK: every planned check"}},
		{"healthy sqlite url", []string{"check", "--dsn", "sqlite://" + clean, "--checks", "integrity"}, exitOK, []string{"OK"}},
		{"corrupt", []string{"check", "--dsn", damaged}, exitCorrupt, []string{"CORRUPT", sqlitetest.SampleIndex, "what to do"}},
		{"quick check misses index damage", []string{"check", "--dsn", damaged, "--quick", "--checks", "integrity"}, exitOK, []string{"OK"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.code, stdout, stderr)
			}
			for _, s := range tt.contains {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			if stderr != "" {
				t.Errorf("no progress bar or noise expected when not a terminal, got stderr %q", stderr)
			}
		})
	}
}

func TestJSONOutput(t *testing.T) {
	damaged := sample(t)
	if err := sqlitetest.DamageIndex(damaged, sqlitetest.SampleIndex); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ := runCLI(t, "check", "--dsn", damaged, "--format", "json", "--jobs", "2")
	if code != exitCorrupt {
		t.Fatalf("exit %d", code)
	}
	var rep checks.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("output is not the report schema: %v\n%s", err, stdout)
	}
	if rep.SchemaVersion != checks.SchemaVersion || rep.Status != checks.StatusCorrupt || len(rep.Findings()) == 0 {
		t.Errorf("report: %+v", rep)
	}
}

func TestFailOnWarning(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty.db")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// An empty file is a warning (most likely truncated), not corruption.
	if code, out, _ := runCLI(t, "check", "--dsn", empty, "--checks", "integrity"); code != exitOK || !strings.Contains(out, "with warnings") {
		t.Errorf("exit %d, want 0 with warnings:\n%s", code, out)
	}
	if code, out, _ := runCLI(t, "check", "--dsn", empty, "--checks", "integrity", "--fail-on-warning"); code != exitWarning {
		t.Errorf("exit %d, want 3:\n%s", code, out)
	}
}

func TestBudgetNeverPasses(t *testing.T) {
	// A budget that ends before anything starts leaves tasks not covered:
	// exit 1, never 0.
	code, out, _ := runCLI(t, "check", "--dsn", sample(t), "--timeout", "1ns")
	if code != exitError || !strings.Contains(out, "NOT VERIFIED") {
		t.Errorf("exit %d, want 1:\n%s", code, out)
	}
}

func TestChecksList(t *testing.T) {
	code, out, _ := runCLI(t, "checks")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, name := range []string{"heap", "btree", "crosscheck", "checksums", "settings", "integrity", "foreign_keys", "checkdb", "suspect_pages"} {
		if !strings.Contains(out, name) {
			t.Errorf("dbscrub checks does not list %s:\n%s", name, out)
		}
	}
}

func TestExplain(t *testing.T) {
	tests := []struct {
		dsn  string
		want []string
	}{
		{"postgres://scrub:" + secret + "@127.0.0.1:1/app", []string{"-- check heap", "verify_heapam", "-- check btree", "bt_index_check"}},
		{"sqlserver://sa:" + secret + "@127.0.0.1:1?database=app", []string{"-- check checkdb", "DBCC CHECKDB"}},
		{"/nonexistent/app.db", []string{"-- check integrity", "integrity_check"}},
	}
	for _, tt := range tests {
		t.Run(tt.dsn, func(t *testing.T) {
			code, out, errs := runCLI(t, "check", "--explain", "--dsn", tt.dsn)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errs)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("explain lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(strings.ToUpper(out), "REPAIR") {
				t.Errorf("an explained statement mentions REPAIR:\n%s", out)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		status checks.Status
		cov    checks.Coverage
		fow    bool
		want   int
	}{
		{checks.StatusHealthy, checks.Coverage{TasksPlanned: 1, TasksCompleted: 1}, false, exitOK},
		{checks.StatusWarning, checks.Coverage{TasksPlanned: 1, TasksCompleted: 1}, false, exitOK},
		{checks.StatusWarning, checks.Coverage{TasksPlanned: 1, TasksCompleted: 1}, true, exitWarning},
		{checks.StatusWarning, checks.Coverage{TasksPlanned: 2, TasksCompleted: 1, TasksNotCovered: 1}, true, exitError},
		{checks.StatusError, checks.Coverage{TasksPlanned: 1, TasksFailed: 1}, false, exitError},
		{checks.StatusSkipped, checks.Coverage{}, false, exitError},
		{checks.StatusCorrupt, checks.Coverage{TasksPlanned: 1, TasksCompleted: 1}, false, exitCorrupt},
	}
	for _, tt := range tests {
		rep := &checks.Report{Status: tt.status, Coverage: tt.cov}
		if got := exitCode(rep, rep.Err(), tt.fow); got != tt.want {
			t.Errorf("%s %+v fail-on-warning=%v: exit %d, want %d", tt.status, tt.cov, tt.fow, got, tt.want)
		}
	}
}

func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	bar := newProgressBar(&buf, func() time.Time { return now })
	bar.update(checks.Progress{TasksDone: 0, TasksTotal: 4, BytesTotal: 4 << 20})
	if buf.Len() != 0 {
		t.Errorf("no bar in the first moment, got %q", buf.String())
	}
	now = now.Add(time.Second)
	bar.update(checks.Progress{TasksDone: 2, TasksTotal: 4, BytesDone: 1 << 20, BytesTotal: 4 << 20})
	if got := buf.String(); !strings.Contains(got, " 25%") || !strings.Contains(got, "1.0 MiB of 4.0 MiB") || !strings.Contains(got, "2/4 tasks") {
		t.Errorf("bar %q", got)
	}
	bar.finish()
	if !strings.HasSuffix(buf.String(), "\r") {
		t.Errorf("finish must clear the line: %q", buf.String())
	}
}

func TestVersion(t *testing.T) {
	if code, out, _ := runCLI(t, "version"); code != 0 || !strings.Contains(out, "dbscrub") {
		t.Errorf("exit %d: %q", code, out)
	}
}
