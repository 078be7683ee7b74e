// Package sqlservertest helps tests run against a real SQL Server: it
// reads the server's DSN from DBSCRUB_SQLSERVER_DSN (and skips, loudly,
// when it is not set), creates throwaway databases, backs them up, and
// damages their pages with DBCC WRITEPAGE so that integrity checks can be
// shown to catch real corruption.
//
// Every database it creates is named dbscrub_test_<random> and dropped
// when the test ends. DBCC WRITEPAGE is for such throwaway databases only:
// never point it at a database whose data matters.
//
// Run a server in a container:
//
//	docker run -d --name dbscrub-mssql -e ACCEPT_EULA=Y -e 'MSSQL_SA_PASSWORD=Dbscrub-Test-1' \
//	  -p 1433:1433 mcr.microsoft.com/mssql/server:2022-latest
//	export DBSCRUB_SQLSERVER_DSN='sqlserver://sa:Dbscrub-Test-1@localhost:1433?database=master&encrypt=disable'
//
// The login needs CREATE DATABASE; the corruption helpers need sysadmin.
package sqlservertest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/microsoft/go-mssqldb" // the "sqlserver" driver

	"github.com/dbscrub/dbscrub/drivers/sqlserver"
)

// EnvDSN is the environment variable that names the test server.
const EnvDSN = "DBSCRUB_SQLSERVER_DSN"

// SkipMessage is the one line tests skip with when EnvDSN is not set.
const SkipMessage = EnvDSN + " not set: SQL Server integration tests NOT RUN (see README)"

// DSN returns the DSN in DBSCRUB_SQLSERVER_DSN, or skips the test with
// [SkipMessage].
func DSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		t.Skip(SkipMessage)
	}
	return dsn
}

// WithDatabase returns dsn with its database set to name. It understands
// sqlserver:// URLs and ADO strings.
func WithDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(strings.ToLower(dsn), "sqlserver://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("sqlservertest: cannot parse the DSN in %s", EnvDSN)
		}
		q := u.Query()
		for k := range q {
			if strings.EqualFold(k, "database") || strings.EqualFold(k, "initial catalog") {
				q.Del(k)
			}
		}
		q.Set("database", name)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	return strings.TrimRight(dsn, "; ") + ";database=" + name, nil
}

// Open opens a pool on dsn and closes it when the test ends.
func Open(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlserver", dsn)
	if err != nil {
		t.Fatalf("sqlservertest: open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Exec runs statements on db, failing the test on error.
func Exec(t testing.TB, db *sql.DB, query string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := db.ExecContext(ctx, query, args...); err != nil {
		t.Fatalf("sqlservertest: %s: %v", firstLine(query), err)
	}
}

// QuoteName quotes an identifier like T-SQL's QUOTENAME.
func QuoteName(s string) string { return "[" + strings.ReplaceAll(s, "]", "]]") + "]" }

// CreateDatabase creates a throwaway database on the server named by dsn,
// with a table dbo.t (a clustered primary key, a nonclustered index and
// 2,000 rows) and an indexed view dbo.v, and returns its name and a DSN
// for it. The database, and its backup history, are dropped when the test
// ends.
func CreateDatabase(t testing.TB, dsn string) (name, dbDSN string) {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name = "dbscrub_test_" + hex.EncodeToString(b)
	server := Open(t, dsn)
	Exec(t, server, "CREATE DATABASE "+QuoteName(name))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		stmts := []string{
			"ALTER DATABASE " + QuoteName(name) + " SET SINGLE_USER WITH ROLLBACK IMMEDIATE",
			"DROP DATABASE " + QuoteName(name),
			"EXEC msdb.dbo.sp_delete_database_backuphistory @database_name = @p1",
		}
		for i, s := range stmts {
			var err error
			if i == 2 {
				_, err = server.ExecContext(ctx, s, name)
			} else {
				_, err = server.ExecContext(ctx, s)
			}
			if err != nil {
				t.Logf("sqlservertest: cleanup of %s: %s: %v", name, s, err)
			}
		}
	})
	dbDSN, err := WithDatabase(dsn, name)
	if err != nil {
		t.Fatal(err)
	}
	db := Open(t, dbDSN)
	Exec(t, db, `SET ANSI_NULLS, ANSI_PADDING, ANSI_WARNINGS, ARITHABORT, CONCAT_NULL_YIELDS_NULL, QUOTED_IDENTIFIER ON;
SET NUMERIC_ROUNDABORT OFF;
CREATE TABLE dbo.t (id int NOT NULL CONSTRAINT pk_t PRIMARY KEY, grp int NOT NULL, payload char(400) NOT NULL);
WITH n AS (SELECT TOP (2000) ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) AS i FROM sys.all_columns AS a CROSS JOIN sys.all_columns AS b)
INSERT INTO dbo.t (id, grp, payload) SELECT i, i % 10, REPLICATE(CHAR(65 + i % 26), 400) FROM n;
CREATE INDEX ix_t_grp ON dbo.t (grp);`)
	Exec(t, db, `SET ANSI_NULLS, ANSI_PADDING, ANSI_WARNINGS, ARITHABORT, CONCAT_NULL_YIELDS_NULL, QUOTED_IDENTIFIER ON;
SET NUMERIC_ROUNDABORT OFF;
EXEC (N'CREATE VIEW dbo.v WITH SCHEMABINDING AS SELECT grp, COUNT_BIG(*) AS n FROM dbo.t GROUP BY grp');
CREATE UNIQUE CLUSTERED INDEX cx_v ON dbo.v (grp);`)
	return name, dbDSN
}

// BackUp takes a full COPY_ONLY backup WITH CHECKSUM of database name to
// the null device, so that msdb records a recent, checksummed backup.
func BackUp(t testing.TB, dsn, name string) {
	t.Helper()
	server := Open(t, dsn)
	dev := "NUL"
	var platform string
	if err := server.QueryRow("SELECT host_platform FROM sys.dm_os_host_info").Scan(&platform); err == nil && strings.EqualFold(platform, "Linux") {
		dev = "/dev/null"
	}
	Exec(t, server, "BACKUP DATABASE "+QuoteName(name)+" TO DISK = N'"+dev+"' WITH COPY_ONLY, CHECKSUM")
}

// IsSysadmin reports whether the DSN's login is a member of sysadmin.
func IsSysadmin(t testing.TB, dsn string) bool {
	t.Helper()
	var n int
	if err := Open(t, dsn).QueryRow("SELECT IS_SRVROLEMEMBER('sysadmin')").Scan(&n); err != nil {
		t.Fatalf("sqlservertest: %v", err)
	}
	return n == 1
}

// CorruptDataPage damages one data page of table (a one- or two-part name)
// in the throwaway database name with DBCC WRITEPAGE: it overwrites four
// bytes in the middle of the page on disk, bypassing the buffer pool, so
// that the page checksum no longer matches and DBCC CHECKDB reports it
// (8928, 8939, 824). It returns the damaged page's file and page ids. It
// needs sysadmin.
//
// FOR THROWAWAY TEST DATABASES ONLY: DBCC WRITEPAGE is undocumented,
// unsupported, and destroys data.
func CorruptDataPage(t testing.TB, dsn, name, table string) (file, page int64) {
	t.Helper()
	if !strings.HasPrefix(name, "dbscrub_test_") {
		t.Fatalf("sqlservertest: refusing to corrupt %q: only databases made by CreateDatabase", name)
	}
	server := Open(t, dsn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := server.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	q := QuoteName(name)
	if err := conn.QueryRowContext(ctx, `SELECT TOP (1) allocated_page_file_id, allocated_page_page_id
FROM sys.dm_db_database_page_allocations(DB_ID(@p1), OBJECT_ID(@p2), 1, NULL, 'DETAILED')
WHERE page_type_desc = 'DATA_PAGE' AND is_allocated = 1
ORDER BY allocated_page_page_id`, name, name+"."+table).Scan(&file, &page); err != nil {
		t.Fatalf("sqlservertest: finding a data page of %s: %v", table, err)
	}
	for _, s := range []string{
		"USE " + q + "; CHECKPOINT;",
		"USE master; ALTER DATABASE " + q + " SET SINGLE_USER WITH ROLLBACK IMMEDIATE;",
		fmt.Sprintf("DBCC WRITEPAGE (N'%s', %d, %d, 4000, 4, 0xDEADBEEF, 1);", strings.ReplaceAll(name, "'", "''"), file, page),
		"ALTER DATABASE " + q + " SET MULTI_USER;",
		// Throw the clean copy out of the buffer pool.
		"ALTER DATABASE " + q + " SET OFFLINE WITH ROLLBACK IMMEDIATE;",
		"ALTER DATABASE " + q + " SET ONLINE;",
	} {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			t.Fatalf("sqlservertest: %s: %v", s, err)
		}
	}
	return file, page
}

// HealthyTarget returns a Target on a new throwaway database on which every
// check of the driver is healthy: DBCC CHECKDB has run clean (so
// LastGoodCheckDbTime is set) and a full backup WITH CHECKSUM is recorded.
// It skips the test without DBSCRUB_SQLSERVER_DSN. For driver conformance
// suites.
func HealthyTarget(t testing.TB, opts ...sqlserver.Option) *sqlserver.Target {
	t.Helper()
	dsn := DSN(t)
	name, dbDSN := CreateDatabase(t, dsn)
	Exec(t, Open(t, dsn), "DBCC CHECKDB (@p1) WITH NO_INFOMSGS", name)
	BackUp(t, dsn, name)
	return target(t, dbDSN, opts)
}

// CorruptTarget returns a Target on a new throwaway database with one data
// page of dbo.t damaged by DBCC WRITEPAGE (see [CorruptDataPage]), and the
// damaged page. It skips the test without DBSCRUB_SQLSERVER_DSN or when the
// login is not sysadmin.
func CorruptTarget(t testing.TB, opts ...sqlserver.Option) (tg *sqlserver.Target, file, page int64) {
	t.Helper()
	dsn := DSN(t)
	if !IsSysadmin(t, dsn) {
		t.Skip("sqlservertest: the login in " + EnvDSN + " is not sysadmin: DBCC WRITEPAGE needs it")
	}
	name, dbDSN := CreateDatabase(t, dsn)
	file, page = CorruptDataPage(t, dsn, name, "dbo.t")
	return target(t, dbDSN, opts), file, page
}

func target(t testing.TB, dsn string, opts []sqlserver.Option) *sqlserver.Target {
	t.Helper()
	tg, err := sqlserver.Open(dsn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}
