package postgres

import (
	"math"
	"time"
)

// The time model the heap and btree checks give their tasks as
// [checks.Task.Estimate], so that the Runner starts the longest tasks first.
// Checking an index costs several times what verifying the same bytes of
// a table costs, so ordering by bytes would leave a big index to run alone
// at the end of a run while the other connections idle.
//
// The constants were fitted to amcheck on PostgreSQL 15 (warm cache, one
// core per connection; BENCHMARKS.md, "Where the time goes"): they need
// not be right in absolute terms, only in proportion to one another.
const (
	// estHeapPage and estHeapRow: verify_heapam per block and per tuple.
	estHeapPage = 1800 * time.Nanosecond
	estHeapRow  = 13 * time.Nanosecond
	// estIndexEntry: bt_index_check per index tuple.
	estIndexEntry = 39 * time.Nanosecond
	// estHeapAllIndexedRow: what heapallindexed adds per table row (a
	// scan of the table, each tuple fingerprinted and probed in a Bloom
	// filter).
	estHeapAllIndexedRow = 400 * time.Nanosecond
	// estPerRelation: the round trip and set-up of one relation in a
	// task.
	estPerRelation = 50 * time.Microsecond

	// Densities assumed when pg_class has no statistics yet (reltuples
	// -1: never vacuumed or analyzed).
	defaultHeapRowsPerPage     = 60
	defaultIndexEntriesPerPage = 250
)

// density returns tuples per page from pg_class's relpages and reltuples
// (as of the last VACUUM or ANALYZE), or def when they say nothing.
func density(relpages int64, reltuples float64, def float64) float64 {
	if relpages <= 0 || reltuples < 0 || math.IsNaN(reltuples) {
		return def
	}
	return reltuples / float64(relpages)
}

// heapEstimate is the time verify_heapam takes on pages blocks holding
// rowsPerPage tuples each.
func heapEstimate(pages int64, rowsPerPage float64) time.Duration {
	if pages < 0 {
		pages = 0
	}
	rows := float64(pages) * rowsPerPage
	return estPerRelation + time.Duration(pages)*estHeapPage + time.Duration(rows*float64(estHeapRow))
}

// btreeEstimate is the time bt_index_check takes on an index of
// indexPages blocks holding entriesPerPage tuples each, plus, with
// heapallindexed, the scan of a table of tableRows rows and tablePages
// blocks.
func btreeEstimate(indexPages int64, entriesPerPage float64, heapAllIndexed bool, tablePages int64, tableRows float64) time.Duration {
	d := estPerRelation + time.Duration(float64(max(indexPages, 0))*entriesPerPage*float64(estIndexEntry))
	if heapAllIndexed {
		d += time.Duration(max(tablePages, 0))*estHeapPage + time.Duration(max(tableRows, 0)*float64(estHeapAllIndexedRow))
	}
	return d
}
