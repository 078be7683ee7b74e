package postgres

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/pgtest"
)

// A schema with something of every kind the checks handle.
const richSchema = `
CREATE TABLE t (a int PRIMARY KEY, b text, c int, d text COLLATE "C", e timestamptz DEFAULT now());
INSERT INTO t SELECT g, md5(g::text), g % 10, md5((g * 7)::text), now() FROM generate_series(1, 5000) g;
INSERT INTO t (a, b, c) VALUES (-1, NULL, NULL);
CREATE INDEX t_c_partial ON t (c) WHERE c > 5;
CREATE INDEX t_expr ON t ((a + 1));
CREATE INDEX t_b_pattern ON t (b text_pattern_ops);
CREATE INDEX t_desc ON t (c DESC NULLS LAST, a);
CREATE INDEX t_d_default ON t (d COLLATE "default");
CREATE INDEX t_hash ON t USING hash (c);
CREATE INDEX t_incl ON t (c) INCLUDE (b);
CREATE TABLE toasty (id int PRIMARY KEY, doc text);
ALTER TABLE toasty ALTER COLUMN doc SET STORAGE EXTERNAL;
INSERT INTO toasty SELECT g, repeat(md5(g::text), 300) FROM generate_series(1, 50) g;
CREATE MATERIALIZED VIEW mv AS SELECT a, c FROM t;
CREATE UNIQUE INDEX mv_a ON mv (a);
CREATE MATERIALIZED VIEW mv_empty AS SELECT 1 AS x WITH NO DATA;
CREATE UNLOGGED TABLE unlogged_t (a int PRIMARY KEY);
INSERT INTO unlogged_t SELECT generate_series(1, 100);
CREATE TABLE parted (a int, b int) PARTITION BY RANGE (a);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (1000);
CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (1000) TO (2000);
CREATE INDEX parted_b ON parted (b);
INSERT INTO parted SELECT g, g FROM generate_series(0, 1999) g;
CREATE TABLE parent (a int PRIMARY KEY);
CREATE TABLE child (b int) INHERITS (parent);
INSERT INTO parent SELECT generate_series(1, 10);
INSERT INTO child SELECT g, g FROM generate_series(11, 30) g;
CREATE TABLE noindex (a int);
INSERT INTO noindex SELECT generate_series(1, 10);
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Mixed Case" ("Key" int PRIMARY KEY);
INSERT INTO "Odd Schema"."Mixed Case" SELECT generate_series(1, 10);
`

// TestCleanDatabase runs every check on an undamaged database (a cluster
// with data checksums and safe settings): everything is healthy and nothing
// is found.
func TestCleanDatabase(t *testing.T) {
	c := pgtest.Shared(t)
	d := clusterDB(t, c, "clean")
	d.exec(t, richSchema)
	d.exec(t, "VACUUM ANALYZE")
	tg := d.open(t)
	rep := runChecks(t, tg, nil)
	if rep.Status != checks.StatusHealthy || len(rep.Findings()) != 0 || rep.Err() != nil {
		t.Fatalf("status %s (%s), %d findings; want healthy:\n%s", rep.Status, rep.Reason, len(rep.Findings()), dump(t, rep))
	}
	for _, cr := range rep.Checks {
		if cr.Status != checks.StatusHealthy || cr.Coverage.TasksCompleted == 0 {
			t.Errorf("check %s: %s (%s), %d tasks completed", cr.Check, cr.Status, cr.Reason, cr.Coverage.TasksCompleted)
		}
	}
	info := tg.Info()
	if info.Engine != "postgresql" || info.Database != "clean" || info.Host != "127.0.0.1" || info.Port != c.Port || !strings.HasPrefix(info.ServerVersion, fmt.Sprint(c.Version)) {
		t.Errorf("Info() = %+v", info)
	}

	// With a chunk of one block, only empty relations are batched: every
	// other relation has tasks of its own, named by its schema-qualified,
	// quoted name; TOAST relations by their table.
	unbatched := d.open(t, WithChunkSize(8192))
	has := func(keys []string, key string) bool {
		for _, k := range keys {
			if k == key || strings.HasPrefix(k, key+":blocks:") {
				return true
			}
		}
		return false
	}
	heapKeys := planKeys(t, unbatched, CheckHeap)
	for _, key := range []string{"public.toasty:toast", "public.toasty", `"Odd Schema"."Mixed Case"`, "public.mv", "public.unlogged_t", "public.parted_1", "pg_catalog.pg_class"} {
		if !has(heapKeys, key) {
			t.Errorf("heap: no task for %s", key)
		}
	}
	btreeKeys := planKeys(t, unbatched, CheckBtree)
	for _, key := range []string{`"Odd Schema"."Mixed Case_pkey"`, "public.toasty:toast-index", "public.t_desc", "public.mv_a"} {
		if !has(btreeKeys, key) {
			t.Errorf("btree: no task for %s", key)
		}
	}
}

// TestCrosscheckIndexes checks which indexes the crosscheck reads and which
// it skips, and why.
func TestCrosscheckIndexes(t *testing.T) {
	d := newTestDB(t, false)
	d.exec(t, richSchema)
	d.exec(t, `CREATE INDEX t_c_dup ON t (c) WHERE c > 5`) // a duplicate of t_c_partial
	d.exec(t, "VACUUM ANALYZE")
	tg := d.open(t)
	rep := runChecks(t, tg, []string{CheckCrosscheck})
	cr := checkReport(rep, CheckCrosscheck)
	if cr.Status != checks.StatusHealthy {
		t.Fatalf("status %s (%s):\n%s", cr.Status, cr.Reason, dump(t, rep))
	}
	skips := map[string]string{
		"public.t_expr":   "expression index",
		"public.t_hash":   "not a btree index (hash)",
		"public.noindex":  "no btree index to cross-check",
		"public.mv_empty": "materialized view is not populated",
		"public.parted_b": "", // a partitioned index: not listed at all
		"public.parted_1": "",
	}
	for key, reason := range skips {
		tr := taskByKey(cr, key)
		switch {
		case reason == "" && key == "public.parted_b":
			if tr != nil {
				t.Errorf("partitioned index %s has a task", key)
			}
		case reason == "":
			if tr == nil || tr.State == checks.TaskSkipped {
				t.Errorf("%s: want a task that ran, got %+v", key, tr)
			}
		case tr == nil:
			t.Errorf("%s: no task", key)
		case tr.State != checks.TaskSkipped || !strings.Contains(tr.Reason, reason):
			t.Errorf("%s: state %s reason %q, want skipped with %q", key, tr.State, tr.Reason, reason)
		}
	}
	// Of two identical indexes the planner reads one; the other is skipped.
	dupA, dupB := taskByKey(cr, "public.t_c_partial"), taskByKey(cr, "public.t_c_dup")
	if (dupA == nil) == (dupB == nil) {
		t.Errorf("want exactly one of the duplicate indexes skipped: %+v %+v", dupA, dupB)
	} else {
		dup := dupA
		if dup == nil {
			dup = dupB
		}
		if dup.State != checks.TaskSkipped || !strings.Contains(dup.Reason, "reads the equivalent index") {
			t.Errorf("duplicate index: %+v", dup)
		}
	}
	for _, key := range []string{"public.t_pkey", "public.t_b_pattern", "public.t_desc", "public.t_d_default", "public.t_incl"} {
		if taskByKey(cr, key) != nil {
			t.Errorf("%s was skipped", key)
		}
	}
	// The table task reads t through every other btree index, including
	// the partial, descending, non-default-opclass, collated and covering
	// ones; the partial one only for rows matching its predicate.
	cks, _ := tg.Checks(CheckCrosscheck)
	tasks, err := cks[0].Plan(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	var stmt string
	for _, tk := range tasks {
		if tk.Key == "public.t" {
			stmt = tk.Statement
		}
	}
	for _, want := range []string{
		"count(*) FILTER (WHERE (c > 5))",
		"FROM ONLY public.t WHERE (c > 5) ORDER BY c ASC NULLS LAST",
		"ORDER BY c DESC NULLS LAST, a ASC NULLS LAST",
		"ORDER BY b USING OPERATOR(pg_catalog.~<~) NULLS LAST",
		`ORDER BY d COLLATE pg_catalog."default" ASC NULLS LAST`,
		"SELECT a FROM ONLY public.t ORDER BY a ASC NULLS LAST",
	} {
		if !strings.Contains(stmt, want) {
			t.Errorf("public.t statement lacks %q:\n%s", want, stmt)
		}
	}
	if tr := taskByKey(cr, "public.t"); tr == nil || tr.ObjectsVerified != 7 {
		t.Errorf("public.t: want the table and 6 indexes verified, got %+v", tr)
	}
	if t.Failed() {
		t.Log(dump(t, rep))
	}
}

// TestInvalidIndexSkipped leaves an invalid index behind (a failed CREATE
// UNIQUE INDEX CONCURRENTLY) and checks that both index checks skip it.
func TestInvalidIndexSkipped(t *testing.T) {
	d := newTestDB(t, false)
	d.exec(t, "CREATE TABLE dup (a int); INSERT INTO dup VALUES (1), (1)")
	if _, err := d.db.ExecContext(testCtx(t), "CREATE UNIQUE INDEX CONCURRENTLY dup_a ON dup (a)"); err == nil {
		t.Fatal("CREATE UNIQUE INDEX CONCURRENTLY on duplicates succeeded")
	}
	tg := d.open(t)
	rep := runChecks(t, tg, []string{CheckBtree, CheckCrosscheck})
	for _, check := range []string{CheckBtree, CheckCrosscheck} {
		tr := taskByKey(checkReport(rep, check), "public.dup_a")
		if tr == nil || tr.State != checks.TaskSkipped || tr.Reason != skipInvalidIndex {
			t.Errorf("%s: public.dup_a: %+v, want skipped with %q", check, tr, skipInvalidIndex)
		}
	}
	if rep.Status != checks.StatusHealthy {
		t.Errorf("status %s (%s)", rep.Status, rep.Reason)
	}
}

// TestTemporaryRelationsSkipped checks that another session's temporary
// tables and indexes are skipped with the reason.
func TestTemporaryRelationsSkipped(t *testing.T) {
	d := newTestDB(t, false)
	ctx := testCtx(t)
	conn, err := d.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "CREATE TEMP TABLE tmp (a int PRIMARY KEY, b text); INSERT INTO tmp VALUES (1, 'x')"); err != nil {
		t.Fatal(err)
	}
	tg := d.open(t)
	rep := runChecks(t, tg, []string{CheckHeap, CheckBtree, CheckCrosscheck})
	if rep.Status != checks.StatusHealthy {
		t.Fatalf("status %s (%s)", rep.Status, rep.Reason)
	}
	for _, check := range []string{CheckHeap, CheckBtree, CheckCrosscheck} {
		n := 0
		for _, tr := range checkReport(rep, check).Tasks {
			if strings.HasPrefix(tr.Key, "pg_temp_") || strings.Contains(tr.Object, "pg_temp_") {
				n++
				if tr.State != checks.TaskSkipped || tr.Reason != "temporary relation of another session" {
					t.Errorf("%s: %s: %s %q", check, tr.Key, tr.State, tr.Reason)
				}
			}
		}
		if n == 0 {
			t.Errorf("%s: no task for the temporary relations", check)
		}
	}
}

func planKeys(t *testing.T, tg *Target, check string) []string {
	t.Helper()
	cks, err := tg.Checks(check)
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := cks[0].Plan(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, tk := range tasks {
		keys = append(keys, tk.Key)
	}
	sort.Strings(keys)
	return keys
}

// TestIncludeExclude checks the schema and relation patterns.
func TestIncludeExclude(t *testing.T) {
	d := newTestDB(t, false)
	d.exec(t, `CREATE SCHEMA s;
		CREATE TABLE public.a1 (x int PRIMARY KEY); CREATE TABLE public.a2 (x int PRIMARY KEY); CREATE TABLE public.b1 (x int PRIMARY KEY);
		CREATE TABLE s.a1 (x int PRIMARY KEY); CREATE TABLE s.ab (x int PRIMARY KEY);
		INSERT INTO public.a1 VALUES (1); INSERT INTO public.a2 VALUES (1); INSERT INTO public.b1 VALUES (1);
		INSERT INTO s.a1 VALUES (1); INSERT INTO s.ab VALUES (1)`)
	// A chunk of one block: nothing is batched, every relation is a task.
	one := WithChunkSize(8192)
	tests := []struct {
		name  string
		opts  []Option
		check string
		want  []string
	}{
		{"qualified pattern", []Option{WithIncludeRelations("public.a*")}, CheckHeap, []string{"public.a1", "public.a2"}},
		{"bare pattern in any schema", []Option{WithIncludeRelations("a?")}, CheckHeap, []string{"public.a1", "public.a2", "s.a1", "s.ab"}},
		{"schema", []Option{WithIncludeSchemas("s")}, CheckHeap, []string{"s.a1", "s.ab"}},
		{"exclusion wins", []Option{WithIncludeSchemas("s", "public"), WithExcludeRelations("a1", "public.b*"), WithExcludeSchemas("pg_*", "information_schema")}, CheckHeap, []string{"public.a2", "s.ab"}},
		{"indexes follow their table", []Option{WithIncludeRelations("s.a1")}, CheckBtree, []string{"s.a1_pkey"}},
		{"index by its own name", []Option{WithIncludeRelations("*b1_pkey")}, CheckBtree, []string{"public.b1_pkey"}},
		{"excluding a table excludes its indexes", []Option{WithIncludeSchemas("public"), WithExcludeRelations("a?")}, CheckBtree, []string{"public.b1_pkey"}},
		{"crosscheck", []Option{WithIncludeRelations("s.*")}, CheckCrosscheck, []string{"s.a1", "s.ab"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := d.open(t, append([]Option{one}, tt.opts...)...)
			got := planKeys(t, tg, tt.check)
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("keys %q, want %q", got, tt.want)
			}
		})
	}
}

// TestBlockRanges forces a tiny chunk size and checks that a table becomes
// several range tasks that all run, and that the ranges cope with a table
// that shrank or grew after planning.
func TestBlockRanges(t *testing.T) {
	d := newTestDB(t, false)
	d.exec(t, "CREATE TABLE big (a int, b text); INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 3000) g")
	blocks := int64(0)
	if err := d.db.QueryRowContext(testCtx(t), "SELECT pg_relation_size('big') / 8192").Scan(&blocks); err != nil {
		t.Fatal(err)
	}
	tg := d.open(t, WithChunkSize(4*8192), WithIncludeRelations("public.big"))
	rep := runChecks(t, tg, []string{CheckHeap}, checks.WithJobs(3))
	heap := checkReport(rep, CheckHeap)
	want := (blocks + 3) / 4
	var ranges int64
	for _, tr := range heap.Tasks {
		if strings.HasPrefix(tr.Key, "public.big:blocks:") {
			ranges++
		}
	}
	// The ranges of big, and its (empty) TOAST table.
	if ranges != want || heap.Coverage.TasksCompleted != int(want)+1 {
		t.Fatalf("%d blocks: %d range tasks, %d tasks completed; want %d ranges:\n%s", blocks, ranges, heap.Coverage.TasksCompleted, want, dump(t, rep))
	}
	if heap.Coverage.BytesVerified != blocks*8192 || heap.Coverage.ObjectsVerified != 2 {
		t.Errorf("verified %d bytes, %d objects; want %d bytes, 2 objects (the table and its TOAST table)", heap.Coverage.BytesVerified, heap.Coverage.ObjectsVerified, blocks*8192)
	}
	last := fmt.Sprintf("public.big:blocks:%d-", (want-1)*4)
	if taskByKey(heap, "public.big:blocks:0-3") == nil || taskByKey(heap, last) == nil {
		t.Errorf("want keys public.big:blocks:0-3 and %s", last)
	}

	// Plan, then shrink the table to nothing and run: no task fails.
	cks, _ := tg.Checks(CheckHeap)
	tasks, err := cks[0].Plan(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	// The ranges cost what the table holds (the last, open range only its
	// real size, not a whole chunk), and each has a time estimate.
	var planned int64
	for _, tk := range tasks {
		if strings.HasPrefix(tk.Key, "public.big:blocks:") {
			planned += tk.Cost
			if tk.Estimate <= 0 {
				t.Errorf("%s: no time estimate", tk.Key)
			}
			if tk.Group != "table public.big" {
				t.Errorf("%s: group %q, want the table's (a heapallindexed index check reads it too)", tk.Key, tk.Group)
			}
		}
	}
	if planned != blocks*8192 {
		t.Errorf("the ranges are costed %d bytes; the table has %d", planned, blocks*8192)
	}
	d.exec(t, "TRUNCATE big")
	for _, tk := range tasks {
		if _, err := tk.Run(testCtx(t)); err != nil {
			t.Errorf("%s after TRUNCATE: %v", tk.Key, err)
		}
	}
	// Plan, then grow the table: the open-ended last range covers the rest.
	d.exec(t, "INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 1000) g")
	tasks, err = cks[0].Plan(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	d.exec(t, "INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 3000) g")
	var total int64
	for _, tk := range tasks {
		res, err := tk.Run(testCtx(t))
		if err != nil {
			t.Fatalf("%s after growth: %v", tk.Key, err)
		}
		if strings.HasPrefix(tk.Key, "public.big:blocks:") {
			total += res.Bytes
		}
	}
	var now int64
	if err := d.db.QueryRowContext(testCtx(t), "SELECT pg_relation_size('big')").Scan(&now); err != nil {
		t.Fatal(err)
	}
	if total != now {
		t.Errorf("after growth the ranges verified %d bytes; the table has %d", total, now)
	}
}

// TestBatching checks that many small tables become one task and one
// statement, and that a table dropped after planning does not fail the
// batch.
func TestBatching(t *testing.T) {
	d := newTestDB(t, false)
	var b strings.Builder
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&b, "CREATE TABLE small_%02d (a int PRIMARY KEY); INSERT INTO small_%02d VALUES (1), (2);\n", i, i)
	}
	d.exec(t, b.String())
	tg := d.open(t, WithIncludeRelations("public.small_*"))
	for _, check := range []string{CheckHeap, CheckBtree} {
		cks, _ := tg.Checks(check)
		tasks, err := cks[0].Plan(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(tasks) != 1 || !strings.HasPrefix(tasks[0].Key, "batch:") || !strings.Contains(tasks[0].Statement, "unnest($1::oid[])") {
			t.Fatalf("%s: want one batch task, got %d: %+v", check, len(tasks), tasks)
		}
		res, err := tasks[0].Run(testCtx(t))
		if err != nil || res.Objects != 40 || len(res.Findings) != 0 {
			t.Fatalf("%s: batch: %+v, %v; want 40 objects", check, res, err)
		}
	}
	// Drop one table between planning and running.
	for _, check := range []string{CheckHeap, CheckBtree} {
		cks, _ := tg.Checks(check)
		tasks, err := cks[0].Plan(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		d.exec(t, "DROP TABLE IF EXISTS small_07")
		res, err := tasks[0].Run(testCtx(t))
		if err != nil || res.Objects != 39 || len(res.Findings) != 0 {
			t.Errorf("%s: batch with a dropped table: %+v, %v; want 39 objects, no error", check, res, err)
		}
	}
}

// TestMissingAmcheck checks the error that says how to install amcheck, and
// WithInstallAmcheck.
func TestMissingAmcheck(t *testing.T) {
	d := newTestDB(t, true)
	tg := d.open(t)
	for _, check := range []string{CheckHeap, CheckBtree} {
		cks, _ := tg.Checks(check)
		_, err := cks[0].Plan(testCtx(t))
		if !errors.Is(err, ErrAmcheckMissing) {
			t.Fatalf("%s: Plan error %v, want ErrAmcheckMissing", check, err)
		}
		for _, want := range []string{
			"CREATE EXTENSION amcheck;",
			"GRANT EXECUTE ON FUNCTION verify_heapam(regclass, boolean, boolean, text, bigint, bigint) TO postgres;",
			"GRANT EXECUTE ON FUNCTION bt_index_check(regclass, boolean) TO postgres;",
			"WithInstallAmcheck", "--install-amcheck", d.name,
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error lacks %q: %v", check, want, err)
			}
		}
	}
	// Checks that do not need amcheck still run.
	rep := runChecks(t, tg, []string{CheckCrosscheck, CheckSettings})
	if rep.Status == checks.StatusError {
		t.Errorf("crosscheck and settings without amcheck: %s (%s)", rep.Status, rep.Reason)
	}
	// The whole run reports the missing extension as an error.
	rep = runChecks(t, tg, []string{CheckHeap})
	if rep.Status != checks.StatusError || !strings.Contains(rep.Reason, "CREATE EXTENSION amcheck;") {
		t.Errorf("run without amcheck: %s (%s)", rep.Status, rep.Reason)
	}

	var logs bytes.Buffer
	tg = d.open(t, WithInstallAmcheck(), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	rep = runChecks(t, tg, []string{CheckHeap, CheckBtree})
	if rep.Status != checks.StatusHealthy {
		t.Fatalf("with WithInstallAmcheck: %s (%s)", rep.Status, rep.Reason)
	}
	if v := d.queryString(t, "SELECT extversion FROM pg_extension WHERE extname = 'amcheck'"); v == "" {
		t.Error("amcheck not installed")
	}
	if !strings.Contains(logs.String(), "CREATE EXTENSION IF NOT EXISTS amcheck") {
		t.Errorf("the installation was not logged: %s", logs.String())
	}
}

// TestCancelStopsServerQuery checks that cancelling the context cancels the
// statement on the server within a second.
func TestCancelStopsServerQuery(t *testing.T) {
	d := newTestDB(t, false)
	tg := d.open(t)
	running := func(pattern string) int {
		t.Helper()
		var n int
		if err := d.db.QueryRowContext(testCtx(t),
			"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbscrub' AND state = 'active' AND query LIKE $1", pattern).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitFor := func(what string, cond func() bool, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s", what, within)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	t.Run("pg_sleep in a session", func(t *testing.T) {
		ctx, cancel := context.WithCancel(testCtx(t))
		defer cancel()
		s, err := tg.begin(ctx, sessionOpts{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.close()
		done := make(chan error, 1)
		go func() {
			_, err := s.tx.ExecContext(ctx, "SELECT pg_sleep(60) -- dbscrub cancel test")
			done <- err
		}()
		waitFor("pg_sleep starts", func() bool { return running("%dbscrub cancel test%") == 1 }, 10*time.Second)
		cancel()
		start := time.Now()
		if err := <-done; err == nil {
			t.Fatal("pg_sleep was not interrupted")
		}
		waitFor("pg_sleep gone from pg_stat_activity", func() bool { return running("%dbscrub cancel test%") == 0 }, time.Second)
		t.Logf("server-side query gone %s after cancel", time.Since(start).Round(time.Millisecond))
	})

	t.Run("a run blocked in verify_heapam", func(t *testing.T) {
		d.exec(t, "CREATE TABLE locked (a int); INSERT INTO locked VALUES (1)")
		ctx := testCtx(t)
		locker, err := d.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer locker.Close()
		if _, err := locker.ExecContext(ctx, "BEGIN; LOCK TABLE locked IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
		tg := d.open(t, WithLockTimeout(time.Minute), WithIncludeRelations("public.locked"))
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		reps := make(chan *checks.Report, 1)
		go func() {
			cks, _ := tg.Checks(CheckHeap)
			r, _ := checks.NewRunner()
			reps <- r.Run(rctx, tg, cks...)
		}()
		waitFor("verify_heapam waits for its lock", func() bool { return running("%verify_heapam%") == 1 }, 10*time.Second)
		cancel()
		start := time.Now()
		var rep *checks.Report
		select {
		case rep = <-reps:
		case <-time.After(5 * time.Second):
			t.Fatal("the run did not return after cancellation")
		}
		waitFor("verify_heapam gone from pg_stat_activity", func() bool { return running("%verify_heapam%") == 0 }, time.Second)
		if rep.Status != checks.StatusError || !errors.Is(rep.Err(), checks.ErrNotVerified) {
			t.Errorf("cancelled run: status %s (%s), want error", rep.Status, rep.Reason)
		}
		t.Logf("run returned and server-side query gone %s after cancel", time.Since(start).Round(time.Millisecond))
		if _, err := locker.ExecContext(ctx, "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
	})
}

// TestSessionSettings checks what a dbscrub session looks like from inside,
// and that it cannot write.
func TestSessionSettings(t *testing.T) {
	d := newTestDB(t, false)
	tg := d.open(t, WithStatementTimeout(90*time.Second), WithLockTimeout(1500*time.Millisecond))
	ctx := testCtx(t)
	s, err := tg.begin(ctx, sessionOpts{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	var app, st, lt, idle, ro string
	if err := s.tx.QueryRowContext(ctx, `SELECT current_setting('application_name'), current_setting('statement_timeout'),
		current_setting('lock_timeout'), current_setting('idle_in_transaction_session_timeout'), current_setting('transaction_read_only')`).Scan(&app, &st, &lt, &idle, &ro); err != nil {
		t.Fatal(err)
	}
	if app != "dbscrub" || st != "90s" || lt != "1500ms" || idle != "5min" || ro != "on" {
		t.Errorf("application_name %q, statement_timeout %q, lock_timeout %q, idle_in_transaction_session_timeout %q, transaction_read_only %q", app, st, lt, idle, ro)
	}
	_, err = s.tx.ExecContext(ctx, "CREATE TABLE must_fail (a int)")
	if se, ok := asServerError(err); !ok || se.code != "25006" {
		t.Errorf("a write in a dbscrub session: %v, want read_only_sql_transaction (25006)", err)
	}
}

// TestNewDoesNotLeakSettings runs every check on a caller's pool with a
// single connection whose session has its own settings, and checks that
// they are unchanged afterwards.
func TestNewDoesNotLeakSettings(t *testing.T) {
	d := newTestDB(t, false)
	d.exec(t, richSchema)
	pool, err := sql.Open("postgres", d.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	pool.SetMaxOpenConns(1)
	pool.SetMaxIdleConns(1)
	ctx := testCtx(t)
	if _, err := pool.ExecContext(ctx, "SET statement_timeout = '7s'; SET application_name = 'myapp'; SET enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	show := func() string {
		t.Helper()
		var v string
		if err := pool.QueryRowContext(ctx, `SELECT concat_ws(' ', current_setting('statement_timeout'), current_setting('lock_timeout'),
			current_setting('application_name'), current_setting('idle_in_transaction_session_timeout'), current_setting('enable_seqscan'),
			current_setting('enable_indexscan'), current_setting('jit'), current_setting('transaction_isolation'), pg_backend_pid())`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := show()
	tg, err := New(pool)
	if err != nil {
		t.Fatal(err)
	}
	rep := runChecks(t, tg, nil, checks.WithJobs(1))
	if rep.Status == checks.StatusError || rep.Status == checks.StatusCorrupt {
		t.Fatalf("status %s (%s)", rep.Status, rep.Reason)
	}
	if after := show(); after != before {
		t.Errorf("session settings of the caller's connection changed:\nbefore %s\nafter  %s", before, after)
	}
	if err := tg.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pool.PingContext(ctx); err != nil {
		t.Errorf("Close closed the caller's pool: %v", err)
	}
	info := tg.Info()
	if info.Database != d.name || info.ServerVersion == "" || !strings.Contains(info.Name, d.name) {
		t.Errorf("Info() = %+v", info)
	}
}

// TestNoWrites checks that a full run leaves the catalog and the data as
// they were.
func TestNoWrites(t *testing.T) {
	d := newTestDB(t, false)
	d.exec(t, richSchema)
	d.exec(t, "VACUUM ANALYZE")
	fingerprint := func() string {
		return d.queryString(t, `SELECT concat_ws(' ',
			(SELECT md5(string_agg(concat_ws(':', c.oid, c.relname, c.relfilenode, c.relkind), ',' ORDER BY c.oid)) FROM pg_class c),
			(SELECT md5(string_agg(concat_ws(':', e.extname, e.extversion), ',' ORDER BY e.extname)) FROM pg_extension e),
			(SELECT md5(string_agg(t::text, ',' ORDER BY a)) FROM t),
			(SELECT md5(string_agg(x::text, ',' ORDER BY id)) FROM toasty x),
			(SELECT md5(string_agg(p::text, ',' ORDER BY a)) FROM parted p),
			(SELECT count(*) FROM pg_prepared_xacts))`)
	}
	before := fingerprint()
	tg := d.open(t)
	rep := runChecks(t, tg, nil)
	if rep.Status == checks.StatusError || rep.Status == checks.StatusCorrupt {
		t.Fatalf("status %s (%s)", rep.Status, rep.Reason)
	}
	if after := fingerprint(); after != before {
		t.Errorf("the database changed:\nbefore %s\nafter  %s", before, after)
	}
}
