package sqlserver

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/dbscrub/dbscrub/checks"
)

func TestOpenParsesAndValidatesWithoutConnecting(t *testing.T) {
	tg, err := Open("sqlserver://sa:s3cret@db.example.com:14330?database=Sales&encrypt=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	info := tg.Info()
	if info.Engine != "microsoft.sql_server" || info.Database != "Sales" || info.Host != "db.example.com" || info.Port != 14330 {
		t.Errorf("Info() = %+v", info)
	}
	if strings.Contains(info.Name, "s3cret") || !strings.Contains(info.Name, "xxxxx") {
		t.Errorf("Info().Name = %q, want the DSN with the password masked", info.Name)
	}
	if err := tg.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := tg.Probe(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Probe after Close: %v, want ErrClosed", err)
	}

	ado, err := Open("server=db.example.com,1533;user id=sa;password=s3cret;database=Sales")
	if err != nil {
		t.Fatal(err)
	}
	defer ado.Close()
	if i := ado.Info(); i.Host != "db.example.com" || i.Port != 1533 || i.Database != "Sales" || strings.Contains(i.Name, "s3cret") {
		t.Errorf("ADO Info() = %+v", i)
	}
}

func TestParseDSNAppName(t *testing.T) {
	p, _, _, err := parseDSN("sqlserver://sa:pw@h?database=x")
	if err != nil {
		t.Fatal(err)
	}
	if p.AppName != "dbscrub" {
		t.Errorf("AppName = %q, want dbscrub", p.AppName)
	}
	p, _, _, err = parseDSN("sqlserver://sa:pw@h?database=x&app+name=nightly")
	if err != nil {
		t.Fatal(err)
	}
	if p.AppName != "nightly" {
		t.Errorf("AppName = %q, want the DSN's nightly", p.AppName)
	}
	p, _, _, err = parseDSN("server=h;user id=sa;password=pw;app=ado-app")
	if err != nil {
		t.Fatal(err)
	}
	if p.AppName != "ado-app" {
		t.Errorf("AppName = %q, want ado-app", p.AppName)
	}
}

func TestOpenRejectsMalformedDSNWithoutLeakingThePassword(t *testing.T) {
	for _, dsn := range []string{
		"",
		"postgres://sa:s3cret@host/db",
		"sqlserver://sa:s3cret@host:notaport?database=x",
		"sqlserver://sa:s3cret@host?database=x&port=abc",
		"sqlserver://sa:s3cret@host?database=x&database=y",
		"sqlserver://sa:s3cret@host?database=x&fedauth=ActiveDirectoryDefault",
		"server=host;user id=sa;password=s3cret;port=99999999",
	} {
		_, err := Open(dsn)
		if err == nil {
			t.Errorf("Open(%q) succeeded", dsn)
			continue
		}
		if !errors.Is(err, checks.ErrInvalidOption) {
			t.Errorf("Open(%q): %v does not wrap ErrInvalidOption", dsn, err)
		}
		msg := err.Error()
		if strings.Contains(msg, "s3cret") {
			t.Errorf("Open(%q) leaks the password: %s", dsn, msg)
		}
		if strings.ContainsAny(msg, "\r\n") {
			t.Errorf("Open(%q): error is not one line: %q", dsn, msg)
		}
		if !strings.HasPrefix(msg, "sqlserver: ") {
			t.Errorf("Open(%q): error %q does not start with sqlserver:", dsn, msg)
		}
	}
}

func TestNewAndOptions(t *testing.T) {
	if _, err := New(nil); !errors.Is(err, checks.ErrInvalidOption) {
		t.Errorf("New(nil): %v", err)
	}
	db, err := sql.Open("sqlserver", "sqlserver://sa:pw@localhost?database=x")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tg, err := New(db, WithName("sales-prod"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(); err != nil && strings.Contains(err.Error(), "database is closed") {
		t.Error("Close closed the caller's pool")
	}
	if tg.Info().Name != "sales-prod" || tg.Info().Engine != Engine {
		t.Errorf("Info() = %+v", tg.Info())
	}

	bad := map[string][]Option{
		"negative lock timeout":   {WithLockTimeout(-time.Second)},
		"negative maxdop":         {WithMaxDOP(-1)},
		"huge maxdop":             {WithMaxDOP(40000)},
		"zero last good age":      {WithLastGoodMaxAge(0)},
		"zero backup age":         {WithBackupMaxAge(0)},
		"nil logger":              {WithLogger(nil)},
		"empty name":              {WithName(" ")},
		"physical + data purity":  {WithPhysicalOnly(), WithDataPurity()},
		"physical + extended":     {WithExtendedLogicalChecks(), WithPhysicalOnly()},
		"bad option before valid": {WithMaxDOP(-5), WithTabLock()},
	}
	for name, opts := range bad {
		if _, err := New(db, opts...); !errors.Is(err, checks.ErrInvalidOption) {
			t.Errorf("%s: New: %v, want ErrInvalidOption", name, err)
		}
		if _, err := Open("sqlserver://sa:pw@h?database=x", opts...); !errors.Is(err, checks.ErrInvalidOption) {
			t.Errorf("%s: Open: %v, want ErrInvalidOption", name, err)
		}
	}
}

func TestChecksSelection(t *testing.T) {
	tg := fakeTarget(t, newFake("db"), nil)
	cks, err := tg.Checks()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cks {
		names = append(names, c.Name())
	}
	want := []string{"checkdb", "suspect_pages", "last_known_good", "page_verify", "backups"}
	if !slices.Equal(names, want) {
		t.Errorf("default checks = %v, want %v", names, want)
	}
	var defaults []string
	for _, c := range Catalog() {
		if c.Default {
			defaults = append(defaults, c.Name)
		}
		if c.Description == "" {
			t.Errorf("check %s has no description", c.Name)
		}
	}
	if !slices.Equal(defaults, want) {
		t.Errorf("Catalog defaults = %v", defaults)
	}
	if len(Catalog()) != 8 {
		t.Errorf("Catalog has %d checks, want 8", len(Catalog()))
	}

	_, err = tg.Checks("checkdb", "fsck")
	if !errors.Is(err, checks.ErrUnknownCheck) {
		t.Fatalf("unknown check: %v", err)
	}
	for _, n := range []string{"checkdb", "checktable", "checkalloc", "checkcatalog", "suspect_pages", "last_known_good", "page_verify", "backups"} {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("error %q does not list %s", err, n)
		}
	}
	cks, err = tg.Checks("backups", "checktable", "checktable")
	if err != nil || len(cks) != 2 || cks[0].Name() != "checktable" || cks[1].Name() != "backups" {
		t.Errorf("Checks(backups, checktable, checktable) = %v, %v", cks, err)
	}
}

func TestDBCCStatementsRenderOptions(t *testing.T) {
	tests := []struct {
		name       string
		opts       []Option
		checkdb    string
		checktable string
		checkalloc string
	}{
		{
			name:       "defaults",
			checkdb:    "DBCC CHECKDB (@p1) WITH NO_INFOMSGS, ALL_ERRORMSGS, TABLERESULTS;",
			checktable: "DBCC CHECKTABLE (@p1) WITH NO_INFOMSGS, ALL_ERRORMSGS, TABLERESULTS;",
			checkalloc: "DBCC CHECKALLOC (@p1) WITH NO_INFOMSGS, ALL_ERRORMSGS, TABLERESULTS;",
		},
		{
			name:       "physical only, maxdop 2",
			opts:       []Option{WithPhysicalOnly(), WithMaxDOP(2)},
			checkdb:    "DBCC CHECKDB (@p1) WITH NO_INFOMSGS, ALL_ERRORMSGS, TABLERESULTS, PHYSICAL_ONLY, MAXDOP = 2;",
			checktable: "DBCC CHECKTABLE (@p1) WITH NO_INFOMSGS, ALL_ERRORMSGS, TABLERESULTS, PHYSICAL_ONLY, MAXDOP = 2;",
			checkalloc: "DBCC CHECKALLOC (@p1) WITH NO_INFOMSGS, ALL_ERRORMSGS, TABLERESULTS;",
		},
		{
			name:       "data purity, extended logical checks, tablock, noindex, maxdop 0",
			opts:       []Option{WithDataPurity(), WithExtendedLogicalChecks(), WithTabLock(), WithNoIndex(), WithMaxDOP(0)},
			checkdb:    "DBCC CHECKDB (@p1, NOINDEX) WITH NO_INFOMSGS, ALL_ERRORMSGS, TABLERESULTS, DATA_PURITY, EXTENDED_LOGICAL_CHECKS, TABLOCK, MAXDOP = 0;",
			checktable: "DBCC CHECKTABLE (@p1, NOINDEX) WITH NO_INFOMSGS, ALL_ERRORMSGS, TABLERESULTS, DATA_PURITY, EXTENDED_LOGICAL_CHECKS, TABLOCK, MAXDOP = 0;",
			checkalloc: "DBCC CHECKALLOC (@p1) WITH NO_INFOMSGS, ALL_ERRORMSGS, TABLERESULTS, TABLOCK;",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultConfig()
			if err := cfg.apply(tt.opts); err != nil {
				t.Fatal(err)
			}
			if got := checkDBSQL(cfg); got != tt.checkdb {
				t.Errorf("checkdb:\n got %s\nwant %s", got, tt.checkdb)
			}
			if got := checkTableSQL(cfg); got != tt.checktable {
				t.Errorf("checktable:\n got %s\nwant %s", got, tt.checktable)
			}
			if got := checkAllocSQL(cfg); got != tt.checkalloc {
				t.Errorf("checkalloc:\n got %s\nwant %s", got, tt.checkalloc)
			}
		})
	}
	cfg := defaultConfig()
	_ = WithLockTimeout(1500 * time.Millisecond)(&cfg)
	if got := cfg.sessionSQL(); !strings.HasPrefix(got, "SET LOCK_TIMEOUT 1500; SET DEADLOCK_PRIORITY LOW;") {
		t.Errorf("session SQL = %q", got)
	}
}

// TestNoStatementRepairsOrWrites checks every statement the driver can
// generate, under every option, and every statement the other tests ran.
func TestNoStatementRepairsOrWrites(t *testing.T) {
	optionSets := [][]Option{nil, {WithPhysicalOnly(), WithTabLock(), WithNoIndex(), WithMaxDOP(4)}, {WithDataPurity(), WithExtendedLogicalChecks()}}
	for _, opts := range optionSets {
		tg := fakeTarget(t, newFake("db"), nil, opts...)
		for _, c := range Catalog() {
			stmts := tg.Statements(c.Name)
			if len(stmts) == 0 {
				t.Errorf("no statements for %s", c.Name)
			}
			for _, s := range stmts {
				assertReadOnlyStatement(t, s)
			}
		}
	}
	for _, s := range []string{probeSQL, agSQL, agCatalogSQL, objectLookupSQL(3), checkTableListSQL(11), checkTableListSQL(16), suspectPagesSQL, lastKnownGoodSQL, pageVerifySQL, backupsSQL, checkCatalogSQL} {
		assertReadOnlyStatement(t, s)
	}
}

var forbidden = []string{"REPAIR", "WRITEPAGE", "INSERT ", "UPDATE ", "DELETE ", "ALTER ", "DROP ", "CREATE ", "TRUNCATE", "EXEC"}

func assertReadOnlyStatement(t *testing.T, s string) {
	t.Helper()
	// Remedies in comments are not statements; only check SQL lines.
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		up := strings.ToUpper(line)
		for _, f := range forbidden {
			if strings.Contains(up, f) {
				t.Errorf("statement contains %q: %s", f, line)
			}
		}
	}
}

func TestStatementsForExplain(t *testing.T) {
	tg := fakeTarget(t, newFake("db"), nil, WithMaxDOP(2))
	cks, err := tg.Checks("checkdb", "checktable", "checkalloc", "checkcatalog", "suspect_pages", "last_known_good", "page_verify", "backups")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cks {
		ex, ok := c.(interface{ Statements() []string })
		if !ok {
			t.Fatalf("check %s has no Statements method", c.Name())
		}
		stmts := ex.Statements()
		if len(stmts) == 0 || !strings.Contains(strings.Join(stmts, "\n"), "@p1") {
			t.Errorf("%s: statements %q lack placeholders", c.Name(), stmts)
		}
		if !strings.HasPrefix(stmts[0], "SET LOCK_TIMEOUT 5000; SET DEADLOCK_PRIORITY LOW;") {
			t.Errorf("%s: statement does not start with the session setup: %q", c.Name(), stmts[0])
		}
	}
	if s := tg.Statements("checkdb")[0]; !strings.Contains(s, "DBCC CHECKDB (@p1) WITH NO_INFOMSGS, ALL_ERRORMSGS, TABLERESULTS, MAXDOP = 2;") || !strings.Contains(s, "-- @p1 = database name") {
		t.Errorf("checkdb statement = %q", s)
	}
	if tg.Statements("nope") != nil {
		t.Error("Statements of an unknown check should be nil")
	}
}

func TestCheckDBCleanDatabase(t *testing.T) {
	db := newFake("db")
	defaultProbe().install(db)
	db.on("DBCC CHECKDB", resp(tableResults()), nil)
	tg := fakeTarget(t, db, nil)

	cks, _ := tg.Checks("checkdb")
	tasks, err := cks[0].Plan(ctxTimeout(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 1 || tasks[0].Key != "Sales" || tasks[0].Cost != 10<<30 {
		t.Fatalf("tasks = %+v", tasks)
	}
	st := tasks[0].Statement
	if !strings.Contains(st, "SET LOCK_TIMEOUT 5000; SET DEADLOCK_PRIORITY LOW;") || !strings.Contains(st, "DBCC CHECKDB (@p1) WITH NO_INFOMSGS, ALL_ERRORMSGS, TABLERESULTS;") {
		t.Errorf("Task.Statement = %q", st)
	}

	rep := runChecks(t, ctxTimeout(t), tg, nil, "checkdb")
	c := mustStatus(t, rep, "checkdb", checks.StatusHealthy)
	if c.Coverage.BytesVerified != 10<<30 || c.Coverage.ObjectsVerified != 1 {
		t.Errorf("coverage = %+v", c.Coverage)
	}
	if rep.Err() != nil {
		t.Errorf("Gate error on a clean database: %v", rep.Err())
	}
	if got := tg.Info().ServerVersion; got != "16.0.4135.4" {
		t.Errorf("Info().ServerVersion = %q", got)
	}
	// The DBCC statement ran after the session setup, with the database
	// as its parameter.
	calls := db.callsMatching("DBCC CHECKDB")
	if len(calls) != 1 || len(calls[0].args) != 1 || calls[0].args[0] != "Sales" {
		t.Fatalf("DBCC calls = %+v", calls)
	}
	stmts := db.statements()
	i := slices.IndexFunc(stmts, func(s string) bool { return strings.HasPrefix(s, "DBCC CHECKDB") })
	if i < 1 || !strings.HasPrefix(stmts[i-1], "SET LOCK_TIMEOUT 5000;") {
		t.Errorf("DBCC did not run right after the session setup: %q", stmts)
	}
	for _, s := range stmts {
		assertReadOnlyStatement(t, s)
	}
}

// corruptCheckDB records a CHECKDB that finds several errors, with
// informational messages interleaved, and the name lookup.
func corruptCheckDB(db *fakeServer) {
	rows := tableResults(
		tr{err: 8928, level: 16, object: 581577110, index: 1, partition: 72057594043170816, file: 1, page: 280,
			msg: "Object ID 581577110, index ID 1, partition ID 72057594043170816, alloc unit ID 72057594047692800 (type In-row data): Page (1:280) could not be processed.  See other errors for details.", repair: "repair_allow_data_loss"},
		tr{err: 8939, level: 16, object: 581577110, index: 1, file: 1, page: 280,
			msg: "Table error: Object ID 581577110, index ID 1, partition ID 72057594043170816, alloc unit ID 72057594047692800 (type In-row data), page (1:280). Test (IS_OFF (BUF_IOERR, pBUF->bstat)) failed. Values are 133129 and -4.", repair: "repair_allow_data_loss"},
		tr{err: 2533, level: 16, object: 581577110, index: 1, file: 1, page: 281,
			msg: "Table error: page (1:281) allocated to object ID 581577110, index ID 1, partition ID 72057594043170816, alloc unit ID 72057594047692800 (type In-row data) was not seen. The page may be invalid or may have an incorrect alloc unit ID in its header.", repair: "repair_allow_data_loss"},
		tr{err: 8976, level: 16, object: 901578250, index: 2, file: 1, page: 312, refFile: 1, refPage: 310,
			msg: "Table error: Object ID 901578250, index ID 2, partition ID 72057594044350464, alloc unit ID 72057594049331200 (type In-row data). Page (1:312) was not seen in the scan although its parent (1:310) and previous (1:311) refer to it. Check any previous errors.", repair: "repair_rebuild"},
		tr{err: 2570, level: 16, object: 901578250, index: 1, file: 1, page: 157, slot: 3,
			msg: "Page (1:157), slot 3 in object ID 901578250, index ID 1, partition ID 72057594044350464, alloc unit ID 72057594049331200 (type \"In-row data\"). Column \"price\" value is out of range for data type \"decimal\".  Update column to a legal value."},
		tr{err: 8990, level: 10, object: 581577110, msg: "CHECKDB found 0 allocation errors and 3 consistency errors in table 'Orders' (object ID 581577110)."},
		tr{err: 8989, level: 10, msg: "CHECKDB found 0 allocation errors and 5 consistency errors in database 'Sales'."},
		tr{err: 8958, level: 10, msg: "repair_allow_data_loss is the minimum repair level for the errors found by DBCC CHECKDB (Sales)."},
	)
	db.on("DBCC CHECKDB", &response{
		sets: []resultSet{rows},
		messages: []message{
			{Number: 2528, Class: 10, Text: "DBCC execution completed. If DBCC printed error messages, contact your system administrator."},
			{Number: 0, Class: 0, Text: "a PRINT"},
		},
	}, nil)
	db.on("OBJECT_SCHEMA_NAME", resp(set([]string{"object_id", "index_id", "schema_name", "object_name", "index_name"},
		[]any{int64(581577110), int64(1), "dbo", "Orders", "PK_Orders"},
		[]any{int64(901578250), int64(2), "sales", "Items", "IX_Items_Sku"},
		[]any{int64(901578250), int64(1), "sales", "Items", "PK_Items"},
	)), nil)
}

func TestCheckDBCorruptionFindings(t *testing.T) {
	db := newFake("db")
	defaultProbe().install(db)
	corruptCheckDB(db)
	tg := fakeTarget(t, db, nil)

	rep := runChecks(t, ctxTimeout(t), tg, nil, "checkdb")
	c := mustStatus(t, rep, "checkdb", checks.StatusCorrupt)
	if !errors.Is(rep.Err(), checks.ErrCorrupt) {
		t.Errorf("Gate error = %v, want ErrCorrupt", rep.Err())
	}
	if len(c.Findings) != 5 {
		for _, f := range c.Findings {
			t.Logf("finding: %+v", f)
		}
		t.Fatalf("got %d findings, want 5 (summaries and messages are not findings)", len(c.Findings))
	}
	byCode := map[string]checks.Finding{}
	for _, f := range c.Findings {
		byCode[f.Code] = f
		if f.Severity != checks.StatusCorrupt {
			t.Errorf("finding %s severity %s", f.Code, f.Severity)
		}
		if f.Check != "checkdb" || f.Task != "Sales" || f.Remedy == "" || f.Message == "" {
			t.Errorf("finding %+v incomplete", f)
		}
	}
	f := byCode["8928"]
	if f.Object != "dbo.Orders" || f.Location.String() != "file 1, page 280" {
		t.Errorf("8928: object %q location %q", f.Object, f.Location.String())
	}
	if !strings.Contains(f.Remedy, "Restore") {
		t.Errorf("8928 remedy = %q", f.Remedy)
	}
	if f := byCode["2533"]; f.Location.String() != "file 1, page 281" {
		t.Errorf("2533 location %q", f.Location.String())
	}
	f = byCode["8976"]
	if f.Object != "sales.Items (index IX_Items_Sku, ID 2)" || f.Location.String() != "file 1, page 312" {
		t.Errorf("8976: object %q location %q", f.Object, f.Location.String())
	}
	if !strings.Contains(f.Remedy, "nonclustered index") {
		t.Errorf("8976 remedy should say rebuilding the index is enough: %q", f.Remedy)
	}
	f = byCode["2570"]
	if f.Object != "sales.Items" || f.Location.String() != "file 1, page 157, offset 3" || !strings.Contains(f.Remedy, "UPDATE") {
		t.Errorf("2570: %+v (location %s)", f, f.Location.String())
	}
	// The lookup ran once, with the database and the (object, index) pairs.
	calls := db.callsMatching("OBJECT_SCHEMA_NAME")
	if len(calls) != 1 || calls[0].args[0] != "Sales" || len(calls[0].args) != 1+2*3 {
		t.Errorf("lookup calls = %+v", calls)
	}
}

func TestCheckDBSummaryWithoutRowsFailsSafe(t *testing.T) {
	db := newFake("db")
	defaultProbe().install(db)
	db.on("DBCC CHECKDB", resp(tableResults(
		tr{err: 8989, level: 10, msg: "CHECKDB found 0 allocation errors and 2 consistency errors in database 'Sales'."},
	)), nil)
	rep := runChecks(t, ctxTimeout(t), fakeTarget(t, db, nil), nil, "checkdb")
	c := mustStatus(t, rep, "checkdb", checks.StatusCorrupt)
	if len(c.Findings) != 1 || c.Findings[0].Code != "8989" {
		t.Errorf("findings = %+v", c.Findings)
	}
}

func TestCheckDBUnknownRowsFailSafe(t *testing.T) {
	db := newFake("db")
	defaultProbe().install(db)
	// Columns of an older version (no DbFragId, RidDbId ...), in another
	// order, plus an extra one: mapped by name.
	cols := []string{"Extra", "MessageText", "Error", "Level", "State", "ObjectId", "IndexId", "File", "Page", "Slot"}
	db.on("DBCC CHECKDB", resp(set(cols,
		[]any{"x", "a new kind of damage", int64(9999), int64(16), int64(1), int64(0), int64(0), int64(0), int64(0), int64(0)},
		[]any{"x", "a new kind of risk", int64(9998), int64(10), int64(1), int64(0), int64(0), int64(0), int64(0), int64(0)},
	)), nil)
	rep := runChecks(t, ctxTimeout(t), fakeTarget(t, db, nil), nil, "checkdb")
	c := mustStatus(t, rep, "checkdb", checks.StatusCorrupt)
	if len(c.Findings) != 2 || c.Findings[0].Severity != checks.StatusCorrupt || c.Findings[1].Severity != checks.StatusWarning {
		t.Errorf("findings = %+v", c.Findings)
	}
	if c.Findings[0].Object != "Sales" || !c.Findings[0].Location.IsZero() {
		t.Errorf("database-level finding = %+v", c.Findings[0])
	}
}

func TestCheckDBErrorToken824(t *testing.T) {
	db := newFake("db")
	defaultProbe().install(db)
	e824 := mssql.Error{Number: 824, Class: 24, State: 2, Message: "SQL Server detected a logical consistency-based I/O error: incorrect checksum (expected: 0x9a3e399c; actual: 0x9a14b99c). It occurred during a read of page (1:280) in database ID 5 at offset 0x00000000230000 in file '/var/opt/mssql/data/Sales.mdf'."}
	db.on("DBCC CHECKDB", &response{errs: []error{e824}}, e824)
	rep := runChecks(t, ctxTimeout(t), fakeTarget(t, db, nil), []checks.Option{checks.WithRetries(2)}, "checkdb")
	c := mustStatus(t, rep, "checkdb", checks.StatusCorrupt)
	if len(c.Findings) != 1 {
		t.Fatalf("findings = %+v", c.Findings)
	}
	f := c.Findings[0]
	if f.Code != "824" || f.Location.String() != "file 1, page 280" || f.Object != "Sales" {
		t.Errorf("finding = %+v (%s)", f, f.Location.String())
	}
	tr := c.Tasks[0]
	if tr.State != checks.TaskFailed || tr.Attempts != 1 || !strings.Contains(tr.Reason, "connection to the server lost") {
		t.Errorf("task = %+v: the session ended, so the check is unfinished (and must not be retried, which would drop the finding)", tr)
	}
}

func TestCheckDBTerminated(t *testing.T) {
	db := newFake("db")
	defaultProbe().install(db)
	db.on("DBCC CHECKDB", &response{
		sets: []resultSet{tableResults(tr{err: 8939, level: 16, file: 1, page: 9, msg: "Table error: page (1:9) test failed"})},
		errs: []error{mssql.Error{Number: 8921, Class: 16, State: 1, Message: "Check terminated. A failure was detected while collecting facts. Possibly tempdb out of space or a system table is inconsistent. Check previous errors."}},
	}, nil)
	rep := runChecks(t, ctxTimeout(t), fakeTarget(t, db, nil), nil, "checkdb")
	c := mustStatus(t, rep, "checkdb", checks.StatusCorrupt)
	if len(c.Findings) != 1 || c.Tasks[0].State != checks.TaskFailed || !strings.Contains(c.Tasks[0].Reason, "8921") {
		t.Errorf("findings %+v task %+v", c.Findings, c.Tasks[0])
	}

	// Without any finding, a terminated check is an error: never healthy.
	db2 := newFake("db")
	defaultProbe().install(db2)
	db2.on("DBCC CHECKDB", &response{errs: []error{mssql.Error{Number: 8967, Class: 16, Message: "An internal error occurred in DBCC that prevented further processing."}}}, nil)
	rep = runChecks(t, ctxTimeout(t), fakeTarget(t, db2, nil), nil, "checkdb")
	mustStatus(t, rep, "checkdb", checks.StatusError)
}

func TestInformationalMessagesAreNotFindings(t *testing.T) {
	db := newFake("db")
	defaultProbe().install(db)
	var msgs []message
	for i := 0; i < 50; i++ {
		msgs = append(msgs, message{Number: 2593, Class: 10, Text: "There are 12 rows in 1 pages for object \"t\"."})
	}
	msgs = append(msgs, message{Number: 2528, Class: 10, Text: "DBCC execution completed."}, message{Number: 7928, Class: 10, Text: "no snapshot"})
	db.on("DBCC CHECKDB", &response{sets: []resultSet{tableResults()}, messages: msgs}, nil)
	rep := runChecks(t, ctxTimeout(t), fakeTarget(t, db, nil), nil, "checkdb")
	mustStatus(t, rep, "checkdb", checks.StatusHealthy)
}

func TestSuspectDatabase(t *testing.T) {
	// The database cannot be opened (926); dbscrub looks it up from master.
	db := newFake("db")
	db.connectErr = mssql.Error{Number: 926, Class: 14, State: 1, Message: "Database 'Sales' cannot be opened. It has been marked SUSPECT by recovery. See the SQL Server errorlog for more information."}
	master := newFake("master")
	p := defaultProbe()
	p.state = "SUSPECT"
	p.install(master)
	master.on("msdb.dbo.suspect_pages", resp(set([]string{"file_id", "page_id", "event_type", "error_count", "last_update_date"},
		[]any{int64(1), int64(280), int64(2), int64(3), time.Date(2025, 5, 1, 3, 4, 5, 0, time.UTC)},
	)), nil)
	master.on("msdb.dbo.backupset", resp(
		set([]string{"backup_finish_date", "has_backup_checksums", "is_damaged", "is_copy_only", "age_seconds"},
			[]any{time.Now(), true, false, false, int64(3600)}),
		set([]string{"type", "backup_finish_date", "has_backup_checksums"}),
	), nil)
	master.on("page_verify_option_desc\nFROM sys.databases", resp(set([]string{"page_verify_option_desc"}, []any{"CHECKSUM"})), nil)
	tg := fakeTarget(t, db, master)

	caps, err := tg.Probe(ctxTimeout(t))
	if err != nil {
		t.Fatal(err)
	}
	if !caps.ViaMaster || caps.State != "SUSPECT" || !strings.Contains(caps.OpenError, "926") {
		t.Errorf("caps = %+v", caps)
	}

	rep := runChecks(t, ctxTimeout(t), tg, nil, "checkdb", "checktable", "suspect_pages", "last_known_good", "page_verify", "backups")
	for _, name := range []string{"checkdb", "checktable", "last_known_good"} {
		c := mustStatus(t, rep, name, checks.StatusCorrupt)
		if len(c.Findings) != 1 || c.Findings[0].Code != "SUSPECT" || !strings.Contains(c.Findings[0].Message, "SUSPECT") || c.Findings[0].Remedy == "" {
			t.Errorf("%s findings = %+v", name, c.Findings)
		}
	}
	sp := mustStatus(t, rep, "suspect_pages", checks.StatusCorrupt)
	if len(sp.Findings) != 1 || sp.Findings[0].Location.String() != "file 1, page 280" {
		t.Errorf("suspect_pages findings = %+v", sp.Findings)
	}
	mustStatus(t, rep, "page_verify", checks.StatusHealthy)
	mustStatus(t, rep, "backups", checks.StatusHealthy)
	if n := len(db.callsMatching("")); n != 0 {
		t.Errorf("%d statements ran in the database that cannot be opened", n)
	}
	if len(master.callsMatching("DBCC")) != 0 {
		t.Error("DBCC ran against a SUSPECT database")
	}

	// A Target over a caller's pool cannot look the database up: the probe
	// fails, naming the problem.
	tg2 := fakeTarget(t, db, nil)
	_, err = tg2.Probe(ctxTimeout(t))
	if !errors.Is(err, ErrDatabaseUnavailable) || !strings.Contains(err.Error(), "SUSPECT") {
		t.Errorf("probe without master: %v", err)
	}
}

func TestDatabaseStates(t *testing.T) {
	tests := []struct {
		state string
		want  checks.Status
	}{
		{"RECOVERY_PENDING", checks.StatusCorrupt},
		{"EMERGENCY", checks.StatusCorrupt},
		{"RESTORING", checks.StatusSkipped},
		{"OFFLINE", checks.StatusSkipped},
		{"RECOVERING", checks.StatusError},
	}
	for _, tt := range tests {
		t.Run(tt.state, func(t *testing.T) {
			db := newFake("db")
			p := defaultProbe()
			p.state = tt.state
			p.install(db)
			rep := runChecks(t, ctxTimeout(t), fakeTarget(t, db, nil), nil, "checkdb", "checkalloc")
			mustStatus(t, rep, "checkdb", tt.want)
			mustStatus(t, rep, "checkalloc", tt.want)
			if len(db.callsMatching("DBCC")) != 0 {
				t.Error("DBCC ran")
			}
		})
	}
}

func TestAvailabilityGroupNonReadableSecondary(t *testing.T) {
	db := newFake("db")
	db.connectErr = mssql.Error{Number: 976, Class: 14, State: 1, Message: "The target database, 'Sales', is participating in an availability group and is currently not accessible for queries."}
	master := newFake("master")
	p := defaultProbe()
	p.ag, p.role, p.allow = "AG1", "SECONDARY", "NO"
	p.install(master)
	master.on("msdb.dbo.suspect_pages", resp(set([]string{"file_id", "page_id", "event_type", "error_count", "last_update_date"})), nil)
	tg := fakeTarget(t, db, master)

	all := []string{"checkdb", "checktable", "checkalloc", "checkcatalog", "suspect_pages", "last_known_good", "page_verify", "backups"}
	rep := runChecks(t, ctxTimeout(t), tg, nil, all...)
	for _, name := range all {
		if name == "suspect_pages" {
			// msdb is this replica's own: its damaged pages are listed here.
			mustStatus(t, rep, name, checks.StatusHealthy)
			continue
		}
		c := mustStatus(t, rep, name, checks.StatusSkipped)
		if !strings.Contains(c.Reason, "AG1") || !strings.Contains(c.Reason, "secondary") {
			t.Errorf("%s: skip reason %q does not name the availability group", name, c.Reason)
		}
	}
	if len(master.callsMatching("DBCC")) != 0 {
		t.Error("DBCC ran on a non-readable secondary")
	}
}

func TestAvailabilityGroupReadableSecondary(t *testing.T) {
	db := newFake("db")
	p := defaultProbe()
	p.ag, p.role, p.allow = "AG1", "SECONDARY", "ALL"
	p.install(db)
	db.on("DBCC CHECKDB", resp(tableResults()), nil)
	db.on("DBCC CHECKALLOC", resp(tableResults()), nil)
	rep := runChecks(t, ctxTimeout(t), fakeTarget(t, db, nil), nil, "checkdb", "checkalloc", "checkcatalog", "backups")
	mustStatus(t, rep, "checkdb", checks.StatusHealthy)
	mustStatus(t, rep, "checkalloc", checks.StatusHealthy)
	c := mustStatus(t, rep, "checkcatalog", checks.StatusSkipped)
	if !strings.Contains(c.Reason, "CHECKCATALOG") || !strings.Contains(c.Reason, "primary") {
		t.Errorf("checkcatalog skip reason = %q", c.Reason)
	}
	mustStatus(t, rep, "backups", checks.StatusSkipped)
	if len(db.callsMatching("DBCC CHECKCATALOG")) != 0 {
		t.Error("CHECKCATALOG ran on a secondary")
	}
}

func TestProbeWithoutViewServerState(t *testing.T) {
	db := newFake("db")
	p := defaultProbe()
	p.ag, p.allow, p.agDenied = "AG1", "NO", true
	p.install(db)
	caps, err := fakeTarget(t, db, nil).Probe(ctxTimeout(t))
	if err != nil {
		t.Fatal(err)
	}
	if caps.AvailabilityGroup != "AG1" || caps.ReplicaRole != RoleUnknown || len(caps.Notes) == 0 || !strings.Contains(caps.Notes[0], "VIEW SERVER STATE") {
		t.Errorf("caps = %+v", caps)
	}
	if caps.MajorVersion != 16 || caps.Deployment() != "SQL Server" || caps.Database != "Sales" || caps.DatabaseID != 5 || !caps.DBOwner || caps.Sysadmin {
		t.Errorf("caps = %+v", caps)
	}
}

func TestPermissionDenied(t *testing.T) {
	db := newFake("db")
	defaultProbe().install(db)
	db.on("DBCC CHECKDB", &response{errs: []error{mssql.Error{Number: 2571, Class: 14, State: 3, Message: "User 'app' does not have permission to run DBCC checkdb."}}}, nil)
	db.on("msdb.dbo.suspect_pages", &response{errs: []error{mssql.Error{Number: 229, Class: 14, State: 5, Message: "The SELECT permission was denied on the object 'suspect_pages', database 'msdb', schema 'dbo'."}}}, nil)
	tg := fakeTarget(t, db, nil)
	rep := runChecks(t, ctxTimeout(t), tg, nil, "checkdb", "suspect_pages")
	c := mustStatus(t, rep, "checkdb", checks.StatusError)
	if !strings.Contains(c.Reason, "2571") || !strings.Contains(c.Reason, "ALTER ROLE db_owner ADD MEMBER") {
		t.Errorf("checkdb reason = %q", c.Reason)
	}
	c = mustStatus(t, rep, "suspect_pages", checks.StatusError)
	if !strings.Contains(c.Reason, "GRANT SELECT ON dbo.suspect_pages") {
		t.Errorf("suspect_pages reason = %q", c.Reason)
	}
	if !errors.Is(rep.Err(), checks.ErrNotVerified) {
		t.Errorf("Gate error = %v", rep.Err())
	}

	// The task's own error wraps ErrPrivilege.
	cks, _ := tg.Checks("checkdb")
	tasks, err := cks[0].Plan(ctxTimeout(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = tasks[0].Run(ctxTimeout(t))
	if !errors.Is(err, ErrPrivilege) {
		t.Errorf("task error %v does not wrap ErrPrivilege", err)
	}
}

func TestLockTimeoutIsRetryableError(t *testing.T) {
	db := newFake("db")
	defaultProbe().install(db)
	db.on("DBCC CHECKDB", &response{errs: []error{mssql.Error{Number: 1222, Class: 16, State: 56, Message: "Lock request time out period exceeded."}}}, nil)
	tg := fakeTarget(t, db, nil, WithLockTimeout(2*time.Second))
	cks, _ := tg.Checks("checkdb")
	tasks, err := cks[0].Plan(ctxTimeout(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = tasks[0].Run(ctxTimeout(t))
	if !errors.Is(err, ErrLockTimeout) || !errors.Is(err, checks.ErrRetryable) || !strings.Contains(err.Error(), "2s") {
		t.Errorf("error = %v", err)
	}
	if db.discarded == 0 {
		t.Error("the session of a failed task was pooled, not discarded")
	}

	r, _ := checks.NewRunner(checks.WithRetries(1))
	rep := r.Run(ctxTimeout(t), tg, cks...)
	c := mustStatus(t, rep, "checkdb", checks.StatusError)
	if c.Tasks[0].Attempts != 2 {
		t.Errorf("attempts = %d, want 2 (lock timeouts are retried)", c.Tasks[0].Attempts)
	}
}

func TestQueryTimeout(t *testing.T) {
	db := newFake("db")
	defaultProbe().install(db)
	db.onFunc("DBCC CHECKDB", func(ctx context.Context, _ []any) (*response, error) {
		<-ctx.Done() // go-mssqldb sends an attention and returns the context's error
		return &response{}, ctx.Err()
	})
	rep := runChecks(t, ctxTimeout(t), fakeTarget(t, db, nil), []checks.Option{checks.WithTaskTimeout(50 * time.Millisecond)}, "checkdb")
	c := mustStatus(t, rep, "checkdb", checks.StatusError)
	if !strings.Contains(c.Reason, "ran out of time") {
		t.Errorf("reason = %q", c.Reason)
	}
}

func TestCancellationIsNeverHealthy(t *testing.T) {
	db := newFake("db")
	defaultProbe().install(db)
	ctx, cancel := context.WithCancel(ctxTimeout(t))
	db.onFunc("DBCC CHECKDB", func(c context.Context, _ []any) (*response, error) {
		cancel()
		<-c.Done()
		return &response{}, errors.Join(context.Cause(c), errors.New("mssql: query cancelled"))
	})
	rep := runChecks(t, ctx, fakeTarget(t, db, nil), nil, "checkdb", "page_verify")
	c := mustStatus(t, rep, "checkdb", checks.StatusError)
	if !strings.Contains(c.Tasks[0].Reason, "cancelled") {
		t.Errorf("reason = %q", c.Tasks[0].Reason)
	}
	if rep.Status == checks.StatusHealthy || !errors.Is(rep.Err(), checks.ErrNotVerified) {
		t.Errorf("report %s, Gate %v", rep.Status, rep.Err())
	}
}

func TestUnreachableServer(t *testing.T) {
	db := newFake("db")
	db.connectErr = &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	tg := fakeTarget(t, db, nil)
	rep := runChecks(t, ctxTimeout(t), tg, nil)
	if rep.Status != checks.StatusError {
		t.Errorf("status %s", rep.Status)
	}
	_, err := tg.Probe(ctxTimeout(t))
	if !errors.Is(err, ErrConnect) || !strings.Contains(err.Error(), "sql1:1433") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("probe error = %v", err)
	}
}

func TestNoPasswordInErrors(t *testing.T) {
	db := newFake("db")
	db.connectErr = errors.New("login error: mssql: login failed for user 'sa' with password s3cret")
	tg := fakeTarget(t, db, nil)
	rep := runChecks(t, ctxTimeout(t), tg, nil)
	for _, c := range rep.Checks {
		if strings.Contains(c.Reason, "s3cret") || strings.Contains(c.PlanError, "s3cret") {
			t.Errorf("%s leaks the password: %s", c.Check, c.Reason)
		}
	}
	if _, err := tg.Probe(ctxTimeout(t)); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("probe error = %v", err)
	}

	db2 := newFake("db")
	defaultProbe().install(db2)
	db2.on("DBCC CHECKDB", &response{}, errors.New("read tcp: reset while sending s3cret"))
	rep = runChecks(t, ctxTimeout(t), fakeTarget(t, db2, nil), nil, "checkdb")
	if c := checkReport(t, rep, "checkdb"); strings.Contains(c.Reason, "s3cret") || c.Status != checks.StatusError {
		t.Errorf("checkdb: %s %s", c.Status, c.Reason)
	}
}

func TestCheckTableOneTaskPerTableLargestFirst(t *testing.T) {
	db := newFake("db")
	defaultProbe().install(db)
	db.on("sys.dm_db_partition_stats", resp(set([]string{"schema_name", "object_name", "object_type", "used_pages"},
		[]any{"dbo", "Small", "U ", int64(10)},
		[]any{"sales", "Big]Table", "U ", int64(1_000_000)},
		[]any{"dbo", "vOrders", "V ", int64(500)},
		[]any{"dbo", "Empty", "U ", int64(0)},
	)), nil)
	db.onFunc("DBCC CHECKTABLE", func(_ context.Context, args []any) (*response, error) {
		if args[0] == "[dbo].[Small]" {
			return resp(tableResults(tr{err: 8951, level: 16, object: 7, index: 2, msg: "Table error: table 'Small' (ID 7). Data row does not have a matching index row in the index 'IX' (ID 2).", repair: "repair_rebuild"})), nil
		}
		return resp(tableResults()), nil
	})
	db.on("OBJECT_SCHEMA_NAME", resp(set([]string{"object_id", "index_id", "schema_name", "object_name", "index_name"},
		[]any{int64(7), int64(2), "dbo", "Small", "IX"})), nil)
	tg := fakeTarget(t, db, nil, WithPhysicalOnly())

	cks, _ := tg.Checks("checktable")
	tasks, err := cks[0].Plan(ctxTimeout(t))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, tk := range tasks {
		keys = append(keys, tk.Key)
	}
	want := []string{"[sales].[Big]]Table]", "[dbo].[vOrders]", "[dbo].[Small]", "[dbo].[Empty]"}
	if !slices.Equal(keys, want) {
		t.Errorf("keys = %v, want %v", keys, want)
	}
	if tasks[0].Cost != 1_000_000*8192 || tasks[0].Object != "sales.Big]Table" {
		t.Errorf("task 0 = %+v", tasks[0])
	}
	if !strings.Contains(tasks[0].Statement, "DBCC CHECKTABLE (@p1) WITH NO_INFOMSGS, ALL_ERRORMSGS, TABLERESULTS, PHYSICAL_ONLY;") ||
		!strings.Contains(tasks[0].Statement, "@p1 = N'[sales].[Big]]Table]'") {
		t.Errorf("statement = %q", tasks[0].Statement)
	}
	if list := db.callsMatching("sys.dm_db_partition_stats"); len(list) != 1 || !strings.Contains(list[0].query, "is_memory_optimized") {
		t.Errorf("list query = %+v", list)
	}

	rep := runChecks(t, ctxTimeout(t), tg, []checks.Option{checks.WithJobs(2)}, "checktable")
	c := mustStatus(t, rep, "checktable", checks.StatusCorrupt)
	if c.Coverage.TasksCompleted != 4 || len(c.Findings) != 1 {
		t.Fatalf("coverage %+v findings %+v", c.Coverage, c.Findings)
	}
	f := c.Findings[0]
	if f.Task != "[dbo].[Small]" || f.Object != "dbo.Small (index IX, ID 2)" || f.Code != "8951" {
		t.Errorf("finding = %+v", f)
	}
	if len(db.callsMatching("DBCC CHECKTABLE")) != 4 {
		t.Errorf("CHECKTABLE ran %d times", len(db.callsMatching("DBCC CHECKTABLE")))
	}

	// Keys are stable across plans.
	tasks2, _ := cks[0].Plan(ctxTimeout(t))
	for i := range tasks2 {
		if tasks2[i].Key != tasks[i].Key {
			t.Errorf("key %d changed: %s -> %s", i, tasks[i].Key, tasks2[i].Key)
		}
	}
}

func TestCheckAllocAndCatalog(t *testing.T) {
	db := newFake("db")
	defaultProbe().install(db)
	db.on("DBCC CHECKALLOC", resp(tableResults(tr{err: 8905, level: 16, file: 1, page: 64, msg: "Extent (1:64) in database ID 5 is marked allocated in the GAM, but no SGAM or IAM has allocated it.", repair: "repair_allow_data_loss"})), nil)
	db.on("DBCC CHECKCATALOG", &response{errs: []error{mssql.Error{Number: 8992, Class: 16, State: 1, Message: "Check Catalog Msg 3853, State 1: Attribute (object_id=1977058079) of row (object_id=1977058079,column_id=1) in sys.columns does not have a matching row (object_id=1977058079) in sys.objects."}}}, nil)
	rep := runChecks(t, ctxTimeout(t), fakeTarget(t, db, nil), nil, "checkalloc", "checkcatalog")
	a := mustStatus(t, rep, "checkalloc", checks.StatusCorrupt)
	if a.Findings[0].Code != "8905" || a.Findings[0].Location.String() != "file 1, page 64" {
		t.Errorf("checkalloc = %+v", a.Findings)
	}
	c := mustStatus(t, rep, "checkcatalog", checks.StatusCorrupt)
	if c.Findings[0].Code != "8992" {
		t.Errorf("checkcatalog = %+v", c.Findings)
	}
}

func TestSuspectPages(t *testing.T) {
	db := newFake("db")
	defaultProbe().install(db)
	when := time.Date(2025, 5, 1, 3, 4, 5, 0, time.UTC)
	db.on("msdb.dbo.suspect_pages", resp(set([]string{"file_id", "page_id", "event_type", "error_count", "last_update_date"},
		[]any{int64(1), int64(100), int64(1), int64(1), when},
		[]any{int64(1), int64(101), int64(2), int64(4), when},
		[]any{int64(3), int64(102), int64(3), int64(1), when},
		[]any{int64(1), int64(200), int64(4), int64(1), when},
		[]any{int64(1), int64(201), int64(5), int64(1), when},
		[]any{int64(1), int64(202), int64(7), int64(1), when},
	)), nil)
	rep := runChecks(t, ctxTimeout(t), fakeTarget(t, db, nil), nil, "suspect_pages")
	c := mustStatus(t, rep, "suspect_pages", checks.StatusCorrupt)
	if len(c.Findings) != 3 {
		t.Fatalf("findings = %+v (event types 4, 5 and 7 are history)", c.Findings)
	}
	wantLoc := []string{"file 1, page 100", "file 1, page 101", "file 3, page 102"}
	for i, f := range c.Findings {
		if f.Location.String() != wantLoc[i] || f.Severity != checks.StatusCorrupt || !strings.Contains(f.Remedy, "RESTORE DATABASE [Sales] PAGE") {
			t.Errorf("finding %d = %+v", i, f)
		}
	}
	if !strings.Contains(c.Findings[1].Message, "bad checksum") || !strings.Contains(c.Findings[2].Message, "torn page") {
		t.Errorf("messages: %q / %q", c.Findings[1].Message, c.Findings[2].Message)
	}
	if calls := db.callsMatching("msdb.dbo.suspect_pages"); len(calls) != 1 || calls[0].args[0] != "Sales" {
		t.Errorf("calls = %+v", calls)
	}

	// Only history: healthy.
	db2 := newFake("db")
	defaultProbe().install(db2)
	db2.on("msdb.dbo.suspect_pages", resp(set([]string{"file_id", "page_id", "event_type", "error_count", "last_update_date"},
		[]any{int64(1), int64(200), int64(4), int64(1), when})), nil)
	rep = runChecks(t, ctxTimeout(t), fakeTarget(t, db2, nil), nil, "suspect_pages")
	mustStatus(t, rep, "suspect_pages", checks.StatusHealthy)
}

func TestLastKnownGood(t *testing.T) {
	now := time.Date(2025, 6, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		last    any
		want    checks.Status
		message string
	}{
		{"fresh", now.Add(-24 * time.Hour), checks.StatusHealthy, ""},
		{"old", now.Add(-10 * 24 * time.Hour), checks.StatusWarning, "10d ago"},
		{"never", time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), checks.StatusWarning, "never been checked with DBCC CHECKDB"},
		{"not reported", nil, checks.StatusWarning, "does not report LastGoodCheckDbTime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newFake("db")
			defaultProbe().install(db)
			db.on("LastGoodCheckDbTime", resp(set([]string{"last_good", "server_now"}, []any{tt.last, now})), nil)
			rep := runChecks(t, ctxTimeout(t), fakeTarget(t, db, nil), nil, "last_known_good")
			c := mustStatus(t, rep, "last_known_good", tt.want)
			if tt.message != "" && (len(c.Findings) != 1 || !strings.Contains(c.Findings[0].Message, tt.message)) {
				t.Errorf("findings = %+v, want message with %q", c.Findings, tt.message)
			}
		})
	}
	// The threshold is an option.
	db := newFake("db")
	defaultProbe().install(db)
	db.on("LastGoodCheckDbTime", resp(set([]string{"last_good", "server_now"}, []any{now.Add(-2 * 24 * time.Hour), now})), nil)
	rep := runChecks(t, ctxTimeout(t), fakeTarget(t, db, nil, WithLastGoodMaxAge(24*time.Hour)), nil, "last_known_good")
	mustStatus(t, rep, "last_known_good", checks.StatusWarning)
}

func TestPageVerify(t *testing.T) {
	for opt, want := range map[string]checks.Status{"CHECKSUM": checks.StatusHealthy, "TORN_PAGE_DETECTION": checks.StatusWarning, "NONE": checks.StatusWarning} {
		db := newFake("db")
		defaultProbe().install(db)
		db.on("page_verify_option_desc\nFROM sys.databases", resp(set([]string{"page_verify_option_desc"}, []any{opt})), nil)
		rep := runChecks(t, ctxTimeout(t), fakeTarget(t, db, nil), nil, "page_verify")
		c := mustStatus(t, rep, "page_verify", want)
		if want == checks.StatusWarning && !strings.Contains(c.Findings[0].Remedy, "ALTER DATABASE [Sales] SET PAGE_VERIFY CHECKSUM") {
			t.Errorf("%s: remedy = %q", opt, c.Findings[0].Remedy)
		}
	}
}

func TestBackups(t *testing.T) {
	latestCols := []string{"backup_finish_date", "has_backup_checksums", "is_damaged", "is_copy_only", "age_seconds"}
	damagedCols := []string{"type", "backup_finish_date", "has_backup_checksums"}
	when := time.Date(2025, 6, 1, 2, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		latest  [][]any
		damaged [][]any
		opts    []Option
		ag      string
		want    checks.Status
		msgs    []string
	}{
		{"fresh with checksums", [][]any{{when, true, false, false, int64(3600)}}, nil, nil, "", checks.StatusHealthy, nil},
		{"none", nil, nil, nil, "", checks.StatusWarning, []string{"no full backup"}},
		{"none on an AG primary", nil, nil, nil, "AG1", checks.StatusWarning, []string{"this replica of availability group AG1"}},
		{"too old", [][]any{{when, true, false, false, int64(9 * 24 * 3600)}}, nil, nil, "", checks.StatusWarning, []string{"9d ago"}},
		{"too old for daily fulls", [][]any{{when, true, false, false, int64(30 * 3600)}}, nil, []Option{WithBackupMaxAge(26 * time.Hour)}, "", checks.StatusWarning, []string{"1d6h ago"}},
		{"no checksums", [][]any{{when, false, false, false, int64(3600)}}, nil, nil, "", checks.StatusWarning, []string{"without backup checksums"}},
		{"damaged", [][]any{{when, true, true, false, int64(3600)}}, [][]any{{"D", when, true}, {"L", when, true}}, nil, "", checks.StatusCorrupt, []string{"full backup", "log backup"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newFake("db")
			p := defaultProbe()
			if tt.ag != "" {
				p.ag, p.role, p.allow = tt.ag, "PRIMARY", "ALL"
			}
			p.install(db)
			db.on("msdb.dbo.backupset", resp(set(latestCols, tt.latest...), set(damagedCols, tt.damaged...)), nil)
			rep := runChecks(t, ctxTimeout(t), fakeTarget(t, db, nil, tt.opts...), nil, "backups")
			c := mustStatus(t, rep, "backups", tt.want)
			all := ""
			for _, f := range c.Findings {
				all += f.Message + "\n"
			}
			for _, m := range tt.msgs {
				if !strings.Contains(all, m) {
					t.Errorf("findings %q lack %q", all, m)
				}
			}
		})
	}
}

func TestAzureSQLDatabase(t *testing.T) {
	db := newFake("db")
	p := defaultProbe()
	p.engineEdition = 5
	p.version = "12.0.2000.8"
	p.install(db)
	db.on("DBCC CHECKDB", resp(tableResults()), nil)
	rep := runChecks(t, ctxTimeout(t), fakeTarget(t, db, nil), nil, "checkdb", "suspect_pages", "backups")
	mustStatus(t, rep, "checkdb", checks.StatusHealthy)
	for _, name := range []string{"suspect_pages", "backups"} {
		c := mustStatus(t, rep, name, checks.StatusSkipped)
		if !strings.Contains(c.Reason, "Azure SQL Database has no msdb") {
			t.Errorf("%s reason = %q", name, c.Reason)
		}
	}
	if len(db.callsMatching("availability_replicas")) != 0 || len(db.callsMatching("msdb")) != 0 {
		t.Error("queried availability groups or msdb on Azure SQL Database")
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		number   int32
		level    int
		fromDBCC bool
		want     checks.Status
	}{
		{823, 24, false, checks.StatusCorrupt},
		{824, 24, false, checks.StatusCorrupt},
		{825, 10, false, checks.StatusWarning},
		{8914, 10, true, checks.StatusCorrupt},
		{2570, 16, true, checks.StatusCorrupt},
		{2508, 10, true, checks.StatusWarning},
		{8989, 10, true, checks.StatusHealthy},
		{8921, 16, false, checks.StatusError},
		{12345, 16, true, checks.StatusCorrupt},
		{12345, 10, true, checks.StatusWarning},
		{12345, 23, false, checks.StatusCorrupt},
		{229, 14, false, checks.StatusError},
		{1222, 16, false, checks.StatusError},
		{5701, 0, false, checks.StatusHealthy},
	}
	for _, tt := range tests {
		if got := Classify(tt.number, tt.level, tt.fromDBCC); got != tt.want {
			t.Errorf("Classify(%d, %d, %v) = %s, want %s", tt.number, tt.level, tt.fromDBCC, got, tt.want)
		}
	}
}

func TestExtendedLogicalChecksNeedSQLServer2016(t *testing.T) {
	db := newFake("db")
	p := defaultProbe()
	p.version = "12.0.6024.0"
	p.install(db)
	rep := runChecks(t, ctxTimeout(t), fakeTarget(t, db, nil, WithExtendedLogicalChecks()), nil, "checkdb")
	c := mustStatus(t, rep, "checkdb", checks.StatusError)
	if !strings.Contains(c.Reason, "2016") {
		t.Errorf("reason = %q", c.Reason)
	}
}

func TestUnreachableServerForReal(t *testing.T) {
	tg, err := Open("sqlserver://sa:s3cret@127.0.0.1:1?database=Sales&dial+timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = tg.Probe(ctx)
	if !errors.Is(err, ErrConnect) || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "127.0.0.1:1") || strings.ContainsAny(err.Error(), "\n") {
		t.Errorf("probe of an unreachable server: %v", err)
	}
	rep := runChecks(t, ctx, tg, nil)
	if rep.Status != checks.StatusError || !errors.Is(rep.Err(), checks.ErrNotVerified) {
		t.Errorf("report %s: %v", rep.Status, rep.Err())
	}
}

// TestSeverityTableDocumented keeps the package documentation's severity
// table in step with dbccErrors.
func TestSeverityTableDocumented(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	text := string(src)
	start := strings.Index(text, "# Severity table")
	end := strings.Index(text, "Numbers not in the table fail safe")
	if start < 0 || end < start {
		t.Fatal("no severity table in doc.go")
	}
	labels := map[string]class{"corruption": classCorrupt, "warning": classWarning, "summary": classSummary, "ignored": classInfo, "error": classNotVerified}
	documented := map[int32]class{}
	cur := classUnknown
	num := regexp.MustCompile(`^(\d{3,5})(?:-(\d{3,5}))?$`)
	for _, line := range strings.Split(text[start:end], "\n") {
		line = strings.TrimPrefix(line, "//")
		if !strings.HasPrefix(line, "\t") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if c, ok := labels[fields[0]]; ok {
			cur = c
			fields = fields[1:]
		}
		for _, f := range fields {
			m := num.FindStringSubmatch(strings.TrimSuffix(f, ","))
			if m == nil {
				break // the description
			}
			lo, _ := strconv.Atoi(m[1])
			hi := lo
			if m[2] != "" {
				hi, _ = strconv.Atoi(m[2])
			}
			for n := lo; n <= hi; n++ {
				documented[int32(n)] = cur
			}
		}
	}
	t.Logf("documented %d, map %d", len(documented), len(dbccErrors))
	for n, c := range dbccErrors {
		if documented[n] != c {
			t.Errorf("error %d: class %d in dbccErrors, %d in the documentation", n, c, documented[n])
		}
	}
	for n, c := range documented {
		if dbccErrors[n] != c {
			t.Errorf("error %d: documented as class %d, but dbccErrors has %d", n, c, dbccErrors[n])
		}
	}
}

func TestChecksAreExplainers(t *testing.T) {
	tgt, err := Open("sqlserver://u:pw@localhost:1433?database=x")
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	var names []string
	for _, c := range Catalog() {
		names = append(names, c.Name)
	}
	cks, err := tgt.Checks(names...)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cks {
		e, ok := c.(checks.Explainer)
		if !ok || len(e.Statements()) == 0 {
			t.Errorf("check %s does not explain its statements", c.Name())
		}
	}
}
