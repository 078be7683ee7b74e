package main

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lib/pq"
)

// buildDatabases creates the benchmark databases that the cluster does not
// hold yet (or holds with other parameters), then VACUUM ANALYZE and
// CHECKPOINT, so the visibility map is set and nothing is dirty, and
// records their sizes in res.
func buildDatabases(ctx context.Context, c *cluster, o *options, res *Results) error {
	for _, db := range o.DBs {
		var params string
		switch db {
		case dbPgbench:
			params = fmt.Sprintf("scale=%d", o.Scale)
		case dbSkewed:
			params = fmt.Sprintf("skew_mb=%d small_tables=%d", o.SkewMB, o.SmallTables)
		}
		info := DBInfo{Name: db}
		if c.state.Built[db] == params && !o.Rebuild {
			info.Reused = true
			logf("database %s (%s) kept from an earlier run", db, params)
		} else {
			start := time.Now()
			if err := c.Exec(ctx, "postgres", "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(db)); err != nil {
				return err
			}
			delete(c.state.Built, db)
			if _, err := c.CreateDatabase(ctx, db); err != nil {
				return err
			}
			logf("building database %s (%s)", db, params)
			var err error
			switch db {
			case dbPgbench:
				err = buildPgbench(ctx, c, o)
			case dbSkewed:
				err = buildSkewed(ctx, c, o)
			}
			if err != nil {
				return fmt.Errorf("building %s: %w", db, err)
			}
			info.BuildSecs = time.Since(start).Seconds()
		}
		// Cheap when nothing changed (the visibility map lets VACUUM skip
		// every page); after a max-rate run with -pgbench-mode tpcb it
		// settles the database again.
		logf("VACUUM ANALYZE %s", db)
		if err := c.Exec(ctx, db, "VACUUM ANALYZE"); err != nil {
			return err
		}
		if err := c.Checkpoint(ctx, db); err != nil {
			return err
		}
		if !info.Reused {
			c.state.Built[db] = params
			if err := c.saveState(); err != nil {
				return err
			}
			logf("database %s built in %.0f s", db, info.BuildSecs)
		}
		if err := describeDB(ctx, c, &info); err != nil {
			return err
		}
		res.Databases = append(res.Databases, info)
		logf("database %s: %s verified by both tools (%d heap relations, %d btree indexes); largest %s %s",
			db, mb(info.PhysBytes), info.Heaps, info.Indexes, info.Largest, mb(info.LargestSize))
	}
	return nil
}

func buildPgbench(ctx context.Context, c *cluster, o *options) error {
	args := append(c.connArgs(), "-i", "-s", strconv.Itoa(o.Scale), "-q", dbPgbench)
	cmd := c.client("pgbench", args...)
	logf("pgbench %s", strings.Join(args, " "))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgbench -i: %w\n%s", err, out)
	}
	return nil
}

// bigRow is the row of the skewed database's big table: a bigint key and
// a ~420-byte payload that is neither compressed nor TOASTed.
const bigRow = `SELECT i::bigint AS id, (i %% 1000)::int AS grp,
	timestamptz '2026-01-01' + i * interval '1 second' AS created,
	repeat(md5(i::text), 13) AS payload
FROM generate_series(1, %d) AS i`

// buildSkewed creates the skewed database: one big table (skew-mb MiB)
// with a bigint primary key as its only index, and small-tables small
// tables with a primary key each (and, having a text column, a TOAST table
// and TOAST index each, as real small tables do).
func buildSkewed(ctx context.Context, c *cluster, o *options) error {
	db, err := c.Open(dbSkewed)
	if err != nil {
		return err
	}
	defer db.Close()
	// Calibrate rows per block with a sample.
	const sample = 20000
	if _, err := db.ExecContext(ctx, "CREATE TABLE sample AS "+fmt.Sprintf(bigRow, sample)); err != nil {
		return err
	}
	var sampleBytes int64
	if err := db.QueryRowContext(ctx, "SELECT pg_relation_size('sample')").Scan(&sampleBytes); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, "DROP TABLE sample"); err != nil {
		return err
	}
	rows := int64(float64(o.SkewMB) * (1 << 20) / float64(sampleBytes) * sample)
	logf("skewed: big table with %d rows (~%d MiB)", rows, o.SkewMB)
	// CREATE TABLE AS writes no WAL with wal_level=minimal.
	if _, err := db.ExecContext(ctx, "CREATE TABLE big AS "+fmt.Sprintf(bigRow, rows)); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, "ALTER TABLE big ADD PRIMARY KEY (id)"); err != nil {
		return err
	}
	var b strings.Builder
	for i := 1; i <= o.SmallTables; i++ {
		n := 50 + (i*7919)%3000 // 50..3049 rows, 4-200 KiB
		fmt.Fprintf(&b, "CREATE TABLE small_%03d (id int PRIMARY KEY, name text, v numeric);\n", i)
		fmt.Fprintf(&b, "INSERT INTO small_%03d SELECT g, 'row ' || g, g * 1.5 FROM generate_series(1, %d) g;\n", i, n)
		if i%50 == 0 || i == o.SmallTables {
			if _, err := db.ExecContext(ctx, b.String()); err != nil {
				return err
			}
			b.Reset()
		}
	}
	return nil
}

// relationsQuery lists the relations both tools verify: tables, TOAST
// tables and materialized views (verify_heapam) and btree indexes
// (bt_index_check), with their main-fork sizes and file paths.
const relationsQuery = `SELECT c.relkind = 'i', pg_catalog.pg_relation_size(c.oid),
	COALESCE(pg_catalog.pg_relation_filepath(c.oid), ''), c.oid::regclass::text
FROM pg_catalog.pg_class c
LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
WHERE c.relpersistence <> 't'
  AND (c.relkind IN ('r', 't', 'm') OR (c.relkind = 'i' AND am.amname = 'btree'))`

type relFile struct {
	index bool
	size  int64
	path  string // relative to the data directory
	name  string
}

func relationFiles(ctx context.Context, c *cluster, db string) ([]relFile, error) {
	pool, err := c.Open(db)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	rows, err := pool.QueryContext(ctx, relationsQuery)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []relFile
	for rows.Next() {
		var r relFile
		if err := rows.Scan(&r.index, &r.size, &r.path, &r.name); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func describeDB(ctx context.Context, c *cluster, info *DBInfo) error {
	rels, err := relationFiles(ctx, c, info.Name)
	if err != nil {
		return err
	}
	for _, r := range rels {
		info.PhysBytes += r.size
		if r.index {
			info.Indexes++
			info.IndexBytes += r.size
		} else {
			info.Heaps++
			info.HeapBytes += r.size
		}
		if r.size > info.LargestSize {
			info.Largest, info.LargestSize = r.name, r.size
		}
	}
	return nil
}

var progressRE = regexp.MustCompile(`(\d+/\d+) relations \(\d+%\),\s+(\d+/\d+) pages`)

// probeCoverage runs pg_amcheck --progress once (untimed) and records how many
// relations and pages it checked, to compare with dbscrub's plan.
func probeCoverage(ctx context.Context, c *cluster, o *options, info *DBInfo) {
	args := append(c.connArgs(), "-d", info.Name, "--progress")
	cmd := c.client("pg_amcheck", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		logf("pg_amcheck --progress on %s: %v", info.Name, err)
	}
	if m := progressRE.FindAllStringSubmatch(string(out), -1); len(m) > 0 {
		last := m[len(m)-1]
		info.AmcheckRelations, info.AmcheckPages = last[1], last[2]
	}
	if !slices.Contains(o.Tools, toolDbscrub) {
		return
	}
	r := runDbscrub(ctx, c, o, info.Name, 1, false)
	if r.rep != nil {
		info.DbscrubObjects = r.rep.Coverage.ObjectsVerified
		info.DbscrubTasks = r.rep.Coverage.TasksPlanned
	}
}

// mb formats bytes as MB (10^6).
func mb(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/1e6) }
