package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/lib/pq"

	"github.com/dbscrub/dbscrub/checks"
)

// crossCheck is the "crosscheck" check: for every table, it counts the rows
// a sequential scan finds and the rows reachable through each btree index
// (an index-only scan), inside one REPEATABLE READ snapshot, and reports a
// mismatch as corruption.
//
// It finds damage that amcheck in PostgreSQL 15 cannot see: a heap page
// zeroed by a torn write or a bad disk (a zero page is valid and empty to
// verify_heapam and to a sequential scan, even with checksums), and a heap
// file truncated by a failed copy (verify_heapam only looks at the blocks
// that exist). The index still points at the lost rows.
//
// Limitation: an index-only scan answers from the index alone only for heap
// pages marked all-visible in the visibility map (set by VACUUM). For other
// pages it reads the heap tuple, and a row lost from such a page is simply
// not visible there either, so both counts agree (if the page is missing
// altogether, the read fails, which is reported as corruption). The check
// therefore sees lost rows on pages that were all-visible, which on a
// vacuumed table is most of them.
//
// Indexes the planner cannot read with an Index Only Scan (expression
// indexes, non-btree indexes, invalid indexes) are not cross-checked; each
// is listed as a skipped task with the reason. Partial indexes are compared
// with the rows matching their predicate. The check needs SELECT on each
// table (tables the role cannot read are skipped with that reason) and takes
// only AccessShareLocks. Each index scan is forced with SET LOCAL
// enable_seqscan, enable_bitmapscan, enable_indexscan and enable_sort off
// and an ORDER BY on the index's key, and the plan is verified with EXPLAIN
// before counting.
type crossCheck struct{ r *run }

func (c *crossCheck) Name() string { return CheckCrosscheck }

// crossTable is one table the crosscheck verifies.
type crossTable struct {
	regname string
	bytes   int64
	indexes []crossIndex
}

// crossIndex is one index of a table, with the query that counts through it.
type crossIndex struct {
	name    string // unqualified, as EXPLAIN shows it
	regname string
	bytes   int64
	pred    string // partial index predicate, "" when none
	query   string // SELECT count(*) through the index
}

var crossQuery = lockedCTE + `SELECT n.nspname, c.relname,
	pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),
	c.relpersistence = 't', c.relispopulated,
	pg_catalog.has_table_privilege(c.oid, 'SELECT') AND pg_catalog.has_schema_privilege(n.oid, 'USAGE'),
	` + sizeExpr("c") + `,
	ic.relname,
	pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(ic.relname),
	am.amname,
	i.indisvalid AND i.indisready AND i.indislive,
	COALESCE(` + sizeExpr("ic") + `, 0),
	pg_catalog.pg_get_expr(i.indpred, i.indrelid),
	0 = ANY (i.indkey::int2[]),
	c.oid IN (SELECT relation FROM locked),
	ARRAY(SELECT pg_catalog.pg_get_indexdef(i.indexrelid, k, true)
		FROM pg_catalog.generate_series(1, i.indnkeyatts) AS k ORDER BY k),
	ARRAY(SELECT pg_catalog.pg_get_indexdef(i.indexrelid, k, true)
		|| CASE WHEN i.indcollation[k-1] <> 0 AND i.indcollation[k-1] IS DISTINCT FROM a.attcollation
			THEN ' COLLATE ' || pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname) ELSE '' END
		|| CASE WHEN opc.opcdefault THEN CASE WHEN (i.indoption[k-1] & 1) <> 0 THEN ' DESC' ELSE ' ASC' END
			ELSE COALESCE(' USING OPERATOR(' || pg_catalog.quote_ident(opn.nspname) || '.' || op.oprname || ')', ' ASC') END
		|| CASE WHEN (i.indoption[k-1] & 2) <> 0 THEN ' NULLS FIRST' ELSE ' NULLS LAST' END
		FROM pg_catalog.generate_series(1, i.indnkeyatts) AS k
		LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[k-1] AND i.indkey[k-1] <> 0
		LEFT JOIN pg_catalog.pg_collation co ON co.oid = i.indcollation[k-1]
		LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
		LEFT JOIN pg_catalog.pg_opclass opc ON opc.oid = i.indclass[k-1]
		LEFT JOIN pg_catalog.pg_amop ao ON ao.amopfamily = opc.opcfamily AND ao.amoplefttype = opc.opcintype
			AND ao.amoprighttype = opc.opcintype AND ao.amoppurpose = 's'
			AND ao.amopstrategy = CASE WHEN (i.indoption[k-1] & 1) <> 0 THEN 5 ELSE 1 END
		LEFT JOIN pg_catalog.pg_operator op ON op.oid = ao.amopopr
		LEFT JOIN pg_catalog.pg_namespace opn ON opn.oid = op.oprnamespace
		ORDER BY k)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_index i ON i.indrelid = c.oid
LEFT JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
LEFT JOIN pg_catalog.pg_am am ON am.oid = ic.relam
WHERE c.relkind IN ('r', 'm')
ORDER BY 3, 9`

// Session settings for the two kinds of count.
var (
	seqScanSettings = []setting{
		{"jit", "off"}, // the disabled plan types make costs huge, which would trigger JIT
		{"enable_indexscan", "off"}, {"enable_indexonlyscan", "off"}, {"enable_bitmapscan", "off"},
	}
	indexScanSettings = []setting{
		{"enable_seqscan", "off"}, {"enable_bitmapscan", "off"}, {"enable_indexscan", "off"},
		{"enable_sort", "off"}, {"enable_indexonlyscan", "on"},
	}
)

// Plan lists the tables and their indexes, checks with EXPLAIN which
// indexes can be read with an Index Only Scan, and plans one task per table.
func (c *crossCheck) Plan(ctx context.Context) ([]checks.Task, error) {
	t := c.r.t
	caps, err := c.r.capabilities(ctx)
	if err != nil {
		return nil, err
	}
	if caps.ServerVersionNum < 110000 {
		return nil, checks.Skip("the crosscheck needs PostgreSQL 11 or later; the server runs %s", caps.ServerVersion)
	}
	f := newFilter(&t.cfg)
	s, err := t.begin(ctx, sessionOpts{repeatableRead: true, extra: append(append([]setting{}, seqScanSettings...), indexScanSettings...)})
	if err != nil {
		return nil, err
	}
	defer s.close()

	type row struct {
		schema, table, treg        string
		temp, populated, canSelect bool
		tbytes                     int64
		iname, ireg, am            sql.NullString
		ivalid, hasExpr            sql.NullBool
		locked                     bool
		ibytes                     sql.NullInt64
		pred                       sql.NullString
		cols, order                []string
	}
	rows, err := s.tx.QueryContext(ctx, crossQuery)
	if err != nil {
		return nil, t.scrub(fmt.Errorf("postgres: crosscheck: listing tables: %s", oneLine(err.Error())))
	}
	var list []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.schema, &r.table, &r.treg, &r.temp, &r.populated, &r.canSelect, &r.tbytes,
			&r.iname, &r.ireg, &r.am, &r.ivalid, &r.ibytes, &r.pred, &r.hasExpr, &r.locked, pq.Array(&r.cols), pq.Array(&r.order)); err != nil {
			rows.Close()
			return nil, fmt.Errorf("postgres: crosscheck: listing tables: %w", err)
		}
		list = append(list, r)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, t.scrub(fmt.Errorf("postgres: crosscheck: listing tables: %s", oneLine(err.Error())))
	}
	rows.Close()

	var tasks []checks.Task
	for i := 0; i < len(list); {
		j := i
		for j < len(list) && list[j].treg == list[i].treg {
			j++
		}
		group := list[i:j]
		i = j
		tr := group[0]
		if !f.relationOK(tr.schema, tr.table) {
			continue
		}
		skipTable := ""
		switch {
		case tr.temp:
			skipTable = "temporary relation of another session"
		case !tr.populated:
			skipTable = "materialized view is not populated"
		case !tr.canSelect:
			skipTable = "no SELECT privilege on the table (or no USAGE on its schema): the crosscheck reads it (GRANT SELECT and USAGE, or pg_read_all_data)"
		}
		tbl := crossTable{regname: tr.treg, bytes: tr.tbytes}
		var skipped []checks.Task
		for _, r := range group {
			if !r.iname.Valid || skipTable != "" {
				continue
			}
			if !f.relationOK(r.schema, r.iname.String, r.table) {
				continue
			}
			skip := func(reason string) {
				skipped = append(skipped, checks.Task{Key: r.ireg.String, Object: r.ireg.String, Cost: r.ibytes.Int64, Skip: reason})
			}
			switch {
			case r.am.String != "btree":
				skip(fmt.Sprintf("not a btree index (%s): the crosscheck counts only through btree indexes", r.am.String))
				continue
			case !r.ivalid.Bool:
				skip(skipInvalidIndex)
				continue
			}
			ix := crossIndex{name: r.iname.String, regname: r.ireg.String, bytes: r.ibytes.Int64, pred: r.pred.String}
			ix.query = indexCountQuery(tr.treg, ix.pred, r.cols, r.order)
			if r.locked {
				// EXPLAIN would queue behind the DDL lock; the task
				// verifies the plan when it runs.
				if r.hasExpr.Bool {
					skip("expression index: the planner cannot read it with an Index Only Scan")
				} else {
					tbl.indexes = append(tbl.indexes, ix)
				}
				continue
			}
			why, err := c.explain(ctx, s, ix)
			if _, bad := corruption(err, ix.regname); bad {
				// The table or index is damaged: let the task run and
				// report it.
				tbl.indexes = append(tbl.indexes, ix)
				continue
			}
			if err != nil {
				return nil, maybeConnectError(t, err)
			}
			if why != "" {
				if r.hasExpr.Bool {
					skip("expression index: the planner cannot read it with an Index Only Scan (" + why + ")")
				} else {
					skip("the planner cannot read it with an Index Only Scan (" + why + ")")
				}
				continue
			}
			tbl.indexes = append(tbl.indexes, ix)
		}
		cost := tbl.bytes
		for _, ix := range tbl.indexes {
			cost += ix.bytes
		}
		switch {
		case skipTable != "":
			tasks = append(tasks, checks.Task{Key: tr.treg, Object: tr.treg, Cost: tr.tbytes, Skip: skipTable})
		case len(tbl.indexes) == 0 && len(skipped) == 0:
			tasks = append(tasks, checks.Task{Key: tr.treg, Object: tr.treg, Cost: tr.tbytes, Skip: "no btree index to cross-check"})
		case len(tbl.indexes) == 0:
			tasks = append(tasks, checks.Task{Key: tr.treg, Object: tr.treg, Cost: tr.tbytes, Skip: "none of its indexes can be cross-checked (see the skipped index tasks)"})
		default:
			tasks = append(tasks, c.tableTask(tbl, cost))
		}
		tasks = append(tasks, skipped...)
	}
	return tasks, nil
}

// indexCountQuery builds the query that counts the rows reachable through
// an index: its key columns in index order, with its predicate.
func indexCountQuery(table, pred string, cols, order []string) string {
	q := "SELECT count(*) FROM (SELECT " + strings.Join(cols, ", ") + " FROM ONLY " + table
	if pred != "" {
		q += " WHERE " + pred
	}
	return q + " ORDER BY " + strings.Join(order, ", ") + ") AS s"
}

// heapCountQuery counts the table's rows with a sequential scan, and the
// rows matching each partial index predicate.
func heapCountQuery(tbl crossTable) string {
	var b strings.Builder
	b.WriteString("SELECT count(*)")
	for _, ix := range tbl.indexes {
		if ix.pred != "" {
			b.WriteString(", count(*) FILTER (WHERE " + ix.pred + ")")
		}
	}
	b.WriteString(" FROM ONLY " + tbl.regname)
	return b.String()
}

type planNode struct {
	NodeType     string     `json:"Node Type"`
	IndexName    string     `json:"Index Name"`
	RelationName string     `json:"Relation Name"`
	Plans        []planNode `json:"Plans"`
}

// explain returns "" when the index's count query is planned as an Index
// Only Scan on that index and nothing else reads the table, and otherwise
// what the planner does instead.
// A lost connection, a cancelled context and an error that means damage
// (the table's file is missing, say) are returned as errors.
func (c *crossCheck) explain(ctx context.Context, s *session, ix crossIndex) (string, error) {
	var out string
	err := s.savepoint(ctx, func() error {
		return s.tx.QueryRowContext(ctx, "EXPLAIN (FORMAT JSON) "+ix.query).Scan(&out)
	})
	if err != nil {
		if isConnLost(err) || ctx.Err() != nil {
			return "", err
		}
		if _, bad := corruption(err, ix.regname); bad {
			return "", err
		}
		if se, ok := asServerError(err); ok {
			return "the query through the index cannot be planned: " + oneLine(se.message), nil
		}
		return "EXPLAIN failed: " + oneLine(err.Error()), nil
	}
	var plans []struct {
		Plan planNode `json:"Plan"`
	}
	if err := json.Unmarshal([]byte(out), &plans); err != nil || len(plans) == 0 {
		return "cannot read the EXPLAIN output", nil
	}
	var scans []planNode
	var walk func(n planNode)
	walk = func(n planNode) {
		if n.RelationName != "" || n.IndexName != "" {
			scans = append(scans, n)
		}
		for _, p := range n.Plans {
			walk(p)
		}
	}
	walk(plans[0].Plan)
	if len(scans) == 1 && scans[0].NodeType == "Index Only Scan" && scans[0].IndexName == ix.name {
		return "", nil
	}
	if len(scans) == 1 && scans[0].NodeType == "Index Only Scan" {
		return "the planner reads the equivalent index " + scans[0].IndexName + " instead: a duplicate index?", nil
	}
	var got []string
	for _, n := range scans {
		d := n.NodeType
		if n.IndexName != "" {
			d += " using " + n.IndexName
		}
		got = append(got, d)
	}
	return "plan: " + strings.Join(got, ", "), nil
}

func (c *crossCheck) tableTask(tbl crossTable, cost int64) checks.Task {
	t := c.r.t
	var stmt strings.Builder
	stmt.WriteString(heapCountQuery(tbl))
	for _, ix := range tbl.indexes {
		stmt.WriteString("; " + ix.query)
	}
	return checks.Task{
		Key: tbl.regname, Object: tbl.regname, Cost: cost, Statement: stmt.String(),
		Run: func(ctx context.Context) (checks.Result, error) {
			o := sessionOpts{repeatableRead: true, guard: true, extra: seqScanSettings}
			return c.r.runTask(ctx, o, tbl.regname, func(s *session, f *findings) (checks.Result, error) {
				// 1. The heap, with a sequential scan: all rows, and the
				// rows matching each partial index's predicate.
				npred := 0
				for _, ix := range tbl.indexes {
					if ix.pred != "" {
						npred++
					}
				}
				counts := make([]int64, 1+npred)
				q := heapCountQuery(tbl)
				t.cfg.logger.Debug("dbscrub: crosscheck", "object", tbl.regname, "statement", q)
				err := s.savepoint(ctx, func() error {
					dest := make([]any, len(counts))
					for i := range counts {
						dest[i] = &counts[i]
					}
					return s.tx.QueryRowContext(ctx, q).Scan(dest...)
				})
				if err != nil {
					if isConnLost(err) || ctx.Err() != nil {
						return checks.Result{}, err
					}
					if se, ok := asServerError(err); ok && se.code == "42P01" {
						return checks.Result{}, nil // dropped since planning
					}
					if fd, ok := corruption(err, tbl.regname); ok {
						fd.Message = "reading table " + tbl.regname + " with a sequential scan failed: " + fd.Message
						f.add(fd)
						return checks.Result{}, nil
					}
					return checks.Result{}, t.taskError(err, tbl.regname)
				}
				heapRows := counts[0]
				predRows := counts[1:]

				// 2. Each index, with a verified Index Only Scan.
				if err := s.set(ctx, indexScanSettings...); err != nil {
					return checks.Result{}, maybeTaskError(t, err, tbl.regname)
				}
				res := checks.Result{Objects: 1, Bytes: tbl.bytes}
				var notVerified []string
				pi := 0
				for _, ix := range tbl.indexes {
					want := heapRows
					if ix.pred != "" {
						want = predRows[pi]
						pi++
					}
					why, err := c.explain(ctx, s, ix)
					if fd, bad := corruption(err, ix.regname); bad {
						fd.Message = "planning a read of table " + tbl.regname + " through index " + ix.regname + " failed: " + fd.Message
						f.add(fd)
						continue
					}
					if err != nil {
						return res, err
					}
					if why != "" {
						notVerified = append(notVerified, ix.regname+" ("+why+")")
						continue
					}
					t.cfg.logger.Debug("dbscrub: crosscheck", "object", ix.regname, "statement", ix.query)
					var got int64
					err = s.savepoint(ctx, func() error {
						return s.tx.QueryRowContext(ctx, ix.query).Scan(&got)
					})
					if err != nil {
						if isConnLost(err) || ctx.Err() != nil {
							return res, err
						}
						if fd, ok := corruption(err, ix.regname); ok {
							fd.Message = "reading table " + tbl.regname + " through index " + ix.regname + " failed: " + fd.Message
							f.add(fd)
							continue
						}
						return res, t.taskError(err, ix.regname)
					}
					res.Objects++
					res.Bytes += ix.bytes
					if got != want {
						f.add(mismatchFinding(tbl.regname, ix, got, want))
					}
				}
				if len(notVerified) > 0 {
					return res, fmt.Errorf("postgres: crosscheck of %s: could not read %d of its indexes with an Index Only Scan any more (the plan changed since planning): %s",
						tbl.regname, len(notVerified), strings.Join(notVerified, "; "))
				}
				return res, nil
			})
		},
	}
}

// maybeConnectError describes an error of a planning query.
func maybeConnectError(t *Target, err error) error {
	if isConnLost(err) {
		return t.connectError(err)
	}
	return t.scrub(fmt.Errorf("postgres: crosscheck: %s", oneLine(err.Error())))
}

func maybeTaskError(t *Target, err error, object string) error {
	if isConnLost(err) {
		return err
	}
	return t.taskError(err, object)
}

func mismatchFinding(table string, ix crossIndex, indexRows, heapRows int64) checks.Finding {
	scope := "a sequential scan of table " + table + " finds"
	if ix.pred != "" {
		scope = "a sequential scan of table " + table + " finds, among rows matching the index predicate (" + ix.pred + "),"
	}
	msg := fmt.Sprintf("index %s reaches %d rows with an index-only scan, but %s %d rows in the same snapshot", ix.regname, indexRows, scope, heapRows)
	var remedy string
	if indexRows > heapRows {
		msg += fmt.Sprintf(": %d rows the index points to are missing from the table (a zeroed or truncated heap page, which amcheck cannot see)", indexRows-heapRows)
		remedy = "the table has lost rows that the index still points to (a heap page zeroed by a torn write or bad storage, or a data file truncated by a failed copy): save a copy of the data directory (server stopped) first; do not VACUUM, REINDEX or write to the table, which would throw away the evidence; the index still holds the key columns of the lost rows, readable with this index-only scan (SET enable_seqscan = off); restore the table from a backup or a replica; check the storage and the kernel log"
	} else {
		msg += fmt.Sprintf(": %d rows of the table are missing from the index", heapRows-indexRows)
		remedy = "the index is missing entries: run the btree check with WithHeapAllIndexed on " + ix.regname + " and the heap check on " + table + "; if the table is sound, REINDEX INDEX CONCURRENTLY " + ix.regname + " rebuilds the index"
	}
	return checks.Finding{
		Severity: checks.StatusCorrupt,
		Object:   ix.regname,
		Code:     "crosscheck_count_mismatch",
		Message:  msg,
		Remedy:   remedy,
	}
}
