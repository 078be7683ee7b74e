package sqlserver

import (
	"context"
	"fmt"
	"math/big"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dbscrub/dbscrub/checks"
)

// checkFingerprint names fingerprint statements in errors (and picks the
// remedy of a permission error).
const checkFingerprint = checks.CheckFingerprint

// fpAlgorithm names how rows are rendered and hashed. Only fingerprints
// with the same algorithm compare; change the version when the rendering
// of any type changes.
const fpAlgorithm = "microsoft.sql_server/v1: HASHBYTES('SHA2_256', row as FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES in UTF-16; " +
	"float and real with CONVERT style 3, money style 2, decimal exact, date and time style 121, CLR types as varbinary, sql_variant as base type and varbinary), " +
	"bytes 1-8 and 9-16 as two bigint lanes summed mod 2^64; computed, column-set and rowversion columns not hashed"

// fpStateSQL reads what decides how the fingerprint stays consistent, and
// the server's version (FOR JSON and HASHBYTES over more than 8000 bytes
// need SQL Server 2016).
const fpStateSQL = `SELECT DB_NAME() AS database_name,
  CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)) AS product_version,
  CAST(SERVERPROPERTY('EngineEdition') AS int) AS engine_edition,
  d.snapshot_isolation_state, d.snapshot_isolation_state_desc, d.is_read_committed_snapshot_on, d.is_read_only,
  CASE WHEN d.source_database_id IS NULL THEN 0 ELSE 1 END AS is_database_snapshot,
  CASE WHEN d.replica_id IS NULL THEN 0 ELSE 1 END AS in_availability_group,
  CAST(DATABASEPROPERTYEX(DB_NAME(), 'Updateability') AS nvarchar(60)) AS updateability,
  SYSUTCDATETIME() AS now_utc
FROM sys.databases AS d
WHERE d.database_id = DB_ID();`

// The statements that open and end the fingerprint's transaction. They
// are sent without parameters, as batches, so the isolation level and the
// transaction last for the session.
const (
	fpBeginSnapshotSQL      = "SET TRANSACTION ISOLATION LEVEL SNAPSHOT; BEGIN TRANSACTION;"
	fpBeginReadCommittedSQL = "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; BEGIN TRANSACTION;"
	// fpEndSQL also restores the default isolation level before the
	// connection goes back to the pool (which may be the caller's, see New).
	fpEndSQL = "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION; SET TRANSACTION ISOLATION LEVEL READ COMMITTED;"
)

// fpTablesSQL lists the user tables (or the one named by @p1,
// "schema.table") and then their columns, with each column's primary-key
// position. External tables (their rows live elsewhere) and the tables of
// SQL Server itself (is_ms_shipped) are left out.
const fpTablesSQL = `SELECT t.object_id, s.name AS schema_name, t.name AS table_name, t.is_memory_optimized,
  HAS_PERMS_BY_NAME(QUOTENAME(s.name) + N'.' + QUOTENAME(t.name), N'OBJECT', N'SELECT') AS can_select
FROM sys.tables AS t
JOIN sys.schemas AS s ON s.schema_id = t.schema_id
WHERE t.is_ms_shipped = 0 AND t.is_external = 0
  AND (@p1 IS NULL OR s.name + N'.' + t.name = @p1)
ORDER BY s.name, t.name;
SELECT c.object_id, c.column_id, c.name AS column_name,
  ty.name AS type_name, SCHEMA_NAME(ty.schema_id) AS type_schema, ty.is_user_defined, ty.is_assembly_type,
  TYPE_NAME(c.system_type_id) AS system_type, c.max_length, c.precision, c.scale, c.collation_name,
  c.is_computed, c.is_column_set, pk.key_ordinal
FROM sys.columns AS c
JOIN sys.tables AS t ON t.object_id = c.object_id
JOIN sys.schemas AS s ON s.schema_id = t.schema_id
JOIN sys.types AS ty ON ty.user_type_id = c.user_type_id
LEFT JOIN (SELECT ic.object_id, ic.column_id, ic.key_ordinal
  FROM sys.indexes AS i
  JOIN sys.index_columns AS ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id
  WHERE i.is_primary_key = 1 AND ic.key_ordinal > 0) AS pk ON pk.object_id = c.object_id AND pk.column_id = c.column_id
WHERE t.is_ms_shipped = 0 AND t.is_external = 0
  AND (@p1 IS NULL OR s.name + N'.' + t.name = @p1)
ORDER BY c.object_id, c.column_id;`

// noKeyNote is the note of a table hashed as one aggregate, the same words
// the other drivers use.
const noKeyNote = "no primary key: whole-table aggregate; differences cannot be located inside the table"

// fpColumn is one column of a table to fingerprint.
type fpColumn struct {
	name      string
	typeName  string // sys.types name (an alias or CLR type's own name)
	typeSch   string // the schema of a user-defined type
	userType  bool
	assembly  bool   // a CLR type: geography, geometry, hierarchyid, a CLR UDT
	base      string // the system type underneath (lower case)
	maxLength int64  // bytes; -1 = max
	precision int64
	scale     int64
	collation string
	computed  bool
	columnSet bool
	pkOrdinal int64 // 0 = not in the primary key
}

// fpTable is one table to fingerprint.
type fpTable struct {
	objectID     int64
	schema, name string
	rel          string // [schema].[name]
	canSelect    bool
	memOptimized bool
	cols         []fpColumn
	hashed       []fpColumn
	pk           []fpColumn // in key order; nil when not keyed
	note         string
}

func (tb *fpTable) display() string { return tb.schema + "." + tb.name }
func (tb *fpTable) keyed() bool     { return len(tb.pk) > 0 }

// quoteCol returns the column as t.[name].
func quoteCol(name string) string { return "t." + quoteName(name) }

// declaredType spells the column's type as SQL Server does: nvarchar(50),
// decimal(10,2), datetime2(3), varbinary(max), dbo.Phone for an alias type.
func (c fpColumn) declaredType() string {
	if c.userType {
		return c.typeSch + "." + c.typeName
	}
	return c.sized(c.typeName)
}

// sized appends the column's length, precision or scale to a system type.
func (c fpColumn) sized(typ string) string {
	length := func(unit int64) string {
		if c.maxLength < 0 {
			return typ + "(max)"
		}
		return typ + "(" + strconv.FormatInt(c.maxLength/unit, 10) + ")"
	}
	switch typ {
	case "varchar", "char", "varbinary", "binary":
		return length(1)
	case "nvarchar", "nchar":
		return length(2)
	case "decimal", "numeric":
		return fmt.Sprintf("%s(%d,%d)", typ, c.precision, c.scale)
	case "datetime2", "time", "datetimeoffset":
		return fmt.Sprintf("%s(%d)", typ, c.scale)
	}
	return typ
}

// baseType spells the system type a key parameter is converted to.
func (c fpColumn) baseType() string {
	if c.assembly {
		return c.typeName
	}
	return c.sized(c.base)
}

// skipReason says why a column is not hashed, or "".
func (c fpColumn) skipReason() string {
	switch {
	case c.columnSet:
		return "a sparse column set (derived from the sparse columns, which are hashed)"
	case c.computed:
		return "computed (derived from the other columns)"
	case c.base == "timestamp":
		return "rowversion (assigned by the server: it differs in every copy not restored from a backup)"
	}
	return ""
}

// collateClause returns " COLLATE name" for a character column whose
// collation name is a plain identifier, else "".
var collationName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

func (c fpColumn) collateClause() string {
	if c.collation == "" || !collationName.MatchString(c.collation) {
		return ""
	}
	return " COLLATE " + c.collation
}

// rowExpr renders a column for the row's JSON: as it is where FOR JSON's
// rendering is exact and stable, converted to a stable, exact text where it
// is not (or where FOR JSON refuses the type).
func (c fpColumn) rowExpr() string {
	col := quoteCol(c.name)
	if c.assembly {
		// geography, geometry, hierarchyid and CLR UDTs: FOR JSON cannot
		// serialize them (error 13604); their serialized bytes are exact.
		return "CONVERT(varbinary(max), " + col + ")"
	}
	switch c.base {
	case "float", "real":
		// Style 3: 17 (real: 9) significant digits, lossless.
		return "CONVERT(varchar(30), " + col + ", 3)"
	case "money", "smallmoney":
		// Style 2: all four decimals (style 0 rounds to two).
		return "CONVERT(varchar(30), " + col + ", 2)"
	case "decimal", "numeric":
		return "CONVERT(varchar(50), " + col + ")"
	case "date", "time", "datetime", "datetime2", "smalldatetime", "datetimeoffset":
		// ODBC canonical: every fractional digit of the type, the offset,
		// independent of SET LANGUAGE and DATEFORMAT.
		return "CONVERT(varchar(40), " + col + ", 121)"
	case "text":
		return "CONVERT(varchar(max), " + col + ")"
	case "ntext", "xml":
		return "CONVERT(nvarchar(max), " + col + ")"
	case "image":
		return "CONVERT(varbinary(max), " + col + ")"
	case "sql_variant":
		// The base type tells 1 (int) from '1' (varchar); the value's bytes
		// are exact whatever the base type (a float, a datetime).
		return "CASE WHEN " + col + " IS NULL THEN NULL ELSE CONCAT(CONVERT(nvarchar(128), SQL_VARIANT_PROPERTY(" + col + ", 'BaseType')), N':', CONVERT(nvarchar(max), CONVERT(varbinary(8000), " + col + "), 1)) END"
	}
	return col
}

// Key value kinds: how a key column's value is rendered to text and
// converted back from a parameter.
const (
	keyNumber = iota // JSON number; CONVERT(type, @p)
	keyText          // JSON string; CONVERT(type, @p COLLATE c)
	keyStyled        // JSON string; CONVERT(type, @p, style)
	keyPlain         // JSON string; CONVERT(type, @p)
	keyNone          // cannot bound a chunk
)

// keyKind returns how the column works as a chunk bound, and the CONVERT
// style of its text.
func (c fpColumn) keyKind() (kind int, style string) {
	if c.assembly {
		if c.typeName == "hierarchyid" {
			return keyPlain, "" // ToString() and Parse() round-trip
		}
		return keyNone, ""
	}
	switch c.base {
	case "tinyint", "smallint", "int", "bigint", "bit", "decimal", "numeric":
		return keyNumber, ""
	case "money", "smallmoney":
		return keyNumber, "2"
	case "float", "real":
		return keyStyled, "3"
	case "date", "time", "datetime", "datetime2", "smalldatetime", "datetimeoffset":
		return keyStyled, "121"
	case "binary", "varbinary", "timestamp":
		return keyStyled, "1"
	case "char", "varchar", "nchar", "nvarchar":
		return keyText, ""
	case "uniqueidentifier":
		return keyPlain, ""
	}
	return keyNone, ""
}

// keyTextExpr renders a key column as text that converts back to the same
// value.
func (c fpColumn) keyTextExpr() string {
	col := quoteCol(c.name)
	kind, style := c.keyKind()
	switch {
	case c.base == "timestamp" || (kind == keyStyled && style == "1"):
		return "CONVERT(nvarchar(4000), CONVERT(varbinary(8000), " + col + "), 1)"
	case style != "":
		return "CONVERT(nvarchar(4000), " + col + ", " + style + ")"
	}
	return "CONVERT(nvarchar(4000), " + col + ")"
}

// keyParamExpr converts parameter p back to the key column's type.
func (c fpColumn) keyParamExpr(p string) string {
	kind, style := c.keyKind()
	typ := c.baseType()
	if c.base == "timestamp" {
		typ = "binary(8)"
	}
	switch {
	case kind == keyText:
		// The column's collation: the conversion from nvarchar uses its
		// code page, and comparisons its order, as ORDER BY does.
		return "CONVERT(" + typ + ", " + p + c.collateClause() + ")"
	case kind == keyStyled && style != "3":
		// Dates (121) and binary (1: 0x...) are read back with the style
		// they were written with. Numbers (float style 3, money style 2)
		// need none: their text is plain decimal or scientific notation.
		return "CONVERT(" + typ + ", " + p + ", " + style + ")"
	}
	return "CONVERT(" + typ + ", " + p + ")"
}

// describe sets up the table's hashed columns and key from its columns.
func (tb *fpTable) describe() {
	var skipped []string
	var pk []fpColumn
	for _, c := range tb.cols {
		if r := c.skipReason(); r != "" {
			skipped = append(skipped, quoteName(c.name)+" "+r)
		} else {
			tb.hashed = append(tb.hashed, c)
		}
		if c.pkOrdinal > 0 {
			pk = append(pk, c)
		}
	}
	sort.SliceStable(pk, func(i, j int) bool { return pk[i].pkOrdinal < pk[j].pkOrdinal })
	var notes []string
	switch {
	case len(pk) == 0:
		notes = append(notes, noKeyNote)
	default:
		for _, c := range pk {
			if k, _ := c.keyKind(); k == keyNone {
				notes = append(notes, fmt.Sprintf("primary key column %s is of type %s, which cannot bound a chunk: whole-table aggregate; differences cannot be located inside the table",
					quoteName(c.name), c.declaredType()))
				pk = nil
				break
			}
		}
	}
	tb.pk = pk
	if len(skipped) > 0 {
		notes = append(notes, "not hashed: "+strings.Join(skipped, "; "))
	}
	tb.note = strings.Join(notes, "; ")
}

// columns returns the hashed columns for the fingerprint.
func (tb *fpTable) columns() []checks.Column {
	out := make([]checks.Column, len(tb.hashed))
	for i, c := range tb.hashed {
		out[i] = checks.Column{Name: c.name, Type: c.declaredType()}
	}
	return out
}

func (tb *fpTable) pkNames() []string {
	if !tb.keyed() {
		return nil
	}
	out := make([]string, len(tb.pk))
	for i, c := range tb.pk {
		out[i] = c.name
	}
	return out
}

// keyOrder returns "t.[k1], t.[k2]".
func (tb *fpTable) keyOrder() string {
	parts := make([]string, len(tb.pk))
	for i, c := range tb.pk {
		parts[i] = quoteCol(c.name)
	}
	return strings.Join(parts, ", ")
}

// keyCompare returns the predicate "key op bound" and appends the bound's
// values to args, as text parameters converted back to each column's type
// in SQL. SQL Server has no row-value comparison, so a composite key
// expands to (k1 > v1) OR (k1 = v1 AND k2 > v2) ..., behind a first
// k1 >= v1 (or <=) that an index seek can use.
func (tb *fpTable) keyCompare(op string, k checks.Key, args *[]any) (string, error) {
	vals, err := decodeKey(k, len(tb.pk))
	if err != nil {
		return "", err
	}
	ps := make([]string, len(vals))
	for i, v := range vals {
		*args = append(*args, v)
		ps[i] = tb.pk[i].keyParamExpr("@p" + strconv.Itoa(len(*args)))
	}
	if len(vals) == 1 {
		return quoteCol(tb.pk[0].name) + " " + op + " " + ps[0], nil
	}
	strict, first := ">", ">="
	if op == "<=" {
		strict, first = "<", "<="
	}
	terms := make([]string, len(vals))
	for i := range vals {
		var conj []string
		for j := 0; j < i; j++ {
			conj = append(conj, quoteCol(tb.pk[j].name)+" = "+ps[j])
		}
		last := strict
		if i == len(vals)-1 {
			last = op
		}
		conj = append(conj, quoteCol(tb.pk[i].name)+" "+last+" "+ps[i])
		terms[i] = "(" + strings.Join(conj, " AND ") + ")"
	}
	return "(" + quoteCol(tb.pk[0].name) + " " + first + " " + ps[0] + " AND (" + strings.Join(terms, " OR ") + "))", nil
}

// rangePred returns the WHERE clause ("" when unbounded) of a key range.
func (tb *fpTable) rangePred(r checks.KeyRange, args *[]any) (string, error) {
	if !tb.keyed() {
		if r.Lower != nil || r.Upper != nil {
			return "", fmt.Errorf("sqlserver: %w: table %s has no usable primary key, so its key ranges cannot be hashed", checks.ErrUnsupported, tb.display())
		}
		return "", nil
	}
	return r.Where(func(op string, bound checks.Key) (string, error) { return tb.keyCompare(op, bound, args) })
}

// rowJSON returns the expression that renders a row as JSON: every hashed
// column under a positional name ([c0], [c1] ...: column names with dots
// would nest), NULL as null.
func (tb *fpTable) rowJSON() string {
	parts := make([]string, len(tb.hashed))
	for i, c := range tb.hashed {
		parts[i] = c.rowExpr() + " AS [c" + strconv.Itoa(i) + "]"
	}
	return "(SELECT " + strings.Join(parts, ", ") + " FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES)"
}

// hashSQL returns the statement that counts and hashes the rows matching
// where: per row SHA-256 of its JSON text (nvarchar: UTF-16), bytes 1-8
// and 9-16 as two signed bigints, summed exactly as decimal(38,0) (no
// overflow below 10^19 rows) and returned as text, reduced mod 2^64 in Go.
func (tb *fpTable) hashSQL(where string) string {
	return "SELECT COUNT_BIG(*) AS row_count,\n" +
		"  CONVERT(varchar(40), COALESCE(SUM(CONVERT(decimal(38,0), CONVERT(bigint, SUBSTRING(r.h, 1, 8)))), 0)) AS lane0,\n" +
		"  CONVERT(varchar(40), COALESCE(SUM(CONVERT(decimal(38,0), CONVERT(bigint, SUBSTRING(r.h, 9, 8)))), 0)) AS lane1\n" +
		"FROM " + tb.rel + " AS t\n" +
		"CROSS APPLY (SELECT HASHBYTES('SHA2_256', " + tb.rowJSON() + ") AS h) AS r" + where + ";"
}

// boundSQL returns the statement that reads the key of the row at offset
// @pN (the last parameter) of the rows matching where, in key order.
func (tb *fpTable) boundSQL(where string, offsetParam int) string {
	sel := make([]string, len(tb.pk))
	for i, c := range tb.pk {
		sel[i] = c.keyTextExpr() + " AS [k" + strconv.Itoa(i) + "]"
	}
	return "SELECT " + strings.Join(sel, ", ") + "\nFROM " + tb.rel + " AS t" + where +
		"\nORDER BY " + tb.keyOrder() + "\nOFFSET @p" + strconv.Itoa(offsetParam) + " ROWS FETCH NEXT 1 ROWS ONLY;"
}

// fpConn is the one session a fingerprint (or a HashRanges or SplitRange
// call) runs on, inside one transaction.
type fpConn struct {
	t    *Target
	sess session
	bad  bool
	// snapshot says how the reads were kept consistent.
	snapshot string
	state    fpState
}

// fpState is what fpStateSQL read.
type fpState struct {
	database       string
	productVersion string
	engineEdition  int
	snapshotState  int64
	snapshotDesc   string
	rcsi           bool
	readOnly       bool
	dbSnapshot     bool
	inAG           bool
	updateability  string
	now            time.Time
}

// query runs one statement; a server error or a failed exchange is an
// error, after which the session is discarded.
func (c *fpConn) query(ctx context.Context, what, stmt string, args ...any) (*response, error) {
	resp, err := c.t.exec(ctx, c.sess, stmt, args...)
	errs := serverErrors(resp, err)
	if err != nil || len(errs) > 0 {
		c.bad = true
		return nil, c.t.failure(checkFingerprint, "sqlserver: fingerprint: "+what, errs, err, false)
	}
	return resp, nil
}

// close ends the transaction (read-only: it is rolled back) and gives the
// connection back, or discards it after an error or a cancellation.
func (c *fpConn) close(ctx context.Context) {
	if !c.bad && ctx.Err() == nil {
		if _, err := c.query(ctx, "ending the transaction", fpEndSQL); err != nil {
			c.t.cfg.logger.Warn("dbscrub: sqlserver fingerprint: ending the transaction", "error", err)
		}
	}
	c.sess.close(c.bad || ctx.Err() != nil)
}

// fpSupported refuses servers without FOR JSON (SQL Server 2016) and
// Azure Synapse.
func fpSupported(engineEdition int, productVersion string) error {
	switch engineEdition {
	case EngineEditionAzureSynapse, EngineEditionSynapseServerless:
		return fmt.Errorf("sqlserver: %w: fingerprints are not supported on Azure Synapse Analytics", ErrUnsupported)
	case EngineEditionAzureSQLDatabase, EngineEditionManagedInstance:
		return nil // they report 12.0 but have every feature used here
	}
	major, _, _ := strings.Cut(productVersion, ".")
	if n, err := strconv.Atoi(major); err != nil || n < 13 {
		return fmt.Errorf("sqlserver: %w: fingerprints need SQL Server 2016 (13.x) or later (FOR JSON, CONVERT style 3, HASHBYTES of more than 8000 bytes); this server runs %s", ErrUnsupported, productVersion)
	}
	return nil
}

// fpOpen opens a session, reads the database's state, and begins the
// transaction the fingerprint reads in:
//
//   - ALLOW_SNAPSHOT_ISOLATION ON: one SNAPSHOT transaction, which sees
//     the database as it was when it first read, takes no locks on rows
//     and never blocks writers;
//   - otherwise one READ COMMITTED transaction, which is consistent only
//     where nothing writes (a READ_ONLY database, a database snapshot) or
//     where SQL Server maps every read to snapshot isolation (a readable
//     availability-group secondary), and otherwise reads each chunk at its
//     own moment: the Snapshot field says so.
func (t *Target) fpOpen(ctx context.Context) (*fpConn, error) {
	if t.isClosed() {
		return nil, fmt.Errorf("sqlserver: %s: %w", t.Info().Name, ErrClosed)
	}
	sess, err := t.db.session(ctx)
	if err != nil {
		return nil, t.connectFailure("sqlserver: fingerprint", err)
	}
	c := &fpConn{t: t, sess: sess}
	fail := func(err error) (*fpConn, error) {
		c.bad = true
		c.close(ctx)
		return nil, err
	}
	if _, err := c.query(ctx, "session setup", t.cfg.sessionSQL()); err != nil {
		return fail(err)
	}
	resp, err := c.query(ctx, "reading the database's isolation options", fpStateSQL)
	if err != nil {
		return fail(err)
	}
	rows := firstRows(resp)
	if len(rows) == 0 {
		return fail(fmt.Errorf("sqlserver: fingerprint: %w: the current database is not visible in sys.databases", ErrDatabaseUnavailable))
	}
	r := rows[0]
	st := fpState{
		database:       r.String("database_name"),
		productVersion: r.String("product_version"),
		engineEdition:  int(r.IntOr("engine_edition", 0)),
		snapshotState:  r.IntOr("snapshot_isolation_state", 0),
		snapshotDesc:   r.String("snapshot_isolation_state_desc"),
		rcsi:           r.Bool("is_read_committed_snapshot_on"),
		readOnly:       r.Bool("is_read_only"),
		dbSnapshot:     r.Bool("is_database_snapshot"),
		inAG:           r.Bool("in_availability_group"),
		updateability:  strings.ToUpper(r.String("updateability")),
	}
	st.now, _ = r.Time("now_utc")
	if st.snapshotDesc == "" {
		st.snapshotDesc = strconv.FormatInt(st.snapshotState, 10)
	}
	if err := fpSupported(st.engineEdition, st.productVersion); err != nil {
		return fail(err)
	}
	begin := fpBeginReadCommittedSQL
	db := quoteName(st.database)
	switch {
	case st.snapshotState == 1: // ON
		begin = fpBeginSnapshotSQL
		c.snapshot = "one SNAPSHOT isolation transaction (ALLOW_SNAPSHOT_ISOLATION ON): every chunk read the same committed state, without locking rows"
	case st.dbSnapshot:
		c.snapshot = "one READ COMMITTED transaction on a database snapshot, which cannot change"
	case st.readOnly:
		c.snapshot = "one READ COMMITTED transaction on a READ_ONLY database, which cannot change while it is read"
	case st.inAG && st.updateability == "READ_ONLY":
		c.snapshot = "one transaction on a readable availability-group secondary, where SQL Server maps every read to SNAPSHOT isolation"
	default:
		how := "short shared row locks"
		if st.rcsi {
			how = "row versions (READ_COMMITTED_SNAPSHOT ON), without locks"
		}
		c.snapshot = fmt.Sprintf("NOT ONE SNAPSHOT: ALLOW_SNAPSHOT_ISOLATION is %s, so each chunk was read at READ COMMITTED (%s) at its own moment; "+
			"rows written while the fingerprint ran can show as differences. For one consistent snapshot: ALTER DATABASE %s SET ALLOW_SNAPSHOT_ISOLATION ON",
			st.snapshotDesc, how, db)
		t.cfg.logger.Warn("dbscrub: sqlserver fingerprint is not one snapshot: ALLOW_SNAPSHOT_ISOLATION is not ON; reading at READ COMMITTED",
			"database", st.database, "snapshot_isolation_state", st.snapshotDesc)
	}
	c.state = st
	if _, err := c.query(ctx, "beginning the transaction", begin); err != nil {
		return fail(err)
	}
	return c, nil
}

// listTables lists the tables (or the one named by only) with their
// columns and primary keys.
func (c *fpConn) listTables(ctx context.Context, only string) ([]*fpTable, error) {
	var arg any
	what := "listing tables"
	if only != "" {
		arg, what = only, "looking up "+only
	}
	resp, err := c.query(ctx, what, fpTablesSQL, arg)
	if err != nil {
		return nil, err
	}
	if len(resp.sets) != 2 {
		c.bad = true
		return nil, fmt.Errorf("sqlserver: fingerprint: %s: got %d result sets, want 2", what, len(resp.sets))
	}
	byID := map[int64]*fpTable{}
	var out []*fpTable
	for _, r := range resp.sets[0].Rows() {
		tb := &fpTable{
			objectID:     r.IntOr("object_id", 0),
			schema:       r.String("schema_name"),
			name:         r.String("table_name"),
			memOptimized: r.Bool("is_memory_optimized"),
			canSelect:    r.Bool("can_select"),
		}
		tb.rel = quoteName(tb.schema) + "." + quoteName(tb.name)
		byID[tb.objectID] = tb
		out = append(out, tb)
	}
	for _, r := range resp.sets[1].Rows() {
		tb := byID[r.IntOr("object_id", 0)]
		if tb == nil {
			continue // created between the two queries
		}
		col := fpColumn{
			name:      r.String("column_name"),
			typeName:  r.String("type_name"),
			typeSch:   r.String("type_schema"),
			userType:  r.Bool("is_user_defined"),
			assembly:  r.Bool("is_assembly_type"),
			base:      strings.ToLower(r.String("system_type")),
			maxLength: r.IntOr("max_length", 0),
			precision: r.IntOr("precision", 0),
			scale:     r.IntOr("scale", 0),
			collation: r.String("collation_name"),
			computed:  r.Bool("is_computed"),
			columnSet: r.Bool("is_column_set"),
			pkOrdinal: r.IntOr("key_ordinal", 0),
		}
		if col.base == "" {
			col.base = strings.ToLower(col.typeName)
		}
		tb.cols = append(tb.cols, col)
	}
	for _, tb := range out {
		if len(tb.cols) == 0 {
			c.bad = true
			return nil, fmt.Errorf("sqlserver: fingerprint: table %s has no visible columns (VIEW DEFINITION denied?)", tb.display())
		}
		tb.describe()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].display() < out[j].display() })
	return out, nil
}

// hashChunk hashes the rows of one key range.
func (c *fpConn) hashChunk(ctx context.Context, tb *fpTable, r checks.KeyRange) (checks.ChunkFingerprint, error) {
	var args []any
	where, err := tb.rangePred(r, &args)
	if err != nil {
		return checks.ChunkFingerprint{}, err
	}
	if where != "" {
		where = "\n" + strings.TrimPrefix(where, " ")
	}
	resp, err := c.query(ctx, "hashing "+tb.display()+" "+r.String(), tb.hashSQL(where), args...)
	if err != nil {
		return checks.ChunkFingerprint{}, err
	}
	rows := firstRows(resp)
	if len(rows) != 1 {
		c.bad = true
		return checks.ChunkFingerprint{}, fmt.Errorf("sqlserver: fingerprint: hashing %s %s: got %d rows, want 1", tb.display(), r, len(rows))
	}
	ch := checks.ChunkFingerprint{Lower: r.Lower, Upper: r.Upper}
	n, ok := rows[0].Int("row_count")
	if !ok || n < 0 {
		c.bad = true
		return ch, fmt.Errorf("sqlserver: fingerprint: hashing %s %s: bad row count %v", tb.display(), r, rows[0].Value("row_count"))
	}
	ch.Rows = n
	for i, lane := range []string{"lane0", "lane1"} {
		if ch.Hash[i], err = mod64(rows[0].String(lane)); err != nil {
			c.bad = true
			return ch, fmt.Errorf("sqlserver: fingerprint: hashing %s %s: %w", tb.display(), r, err)
		}
	}
	return ch, nil
}

// bound returns the key of the n-th row of r in key order, or nil when r
// has fewer rows.
func (c *fpConn) bound(ctx context.Context, tb *fpTable, r checks.KeyRange, n int64) (checks.Key, error) {
	var args []any
	where, err := tb.rangePred(r, &args)
	if err != nil {
		return nil, err
	}
	if where != "" {
		where = "\n" + strings.TrimPrefix(where, " ")
	}
	args = append(args, n-1)
	resp, err := c.query(ctx, "finding chunk bounds of "+tb.display()+" "+r.String(), tb.boundSQL(where, len(args)), args...)
	if err != nil {
		return nil, err
	}
	rows := firstRows(resp)
	if len(rows) == 0 {
		return nil, nil
	}
	vals := make([]string, len(tb.pk))
	for i := range tb.pk {
		col := "k" + strconv.Itoa(i)
		if rows[0].Null(col) {
			c.bad = true
			return nil, fmt.Errorf("sqlserver: fingerprint: %s: a primary key value rendered as NULL", tb.display())
		}
		vals[i] = rows[0].String(col)
	}
	return tb.encodeKey(vals), nil
}

var two64 = new(big.Int).Lsh(big.NewInt(1), 64)

// mod64 reduces an integer (as text: the exact decimal(38,0) sum of
// signed lanes) modulo 2^64. Summing signed two's-complement lanes and
// reducing gives the same result as summing them as unsigned.
func mod64(s string) (uint64, error) {
	x, ok := new(big.Int).SetString(strings.TrimSpace(s), 10)
	if !ok {
		return 0, fmt.Errorf("bad lane sum %q: want an integer", s)
	}
	return x.Mod(x, two64).Uint64(), nil
}

// encodeKey turns key column texts into a Key: JSON numbers for integer,
// bit, decimal and money columns, JSON strings holding SQL Server's text
// otherwise (float style 3, dates style 121, binary 0x..., a GUID).
func (tb *fpTable) encodeKey(vals []string) checks.Key {
	return checks.KeyFromText(vals, func(i int) bool {
		kind, _ := tb.pk[i].keyKind()
		return kind == keyNumber
	})
}

// decodeKey returns the text of each key value.
func decodeKey(k checks.Key, n int) ([]string, error) {
	vals, err := k.Texts(n)
	if err != nil {
		return nil, fmt.Errorf("sqlserver: fingerprint: %w", err)
	}
	return vals, nil
}

// Fingerprint fingerprints every user table of the database (or those the
// options select): for each, the hashed columns, the primary key, the row
// count and the order-independent hash of every row, per primary-key range
// (see [checks.Fingerprint]). It implements [checks.Fingerprinter]; it
// needs SQL Server 2016 or later, Azure SQL Database or Managed Instance.
//
// Everything runs on one connection, in one transaction: SNAPSHOT
// isolation when the database has ALLOW_SNAPSHOT_ISOLATION ON (one
// consistent state, no row locks, writers never blocked); otherwise READ
// COMMITTED, and then [checks.Fingerprint].Snapshot says plainly that the
// chunks were not read in one snapshot (unless the database is READ_ONLY,
// a database snapshot or a readable secondary). No table lock is taken.
// SQL Server cannot share a snapshot between sessions, so
// [checks.WithFingerprintJobs] has no effect.
//
// Rows are rendered and hashed by the server: each row as JSON (FOR JSON
// PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES, so NULL is null and
// the empty string ""), hashed with HASHBYTES('SHA2_256') over its UTF-16
// text, whose bytes 1-8 and 9-16 are the two 64-bit lanes, summed exactly
// as decimal(38,0) and reduced modulo 2^64 in Go. One row per chunk crosses
// the network. See the package documentation for how each type is rendered
// and which columns are not hashed.
//
// Chunks are cut by walking the primary key (ORDER BY key OFFSET n ROWS
// FETCH NEXT 1 ROWS ONLY), sized by [checks.WithChunkTime]; bounds are
// parameters, converted back to each key column's type (and collation) in
// SQL. Tables without a primary key (or whose key has a type that cannot
// bound a chunk, such as sql_variant) are hashed as one whole-table
// aggregate, flagged keyed:false with a note. The login needs SELECT on
// every table fingerprinted: a table it cannot read is an error wrapping
// [ErrPrivilege], never silently left out; exclude it with
// [checks.WithExcludeTables]. Memory-optimized tables cannot be read in
// such a transaction and must be excluded ([ErrUnsupported]).
func (t *Target) Fingerprint(ctx context.Context, opts ...checks.FingerprintOption) (*checks.Fingerprint, error) {
	cfg, err := checks.NewFingerprintConfig(opts...)
	if err != nil {
		return nil, err
	}
	if err := cfg.CheckBoundsEngine(Engine); err != nil {
		return nil, err
	}
	start := time.Now()
	caps, err := t.probe(ctx)
	if err != nil {
		return nil, err
	}
	if caps.ViaMaster {
		return nil, fmt.Errorf("sqlserver: %w: database %s (%s) cannot be opened, so it cannot be fingerprinted: %s", ErrDatabaseUnavailable, caps.Database, caps.State, caps.OpenError)
	}
	c, err := t.fpOpen(ctx)
	if err != nil {
		return nil, err
	}
	defer c.close(ctx)
	all, err := c.listTables(ctx, "")
	if err != nil {
		return nil, err
	}
	var tables []*fpTable
	var denied, memOpt []string
	for _, tb := range all {
		if !cfg.MatchTable(tb.display(), tb.name) {
			continue
		}
		switch {
		case !tb.canSelect:
			denied = append(denied, tb.display())
		case tb.memOptimized:
			memOpt = append(memOpt, tb.display())
		default:
			tables = append(tables, tb)
		}
	}
	if len(denied) > 0 {
		return nil, fmt.Errorf("sqlserver: %w: this login may not read %s in %s: a fingerprint reads every row; %s",
			ErrPrivilege, strings.Join(denied, ", "), caps.Database, permissionRemedy[checkFingerprint])
	}
	if len(memOpt) > 0 {
		return nil, fmt.Errorf("sqlserver: %w: memory-optimized tables cannot be read by interpreted T-SQL inside a SNAPSHOT or explicit READ COMMITTED transaction: leave %s out (--exclude-table)",
			ErrUnsupported, strings.Join(memOpt, ", "))
	}
	takenAt := c.state.now
	if takenAt.IsZero() {
		takenAt = start
	}
	fp := &checks.Fingerprint{
		SchemaVersion: checks.FingerprintSchemaVersion,
		Engine:        Engine,
		ServerVersion: caps.ProductVersion,
		Source:        t.Info().Name,
		Database:      caps.Database,
		TakenAt:       takenAt.UTC(),
		Algorithm:     fpAlgorithm,
		Snapshot:      c.snapshot,
		Tables:        []checks.TableFingerprint{},
	}
	for _, tb := range tables {
		tf := checks.TableFingerprint{Name: tb.display(), Columns: tb.columns(), PrimaryKey: tb.pkNames(), Keyed: tb.keyed(), Note: tb.note}
		if tf.Chunks, err = c.hashTable(ctx, tb, cfg); err != nil {
			return nil, err
		}
		tf.SumChunks()
		fp.Tables = append(fp.Tables, tf)
	}
	fp.DurationSeconds = time.Since(start).Seconds()
	return fp, nil
}

// hashTable hashes one table's chunks: one whole-table chunk without a
// key, the bounds of WithBoundsFrom, or bounds found by walking the key,
// sized by time.
func (c *fpConn) hashTable(ctx context.Context, tb *fpTable, cfg checks.FingerprintConfig) ([]checks.ChunkFingerprint, error) {
	var pk []string
	if tb.keyed() {
		pk = tb.pkNames()
	}
	return cfg.HashChunks(tb.display(), pk,
		func(r checks.KeyRange, rows int64) (checks.Key, error) { return c.bound(ctx, tb, r, rows) },
		func(r checks.KeyRange) (checks.ChunkFingerprint, error) { return c.hashChunk(ctx, tb, r) })
}

// fpLookup opens a fingerprint session and finds one keyed table.
func (t *Target) fpLookup(ctx context.Context, table string) (*fpConn, *fpTable, error) {
	c, err := t.fpOpen(ctx)
	if err != nil {
		return nil, nil, err
	}
	tbs, err := c.listTables(ctx, table)
	var tb *fpTable
	for _, x := range tbs {
		if x.display() == table {
			tb = x
		}
	}
	switch {
	case err != nil:
	case tb == nil:
		err = fmt.Errorf("sqlserver: fingerprint: no table %s in %s", table, t.Info().Name)
	case !tb.canSelect:
		err = fmt.Errorf("sqlserver: %w: the login may not read %s; %s", ErrPrivilege, table, permissionRemedy[checkFingerprint])
	case tb.memOptimized:
		err = fmt.Errorf("sqlserver: %w: %s is memory-optimized and cannot be read in a fingerprint's transaction", ErrUnsupported, table)
	case !tb.keyed():
		err = fmt.Errorf("sqlserver: %w: table %s: %s", checks.ErrUnsupported, table, tb.note)
	}
	if err != nil {
		c.close(ctx)
		return nil, nil, err
	}
	return c, tb, nil
}

// HashRanges hashes the given key ranges of table ("schema.table"), in one
// transaction (SNAPSHOT when the database allows it, as [Target.Fingerprint]
// does). It implements [checks.RangeHasher], which [checks.Narrow] uses to
// locate differences.
func (t *Target) HashRanges(ctx context.Context, table string, ranges []checks.KeyRange) ([]checks.ChunkFingerprint, error) {
	c, tb, err := t.fpLookup(ctx, table)
	if err != nil {
		return nil, err
	}
	defer c.close(ctx)
	out := make([]checks.ChunkFingerprint, len(ranges))
	for i, r := range ranges {
		if out[i], err = c.hashChunk(ctx, tb, r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// maxSplitKeys bounds the keys one SplitRange call returns.
const maxSplitKeys = 4096

// SplitRange returns the keys of the rows at positions every, 2*every, ...
// of r in table, excluding r.Upper. It implements [checks.RangeHasher].
func (t *Target) SplitRange(ctx context.Context, table string, r checks.KeyRange, every int64) ([]checks.Key, error) {
	if every < 1 {
		return nil, fmt.Errorf("sqlserver: %w: SplitRange: every must be at least 1, got %d", checks.ErrInvalidOption, every)
	}
	c, tb, err := t.fpLookup(ctx, table)
	if err != nil {
		return nil, err
	}
	defer c.close(ctx)
	return r.Split(maxSplitKeys, func(piece checks.KeyRange) (checks.Key, error) {
		return c.bound(ctx, tb, piece, every)
	})
}

var (
	_ checks.Fingerprinter = (*Target)(nil)
	_ checks.RangeHasher   = (*Target)(nil)
)
