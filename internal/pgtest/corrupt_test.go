package pgtest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rowsInBlock counts the rows of table stored in heap block blk.
func rowsInBlock(t *testing.T, c *Cluster, db, table string, blk int) int64 {
	t.Helper()
	return mustInt(t, c, db, fmt.Sprintf("SELECT count(*) FROM %s WHERE (ctid::text::point)[0] = $1", table), blk)
}

func wantProblem(t *testing.T, problems []string, substrs ...string) {
	t.Helper()
	for _, p := range problems {
		for _, s := range substrs {
			if strings.Contains(p, s) {
				t.Logf("detected: %s", p)
				return
			}
		}
	}
	t.Errorf("verify_heapam did not report any of %q; got %q", substrs, problems)
}

func wantErr(t *testing.T, err error, substr string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), substr) {
		t.Fatalf("got error %v, want one containing %q", err, substr)
	}
	t.Logf("detected: %v", err)
}

func checksumFailures(t *testing.T, c *Cluster, db string) int64 {
	t.Helper()
	return mustInt(t, c, db, "SELECT coalesce(checksum_failures, 0) FROM pg_stat_database WHERE datname = current_database()")
}

// TestInjectors proves that every injector causes damage the matching check
// detects, while an untouched table in the same database stays clean.
func TestInjectors(t *testing.T) {
	c, db := injectorCluster(t)
	createTable(t, c, db, "control", 1000)

	var checksumFailuresBefore int64
	var before map[string]int64 // per-case row counts taken before injection
	cases := []struct {
		name   string
		setup  func(t *testing.T)
		inject func(ctx context.Context) error
		detect func(t *testing.T)
	}{{
		name:   "heap tuple header",
		setup:  func(t *testing.T) { createTable(t, c, db, "hdr", 200) },
		inject: func(ctx context.Context) error { return c.CorruptHeapTupleHeader(ctx, db, "hdr") },
		detect: func(t *testing.T) {
			wantProblem(t, heapProblems(t, c, db, "hdr"), "t_hoff", "tuple data should begin at byte")
		},
	}, {
		name:   "line pointer",
		setup:  func(t *testing.T) { createTable(t, c, db, "lp", 200) },
		inject: func(ctx context.Context) error { return c.CorruptLinePointer(ctx, db, "lp") },
		detect: func(t *testing.T) {
			wantProblem(t, heapProblems(t, c, db, "lp"), "ends beyond maximum page offset")
		},
	}, {
		name:   "btree leaf",
		setup:  func(t *testing.T) { createTable(t, c, db, "bt", 2000) },
		inject: func(ctx context.Context) error { return c.CorruptBtreeLeaf(ctx, db, "bt_pkey") },
		detect: func(t *testing.T) {
			wantErr(t, c.Exec(testCtx(t), db, "SELECT bt_index_check('bt_pkey')"), "item order invariant violated")
			if p := heapProblems(t, c, db, "bt"); len(p) != 0 {
				t.Errorf("the heap of bt should be clean, got %q", p)
			}
		},
	}, {
		name: "checksum",
		setup: func(t *testing.T) {
			createTable(t, c, db, "ck", 200)
			checksumFailuresBefore = checksumFailures(t, c, db)
		},
		inject: func(ctx context.Context) error { return c.CorruptChecksum(ctx, db, "ck") },
		detect: func(t *testing.T) {
			_, err := c.QueryInt(testCtx(t), db, "SELECT count(*) FROM ck")
			wantErr(t, err, "invalid page in block 0")
			if !strings.Contains(c.Log(), "page verification failed, calculated checksum") {
				t.Errorf("server log lacks the checksum failure:\n%s", tail(c.Log(), 10))
			}
			deadline := time.Now().Add(10 * time.Second) // statistics are flushed asynchronously
			for checksumFailures(t, c, db) <= checksumFailuresBefore {
				if time.Now().After(deadline) {
					t.Fatalf("pg_stat_database.checksum_failures stayed at %d", checksumFailuresBefore)
				}
				time.Sleep(100 * time.Millisecond)
			}
		},
	}, {
		name: "toast",
		setup: func(t *testing.T) {
			mustExec(t, c, db, `CREATE TABLE tst (id int PRIMARY KEY, v text);
				ALTER TABLE tst ALTER v SET STORAGE EXTERNAL;
				INSERT INTO tst SELECT g, repeat(md5(g::text), 500) FROM generate_series(1, 5) g`)
			if p := heapProblems(t, c, db, "tst"); len(p) != 0 {
				t.Fatalf("toasted table not clean before injection: %q", p)
			}
		},
		inject: func(ctx context.Context) error { return c.CorruptToast(ctx, db, "tst") },
		detect: func(t *testing.T) {
			wantProblem(t, heapProblems(t, c, db, "tst"), "toast value")
			if p := queryStrings(t, c, db, "SELECT msg FROM verify_heapam('tst', check_toast => false)"); len(p) != 0 {
				t.Errorf("the main heap of tst should be clean, got %q", p)
			}
		},
	}, {
		name:   "remove relation file",
		setup:  func(t *testing.T) { createTable(t, c, db, "rm", 100) },
		inject: func(ctx context.Context) error { return c.RemoveRelationFile(ctx, db, "rm") },
		detect: func(t *testing.T) {
			_, err := c.QueryInt(testCtx(t), db, "SELECT count(*) FROM rm")
			wantErr(t, err, "No such file or directory")
		},
	}, {
		name: "zero heap page",
		setup: func(t *testing.T) {
			createTable(t, c, db, "zp", 500)
			before = map[string]int64{
				"total":  mustInt(t, c, db, "SELECT count(*) FROM zp"),
				"block1": rowsInBlock(t, c, db, "zp", 1),
			}
			if before["block1"] == 0 {
				t.Fatal("block 1 of zp is empty")
			}
		},
		inject: func(ctx context.Context) error { return c.ZeroHeapPage(ctx, db, "zp", 1) },
		detect: func(t *testing.T) {
			if got, want := mustInt(t, c, db, "SELECT count(*) FROM zp"), before["total"]-before["block1"]; got != want {
				t.Errorf("count(*) after zeroing block 1 = %d, want %d", got, want)
			}
			// PostgreSQL 15 amcheck accepts all-zero pages; report, do not assert.
			t.Logf("verify_heapam on the zeroed page: %q", heapProblems(t, c, db, "zp"))
		},
	}, {
		name: "truncate heap",
		setup: func(t *testing.T) {
			createTable(t, c, db, "tr", 500)
			before = map[string]int64{"block0": rowsInBlock(t, c, db, "tr", 0)}
		},
		inject: func(ctx context.Context) error { return c.TruncateHeap(ctx, db, "tr", 1) },
		detect: func(t *testing.T) {
			if got := mustInt(t, c, db, "SELECT count(*) FROM tr"); got != before["block0"] {
				t.Errorf("count(*) after truncation to 1 block = %d, want %d", got, before["block0"])
			}
			err := c.Exec(testCtx(t), db, "SET enable_seqscan = off; SET enable_bitmapscan = off; SELECT v FROM tr WHERE id = 500")
			wantErr(t, err, "could not read block")
		},
	}}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup(t)
			if err := tc.inject(testCtx(t)); err != nil {
				t.Fatalf("inject: %v", err)
			}
			tc.detect(t)
		})
	}

	t.Run("control table stays clean", func(t *testing.T) {
		if p := heapProblems(t, c, db, "control"); len(p) != 0 {
			t.Errorf("verify_heapam(control): %q", p)
		}
		mustExec(t, c, db, "SELECT bt_index_check('control_pkey', true)")
		if n := mustInt(t, c, db, "SELECT count(*) FROM control"); n != 1000 {
			t.Errorf("control has %d rows, want 1000", n)
		}
	})

	// Structural injectors rewrite the page checksum: in this database,
	// pg_checksums must find exactly one bad page, the one CorruptChecksum
	// damaged.
	t.Run("pg_checksums sees only the checksum damage", func(t *testing.T) {
		ctx := testCtx(t)
		ck, err := c.RelationPath(ctx, db, "ck")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Stop(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
		}()
		_, out := pgChecksums(t, c)
		dbDir := filepath.Dir(ck) + "/"
		var failures []string
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "checksum verification failed") && strings.Contains(line, dbDir) {
				failures = append(failures, line)
			}
		}
		if len(failures) != 1 || !strings.Contains(failures[0], ck+`", block 0`) {
			t.Errorf("want exactly one bad checksum in %s, in %s block 0; pg_checksums said:\n%s", dbDir, ck, out)
		}
	})
}

// TestInjectorErrors checks that injectors refuse unsuitable relations and
// leave the cluster running.
func TestInjectorErrors(t *testing.T) {
	c, db := injectorCluster(t)
	ctx := testCtx(t)
	createTable(t, c, db, "small", 10)
	mustExec(t, c, db, "CREATE TABLE no_toast (id int)")

	for name, err := range map[string]error{
		"btree injector on a heap":   c.CorruptBtreeLeaf(ctx, db, "small"),
		"heap injector on an index":  c.CorruptHeapTupleHeader(ctx, db, "small_pkey"),
		"missing relation":           c.CorruptLinePointer(ctx, db, "no_such_table"),
		"table without TOAST":        c.CorruptToast(ctx, db, "no_toast"),
		"toast table with no values": c.CorruptToast(ctx, db, "small"),
		"zero block out of range":    c.ZeroHeapPage(ctx, db, "small", 5),
		"truncate to full size":      c.TruncateHeap(ctx, db, "small", 1),
		"empty heap":                 c.CorruptHeapTupleHeader(ctx, db, "no_toast"),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if n := mustInt(t, c, db, "SELECT count(*) FROM small"); n != 10 {
		t.Errorf("small has %d rows after refused injections, want 10", n)
	}
}

// TestWithoutChecksums covers a cluster without data checksums, custom
// settings and the lifecycle methods.
func TestWithoutChecksums(t *testing.T) {
	c := Fresh(t, WithoutChecksums(), WithSetting("work_mem", "12MB"), WithSetting("application_name", "it's"))
	ctx := testCtx(t)
	if got := mustString(t, c, "postgres", "SHOW data_checksums"); got != "off" || c.Checksums {
		t.Errorf("data_checksums = %s, Cluster.Checksums = %v; want off", got, c.Checksums)
	}
	if got := mustString(t, c, "postgres", "SHOW work_mem"); got != "12MB" {
		t.Errorf("work_mem = %s, want 12MB", got)
	}
	if got := mustString(t, c, "postgres", "SHOW application_name"); got != "it's" {
		t.Errorf("application_name = %q", got)
	}
	if _, err := c.CreateDatabase(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	createTable(t, c, "d", "t", 100)

	if err := c.CorruptChecksum(ctx, "d", "t"); !errors.Is(err, ErrNoChecksums) {
		t.Errorf("CorruptChecksum without checksums: got %v, want ErrNoChecksums", err)
	}
	if err := c.CorruptHeapTupleHeader(ctx, "d", "t"); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, heapProblems(t, c, "d", "t"), "t_hoff", "tuple data should begin at byte")

	port := c.Port
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := c.QueryInt(ctx, "postgres", "SELECT 1"); err == nil {
		t.Error("query succeeded on a stopped cluster")
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, c, "d", "INSERT INTO t VALUES (1000, 'after restart')")
	if err := c.StopImmediate(); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil { // runs crash recovery
		t.Fatal(err)
	}
	if n := mustInt(t, c, "d", "SELECT count(*) FROM t WHERE id = 1000"); n != 1 {
		t.Errorf("committed row lost in crash recovery")
	}
	if c.Port != port {
		t.Errorf("port changed from %d to %d", port, c.Port)
	}
	if !strings.Contains(c.Log(), "database system was interrupted") {
		t.Errorf("no crash recovery in the log:\n%s", tail(c.Log(), 20))
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := c.Start(); err == nil {
		t.Error("Start after Close succeeded")
	}
}
