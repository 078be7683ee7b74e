package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/dbscrub/dbscrub/checks"
)

// skipInvalidIndex is the reason an index that is not valid and ready is
// skipped.
const skipInvalidIndex = "index is not valid (e.g. failed CREATE INDEX CONCURRENTLY)"

// btreeCheck is the "btree" check: amcheck's bt_index_check (or
// bt_index_parent_check).
type btreeCheck struct{ r *run }

func (c *btreeCheck) Name() string { return CheckBtree }

// btreeIndex is one index the btree check plans.
type btreeIndex struct {
	ref    relRef
	object string
	key    string
	bytes  int64 // index size (plus the table's with heapallindexed)
	valid  bool
	temp   bool
	// estimate is the expected time of the check (see estimate.go).
	estimate time.Duration
	// group is the table a heapallindexed check scans, as a task group.
	group string
}

var btreeIndexesQuery = lockedCTE + `SELECT n.nspname, ic.relname, tc.relname,
	COALESCE(o.nspname, n.nspname), COALESCE(o.relname, tc.relname),
	pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(ic.relname),
	o.qualified,
	i.indisvalid AND i.indisready AND i.indislive,
	ic.relpersistence = 't',
	` + sizeExpr("ic") + `,
	CASE WHEN $1 THEN ` + sizeExpr("tc") + ` ELSE GREATEST(tc.relpages, 0)::bigint * pg_catalog.current_setting('block_size')::bigint END,
	ic.relpages::bigint, ic.reltuples::float8, tc.relpages::bigint, tc.reltuples::float8
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_namespace n ON n.oid = ic.relnamespace
JOIN pg_catalog.pg_am am ON am.oid = ic.relam
JOIN pg_catalog.pg_class tc ON tc.oid = i.indrelid
` + toastOwnerJoin("tc") + `
WHERE am.amname = 'btree' AND ic.relkind = 'i'
ORDER BY COALESCE(o.qualified, pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(tc.relname)), 6`

// Plan lists every btree index that passes the filters and plans one
// bt_index_check task per index (small indexes batched). Indexes that are
// not valid and ready, and indexes of temporary tables, are skipped with
// the reason.
func (c *btreeCheck) Plan(ctx context.Context) ([]checks.Task, error) {
	t := c.r.t
	caps, err := c.r.capabilities(ctx)
	if err != nil {
		return nil, err
	}
	if err := t.requireAmcheck(caps, CheckBtree); err != nil {
		return nil, err
	}
	idxs, err := c.r.indexes.take(ctx, c.indexes)
	if err != nil {
		return nil, err
	}
	fn := quoteIdent(caps.AmcheckSchema) + ".bt_index_check"
	if t.cfg.parentCheck {
		fn = quoteIdent(caps.AmcheckSchema) + ".bt_index_parent_check"
	}
	small := t.cfg.chunkSize / batchDivisor
	batchBytes := t.cfg.chunkSize / batchTotalDivisor

	var tasks []checks.Task
	batch := &batcher[btreeIndex]{
		maxBytes: batchBytes, tasks: &tasks,
		one:  func(ix btreeIndex) checks.Task { return c.indexTask(fn, ix) },
		many: func(ixs []btreeIndex) checks.Task { return c.batchTask(fn, ixs) },
	}
	for _, ix := range idxs {
		switch {
		case ix.temp:
			tasks = append(tasks, checks.Task{Key: ix.key, Object: ix.object, Cost: ix.bytes, Skip: "temporary relation of another session"})
		case !ix.valid:
			tasks = append(tasks, checks.Task{Key: ix.key, Object: ix.object, Cost: ix.bytes, Skip: skipInvalidIndex})
		case ix.bytes <= small:
			batch.add(ix, ix.bytes)
		default:
			tasks = append(tasks, c.indexTask(fn, ix))
		}
	}
	batch.flush()
	return tasks, nil
}

func (c *btreeCheck) indexes(ctx context.Context) ([]btreeIndex, error) {
	t := c.r.t
	f := newFilter(&t.cfg)
	s, err := t.begin(ctx, sessionOpts{})
	if err != nil {
		return nil, err
	}
	defer s.close()
	// The table's exact size ($1) is needed only with heapallindexed,
	// which scans it; otherwise pg_class's estimate serves the time
	// estimate, and planning skips opening every table a second time.
	rows, err := s.tx.QueryContext(ctx, btreeIndexesQuery, t.cfg.heapAllIndexed)
	if err != nil {
		return nil, t.scrub(fmt.Errorf("postgres: btree: listing indexes: %s", oneLine(err.Error())))
	}
	defer rows.Close()
	var out []btreeIndex
	for rows.Next() {
		var schema, name, table, oschema, oname, regname string
		var owner sql.NullString
		var ix btreeIndex
		var tableBytes, ipages, tpages int64
		var ituples, ttuples float64
		if err := rows.Scan(&schema, &name, &table, &oschema, &oname, &regname, &owner, &ix.valid, &ix.temp, &ix.bytes, &tableBytes,
			&ipages, &ituples, &tpages, &ttuples); err != nil {
			return nil, fmt.Errorf("postgres: btree: listing indexes: %w", err)
		}
		if owner.Valid {
			if !f.relationOK(oschema, oname) {
				continue
			}
			ix.object = owner.String + " (TOAST index " + regname + ")"
			ix.key = owner.String + ":toast-index"
			ix.ref = relRef{schema: oschema, name: oname, kind: refToastIndex}
		} else {
			if !f.relationOK(schema, name, table) {
				continue
			}
			ix.object, ix.key = regname, regname
			ix.ref = relRef{schema: schema, name: name}
			if t.cfg.heapAllIndexed {
				ix.group = tableGroup(schema, table) // an index lives in its table's schema
			}
		}
		bs := c.r.blockSize()
		tablePages := tableBytes / bs
		ix.estimate = btreeEstimate(ix.bytes/bs, density(ipages, ituples, defaultIndexEntriesPerPage),
			t.cfg.heapAllIndexed, tablePages, float64(tablePages)*density(tpages, ttuples, defaultHeapRowsPerPage))
		if t.cfg.heapAllIndexed {
			ix.bytes += tableBytes
		}
		out = append(out, ix)
	}
	if err := rows.Err(); err != nil {
		return nil, t.scrub(fmt.Errorf("postgres: btree: listing indexes: %s", oneLine(err.Error())))
	}
	return out, nil
}

func (c *btreeCheck) indexTask(fn string, ix btreeIndex) checks.Task {
	stmt := btreeStatement(fn)
	return checks.Task{
		Key: ix.key, Object: ix.object, Cost: ix.bytes, Estimate: ix.estimate, Group: ix.group,
		Statement: resolveQuery + ";\n" + stmt + fmt.Sprintf(" -- $2 (heapallindexed) = %t", c.r.t.cfg.heapAllIndexed),
		Run: func(ctx context.Context) (checks.Result, error) {
			return c.r.runTask(ctx, sessionOpts{guard: true}, ix.object, func(s *session, f *findings) (checks.Result, error) {
				oid, err := resolveOne(ctx, s, ix.ref)
				if err != nil {
					return checks.Result{}, maybeTaskError(c.r.t, err, ix.object)
				}
				if oid == 0 {
					return checks.Result{}, nil // dropped since planning
				}
				gone, err := c.verify(ctx, s, f, fn, ix, oid, false)
				if err != nil || gone {
					return checks.Result{}, err
				}
				return checks.Result{Objects: 1, Bytes: ix.bytes}, nil
			})
		},
	}
}

func (c *btreeCheck) batchTask(fn string, idxs []btreeIndex) checks.Task {
	objects := make([]string, len(idxs))
	var cost int64
	var estimate time.Duration
	for i, ix := range idxs {
		objects[i] = ix.object
		cost += ix.bytes
		estimate += ix.estimate
	}
	key := fmt.Sprintf("batch:%s..%s:%d", idxs[0].key, idxs[len(idxs)-1].key, len(idxs))
	object := fmt.Sprintf("%d small indexes %s .. %s", len(idxs), idxs[0].object, idxs[len(idxs)-1].object)
	stmt := btreeBatchStatement(fn)
	heapAll := c.r.t.cfg.heapAllIndexed
	return checks.Task{
		Key: key, Object: object, Cost: cost, Estimate: estimate, Statement: resolveQuery + ";\n" + stmt,
		Run: func(ctx context.Context) (checks.Result, error) {
			return c.r.runTask(ctx, sessionOpts{guard: true}, "one of "+strings.Join(objects, ", "), func(s *session, f *findings) (checks.Result, error) {
				all := func(oids []int64, _ []btreeIndex) error {
					_, err := s.tx.ExecContext(ctx, stmt, pq.Array(oids), heapAll)
					return err
				}
				one := func(ix btreeIndex, oid int64) (bool, error) { return c.verify(ctx, s, f, fn, ix, oid, true) }
				return verifyBatch(ctx, s, f, object, idxs, all, one)
			})
		},
	}
}

// verify runs the amcheck function on one index. Corruption errors become
// findings; gone reports an index dropped since it was resolved.
func (c *btreeCheck) verify(ctx context.Context, s *session, f *findings, fn string, ix btreeIndex, oid int64, inSavepoint bool) (gone bool, err error) {
	t := c.r.t
	stmt := btreeStatement(fn)
	t.cfg.logger.Debug("dbscrub: btree", "object", ix.object, "statement", stmt, "heapallindexed", t.cfg.heapAllIndexed)
	exec := func() error {
		_, err := s.tx.ExecContext(ctx, stmt, oid, t.cfg.heapAllIndexed)
		return err
	}
	if inSavepoint {
		err = s.savepoint(ctx, exec)
	} else {
		err = exec()
	}
	if err == nil {
		return false, nil
	}
	if isConnLost(err) || ctx.Err() != nil {
		return false, err
	}
	if isGone(err) {
		return true, nil
	}
	if fd, ok := corruption(err, ix.object); ok {
		f.add(fd)
		return false, nil
	}
	return false, t.taskError(err, ix.object)
}

// btreeStatement verifies one index.
func btreeStatement(fn string) string { return `SELECT ` + fn + `($1::oid::regclass, $2)` }

// btreeBatchStatement verifies a batch of small indexes in one statement.
func btreeBatchStatement(fn string) string {
	return `SELECT ` + fn + `(r.relid::regclass, $2) FROM unnest($1::oid[]) AS r(relid)`
}
