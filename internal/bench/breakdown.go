package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"sync"
	"time"

	"github.com/lib/pq"
)

// The breakdown times the pieces a full check is made of, one at a time
// on a quiet machine, warm cache: verify_heapam on the largest table (whole,
// and as two halves on two connections at once), bt_index_check on its
// index (with and without heapallindexed), and everything else (with each
// tool). From these follow the best wall time any scheduler can reach at
// --jobs 2, and so whether a target is reachable at all.

// Component is one timed piece of work.
type Component struct {
	DB      string    `json:"db"`
	Name    string    `json:"name"`
	What    string    `json:"what"`
	Seconds []float64 `json:"seconds"`
	Median  float64   `json:"median_seconds"`
}

// bigRelations names the largest table of each database and its index.
var bigRelations = map[string][2]string{
	dbPgbench: {"pgbench_accounts", "pgbench_accounts_pkey"},
	dbSkewed:  {"big", "big_pkey"},
}

func breakdown(ctx context.Context, c *cluster, o *options, res *Results) error {
	for _, db := range o.DBs {
		rel, ok := bigRelations[db]
		if !ok {
			continue
		}
		table, index := rel[0], rel[1]
		pool, err := c.Open(db)
		if err != nil {
			return err
		}
		pool.SetMaxOpenConns(2)
		pool.SetMaxIdleConns(2)
		var nblocks int64
		if err := pool.QueryRowContext(ctx, "SELECT pg_relation_size($1::regclass) / current_setting('block_size')::int", table).Scan(&nblocks); err != nil {
			pool.Close()
			return err
		}
		half := nblocks / 2
		heapSQL := "SELECT count(*) FROM verify_heapam(" + pq.QuoteLiteral(table) + "::regclass, check_toast => true, startblock => $1, endblock => $2)"
		sqlOne := func(q string, args ...any) func() error {
			return func() error {
				var n sql.NullInt64
				err := pool.QueryRowContext(ctx, q, args...).Scan(&n)
				if err == nil && n.Valid && n.Int64 > 0 {
					err = fmt.Errorf("%s reported %d problems", q, n.Int64)
				}
				return err
			}
		}
		parallel := func(fs ...func() error) func() error {
			return func() error {
				var wg sync.WaitGroup
				errs := make([]error, len(fs))
				for i, f := range fs {
					wg.Add(1)
					go func() { defer wg.Done(); errs[i] = f() }()
				}
				wg.Wait()
				return errors.Join(errs...)
			}
		}
		tool := func(name string, args ...string) func() error {
			return func() error {
				var cmd *exec.Cmd
				if name == toolAmcheck {
					cmd = c.client("pg_amcheck", args...)
				} else {
					cmd = exec.Command(o.DbscrubBin, args...)
					cmd.Env = pgEnv()
				}
				if out, err := cmd.CombinedOutput(); err != nil {
					return fmt.Errorf("%s: %w: %s", name, err, firstLine(string(out)))
				}
				return nil
			}
		}
		type piece struct {
			name, what string
			run        func() error
		}
		pieces := []piece{
			{"heap_big", fmt.Sprintf("verify_heapam(%s), all %d blocks, one connection", table, nblocks),
				sqlOne(heapSQL, 0, nblocks-1)},
			{"heap_big_halves", fmt.Sprintf("verify_heapam(%s), two halves on two connections at once", table),
				parallel(sqlOne(heapSQL, 0, half-1), sqlOne(heapSQL, half, nblocks-1))},
			{"btree_big", fmt.Sprintf("bt_index_check(%s)", index),
				sqlOne("SELECT 0 FROM bt_index_check(" + pq.QuoteLiteral(index) + "::regclass, false)")},
			{"btree_big_hai", fmt.Sprintf("bt_index_check(%s, heapallindexed => true)", index),
				sqlOne("SELECT 0 FROM bt_index_check(" + pq.QuoteLiteral(index) + "::regclass, true)")},
			{"rest_amcheck", fmt.Sprintf("pg_amcheck --jobs 1 -T %s: everything but %s and its index", table, table),
				tool(toolAmcheck, append(c.connArgs(), "-d", db, "--jobs", "1", "-T", table)...)},
			{"rest_amcheck_hai", fmt.Sprintf("pg_amcheck --jobs 1 --heapallindexed -T %s", table),
				tool(toolAmcheck, append(c.connArgs(), "-d", db, "--jobs", "1", "--heapallindexed", "-T", table)...)},
		}
		if slices.Contains(o.Tools, toolDbscrub) {
			pieces = append(pieces,
				piece{"rest_dbscrub", fmt.Sprintf("dbscrub --jobs 1 --exclude-relation %s: everything but %s and its index", table, table),
					tool(toolDbscrub, append(dbscrubArgs(c, o, db, 1, false), "--exclude-relation", table)...)},
				piece{"rest_dbscrub_hai", fmt.Sprintf("dbscrub --jobs 1 --heapallindexed --exclude-relation %s", table),
					tool(toolDbscrub, append(dbscrubArgs(c, o, db, 1, true), "--exclude-relation", table)...)},
			)
		}
		files, err := dbFiles(ctx, c, db)
		if err != nil {
			pool.Close()
			return err
		}
		for _, p := range pieces {
			comp := Component{DB: db, Name: p.name, What: p.what}
			if err := p.run(); err != nil { // warm-up
				pool.Close()
				return fmt.Errorf("breakdown %s %s: %w", db, p.name, err)
			}
			for rep := 0; rep < o.Reps; rep++ {
				for attempt := 1; ; attempt++ {
					if err := ctx.Err(); err != nil {
						pool.Close()
						return err
					}
					waitQuiet(ctx, o.Quiet, o.QuietWait)
					if err := prewarm(files); err != nil {
						pool.Close()
						return err
					}
					smp := c.sample()
					start := time.Now()
					if err := p.run(); err != nil {
						pool.Close()
						return fmt.Errorf("breakdown %s %s: %w", db, p.name, err)
					}
					d := time.Since(start).Seconds()
					if o.MaxOther > 0 && c.otherCores(smp, 0) > o.MaxOther && attempt < o.Attempts {
						continue // too noisy: measure again
					}
					comp.Seconds = append(comp.Seconds, d)
					break
				}
			}
			comp.Median = median(comp.Seconds)
			res.Components = append(res.Components, comp)
			logf("breakdown %s %-16s %6.3f s  %s", db, p.name, comp.Median, p.what)
		}
		pool.Close()
	}
	return nil
}

// bounds derives, per database, the best --jobs 2 wall time a perfect
// scheduler could reach from the breakdown, for the markdown summary.
type bound struct {
	DB, Variant string
	// Work is the single-connection work: the big table's heap, its
	// index, and the rest (with dbscrub's batching).
	Work float64
	// Critical is the longest piece no scheduler can split: the index
	// check (with heapallindexed, it scans the whole table).
	Critical float64
	// Eff is the measured speed-up of two connections over one (the
	// halves over the whole heap).
	Eff float64
	// Best is max(Critical, Work / Eff).
	Best float64
}

func bounds(res *Results) []bound {
	get := func(db, name string) float64 {
		for _, c := range res.Components {
			if c.DB == db && c.Name == name {
				return c.Median
			}
		}
		return 0
	}
	var out []bound
	for _, db := range []string{dbPgbench, dbSkewed} {
		heap, halves := get(db, "heap_big"), get(db, "heap_big_halves")
		if heap == 0 || halves == 0 {
			continue
		}
		eff := heap / halves
		for _, v := range []string{variantDefault, variantHeapAllIndexed} {
			idx, rest := get(db, "btree_big"), get(db, "rest_dbscrub")
			if v == variantHeapAllIndexed {
				idx, rest = get(db, "btree_big_hai"), get(db, "rest_dbscrub_hai")
			}
			if rest == 0 {
				continue
			}
			b := bound{DB: db, Variant: v, Work: heap + idx + rest, Critical: idx, Eff: eff}
			b.Best = max(b.Critical, b.Work/eff)
			out = append(out, b)
		}
	}
	return out
}
