package sqlite

import "fmt"

// Statements lists what the integrity check runs, for review before a run
// (checks.Explainer). Placeholders stand for values known only at run time.
func (c *integrityCheck) Statements() []string {
	return []string{
		"PRAGMA main.page_count",
		"PRAGMA main.page_size",
		"SELECT count(*) FROM main.sqlite_schema WHERE type IN ('table', 'index') AND rootpage > 0",
		fmt.Sprintf("PRAGMA main.%s(%d)", c.pragma(), c.t.cfg.maxErrors),
		"SELECT type, name, rootpage FROM main.sqlite_schema WHERE rootpage > 0  -- names the objects of findings",
		"SELECT name, pageno FROM dbstat('main') WHERE pageno IN (?, ...)  -- only when a finding names just a page",
	}
}

// Statements lists what the foreign key check runs (checks.Explainer).
func (c *foreignKeyCheck) Statements() []string {
	return []string{
		"SELECT m.name, m.rootpage FROM main.sqlite_schema AS m WHERE m.type = 'table' AND m.rootpage > 0 AND EXISTS (SELECT 1 FROM pragma_foreign_key_list(m.name, 'main')) ORDER BY m.name",
		"SELECT data FROM sqlite_dbpage('main') WHERE pgno = ?  -- reads b-tree pages to estimate each table's size",
		"PRAGMA main.foreign_key_check(?)  -- once per table with foreign keys",
	}
}
