package sqlite

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/dbscrub/dbscrub/checks"
)

// integrityCheck runs PRAGMA integrity_check or quick_check over the whole
// main database as one task (see the package documentation for why it is
// not split per table).
type integrityCheck struct{ t *Target }

func (c *integrityCheck) Name() string { return CheckIntegrity }

func (c *integrityCheck) pragma() string {
	if c.t.cfg.quick {
		return "quick_check"
	}
	return "integrity_check"
}

// Plan returns one task for the whole file, its cost the database size
// (page_count × page_size). A file SQLite cannot read because it is damaged
// still gets its task, which reports the damage; a missing or unreadable
// file, or a lock, makes Plan fail.
func (c *integrityCheck) Plan(ctx context.Context) ([]checks.Task, error) {
	t := c.t
	size, err := t.fileSize()
	if err != nil {
		return nil, err
	}
	st, err := t.stats(ctx)
	if err != nil {
		if kind, _ := classify(err); kind != kindCorrupt || ctx.Err() != nil {
			return nil, t.stmtError(ctx, "reading the page count", err)
		}
		st = dbStats{} // damaged: the task reports it
	}
	cost := st.pageCount * st.pageSize
	if cost == 0 {
		cost = size
	}
	stmt := fmt.Sprintf("PRAGMA main.%s(%d)", c.pragma(), t.cfg.maxErrors)
	return []checks.Task{{
		Key:       "main",
		Object:    t.info.Database,
		Cost:      cost,
		Statement: stmt,
		Run: func(ctx context.Context) (checks.Result, error) {
			return c.run(ctx, stmt, st, cost)
		},
	}}, nil
}

func (c *integrityCheck) run(ctx context.Context, stmt string, st dbStats, cost int64) (checks.Result, error) {
	t := c.t
	size, err := t.fileSize()
	if err != nil {
		return checks.Result{}, err
	}
	lines, err := c.query(ctx, stmt)
	var names *schemaNames
	if len(lines) > 0 {
		names = t.schemaNames(ctx) // best effort: a damaged schema leaves roots unnamed
	}
	var res checks.Result
	for _, l := range lines {
		res.Findings = append(res.Findings, integrityFinding(l, names, t.info.Database))
	}
	t.nameOwners(ctx, res.Findings)
	if err != nil {
		kind, code := classify(err)
		if kind != kindCorrupt || ctx.Err() != nil {
			return res, t.stmtError(ctx, c.pragma(), err)
		}
		what := "SQLite cannot read the database"
		if len(lines) > 0 {
			what = c.pragma() + " stopped early, so later problems are not reported"
		}
		res.Findings = append(res.Findings, t.unreadable(t.info.Database, what, err, code))
		return res, nil
	}
	if len(lines) >= t.cfg.maxErrors {
		res.Findings = append(res.Findings, checks.Finding{
			Severity: checks.StatusWarning,
			Object:   t.info.Database,
			Code:     "max_errors",
			Message:  fmt.Sprintf("and possibly more: %s stopped after %d errors", c.pragma(), t.cfg.maxErrors),
			Remedy:   "Raise the limit with WithMaxErrors to see every problem.",
		})
	}
	if t.path != "" && size == 0 && st.pageCount == 0 {
		res.Findings = append(res.Findings, checks.Finding{
			Severity: checks.StatusWarning,
			Object:   t.info.Database,
			Code:     "empty_file",
			Message:  "the database file is empty (0 bytes): SQLite treats it as a new, empty database, so there was nothing to verify",
			Remedy:   "If this file should hold data, it was truncated or replaced: restore it from a backup.",
		})
	}
	res.Objects, res.Bytes = st.objects, cost
	return res, nil
}

// query runs the pragma and returns one line per problem: "ok" is dropped,
// the b-tree checker's multi-line row is split, and its
// "*** in database main ***" heading is dropped.
func (c *integrityCheck) query(ctx context.Context, stmt string) ([]string, error) {
	rows, err := c.t.db.QueryContext(ctx, stmt)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return lines, err
		}
		if s == "ok" {
			continue
		}
		for l := range strings.SplitSeq(s, "\n") {
			l = strings.TrimSpace(l)
			if l == "" || reDatabaseHeading.MatchString(l) {
				continue
			}
			lines = append(lines, l)
		}
	}
	return lines, rows.Err()
}

// dbStats is what planning learns about the file.
type dbStats struct {
	pageCount, pageSize int64
	objects             int64 // tables and indexes
}

func (t *Target) stats(ctx context.Context) (dbStats, error) {
	var st dbStats
	if err := t.db.QueryRowContext(ctx, "PRAGMA main.page_count").Scan(&st.pageCount); err != nil {
		return st, err
	}
	if err := t.db.QueryRowContext(ctx, "PRAGMA main.page_size").Scan(&st.pageSize); err != nil {
		return st, err
	}
	err := t.db.QueryRowContext(ctx, "SELECT count(*) FROM main.sqlite_schema WHERE type IN ('table', 'index') AND rootpage > 0").Scan(&st.objects)
	return st, err
}

// ownerLookupTimeout bounds the dbstat scan of nameOwners.
const ownerLookupTimeout = 10 * time.Second

// nameOwners names the table or index that owns the page of findings that
// name a page but no object ("Fragmentation of 0 bytes reported as 1 on
// page 9"), with one scan of the dbstat table over the pages in question.
// dbstat walks every b-tree, so this runs only when such findings exist,
// and it is best effort: bounded in time, and a damaged b-tree may stop it.
func (t *Target) nameOwners(ctx context.Context, fs []checks.Finding) {
	var pages []any
	seen := map[int64]bool{}
	for _, f := range fs {
		if f.Object == t.info.Database && f.Location.Page != nil && !seen[*f.Location.Page] {
			seen[*f.Location.Page] = true
			pages = append(pages, *f.Location.Page)
		}
	}
	if len(pages) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, ownerLookupTimeout)
	defer cancel()
	owner := map[int64]string{}
	q := "SELECT name, pageno FROM dbstat('main') WHERE pageno IN (?" + strings.Repeat(", ?", len(pages)-1) + ")"
	rows, err := t.db.QueryContext(ctx, q, pages...)
	if err != nil {
		return
	}
	defer rows.Close()
	for rows.Next() {
		var (
			name string
			pg   int64
		)
		if rows.Scan(&name, &pg) == nil {
			owner[pg] = name
		}
	}
	for i := range fs {
		if fs[i].Object == t.info.Database && fs[i].Location.Page != nil {
			if n, ok := owner[*fs[i].Location.Page]; ok {
				fs[i].Object = n
			}
		}
	}
}

// schemaNames maps b-tree root pages to table and index names.
type schemaNames struct {
	byRoot map[int64]string
	tables []string
}

// schemaNames reads sqlite_schema; it returns an empty map when the schema
// cannot be read.
func (t *Target) schemaNames(ctx context.Context) *schemaNames {
	s := &schemaNames{byRoot: map[int64]string{1: "sqlite_schema"}}
	rows, err := t.db.QueryContext(ctx, "SELECT type, name, rootpage FROM main.sqlite_schema WHERE rootpage > 0")
	if err != nil {
		return s
	}
	defer rows.Close()
	for rows.Next() {
		var typ, name string
		var root int64
		if rows.Scan(&typ, &name, &root) != nil {
			continue
		}
		s.byRoot[root] = name
		if typ == "table" {
			s.tables = append(s.tables, name)
		}
	}
	return s
}

func (s *schemaNames) root(root int64) (string, bool) {
	if s == nil {
		return "", false
	}
	n, ok := s.byRoot[root]
	return n, ok
}

// table returns the table in "T.C" (a message naming a column), preferring
// the longest known table name, since both names may contain dots.
func (s *schemaNames) table(qualified string) string {
	best := ""
	if s != nil {
		for _, t := range s.tables {
			if strings.HasPrefix(qualified, t+".") && len(t) > len(best) {
				best = t
			}
		}
	}
	if best == "" {
		best, _, _ = strings.Cut(qualified, ".")
	}
	return best
}

// The lines PRAGMA integrity_check reports (SQLite 3.53; the older "On tree
// page" forms come from older libraries behind New).
var (
	reDatabaseHeading = regexp.MustCompile(`^\*\*\* in database \S+ \*\*\*$`)
	reTree            = regexp.MustCompile(`^Tree (\d+) page (\d+)(?: cell (\d+)| right child)?: `)
	reOnTreePage      = regexp.MustCompile(`^On tree page (\d+) cell (\d+): `)
	reOnPage          = regexp.MustCompile(`^On page (\d+) at right child: `)
	rePage            = regexp.MustCompile(`^Page (\d+): `)
	reFreelist        = regexp.MustCompile(`^(?:Main )?[Ff]reelist: `)
	rePageNumber      = regexp.MustCompile(`\bpage (?:number )?(\d+)\b`)
	rePtrmap          = regexp.MustCompile(`^(?:Failed to read ptrmap key|Bad ptr map entry key)=(\d+)`)
	reIndex           = regexp.MustCompile(`^(?:wrong # of entries in index |non-unique entry in index |row \d+ missing from index |row \d+ values differ from index |rowid not at end-of-record for row \d+ of index )(.+)$`)
	reIndexImprecise  = regexp.MustCompile(`^index (.+) stores an imprecise floating-point value for row `)
	reColumnValue     = regexp.MustCompile(`^(?:NULL|non-\S+|NUMERIC|TEXT) value in (.+)$`)
	reTableLine       = regexp.MustCompile(`^(?:CHECK constraint failed in |row not in PRIMARY KEY order for )(.+)$`)
)

// integrityFinding turns one line of integrity_check output into a
// finding: the object it names (a b-tree root mapped to its table or
// index), the page and cell, and a remedy that fits.
func integrityFinding(line string, names *schemaNames, database string) checks.Finding {
	f := checks.Finding{Severity: checks.StatusCorrupt, Object: database, Code: "integrity_check", Message: line, Remedy: remedyRestore}
	num := func(s string) *int64 {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil
		}
		return &v
	}
	if m := reTree.FindStringSubmatch(line); m != nil {
		root := *num(m[1])
		if n, ok := names.root(root); ok {
			f.Object = n
		} else {
			f.Object = "b-tree with root page " + m[1]
		}
		f.Location.Page = num(m[2])
		if m[3] != "" {
			f.Location.Offset = num(m[3])
		}
		return f
	}
	if m := reOnTreePage.FindStringSubmatch(line); m != nil {
		f.Location.Page, f.Location.Offset = num(m[1]), num(m[2])
		if n, ok := names.root(*f.Location.Page); ok {
			f.Object = n
		}
		return f
	}
	if m := reOnPage.FindStringSubmatch(line); m != nil {
		f.Location.Page = num(m[1])
		if n, ok := names.root(*f.Location.Page); ok {
			f.Object = n
		}
		return f
	}
	if m := rePage.FindStringSubmatch(line); m != nil {
		f.Location.Page = num(m[1])
		return f
	}
	if reFreelist.MatchString(line) {
		f.Object = "freelist"
		if m := rePageNumber.FindStringSubmatch(line); m != nil {
			f.Location.Page = num(m[1])
		}
		return f
	}
	if m := rePtrmap.FindStringSubmatch(line); m != nil {
		f.Object = "pointer map"
		f.Location.Page = num(m[1])
		return f
	}
	if m := reIndex.FindStringSubmatch(line); m != nil {
		return indexFinding(f, m[1])
	}
	if m := reIndexImprecise.FindStringSubmatch(line); m != nil {
		return indexFinding(f, m[1])
	}
	if m := reColumnValue.FindStringSubmatch(line); m != nil {
		f.Object = names.table(m[1])
		f.Remedy = remedyConstraint
		return f
	}
	if m := reTableLine.FindStringSubmatch(line); m != nil {
		f.Object = m[1]
		f.Remedy = remedyConstraint
		return f
	}
	if m := rePageNumber.FindStringSubmatch(line); m != nil { // "failed to get page 7"
		f.Location.Page = num(m[1])
	}
	return f
}

func indexFinding(f checks.Finding, index string) checks.Finding {
	f.Object = index
	f.Remedy = fmt.Sprintf("If the index's table checks clean, rebuild the index from it with REINDEX %s (this needs write access; dbscrub never writes), then check again.", quoteIdent(index))
	return f
}

const remedyConstraint = "A row breaks a NOT NULL, type or CHECK constraint the schema declares (written before the constraint existed, with ignore_check_constraints, or by damage): find the row and fix or delete it."

// quoteIdent returns s as an SQL identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
