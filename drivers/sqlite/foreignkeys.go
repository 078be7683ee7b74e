package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/dbscrub/dbscrub/checks"
)

// foreignKeyCheck runs PRAGMA foreign_key_check, one task per table that
// declares a foreign key. See [CheckForeignKeys] for why an orphan row is
// corrupt.
type foreignKeyCheck struct{ t *Target }

func (c *foreignKeyCheck) Name() string { return CheckForeignKeys }

// Plan returns one task per table that declares a foreign key, its cost
// the table's estimated size. Without such a table the check is skipped. A
// database whose schema cannot be read because it is damaged gets one task
// that reports the damage.
func (c *foreignKeyCheck) Plan(ctx context.Context) ([]checks.Task, error) {
	t := c.t
	size, err := t.fileSize()
	if err != nil {
		return nil, err
	}
	tables, err := t.childTables(ctx)
	if err != nil {
		kind, code := classify(err)
		if kind != kindCorrupt || ctx.Err() != nil {
			return nil, t.stmtError(ctx, "listing tables with foreign keys", err)
		}
		f := t.unreadable(t.info.Database, "SQLite cannot read the database", err, code)
		return []checks.Task{{
			Key:    "main",
			Object: t.info.Database,
			Cost:   size,
			Run: func(context.Context) (checks.Result, error) {
				return checks.Result{Findings: []checks.Finding{f}}, nil
			},
		}}, nil
	}
	if len(tables) == 0 {
		return nil, checks.Skip("no table in %s declares a foreign key", t.info.Database)
	}
	var tasks []checks.Task
	sizes := t.treeSizes(ctx, tables, size)
	for i, tb := range tables {
		stmt := "PRAGMA main.foreign_key_check(" + quoteLiteral(tb.name) + ")"
		cost := sizes[i]
		tasks = append(tasks, checks.Task{
			Key:       tb.name,
			Object:    tb.name,
			Cost:      cost,
			Statement: stmt,
			Run: func(ctx context.Context) (checks.Result, error) {
				return c.run(ctx, tb.name, stmt, cost)
			},
		})
	}
	return tasks, nil
}

type table struct {
	name string
	root int64
}

func (t *Target) childTables(ctx context.Context) ([]table, error) {
	rows, err := t.db.QueryContext(ctx, `SELECT m.name, m.rootpage FROM main.sqlite_schema AS m
WHERE m.type = 'table' AND m.rootpage > 0
  AND EXISTS (SELECT 1 FROM pragma_foreign_key_list(m.name, 'main'))
ORDER BY m.name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []table
	for rows.Next() {
		var tb table
		if err := rows.Scan(&tb.name, &tb.root); err != nil {
			return nil, err
		}
		out = append(out, tb)
	}
	return out, rows.Err()
}

func (c *foreignKeyCheck) run(ctx context.Context, name, stmt string, cost int64) (checks.Result, error) {
	t := c.t
	if _, err := t.fileSize(); err != nil {
		return checks.Result{}, err
	}
	type orphan struct {
		child, parent string
		rowid         sql.NullInt64
		fkid          int64
	}
	var (
		res     checks.Result
		orphans []orphan
		more    bool
	)
	// Read every row before any other query: a caller's pool may have a
	// single connection (an in-memory database).
	err := func() error {
		rows, err := t.db.QueryContext(ctx, stmt)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if len(orphans) == t.cfg.maxErrors {
				more = true
				break
			}
			var o orphan
			if err := rows.Scan(&o.child, &o.rowid, &o.parent, &o.fkid); err != nil {
				return err
			}
			orphans = append(orphans, o)
		}
		return rows.Err()
	}()
	var fks map[int64]string
	if len(orphans) > 0 {
		fks = t.foreignKeys(ctx, name)
	}
	for _, o := range orphans {
		msg := fmt.Sprintf("row rowid %d of %s references a missing row in %s (foreign key #%d)", o.rowid.Int64, o.child, o.parent, o.fkid)
		if !o.rowid.Valid {
			msg = fmt.Sprintf("a row of %s (a WITHOUT ROWID table) references a missing row in %s (foreign key #%d)", o.child, o.parent, o.fkid)
		}
		res.Findings = append(res.Findings, checks.Finding{
			Severity: checks.StatusCorrupt,
			Object:   o.child,
			Code:     "foreign_key_check",
			Message:  msg,
			Remedy:   fkRemedy(fks[o.fkid], o.parent),
		})
	}
	if err != nil {
		kind, code := classify(err)
		if kind == kindCorrupt && ctx.Err() == nil {
			res.Findings = append(res.Findings, t.unreadable(name, "foreign_key_check could not read the table", err, code))
			return res, nil
		}
		if strings.Contains(err.Error(), "foreign key mismatch") {
			err = fmt.Errorf("%w (the parent key is not a PRIMARY KEY or UNIQUE column set, so SQLite can neither check nor enforce this foreign key: fix the schema)", err)
		}
		return res, t.stmtError(ctx, "foreign_key_check("+name+")", err)
	}
	if more {
		res.Findings = append(res.Findings, checks.Finding{
			Severity: checks.StatusWarning,
			Object:   name,
			Code:     "max_errors",
			Message:  fmt.Sprintf("and more: foreign_key_check stopped after %d orphan rows in %s", t.cfg.maxErrors, name),
			Remedy:   "Raise the limit with WithMaxErrors to see every orphan row.",
		})
	}
	res.Objects, res.Bytes = 1, cost
	return res, nil
}

// foreignKeys describes the foreign keys of table by id, as
// "child(a, b) → parent(x, y)", for remedies. It is best effort.
func (t *Target) foreignKeys(ctx context.Context, table string) map[int64]string {
	out := map[int64]string{}
	rows, err := t.db.QueryContext(ctx, `SELECT id, "table", group_concat("from", ', '), group_concat(coalesce("to", '(primary key)'), ', ')
FROM (SELECT * FROM pragma_foreign_key_list(?1, 'main') ORDER BY id, seq) GROUP BY id`, table)
	if err != nil {
		return out
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id               int64
			parent, from, to string
		)
		if rows.Scan(&id, &parent, &from, &to) == nil {
			out[id] = fmt.Sprintf("%s(%s) → %s(%s)", table, from, parent, to)
		}
	}
	return out
}

func fkRemedy(fk, parent string) string {
	what := "The row has no parent row in " + parent
	if fk != "" {
		what = "The row has no match for " + fk
	}
	return what + ": fix or delete the orphan row, or restore the missing parent row, and make the application turn PRAGMA foreign_keys=ON on every connection (SQLite leaves it off by default)."
}
