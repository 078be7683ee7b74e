package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
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

// createApp creates a database with a table, an index and TOASTed rows,
// and returns its DSN.
func createApp(t *testing.T, c *pgtest.Cluster, name string) string {
	t.Helper()
	ctx := context.Background()
	dsn, err := c.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, name, `
		CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, note text);
		CREATE INDEX orders_customer ON orders (customer);
		INSERT INTO orders SELECT i, i % 100, repeat('x', 20) FROM generate_series(1, 5000) i;`); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, name, `VACUUM ANALYZE orders`); err != nil {
		t.Fatal(err)
	}
	return dsn
}

// result runs the gate and returns its exit code, output and whether the
// migrations ran.
func result(t *testing.T, dsn string) (int, string, bool) {
	t.Helper()
	var out bytes.Buffer
	migrated := false
	g := gate{dsn: dsn, jobs: 2, timeout: 5 * time.Minute, out: &out, migrate: func(ctx context.Context, w io.Writer) error {
		migrated = true
		return runMigrations(ctx, w)
	}}
	code := g.run(context.Background())
	t.Logf("output:\n%s", out.String())
	return code, out.String(), migrated
}

func TestGatePasses(t *testing.T) {
	c := pgtest.Shared(t)
	dsn := createApp(t, c, "premigration_ok")
	code, out, migrated := result(t, dsn)
	if code != exitOK || !migrated {
		t.Fatalf("exit %d, migrated %t", code, migrated)
	}
	for _, want := range []string{"heap", "btree", "crosscheck", "HEALTHY", "no corruption. Migrating.", "would apply migration 0007_orders_add_status.sql"} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q", want)
		}
	}
}

func TestGateRefusesCorruption(t *testing.T) {
	c := pgtest.Fresh(t)
	dsn := createApp(t, c, "premigration_corrupt")
	if err := c.CorruptHeapTupleHeader(context.Background(), "premigration_corrupt", "orders"); err != nil {
		t.Fatal(err)
	}
	code, out, migrated := result(t, dsn)
	if code != exitCorrupt || migrated {
		t.Fatalf("exit %d, migrated %t; want 2 and no migration", code, migrated)
	}
	for _, want := range []string{"REFUSING TO MIGRATE: corruption found", "orders", "Restore the damaged objects"} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q", want)
		}
	}
}

func TestGateRefusesUnverified(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	const password = "Gate-S3cret"
	code, out, migrated := result(t, fmt.Sprintf("postgres://app:%s@127.0.0.1:%d/app?sslmode=disable&connect_timeout=5", password, port))
	if code != exitNotVerified || migrated {
		t.Fatalf("exit %d, migrated %t; want 1 and no migration", code, migrated)
	}
	if !strings.Contains(out, "REFUSING TO MIGRATE: the database could not be verified") {
		t.Errorf("the output does not say why")
	}
	if strings.Contains(out, password) {
		t.Error("the password leaked")
	}
	if code, out, _ := result(t, "postgres://app:"+password+"@127.0.0.1:notaport/app"); code != exitNotVerified || strings.Contains(out, password) || !strings.Contains(out, "invalid DSN") {
		t.Errorf("malformed DSN: exit %d, %s", code, out)
	}
	if code, out, _ := result(t, ""); code != exitNotVerified || !strings.Contains(out, "no database given") {
		t.Errorf("no DSN: exit %d, %s", code, out)
	}
}
