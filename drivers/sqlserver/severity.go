package sqlserver

import (
	"github.com/dbscrub/dbscrub/checks"
)

// class is how dbscrub treats one SQL Server error number.
type class int

const (
	// classUnknown: not in the table; decided by the level (see Classify).
	classUnknown class = iota
	// classCorrupt: the engine reports damage: a corruption finding.
	classCorrupt
	// classWarning: verified, but the data is at risk: a warning finding.
	classWarning
	// classSummary: DBCC's closing summary ("CHECKDB found N allocation
	// errors and M consistency errors ..."); not a finding of its own, but
	// a corruption finding when it counts errors that no other row
	// reported (fail safe).
	classSummary
	// classInfo: informational output; ignored (logged at debug).
	classInfo
	// classNotVerified: DBCC stopped or could not start: the task fails
	// (status error, never healthy).
	classNotVerified
)

// dbccErrors is the severity table: how each SQL Server error number that
// DBCC (or a read of a damaged page) reports is treated, whatever the
// message's own level. The package documentation has the same table for
// people; keep them in step.
//
// Numbers not in the table are decided by level (see [Classify]).
var dbccErrors = map[int32]class{
	// Page-level I/O errors, raised by any read (and recorded in
	// msdb.dbo.suspect_pages), not only by DBCC.
	605:  classCorrupt, // page belongs to another allocation unit
	823:  classCorrupt, // the operating system returned an I/O error for a page
	824:  classCorrupt, // logical consistency I/O error: bad checksum, torn page, wrong page id
	825:  classWarning, // read-retry: a read succeeded only after failing (storage is failing; no damage yet)
	829:  classCorrupt, // page marked RestorePending
	832:  classCorrupt, // a page that should have been constant changed in memory (bad memory)
	5242: classCorrupt, // inconsistency found during an internal operation
	5243: classCorrupt, // (same)
	5250: classCorrupt, // (same)

	// Structural and logical consistency errors (DBCC CHECKDB, CHECKTABLE,
	// CHECKALLOC, CHECKCATALOG).
	2511: classCorrupt, // keys out of order
	2512: classCorrupt, // duplicate keys
	2533: classCorrupt, // page allocated to an object was not seen
	2534: classCorrupt, // page allocated to another object
	2537: classCorrupt, // record check failed
	2570: classCorrupt, // data purity: a column value out of its type's range (repair cannot fix it; UPDATE the row)
	2575: classCorrupt, // IAM page errors
	2576: classCorrupt, // (same)
	7965: classCorrupt, // object could not be checked: invalid IAM pages
	7985: classCorrupt, // system table pre-checks failed
	7986: classCorrupt, // (same)
	7987: classCorrupt, // (same)
	7988: classCorrupt, // (same)
	7995: classCorrupt, // consistency errors in system catalogs stop DBCC
	8905: classCorrupt, // extent / page allocated in GAM, SGAM or PFS but not in any IAM
	8906: classCorrupt, // (same)
	8909: classCorrupt, // incorrect page id in the page header
	8913: classCorrupt, // extent allocated to two objects
	8914: classCorrupt, // incorrect PFS free space information (level 10, still a consistency error)
	8928: classCorrupt, // page could not be processed
	8929: classCorrupt, // errors in off-row data
	8930: classCorrupt, // metadata corruption stopped DBCC
	8939: classCorrupt, // page test failed
	8941: classCorrupt, // record / slot tests failed
	8942: classCorrupt, // (same)
	8943: classCorrupt, // (same)
	8944: classCorrupt, // (same)
	8951: classCorrupt, // data row and index row do not match
	8952: classCorrupt, // (same)
	8955: classCorrupt, // (same)
	8956: classCorrupt, // (same)
	8961: classCorrupt, // off-row (LOB) data node errors
	8964: classCorrupt, // (same)
	8965: classCorrupt, // (same)
	8970: classCorrupt, // NOT NULL column holds NULL
	8976: classCorrupt, // b-tree chain and parent linkage errors
	8977: classCorrupt, // (same)
	8978: classCorrupt, // (same)
	8979: classCorrupt, // (same)
	8992: classCorrupt, // CHECKCATALOG: catalog inconsistency
	8998: classCorrupt, // GAM, SGAM or PFS page errors prevent allocation checks

	// Warnings.
	2508: classWarning, // row or page counts inaccurate: run DBCC UPDATEUSAGE

	// Summaries.
	8958: classSummary, // minimum repair level
	8989: classSummary, // CHECKDB found N allocation errors and M consistency errors in database
	8990: classSummary, // ... in table

	// Informational.
	2528: classInfo, // DBCC execution completed
	2536: classInfo, // DBCC results for
	2593: classInfo, // there are N rows in M pages
	7928: classInfo, // no snapshot: DBCC tries to lock instead (the check still runs)

	// DBCC could not run or stopped: the task fails.
	1934: classNotVerified, // wrong SET options for indexed views / computed columns
	5030: classNotVerified, // database could not be exclusively locked
	7926: classNotVerified, // no snapshot and no lock: check aborted
	8921: classNotVerified, // check terminated: tempdb out of space or a system table inconsistent
	8967: classNotVerified, // internal DBCC error stopped the check
}

// Classify tells how dbscrub treats an error number reported with a level
// (severity) by DBCC or by SQL Server: [checks.StatusCorrupt] (a
// corruption finding), [checks.StatusWarning] (a warning finding),
// [checks.StatusError] (the task could not verify) or
// [checks.StatusHealthy] (informational, ignored). fromDBCC is true for a
// row of DBCC's TABLERESULTS output and false for an error token or a
// message sent by the server.
//
// Numbers in the severity table (see the package documentation) are
// treated as the table says, whatever their level. Other numbers fail safe:
//
//   - A TABLERESULTS row with level 16 or more is corruption; below 16, a
//     warning. Every row DBCC returns under NO_INFOMSGS is a problem.
//   - An error token of level 22 to 24 is corruption (SQL Server's
//     severities for a damaged table or index, a database whose integrity
//     is in question, and media failure); of level 11 to 21 the task fails
//     (permission denied, timeout, syntax, resources: dbscrub could not
//     verify); of level 10 or less it is informational.
func Classify(number int32, level int, fromDBCC bool) checks.Status {
	switch classify(number, level, fromDBCC) {
	case classCorrupt:
		return checks.StatusCorrupt
	case classWarning:
		return checks.StatusWarning
	case classSummary, classInfo:
		return checks.StatusHealthy
	default:
		return checks.StatusError
	}
}

func classify(number int32, level int, fromDBCC bool) class {
	if c, ok := dbccErrors[number]; ok {
		return c
	}
	switch {
	case fromDBCC && level >= 16:
		return classCorrupt
	case fromDBCC:
		return classWarning
	case level >= 22 && level <= 24:
		return classCorrupt
	case level > 10:
		return classNotVerified
	default:
		return classInfo
	}
}

// Error numbers that say dbscrub lacks a permission.
var permissionErrors = map[int32]bool{
	229:   true, // The %ls permission was denied on the object
	230:   true, // ... on the column
	262:   true, // %ls permission denied in database
	297:   true, // The user does not have permission to perform this action
	300:   true, // VIEW SERVER STATE (or another) permission was denied
	916:   true, // The server principal is not able to access the database under the current security context
	2571:  true, // User does not have permission to run DBCC
	8189:  true, // You do not have permission to run
	15247: true, // User does not have permission to perform this action
}

// Error numbers worth one more try: lock timeouts, deadlocks and the
// transient errors of Azure SQL.
var retryableErrors = map[int32]bool{
	1205:  true,                                                                  // deadlock victim
	1222:  true,                                                                  // lock request time out period exceeded
	40197: true, 40501: true, 40613: true, 49918: true, 49919: true, 49920: true, // Azure SQL transient
	10928: true, 10929: true, // Azure SQL resource limits
	4221: true, // login to a readable secondary while redo catches up
}

// Error numbers that mean the database cannot be opened by this login (in
// the DSN or by USE): dbscrub then looks the database up from master to
// say why (SUSPECT, OFFLINE, a non-readable secondary ...).
var unavailableErrors = map[int32]bool{
	922:  true, // database is being recovered
	924:  true, // database is in single-user mode and already open
	926:  true, // marked SUSPECT by recovery
	927:  true, // in the middle of a restore
	942:  true, // offline
	945:  true, // inaccessible files, memory or disk space (RECOVERY_PENDING)
	950:  true, // database upgrade required
	952:  true, // in transition
	976:  true, // availability group: not accessible for queries (non-readable secondary)
	978:  true, // availability group: read-only intent needed
	979:  true, // availability group: read-only connections not allowed
	982:  true, // availability group: no readable secondary
	983:  true, // availability group: replica not PRIMARY or SECONDARY
	4060: true, // cannot open database requested by the login
}
