package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/dbscrub/dbscrub/checks"
)

// Benchmarks compare the cost of the crosscheck with heap + btree on one
// table. They are run by hand, against the test server (see adminDSN):
//
//	DBSCRUB_BENCH=1 go test ./drivers/postgres/ -run '^$' -bench . -benchtime 3x
//
// DBSCRUB_BENCH_ROWS sets the table size (default 3,000,000 rows).

var bench struct {
	once  sync.Once
	dsn   string
	admin string
	name  string
	bytes int64
	err   error
}

// benchDB creates (once per process) a database with one table of a few
// million rows and two btree indexes, vacuumed so the visibility map is set.
func benchDB(b *testing.B) string {
	b.Helper()
	if os.Getenv("DBSCRUB_BENCH") != "1" {
		b.Skip("set DBSCRUB_BENCH=1 to run the benchmarks (they build a large table)")
	}
	bench.once.Do(func() {
		rows := 3_000_000
		if v, err := strconv.Atoi(os.Getenv("DBSCRUB_BENCH_ROWS")); err == nil && v > 0 {
			rows = v
		}
		bench.admin = adminDSN(b)
		bench.name = fmt.Sprintf("dbscrub_bench_%d", os.Getpid())
		bench.dsn = withDatabase(b, bench.admin, bench.name)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		adb, err := sql.Open("postgres", bench.admin)
		if err != nil {
			bench.err = err
			return
		}
		defer adb.Close()
		if _, err := adb.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(bench.name)+" TEMPLATE template0"); err != nil {
			bench.err = err
			return
		}
		db, err := sql.Open("postgres", bench.dsn)
		if err != nil {
			bench.err = err
			return
		}
		defer db.Close()
		start := time.Now()
		for _, q := range []string{
			"CREATE EXTENSION amcheck",
			"CREATE TABLE bench (id bigint PRIMARY KEY, k int NOT NULL, v text)",
			fmt.Sprintf("INSERT INTO bench SELECT g, (g::bigint * 7919) %% 100000, md5(g::text) FROM generate_series(1, %d) g", rows),
			"CREATE INDEX bench_k ON bench (k)",
			"VACUUM (ANALYZE, FREEZE) bench",
		} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				bench.err = fmt.Errorf("%s: %w", q, err)
				return
			}
		}
		bench.err = db.QueryRowContext(ctx, "SELECT pg_table_size('bench') + pg_indexes_size('bench')").Scan(&bench.bytes)
		fmt.Fprintf(os.Stderr, "bench: %d rows, %d MB (table + indexes), built in %s\n", rows, bench.bytes>>20, time.Since(start).Round(time.Second))
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.dsn
}

// dropBenchDB is called from TestMain.
func dropBenchDB() {
	if bench.name == "" {
		return
	}
	adb, err := sql.Open("postgres", bench.admin)
	if err != nil {
		return
	}
	defer adb.Close()
	_, _ = adb.Exec("DROP DATABASE IF EXISTS " + pq.QuoteIdentifier(bench.name) + " WITH (FORCE)")
}

func benchChecks(b *testing.B, names ...string) {
	dsn := benchDB(b)
	tg, err := Open(dsn, WithIncludeRelations("public.bench"))
	if err != nil {
		b.Fatal(err)
	}
	defer tg.Close()
	r, err := checks.NewRunner(checks.WithJobs(1))
	if err != nil {
		b.Fatal(err)
	}
	// Warm the cache once, so every iteration reads from shared buffers or
	// the page cache alike.
	cks, _ := tg.Checks(names...)
	if rep := r.Run(context.Background(), tg, cks...); rep.Status != checks.StatusHealthy {
		b.Fatalf("%s (%s)", rep.Status, rep.Reason)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cks, _ := tg.Checks(names...)
		rep := r.Run(context.Background(), tg, cks...)
		if rep.Status != checks.StatusHealthy {
			b.Fatalf("%s (%s)", rep.Status, rep.Reason)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(bench.bytes)/(1<<20), "MB")
}

// BenchmarkHeapBtree runs verify_heapam and bt_index_check on the table.
func BenchmarkHeapBtree(b *testing.B) { benchChecks(b, CheckHeap, CheckBtree) }

// BenchmarkHeap runs verify_heapam alone.
func BenchmarkHeap(b *testing.B) { benchChecks(b, CheckHeap) }

// BenchmarkBtree runs bt_index_check alone.
func BenchmarkBtree(b *testing.B) { benchChecks(b, CheckBtree) }

// BenchmarkCrosscheck runs the crosscheck (a sequential scan and an
// index-only scan per index, all counted).
func BenchmarkCrosscheck(b *testing.B) { benchChecks(b, CheckCrosscheck) }
