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

// Batching of small relations (heap and btree): a relation smaller than
// chunkSize/batchDivisor is batched; a batch holds at most
// chunkSize/batchTotalDivisor bytes and batchMaxRelations relations.
const (
	batchDivisor      = 16
	batchTotalDivisor = 4
	batchMaxRelations = 200
)

// heapCheck is the "heap" check: amcheck's verify_heapam.
type heapCheck struct{ r *run }

func (c *heapCheck) Name() string { return CheckHeap }

// heapRel is one relation the heap check plans.
type heapRel struct {
	ref     relRef
	display string // quoted, qualified name of the relation itself
	object  string // for reports
	key     string
	bytes   int64
	temp    bool
	toast   bool
	// rowsPerPage is the tuple density from pg_class, for the estimates.
	rowsPerPage float64
}

// toastOwnerJoin joins, to a relation aliased rel, the table that owns it
// when rel is a TOAST table (o.nspname, o.relname, o.qualified; NULLs
// otherwise). A hash join over pg_class, once, not a lookup per TOAST
// table.
func toastOwnerJoin(rel string) string {
	return `LEFT JOIN (
	SELECT oc.reltoastrelid AS toast, onsp.nspname, oc.relname,
		pg_catalog.quote_ident(onsp.nspname) || '.' || pg_catalog.quote_ident(oc.relname) AS qualified
	FROM pg_catalog.pg_class oc JOIN pg_catalog.pg_namespace onsp ON onsp.oid = oc.relnamespace
	WHERE oc.reltoastrelid <> 0) o ON ` + rel + `.relkind = 't' AND o.toast = ` + rel + `.oid`
}

var heapRelsQuery = lockedCTE + `SELECT n.nspname, c.relname,
	COALESCE(o.nspname, n.nspname), COALESCE(o.relname, c.relname),
	pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),
	o.qualified, c.relpersistence = 't',
	` + sizeExpr("c") + `, c.relpages::bigint, c.reltuples::float8
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
` + toastOwnerJoin("c") + `
WHERE c.relkind IN ('r', 't', 'm')
ORDER BY COALESCE(o.qualified, pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname)), c.relkind`

// Plan lists every table, TOAST table and materialized view that passes
// the filters and plans verify_heapam tasks: one per relation, several
// block ranges for relations larger than the chunk size, one batch for many
// small ones. Temporary relations (of other sessions) are skipped.
func (c *heapCheck) Plan(ctx context.Context) ([]checks.Task, error) {
	t := c.r.t
	caps, err := c.r.capabilities(ctx)
	if err != nil {
		return nil, err
	}
	if err := t.requireAmcheck(caps, CheckHeap); err != nil {
		return nil, err
	}
	rels, err := c.r.heapRels.take(ctx, c.relations)
	if err != nil {
		return nil, err
	}
	bs := caps.BlockSize
	chunkBlocks := max(1, t.cfg.chunkSize/bs)
	small := t.cfg.chunkSize / batchDivisor
	batchBytes := t.cfg.chunkSize / batchTotalDivisor
	fn := quoteIdent(caps.AmcheckSchema) + ".verify_heapam"

	var tasks []checks.Task
	batch := &batcher[heapRel]{
		maxBytes: batchBytes, tasks: &tasks,
		one:  func(rel heapRel) checks.Task { return c.wholeTask(fn, rel) },
		many: func(rels []heapRel) checks.Task { return c.batchTask(fn, rels) },
	}
	for _, rel := range rels {
		switch {
		case rel.temp:
			tasks = append(tasks, checks.Task{Key: rel.key, Object: rel.object, Cost: rel.bytes, Skip: "temporary relation of another session"})
		case rel.bytes/bs > chunkBlocks:
			nblocks := rel.bytes / bs
			for start := int64(0); start < nblocks; start += chunkBlocks {
				end := start + chunkBlocks - 1
				open := end >= nblocks-1
				tasks = append(tasks, c.rangeTask(fn, rel, start, end, open, bs, min(end, nblocks-1)-start+1))
			}
		case rel.bytes <= small:
			batch.add(rel, rel.bytes)
		default:
			tasks = append(tasks, c.wholeTask(fn, rel))
		}
	}
	batch.flush()
	return tasks, nil
}

func (c *heapCheck) relations(ctx context.Context) ([]heapRel, error) {
	t := c.r.t
	f := newFilter(&t.cfg)
	s, err := t.begin(ctx, sessionOpts{})
	if err != nil {
		return nil, err
	}
	defer s.close()
	rows, err := s.tx.QueryContext(ctx, heapRelsQuery)
	if err != nil {
		return nil, t.scrub(fmt.Errorf("postgres: heap: listing relations: %s", oneLine(err.Error())))
	}
	defer rows.Close()
	var out []heapRel
	for rows.Next() {
		var schema, name, oschema, oname, display string
		var owner sql.NullString
		var rel heapRel
		var relpages int64
		var reltuples float64
		if err := rows.Scan(&schema, &name, &oschema, &oname, &display, &owner, &rel.temp, &rel.bytes, &relpages, &reltuples); err != nil {
			return nil, fmt.Errorf("postgres: heap: listing relations: %w", err)
		}
		if !f.relationOK(oschema, oname) {
			continue
		}
		rel.rowsPerPage = density(relpages, reltuples, defaultHeapRowsPerPage)
		rel.display = display
		rel.object, rel.key = display, display
		rel.ref = relRef{schema: schema, name: name}
		if owner.Valid {
			rel.toast = true
			rel.object = owner.String + " (TOAST table " + display + ")"
			rel.key = owner.String + ":toast"
			rel.ref = relRef{schema: oschema, name: oname, kind: refToast}
		}
		out = append(out, rel)
	}
	if err := rows.Err(); err != nil {
		return nil, t.scrub(fmt.Errorf("postgres: heap: listing relations: %s", oneLine(err.Error())))
	}
	return out, nil
}

// group is the task group ([checks.Task.Group]) of a table's heap tasks:
// the table, which a heapallindexed index check also reads. TOAST tables
// are not grouped (no index check scans them).
func (rel heapRel) group() string {
	if rel.toast {
		return ""
	}
	return tableGroup(rel.ref.schema, rel.ref.name)
}

// tableGroup names a table as a task group.
func tableGroup(schema, table string) string { return "table " + schema + "." + table }

// heapBatchStatement verifies a batch of small relations in one statement.
func heapBatchStatement(fn string) string {
	return `SELECT r.ord, v.blkno, v.offnum, v.attnum, v.msg FROM unnest($1::oid[]) WITH ORDINALITY AS r(relid, ord) CROSS JOIN LATERAL ` + fn +
		`(r.relid::regclass, on_error_stop => false, check_toast => true, skip => 'none') AS v`
}

func heapStatement(fn string) string {
	return `SELECT blkno, offnum, attnum, msg FROM ` + fn + `($1::oid::regclass, on_error_stop => false, check_toast => true, skip => 'none', startblock => $2, endblock => $3)`
}

// resolveOne returns the relation's current OID, 0 when it is gone.
func resolveOne(ctx context.Context, s *session, ref relRef) (int64, error) {
	oids, err := s.resolve(ctx, []relRef{ref})
	if err != nil {
		return 0, err
	}
	return oids[0], nil
}

func (c *heapCheck) wholeTask(fn string, rel heapRel) checks.Task {
	return checks.Task{
		Key: rel.key, Object: rel.object, Cost: rel.bytes, Group: rel.group(),
		Estimate:  heapEstimate(rel.bytes/c.r.blockSize(), rel.rowsPerPage),
		Statement: resolveQuery + ";\n" + heapStatement(fn) + ` -- $2, $3 NULL: the whole relation`,
		Run: func(ctx context.Context) (checks.Result, error) {
			return c.r.runTask(ctx, sessionOpts{guard: true}, rel.object, func(s *session, f *findings) (checks.Result, error) {
				oid, err := resolveOne(ctx, s, rel.ref)
				if err != nil {
					return checks.Result{}, maybeTaskError(c.r.t, err, rel.object)
				}
				if oid == 0 {
					return checks.Result{}, nil // dropped since planning
				}
				gone, err := c.verify(ctx, s, f, fn, rel, oid, 0, -1)
				if err != nil || gone {
					return checks.Result{}, err
				}
				return checks.Result{Objects: 1, Bytes: rel.bytes}, nil
			})
		},
	}
}

// rangeTask verifies blocks start..end of rel (to the end of the relation
// when open); planned is how many of those blocks the relation had when
// the task was planned (fewer than the range for the last, open one).
func (c *heapCheck) rangeTask(fn string, rel heapRel, start, end int64, open bool, bs, planned int64) checks.Task {
	key := fmt.Sprintf("%s:blocks:%d-%d", rel.key, start, end)
	object := fmt.Sprintf("%s blocks %d-%d", rel.object, start, end)
	if open {
		key = fmt.Sprintf("%s:blocks:%d-", rel.key, start)
		object = fmt.Sprintf("%s blocks %d-end", rel.object, start)
	}
	last := end
	if open {
		last = -1
	}
	return checks.Task{
		Key: key, Object: object, Cost: planned * bs, Group: rel.group(),
		Estimate:  heapEstimate(planned, rel.rowsPerPage),
		Statement: resolveQuery + ";\n" + heapStatement(fn) + fmt.Sprintf(" -- $2 = %d, $3 = min(%d, blocks - 1)", start, end),
		Run: func(ctx context.Context) (checks.Result, error) {
			return c.r.runTask(ctx, sessionOpts{guard: true}, object, func(s *session, f *findings) (checks.Result, error) {
				oid, err := resolveOne(ctx, s, rel.ref)
				if err != nil {
					return checks.Result{}, maybeTaskError(c.r.t, err, rel.object)
				}
				if oid == 0 {
					return checks.Result{}, nil // dropped since planning
				}
				nblocks, gone, err := c.nblocks(ctx, s, rel, oid)
				if err != nil || gone || start >= nblocks {
					// Gone, or shrank below this range since planning:
					// nothing left to verify here.
					return checks.Result{}, err
				}
				stop := nblocks - 1
				if last >= 0 {
					stop = min(last, stop)
				}
				gone, err = c.verify(ctx, s, f, fn, rel, oid, start, stop)
				if err != nil || gone {
					return checks.Result{}, err
				}
				res := checks.Result{Bytes: (stop - start + 1) * bs}
				if start == 0 {
					res.Objects = 1
				}
				return res, nil
			})
		},
	}
}

func (c *heapCheck) batchTask(fn string, rels []heapRel) checks.Task {
	var cost int64
	var estimate time.Duration
	for _, r := range rels {
		cost += r.bytes
		estimate += heapEstimate(r.bytes/c.r.blockSize(), r.rowsPerPage)
	}
	key := fmt.Sprintf("batch:%s..%s:%d", rels[0].key, rels[len(rels)-1].key, len(rels))
	object := fmt.Sprintf("%d small relations %s .. %s", len(rels), rels[0].object, rels[len(rels)-1].object)
	stmt := heapBatchStatement(fn)
	return checks.Task{
		Key: key, Object: object, Cost: cost, Estimate: estimate, Statement: resolveQuery + ";\n" + stmt,
		Run: func(ctx context.Context) (checks.Result, error) {
			crashObject := "one of " + strings.Join(objectsOf(rels), ", ")
			return c.r.runTask(ctx, sessionOpts{guard: true}, crashObject, func(s *session, f *findings) (checks.Result, error) {
				all := func(oids []int64, live []heapRel) error {
					rows, err := s.tx.QueryContext(ctx, stmt, pq.Array(oids))
					if err != nil {
						return err
					}
					defer rows.Close()
					for rows.Next() {
						var ord int64
						var blk, off, att sql.NullInt64
						var msg string
						if err := rows.Scan(&ord, &blk, &off, &att, &msg); err != nil {
							return err
						}
						if ord >= 1 && ord <= int64(len(live)) {
							f.add(heapFinding(live[ord-1], blk, off, att, msg))
						}
					}
					return rows.Err()
				}
				one := func(rel heapRel, oid int64) (bool, error) { return c.verify(ctx, s, f, fn, rel, oid, 0, -1) }
				return verifyBatch(ctx, s, f, object, rels, all, one)
			})
		},
	}
}

func objectsOf(rels []heapRel) []string {
	out := make([]string, len(rels))
	for i, r := range rels {
		out[i] = r.object
	}
	return out
}

// nblocks returns the relation's current size in blocks; gone reports that
// the relation no longer exists.
func (c *heapCheck) nblocks(ctx context.Context, s *session, rel heapRel, oid int64) (n int64, gone bool, err error) {
	var size sql.NullInt64
	err = s.tx.QueryRowContext(ctx, `SELECT pg_catalog.pg_relation_size($1::oid::regclass) / pg_catalog.current_setting('block_size')::bigint`, oid).Scan(&size)
	if err != nil {
		if isConnLost(err) {
			return 0, false, err
		}
		return 0, false, c.r.t.taskError(err, rel.object)
	}
	if !size.Valid {
		return 0, true, nil
	}
	return size.Int64, false, nil
}

// verify runs verify_heapam on blocks start..stop of rel (stop < 0: to the
// end) and adds what it reports to f. When reading a block raises an error
// (a checksum failure, a short read), that error becomes a finding and
// verification goes on after the block. gone reports that the relation no
// longer exists (dropped since it was resolved): nothing to verify.
func (c *heapCheck) verify(ctx context.Context, s *session, f *findings, fn string, rel heapRel, oid, start, stop int64) (gone bool, err error) {
	t := c.r.t
	stmt := heapStatement(fn)
	cur := start
	var nblocks int64 = -1
	for attempt := 0; attempt < maxFindingsPerTask; attempt++ {
		var startArg, stopArg any
		if cur > 0 {
			startArg = cur
		}
		if stop >= 0 {
			stopArg = stop
		}
		t.cfg.logger.Debug("dbscrub: heap", "object", rel.object, "statement", stmt, "startblock", startArg, "endblock", stopArg)
		err := s.savepoint(ctx, func() error {
			rows, err := s.tx.QueryContext(ctx, stmt, oid, startArg, stopArg)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var blk, off, att sql.NullInt64
				var msg string
				if err := rows.Scan(&blk, &off, &att, &msg); err != nil {
					return err
				}
				f.add(heapFinding(rel, blk, off, att, msg))
			}
			return rows.Err()
		})
		if err == nil {
			return false, nil
		}
		if isConnLost(err) || ctx.Err() != nil {
			return false, err
		}
		if isGone(err) {
			return true, nil
		}
		if se, ok := asServerError(err); ok && strings.Contains(se.message, "block number must be between") {
			// The relation shrank since its size was read: clamp again.
			n, g, nerr := c.nblocks(ctx, s, rel, oid)
			if nerr != nil || g {
				return g, nerr
			}
			if n == nblocks || cur >= n {
				return false, nil
			}
			nblocks = n
			if stop >= n {
				stop = n - 1
			}
			continue
		}
		fd, ok := corruption(err, rel.object)
		if !ok {
			return false, t.taskError(err, rel.object)
		}
		blk, hasBlock := blockOf(err)
		if !hasBlock || blk < cur || (stop >= 0 && blk >= stop) {
			if !hasBlock && fd.Code != "58P01" {
				fd.Message += " (verification of the rest of the relation stopped here)"
			}
			f.add(fd)
			return false, nil
		}
		f.add(fd)
		// Go on after the damaged block.
		if nblocks < 0 {
			n, g, nerr := c.nblocks(ctx, s, rel, oid)
			if nerr != nil || g {
				return g, nerr
			}
			nblocks = n
		}
		cur = blk + 1
		if cur >= nblocks {
			return false, nil
		}
	}
	return false, nil
}

func heapFinding(rel heapRel, blk, off, att sql.NullInt64, msg string) checks.Finding {
	var loc checks.Location
	if blk.Valid {
		loc.Page = checks.Int(blk.Int64)
	}
	if off.Valid {
		loc.Offset = checks.Int(off.Int64)
	}
	if att.Valid {
		loc.Attribute = checks.Int(att.Int64)
	}
	remedy := "the table's data is damaged at this tuple: save a copy of the data directory (server stopped) before changing anything; restore the affected rows from a backup or a replica"
	switch {
	case rel.toast:
		remedy = "the TOAST data (large values) of " + strings.TrimSuffix(rel.key, ":toast") + " is damaged: save a copy of the data directory (server stopped) before changing anything; find the affected rows and restore their values from a backup or a replica"
	case blk.Valid && off.Valid:
		remedy = fmt.Sprintf("inspect the row with SELECT * FROM %s WHERE ctid = '(%d,%d)'; ", rel.display, blk.Int64, off.Int64) + remedy +
			"; as a last resort (after a backup) pg_surgery's heap_force_kill removes a tuple that cannot be read"
	}
	return checks.Finding{
		Severity: checks.StatusCorrupt,
		Object:   rel.object,
		Location: loc,
		Code:     "verify_heapam",
		Message:  msg,
		Remedy:   remedy,
	}
}

// lockedCTE lists the relations someone holds or waits for an
// AccessExclusiveLock on (DDL). Planning must not queue behind such a lock:
// pg_relation_size takes an AccessShareLock, so for these relations the
// size comes from pg_class.relpages (as of the last VACUUM or ANALYZE).
const lockedCTE = `WITH locked AS (
	SELECT DISTINCT l.relation FROM pg_catalog.pg_locks l
	WHERE l.mode = 'AccessExclusiveLock' AND l.locktype = 'relation' AND l.relation IS NOT NULL
		AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()))
`

// sizeExpr is the size in bytes of pg_class row alias, without waiting for
// a lock (see lockedCTE).
func sizeExpr(alias string) string {
	return `CASE WHEN ` + alias + `.oid IN (SELECT relation FROM locked)
		THEN GREATEST(` + alias + `.relpages, 0)::bigint * pg_catalog.current_setting('block_size')::bigint
		ELSE COALESCE(pg_catalog.pg_relation_size(` + alias + `.oid), 0) END`
}
