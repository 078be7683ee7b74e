package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dbscrub/dbscrub/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := pgtest.CloseShared(); err != nil {
		fmt.Fprintln(os.Stderr, "close shared cluster:", err)
		code = 1
	}
	os.Exit(code)
}

func runDemo(t *testing.T, d demo) (int, string) {
	t.Helper()
	var out bytes.Buffer
	d.out, d.tempDir = &out, t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	code := run(ctx, d)
	t.Logf("output:\n%s", out.String())
	if entries, _ := os.ReadDir(d.tempDir); len(entries) != 0 {
		t.Errorf("the demo left %v behind", entries)
	}
	return code, out.String()
}

// checkOutput checks the demo said what happened at each step.
func checkOutput(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("the output does not contain %q", want)
		}
	}
}

// TestDiskMoveSQLite runs `go run ./examples/diskmove` as it is, with no
// setup: SQLite files.
func TestDiskMoveSQLite(t *testing.T) {
	code, out := runDemo(t, demo{damage: true})
	if code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	checkOutput(t, out,
		"took its fingerprint: 3 tables, 20500 rows",
		"Copied the file to moved.db (a disk move); compared with before.json: IDENTICAL",
		"4. Compared before.json with the copy: DIFFERENT (0 missing, 0 extra, 1 changed tables)",
		"orders: id in (4000, 5000]: 1000 rows in the original, 1000 in the copy",
		"orders: id in (4241, 4242]: 1 row in the original, 1 in the copy",
		"OK: the damaged row was located exactly.")
}

// TestDiskMovePostgres runs the demo against a throwaway cluster, copying
// with the cluster's pg_dump and pg_restore.
func TestDiskMovePostgres(t *testing.T) {
	c := pgtest.Shared(t)
	code, out := runDemo(t, demo{dsn: c.DSN("postgres"), pgBin: c.BinDir, damage: true})
	if code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	checkOutput(t, out,
		"(postgresql) and took its fingerprint: 3 tables, 20500 rows",
		"Copied it with pg_dump | pg_restore into database dbscrub_diskmove_",
		"IDENTICAL (3 tables, 20500 rows)",
		"public.orders: id in (4000, 5000]: 1000 rows in the original, 1000 in the copy",
		"public.orders: id in (4241, 4242]: 1 row in the original, 1 in the copy",
		"OK: the damaged row was located exactly.")
	// The scratch databases are gone.
	n, err := c.QueryInt(context.Background(), "postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'dbscrub_diskmove_%'")
	if err != nil || n != 0 {
		t.Errorf("%d scratch databases left (%v)", n, err)
	}
}

// TestDiskMoveFailsWhenNothingFound: an undamaged copy must not pass as
// "located".
func TestDiskMoveFailsWhenNothingFound(t *testing.T) {
	code, out := runDemo(t, demo{damage: false})
	if code == 0 || !strings.Contains(out, "did not locate") {
		t.Fatalf("exit %d for an undamaged copy:\n%s", code, out)
	}
}
