package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/pgtest"
)

// TestCorruptionIsFound damages a table or an index in each way pgtest can,
// on disk, and checks that the right check reports it, with the right
// object, as corruption. Each case has its own database in one throwaway
// cluster (the injectors restart the cluster, so the cases run one after
// another).
func TestCorruptionIsFound(t *testing.T) {
	c := pgtest.Fresh(t)
	const table = `CREATE TABLE t (a int PRIMARY KEY, b text);
		INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 2000) g`
	tests := []struct {
		name   string
		setup  string
		vacuum bool
		inject func(ctx context.Context, db string) error
		opts   []Option
		check  string
		object string // Finding.Object contains it
		task   string // Finding.Task, when set
		code   string // Finding.Code
		msg    string // Finding.Message contains it
		page   int64  // Location.Page, -1: not checked
	}{
		{
			name: "heap tuple header", setup: table,
			inject: func(ctx context.Context, db string) error { return c.CorruptHeapTupleHeader(ctx, db, "t") },
			check:  CheckHeap, object: "public.t", code: "verify_heapam", msg: "tuple data should begin at byte", page: 0,
		},
		{
			name: "line pointer", setup: table,
			inject: func(ctx context.Context, db string) error { return c.CorruptLinePointer(ctx, db, "t") },
			check:  CheckHeap, object: "public.t", code: "verify_heapam", msg: "line pointer", page: 0,
		},
		{
			name: "line pointer in a block range", setup: table,
			inject: func(ctx context.Context, db string) error { return c.CorruptLinePointer(ctx, db, "t") },
			opts:   []Option{WithChunkSize(4 * 8192)},
			check:  CheckHeap, object: "public.t", task: "public.t:blocks:0-3", code: "verify_heapam", msg: "line pointer", page: 0,
		},
		{
			name: "btree leaf", setup: table,
			inject: func(ctx context.Context, db string) error { return c.CorruptBtreeLeaf(ctx, db, "t_pkey") },
			check:  CheckBtree, object: "public.t_pkey", code: "XX002", msg: "item order invariant violated", page: -1,
		},
		{
			name: "checksum mismatch", setup: table,
			inject: func(ctx context.Context, db string) error { return c.CorruptChecksum(ctx, db, "t") },
			check:  CheckHeap, object: "public.t", code: "XX001", msg: "invalid page in block 0", page: 0,
		},
		{
			name: "checksum mismatch in a block range", setup: table,
			inject: func(ctx context.Context, db string) error { return c.CorruptChecksum(ctx, db, "t") },
			opts:   []Option{WithChunkSize(4 * 8192)},
			check:  CheckHeap, object: "public.t", task: "public.t:blocks:0-3", code: "XX001", msg: "invalid page in block 0", page: 0,
		},
		{
			name: "toast",
			setup: `CREATE TABLE t (a int PRIMARY KEY, b text);
				ALTER TABLE t ALTER COLUMN b SET STORAGE EXTERNAL;
				INSERT INTO t SELECT g, repeat(md5(g::text), 200) FROM generate_series(1, 20) g`,
			inject: func(ctx context.Context, db string) error { return c.CorruptToast(ctx, db, "t") },
			check:  CheckHeap, object: "public.t", code: "verify_heapam", msg: "toast value", page: -1,
		},
		{
			name: "missing file", setup: table,
			inject: func(ctx context.Context, db string) error { return c.RemoveRelationFile(ctx, db, "t") },
			check:  CheckHeap, object: "public.t", code: "58P01", msg: "could not open file", page: -1,
		},
		{
			name: "missing file seen by the crosscheck", setup: table,
			inject: func(ctx context.Context, db string) error { return c.RemoveRelationFile(ctx, db, "t") },
			check:  CheckCrosscheck, object: "public.t", code: "58P01", msg: "could not open file", page: -1,
		},
		{
			name: "zeroed heap page", setup: table, vacuum: true,
			inject: func(ctx context.Context, db string) error { return c.ZeroHeapPage(ctx, db, "t", 1) },
			check:  CheckCrosscheck, object: "public.t_pkey", code: "crosscheck_count_mismatch", msg: "2000 rows with an index-only scan", page: -1,
		},
		{
			name: "truncated heap", setup: table, vacuum: true,
			inject: func(ctx context.Context, db string) error { return c.TruncateHeap(ctx, db, "t", 2) },
			check:  CheckCrosscheck, object: "public.t_pkey", code: "crosscheck_count_mismatch", msg: "2000 rows with an index-only scan", page: -1,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			d := clusterDB(t, c, "corrupt"+string(rune('a'+i)))
			d.exec(t, tt.setup)
			if tt.vacuum {
				d.exec(t, "VACUUM (FREEZE, ANALYZE) t")
			}
			d.db.Close()
			if err := tt.inject(ctx, d.name); err != nil {
				t.Fatal(err)
			}
			d.reopen(t)
			tg := d.open(t, tt.opts...)
			rep := runChecks(t, tg, []string{tt.check})
			if rep.Status != checks.StatusCorrupt {
				t.Errorf("status %s (%s), want corrupt", rep.Status, rep.Reason)
			}
			var got *checks.Finding
			for _, f := range findingsFor(rep, tt.check, tt.object) {
				if f.Code == tt.code && strings.Contains(f.Message, tt.msg) && (tt.task == "" || f.Task == tt.task) {
					got = &f
					break
				}
			}
			if got == nil {
				t.Fatalf("no %s finding with object %q, code %s, message %q:\n%s", tt.check, tt.object, tt.code, tt.msg, dump(t, rep))
			}
			if got.Severity != checks.StatusCorrupt || got.Remedy == "" {
				t.Errorf("finding %+v: want severity corrupt and a remedy", got)
			}
			if tt.page >= 0 && (got.Location.Page == nil || *got.Location.Page != tt.page) {
				t.Errorf("finding location %s, want page %d", got.Location, tt.page)
			}
			// Corruption is a finding, not a failure to verify, except
			// where verification could not go on.
			for _, tr := range checkReport(rep, tt.check).Tasks {
				if tr.State == checks.TaskFailed {
					t.Errorf("task %s failed: %s", tr.Key, tr.Reason)
				}
			}
			if testing.Verbose() {
				t.Logf("%s: %s: %s", got.Object, got.Code, got.Message)
			}
		})
	}
}

// TestChecksumFailuresCounter reads the checksum failure counter after a
// damaged page was read, with and without a baseline.
func TestChecksumFailuresCounter(t *testing.T) {
	c := pgtest.Fresh(t)
	ctx := testCtx(t)
	d := clusterDB(t, c, "cksum")
	d.exec(t, `CREATE TABLE t (a int PRIMARY KEY, b text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 500) g`)
	d.db.Close()
	if err := c.CorruptChecksum(ctx, d.name, "t"); err != nil {
		t.Fatal(err)
	}
	d.reopen(t)
	tg := d.open(t)
	before, err := tg.ChecksumFailures(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !before.Enabled {
		t.Fatal("checksums reported off on a cluster with checksums")
	}
	if _, err := d.db.ExecContext(ctx, "SELECT count(*) FROM t"); err == nil {
		t.Fatal("reading the damaged page did not fail")
	}
	after, err := tg.ChecksumFailures(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Count <= before.Count || after.LastFailure.IsZero() {
		t.Fatalf("counter did not grow: before %+v, after %+v", before, after)
	}

	rep := runChecks(t, tg, []string{CheckChecksums})
	fs := findingsFor(rep, CheckChecksums, d.name)
	if rep.Status != checks.StatusCorrupt || len(fs) != 1 || fs[0].Code != "checksum_failures" {
		t.Fatalf("without a baseline: want one checksum_failures finding:\n%s", dump(t, rep))
	}

	same := d.open(t, WithChecksumFailuresBaseline(after.Count))
	if rep := runChecks(t, same, []string{CheckChecksums}); rep.Status != checks.StatusHealthy {
		t.Errorf("baseline equal to the counter: status %s, want healthy:\n%s", rep.Status, dump(t, rep))
	}
	lower := d.open(t, WithChecksumFailuresBaseline(after.Count-1))
	rep = runChecks(t, lower, []string{CheckChecksums})
	fs = findingsFor(rep, CheckChecksums, d.name)
	if rep.Status != checks.StatusCorrupt || len(fs) != 1 || !strings.Contains(fs[0].Message, "went up") {
		t.Errorf("baseline below the counter: want corruption saying it went up:\n%s", dump(t, rep))
	}
}
