package postgres

import (
	"fmt"
	"strings"
)

// The Statements methods implement checks.Explainer: they list, without
// connecting, what each check runs, built from the same text the check
// executes. "amcheck" stands for the schema amcheck is installed in.

// sessionStatements is what every task and every planning step runs first.
func (t *Target) sessionStatements(repeatableRead bool, extra []setting) []string {
	iso := "READ COMMITTED"
	if repeatableRead {
		iso = "REPEATABLE READ"
	}
	sets := []string{
		fmt.Sprintf("pg_catalog.set_config('statement_timeout', '%s', true)", ms(t.cfg.statementTimeout)),
		fmt.Sprintf("pg_catalog.set_config('lock_timeout', '%s', true)", ms(t.cfg.lockTimeout)),
		fmt.Sprintf("pg_catalog.set_config('idle_in_transaction_session_timeout', '%s', true)", idleInTransactionTimeout),
		fmt.Sprintf("pg_catalog.set_config('application_name', '%s', true)", defaultApplicationName),
	}
	for _, s := range extra {
		sets = append(sets, fmt.Sprintf("pg_catalog.set_config('%s', '%s', true)", s.name, s.value))
	}
	return []string{
		"BEGIN ISOLATION LEVEL " + iso + " READ ONLY",
		"SELECT " + strings.Join(sets, ", ") + ` -- superusers also: set_config('zero_damaged_pages', 'off', true), set_config('ignore_checksum_failure', 'off', true)`,
	}
}

// explain wraps stmts in the session statements, after the capability
// probe every run starts with.
func (t *Target) explain(repeatableRead bool, extra []setting, stmts ...string) []string {
	out := append(t.sessionStatements(false, nil), "-- once per run: the capability probe\n"+probeQuery, "ROLLBACK")
	out = append(out, t.sessionStatements(repeatableRead, extra)...)
	out = append(out, stmts...)
	return append(out, "ROLLBACK")
}

// Statements lists what the heap check runs.
func (c *heapCheck) Statements() []string {
	fn := "amcheck.verify_heapam"
	return c.r.t.explain(false, nil,
		"-- planning: the relations to verify\n"+heapRelsQuery,
		"-- each task: find the relation by name\n"+resolveQuery,
		"-- a block range of a big relation ($2, $3 = first and last block)\n"+heapStatement(fn),
		"-- a batch of small relations\n"+heapBatchStatement(fn),
	)
}

// Statements lists what the btree check runs.
func (c *btreeCheck) Statements() []string {
	fn := "amcheck.bt_index_check"
	if c.r.t.cfg.parentCheck {
		fn = "amcheck.bt_index_parent_check"
	}
	return c.r.t.explain(false, nil,
		fmt.Sprintf("-- planning: the indexes to verify ($1 = heapallindexed = %t: the table's exact size is read only then)\n%s", c.r.t.cfg.heapAllIndexed, btreeIndexesQuery),
		"-- each task: find the index by name\n"+resolveQuery,
		fmt.Sprintf("-- one index ($2 = heapallindexed = %t)\n%s", c.r.t.cfg.heapAllIndexed, btreeStatement(fn)),
		"-- a batch of small indexes\n"+btreeBatchStatement(fn),
	)
}

// Statements lists what the crosscheck runs.
func (c *crossCheck) Statements() []string {
	t := c.r.t
	stmts := t.explain(true, append(append([]setting{}, seqScanSettings...), indexScanSettings...),
		"-- planning: tables and their btree indexes\n"+crossQuery)
	stmts = append(stmts, t.sessionStatements(true, seqScanSettings)...)
	return append(stmts,
		"-- each table, in one snapshot: rows by sequential scan (plus the rows matching each partial index predicate)\nSELECT count(*) FROM ONLY schema.table",
		"-- for each index, with enable_seqscan, enable_bitmapscan, enable_indexscan and enable_sort off: check the plan is an Index Only Scan on that index, then count\nEXPLAIN (FORMAT JSON) SELECT count(*) FROM (SELECT key_columns FROM ONLY schema.table [WHERE partial_index_predicate] ORDER BY key_columns) AS s",
		"SELECT count(*) FROM (SELECT key_columns FROM ONLY schema.table [WHERE partial_index_predicate] ORDER BY key_columns) AS s",
		"ROLLBACK",
	)
}

// Statements lists what the checksums check runs.
func (c *checksumsCheck) Statements() []string {
	return c.r.t.explain(false, nil, checksumQuery)
}

// Statements lists what the settings check runs.
func (c *settingsCheck) Statements() []string {
	return c.r.t.explain(false, nil, settingsQuery, roleSettingsQuery)
}
