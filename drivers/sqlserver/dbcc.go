package sqlserver

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/dbscrub/dbscrub/checks"
)

// DBCC statements. The database (or table) is a parameter: DBCC accepts a
// variable wherever it takes a name. dbscrub never adds a REPAIR option.

// dbccOptions returns the WITH options of a DBCC command. Every command
// gets NO_INFOMSGS (only problems come back), ALL_ERRORMSGS (every error
// of every object, not the first 200) and TABLERESULTS (one row per error,
// with object, index, file, page and slot in columns).
func dbccOptions(c config, full bool) []string {
	opts := []string{"NO_INFOMSGS", "ALL_ERRORMSGS", "TABLERESULTS"}
	if full {
		switch {
		case c.physicalOnly:
			opts = append(opts, "PHYSICAL_ONLY")
		case c.dataPurity:
			opts = append(opts, "DATA_PURITY")
		}
		if c.extendedLogical {
			opts = append(opts, "EXTENDED_LOGICAL_CHECKS")
		}
	}
	if c.tabLock {
		opts = append(opts, "TABLOCK")
	}
	if full && c.maxDOPSet {
		opts = append(opts, "MAXDOP = "+strconv.Itoa(c.maxDOP))
	}
	return opts
}

func checkDBSQL(c config) string {
	target := "@p1"
	if c.noIndex {
		target += ", NOINDEX"
	}
	return "DBCC CHECKDB (" + target + ") WITH " + strings.Join(dbccOptions(c, true), ", ") + ";"
}

func checkTableSQL(c config) string {
	target := "@p1"
	if c.noIndex {
		target += ", NOINDEX"
	}
	return "DBCC CHECKTABLE (" + target + ") WITH " + strings.Join(dbccOptions(c, true), ", ") + ";"
}

func checkAllocSQL(c config) string {
	return "DBCC CHECKALLOC (@p1) WITH " + strings.Join(dbccOptions(c, false), ", ") + ";"
}

// checkCatalogSQL: CHECKCATALOG takes NO_INFOMSGS only; its errors come
// back as error tokens (8992).
const checkCatalogSQL = "DBCC CHECKCATALOG (@p1) WITH NO_INFOMSGS;"

// checkTableListSQL lists the tables and indexed views DBCC CHECKTABLE can
// check, with their used size. Memory-optimized tables (SQL Server 2014+)
// are left out: DBCC does not check them (their checkpoint files carry
// checksums).
func checkTableListSQL(major int) string {
	memOpt := ""
	if major >= 12 {
		memOpt = "\n  AND NOT EXISTS (SELECT 1 FROM sys.tables AS t WHERE t.object_id = o.object_id AND t.is_memory_optimized = 1)"
	}
	return `SELECT s.name AS schema_name, o.name AS object_name, o.type AS object_type,
  COALESCE(SUM(ps.used_page_count), 0) AS used_pages
FROM sys.objects AS o
JOIN sys.schemas AS s ON s.schema_id = o.schema_id
LEFT JOIN sys.dm_db_partition_stats AS ps ON ps.object_id = o.object_id
WHERE (o.type = 'U' OR (o.type = 'V' AND EXISTS (SELECT 1 FROM sys.indexes AS i WHERE i.object_id = o.object_id AND i.index_id = 1)))` + memOpt + `
GROUP BY s.name, o.name, o.type
ORDER BY used_pages DESC, s.name, o.name;`
}

// lookupBatch is how many (object, index) pairs one name lookup resolves
// (SQL Server takes at most 2100 parameters).
const lookupBatch = 500

// objectLookupSQL resolves n (object_id, index_id) pairs to names. @p1 is
// the database name; then @p2, @p3 are the first pair, and so on. Index
// names are only resolved when the session is in the database.
func objectLookupSQL(n int) string {
	var b strings.Builder
	b.WriteString(`SELECT v.object_id, v.index_id,
  OBJECT_SCHEMA_NAME(v.object_id, DB_ID(@p1)) AS schema_name,
  OBJECT_NAME(v.object_id, DB_ID(@p1)) AS object_name,
  CASE WHEN DB_ID() = DB_ID(@p1) THEN (SELECT i.name FROM sys.indexes AS i WHERE i.object_id = v.object_id AND i.index_id = v.index_id) END AS index_name
FROM (VALUES `)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "(@p%d, @p%d)", 2+2*i, 3+2*i)
	}
	b.WriteString(") AS v(object_id, index_id);")
	return b.String()
}

func explainLookup() string {
	return explainSQL("-- only when DBCC reports errors, on the same connection, to name the damaged objects:\n"+objectLookupSQL(2),
		"@p1 = database name; @p2, @p3, ... = object_id, index_id pairs from the DBCC output (up to 500 pairs per statement)")
}

// quoteName quotes a SQL Server identifier like QUOTENAME.
func quoteName(s string) string { return "[" + strings.ReplaceAll(s, "]", "]]") + "]" }

func (t *Target) planCheckDB(caps *Capabilities, pool connector) ([]checks.Task, error) {
	if t.cfg.extendedLogical && caps.MajorVersion > 0 && caps.MajorVersion < 13 {
		return nil, fmt.Errorf("sqlserver: %w: WithExtendedLogicalChecks needs SQL Server 2016 or later (this is %s)", ErrUnsupported, caps.ProductVersion)
	}
	if t.cfg.maxDOPSet && caps.MajorVersion > 0 && caps.MajorVersion < 12 {
		return nil, fmt.Errorf("sqlserver: %w: WithMaxDOP needs SQL Server 2014 SP2 or later (this is %s)", ErrUnsupported, caps.ProductVersion)
	}
	return []checks.Task{t.dbccTask(CheckCheckDB, "DBCC CHECKDB", caps.Database, caps.Database, caps.DataBytes, checkDBSQL(t.cfg), caps.Database, caps, pool)}, nil
}

func (t *Target) planCheckAlloc(caps *Capabilities, pool connector) ([]checks.Task, error) {
	return []checks.Task{t.dbccTask(CheckCheckAlloc, "DBCC CHECKALLOC", caps.Database, caps.Database, caps.DataBytes/16, checkAllocSQL(t.cfg), caps.Database, caps, pool)}, nil
}

func (t *Target) planCheckCatalog(caps *Capabilities, pool connector) ([]checks.Task, error) {
	return []checks.Task{t.dbccTask(CheckCheckCatalog, "DBCC CHECKCATALOG", caps.Database, caps.Database, 0, checkCatalogSQL, caps.Database, caps, pool)}, nil
}

// planCheckTable lists the tables and indexed views and plans one DBCC
// CHECKTABLE task for each, largest first. Keys are the quoted names
// ([schema].[table]): stable across restores, so rolling coverage can
// resume where the last run stopped.
func (t *Target) planCheckTable(ctx context.Context, caps *Capabilities, pool connector) ([]checks.Task, error) {
	if t.cfg.extendedLogical && caps.MajorVersion > 0 && caps.MajorVersion < 13 {
		return nil, fmt.Errorf("sqlserver: %w: WithExtendedLogicalChecks needs SQL Server 2016 or later (this is %s)", ErrUnsupported, caps.ProductVersion)
	}
	resp, err := t.query(ctx, pool, CheckCheckTable, "listing tables for DBCC CHECKTABLE", checkTableListSQL(caps.MajorVersion))
	if err != nil {
		return nil, err
	}
	type table struct {
		key, object string
		bytes       int64
	}
	var tables []table
	for _, r := range firstRows(resp) {
		schema, name := r.String("schema_name"), r.String("object_name")
		if name == "" {
			continue
		}
		tables = append(tables, table{
			key:    quoteName(schema) + "." + quoteName(name),
			object: schema + "." + name,
			bytes:  r.IntOr("used_pages", 0) * 8192,
		})
	}
	sort.SliceStable(tables, func(i, j int) bool {
		if tables[i].bytes != tables[j].bytes {
			return tables[i].bytes > tables[j].bytes
		}
		return tables[i].key < tables[j].key
	})
	stmt := checkTableSQL(t.cfg)
	tasks := make([]checks.Task, 0, len(tables))
	for _, tb := range tables {
		tasks = append(tasks, t.dbccTask(CheckCheckTable, "DBCC CHECKTABLE "+tb.object, tb.key, tb.object, tb.bytes, stmt, tb.key, caps, pool))
	}
	return tasks, nil
}

// dbccTask plans one DBCC statement.
func (t *Target) dbccTask(check, what, key, object string, cost int64, stmt, arg string, caps *Capabilities, pool connector) checks.Task {
	param := "@p1 = database name"
	if check == CheckCheckTable {
		param = "@p1 = N'" + strings.ReplaceAll(arg, "'", "''") + "'"
	}
	database := caps.Database
	return checks.Task{
		Key:       key,
		Object:    object,
		Cost:      cost,
		Statement: t.explain(stmt, param),
		Run: func(ctx context.Context) (checks.Result, error) {
			findings, err := t.runDBCC(ctx, pool, check, what, database, stmt, arg)
			if err != nil {
				return checks.Result{Findings: findings}, err
			}
			return checks.Result{Findings: findings, Objects: 1, Bytes: cost}, nil
		},
	}
}

// diag is one problem DBCC or the server reported: a TABLERESULTS row, an
// error token or a message.
type diag struct {
	number   int32
	level    int
	state    int
	text     string
	repair   string
	objectID int64
	indexID  int64
	file     int64
	page     int64
	slot     int64
	hasPage  bool
	hasSlot  bool
	fromDBCC bool
}

// pageRef finds "page (1:280)" in a message.
var pageRef = regexp.MustCompile(`(?i)page \(?(\d+):(\d+)\)?`)

// summaryCounts finds the counts in DBCC's summary messages.
var summaryCounts = regexp.MustCompile(`(?i)found (\d+) allocation errors? and (\d+) consistency errors?`)

// diagsFrom collects the problems in a DBCC response: the TABLERESULTS rows
// (mapped by column name, so versions with fewer or more columns work),
// the error tokens and the messages.
func diagsFrom(resp *response, err error) []diag {
	var out []diag
	for _, set := range resp.sets {
		for _, r := range set.Rows() {
			if !r.Has("Error") || !r.Has("MessageText") {
				continue
			}
			d := diag{
				number:   int32(r.IntOr("Error", 0)),
				level:    int(r.IntOr("Level", 16)),
				state:    int(r.IntOr("State", 0)),
				text:     r.String("MessageText"),
				repair:   r.String("RepairLevel"),
				objectID: r.IntOr("ObjectId", 0),
				indexID:  r.IntOr("IndexId", -1),
				fromDBCC: true,
			}
			if f, ok := r.Int("File"); ok && f > 0 {
				d.file, d.page, d.hasPage = f, r.IntOr("Page", 0), true
				if s, ok := r.Int("Slot"); ok && s >= 0 && (s > 0 || strings.Contains(strings.ToLower(d.text), "slot")) {
					d.slot, d.hasSlot = s, true
				}
			}
			out = append(out, d)
		}
	}
	for _, e := range serverErrors(resp, err) {
		out = append(out, diag{number: e.Number, level: int(e.Class), state: int(e.State), text: oneLine(e.Message), indexID: -1})
	}
	for _, m := range resp.messages {
		if m.Number == 0 {
			continue
		}
		out = append(out, diag{number: m.Number, level: int(m.Class), state: int(m.State), text: oneLine(m.Text), indexID: -1})
	}
	for i := range out {
		d := &out[i]
		if !d.hasPage {
			if m := pageRef.FindStringSubmatch(d.text); m != nil {
				d.file, _ = strconv.ParseInt(m[1], 10, 64)
				d.page, _ = strconv.ParseInt(m[2], 10, 64)
				d.hasPage = d.file > 0
			}
		}
	}
	return out
}

// objectKey identifies an (object, index) pair for the name lookup.
type objectKey struct{ object, index int64 }

type objectName struct {
	schema, name, index string
}

// runDBCC runs one DBCC statement on its own session and interprets what
// came back: corruption and warning findings, and an error when DBCC could
// not run or finish.
func (t *Target) runDBCC(ctx context.Context, pool connector, check, what, database, stmt, arg string) ([]checks.Finding, error) {
	var findings []checks.Finding
	var ferr error
	err := t.withSession(ctx, pool, check, what, func(sess session) bool {
		resp, err := t.exec(ctx, sess, stmt, arg)
		diags := diagsFrom(resp, err)

		var kept, summaries []diag
		failures := serverErrorsNotFindings(resp, err)
		for _, d := range diags {
			switch classify(d.number, d.level, d.fromDBCC) {
			case classCorrupt, classWarning:
				kept = append(kept, d)
			case classSummary:
				summaries = append(summaries, d)
			case classInfo:
				t.cfg.logger.Debug("dbscrub: DBCC informational message", "check", check, "number", d.number, "message", d.text)
			}
		}
		corrupt := 0
		for _, d := range kept {
			if classify(d.number, d.level, d.fromDBCC) == classCorrupt {
				corrupt++
			}
		}
		if corrupt == 0 {
			for _, s := range summaries {
				if m := summaryCounts.FindStringSubmatch(s.text); m != nil && (m[1] != "0" || m[2] != "0") {
					// DBCC counted errors no row reported: fail safe.
					s.level = 16
					kept = append(kept, s)
					break
				}
			}
		}

		var names map[objectKey]objectName
		if len(kept) > 0 && ctx.Err() == nil && err == nil {
			names = t.lookupNames(ctx, sess, database, kept)
		}
		findings = t.findings(check, database, kept, summaries, names)
		if err != nil || len(failures) > 0 {
			ferr = t.failure(check, what, failures, err, len(findings) > 0)
			return false
		}
		return true
	})
	if err != nil {
		return findings, err
	}
	return findings, ferr
}

// serverErrorsNotFindings returns the server errors that are not findings
// (nor informational): the reasons a task fails.
func serverErrorsNotFindings(resp *response, err error) []mssql.Error {
	var out []mssql.Error
	for _, e := range serverErrors(resp, err) {
		if classify(e.Number, int(e.Class), false) == classNotVerified {
			out = append(out, e)
		}
	}
	return out
}

// lookupNames resolves the objects and indexes of diags to names, on the
// DBCC task's own session. Failures are logged: the findings then name
// object IDs.
func (t *Target) lookupNames(ctx context.Context, sess session, database string, diags []diag) map[objectKey]objectName {
	seen := map[objectKey]bool{}
	var keys []objectKey
	for _, d := range diags {
		if d.objectID == 0 {
			continue
		}
		k := objectKey{d.objectID, d.indexID}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	names := map[objectKey]objectName{}
	for start := 0; start < len(keys); start += lookupBatch {
		batch := keys[start:min(start+lookupBatch, len(keys))]
		args := []any{database}
		for _, k := range batch {
			args = append(args, k.object, k.index)
		}
		resp, err := t.exec(ctx, sess, objectLookupSQL(len(batch)), args...)
		if errs := serverErrors(resp, err); err != nil || len(errs) > 0 {
			t.cfg.logger.Warn("dbscrub: could not resolve object names of DBCC errors", "database", database,
				"error", t.failure("", "object name lookup", errs, err, true))
			return names
		}
		for _, r := range firstRows(resp) {
			k := objectKey{r.IntOr("object_id", 0), r.IntOr("index_id", -1)}
			names[k] = objectName{schema: r.String("schema_name"), name: r.String("object_name"), index: r.String("index_name")}
		}
	}
	return names
}

// findings turns the kept diagnostics into findings, each once.
func (t *Target) findings(check, database string, kept, summaries []diag, names map[objectKey]objectName) []checks.Finding {
	repairLevel := ""
	for _, s := range summaries {
		if s.number == 8958 {
			if f := strings.Fields(s.text); len(f) > 0 {
				repairLevel = strings.ToLower(f[0])
			}
		}
	}
	var out []checks.Finding
	seen := map[string]bool{}
	for _, d := range kept {
		sev := checks.StatusCorrupt
		if classify(d.number, d.level, d.fromDBCC) == classWarning {
			sev = checks.StatusWarning
		}
		object := database
		idxName := ""
		if d.objectID != 0 {
			n, ok := names[objectKey{d.objectID, d.indexID}]
			switch {
			case ok && n.name != "":
				object = n.schema + "." + n.name
				if n.schema == "" {
					object = n.name
				}
			default:
				object = fmt.Sprintf("%s: object ID %d", database, d.objectID)
			}
			if d.indexID > 1 {
				idxName = n.index
				if idxName != "" {
					object += fmt.Sprintf(" (index %s, ID %d)", idxName, d.indexID)
				} else {
					object += fmt.Sprintf(" (index ID %d)", d.indexID)
				}
			}
		}
		var loc checks.Location
		if d.hasPage {
			loc.File, loc.Page = checks.Int(d.file), checks.Int(d.page)
			if d.hasSlot {
				loc.Offset = checks.Int(d.slot)
			}
		}
		f := checks.Finding{
			Check:    check,
			Severity: sev,
			Object:   object,
			Location: loc,
			Code:     strconv.Itoa(int(d.number)),
			Message:  d.text,
			Remedy:   remedy(d, repairLevel),
		}
		k := f.Code + "\x00" + f.Object + "\x00" + loc.String() + "\x00" + f.Message
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, f)
	}
	return out
}

// remedy says what to do about one DBCC error.
func remedy(d diag, minRepair string) string {
	repair := strings.ToLower(strings.TrimSpace(d.repair))
	if repair == "" {
		repair = minRepair
	}
	const investigate = " Then find the cause: the SQL Server error log, the operating system's logs and the storage (controller, disks, drivers, firmware)."
	switch d.number {
	case 825:
		return "A read succeeded only after retrying: the storage is failing. Check the disks, controller and drivers now, run a full DBCC CHECKDB, and make sure the backups are good."
	case 2508:
		return "Page or row counts in the catalog are wrong (not damage): run DBCC UPDATEUSAGE on the database."
	case 2570:
		return "Data purity: a column holds a value outside its data type's range. DBCC repair cannot fix this: find the row from the message (page and slot) and UPDATE the column to a valid value."
	case 823, 824, 829, 832:
		return "The page could not be read correctly. Restore the page (RESTORE DATABASE ... PAGE = 'file:page') or the database from the last clean backup and the log backups after it." + investigate
	}
	switch {
	case strings.Contains(repair, "rebuild") && d.indexID > 1:
		return "Only a nonclustered index is damaged: rebuild it (ALTER INDEX ... REBUILD, or drop and re-create it); no data is lost." + investigate
	case strings.Contains(repair, "rebuild"):
		return "Repairable without data loss (REPAIR_REBUILD), but restoring from the last clean backup is preferred; dbscrub never repairs." + investigate
	case strings.Contains(repair, "data_loss"):
		return "Restore the damaged pages or the database from the last clean backup and the log backups after it. REPAIR_ALLOW_DATA_LOSS deletes data: last resort only, never run by dbscrub." + investigate
	}
	return "Restore from the last clean backup; run DBCC CHECKDB for the full list of errors and the minimum repair level." + investigate
}
