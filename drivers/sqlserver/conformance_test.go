package sqlserver_test

import (
	"fmt"
	"net"
	"net/url"
	"testing"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/drivers/sqlserver"
	"github.com/dbscrub/dbscrub/drivers/sqlserver/sqlservertest"
	"github.com/dbscrub/dbscrub/internal/conformance"
)

// TestConformance runs the driver conformance suite against a real SQL
// Server named by DBSCRUB_SQLSERVER_DSN (a sysadmin login on a throwaway
// server; see the README). Without it the test is skipped with one loud
// line naming the variable.
func TestConformance(t *testing.T) {
	dsn := sqlservertest.DSN(t) // skips loudly when unset
	var all []string
	for _, c := range sqlserver.Catalog() {
		all = append(all, c.Name)
	}
	clean := func(t testing.TB) string {
		name, dbDSN := sqlservertest.CreateDatabase(t, dsn)
		sqlservertest.Exec(t, sqlservertest.Open(t, dsn), "DBCC CHECKDB (@p1) WITH NO_INFOMSGS", name)
		sqlservertest.BackUp(t, dsn, name)
		return dbDSN
	}
	conformance.Run(t, conformance.Harness{
		Open: func(t testing.TB, dsn string) checks.Target {
			tg, err := sqlserver.Open(dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tg.Close() })
			return tg
		},
		Clean: clean,
		Corruptions: []conformance.Corruption{{
			Name:   "data page",
			Checks: []string{sqlserver.CheckCheckDB},
			Make: func(t testing.TB) (string, string) {
				if !sqlservertest.IsSysadmin(t, dsn) {
					t.Skip("the login in DBSCRUB_SQLSERVER_DSN is not sysadmin: DBCC WRITEPAGE needs it")
				}
				name, dbDSN := sqlservertest.CreateDatabase(t, dsn)
				sqlservertest.CorruptDataPage(t, dsn, name, "dbo.t")
				return dbDSN, "t"
			},
		}},
		Unreachable: func(t testing.TB) string {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := l.Addr().(*net.TCPAddr).Port
			l.Close()
			return fmt.Sprintf("sqlserver://sa:Unreach4ble@127.0.0.1:%d?database=master&dial+timeout=5", port)
		},
		WrongPassword: func(t testing.TB) (string, string) {
			u, err := url.Parse(dsn)
			if err != nil {
				t.Fatal(err)
			}
			const wrong = "Wr0ng-Passw0rd"
			u.User = url.UserPassword(u.User.Username(), wrong)
			return u.String(), wrong
		},
		Slow: func(t testing.TB) string {
			// About 400 MB of rows: DBCC CHECKDB takes several seconds.
			_, dbDSN := sqlservertest.CreateDatabase(t, dsn)
			db := sqlservertest.Open(t, dbDSN)
			sqlservertest.Exec(t, db, `CREATE TABLE dbo.big (id int IDENTITY PRIMARY KEY, payload char(4000) NOT NULL);
WITH n AS (SELECT TOP (100000) 1 AS x FROM sys.all_columns a CROSS JOIN sys.all_columns b)
INSERT INTO dbo.big (payload) SELECT 'x' FROM n;`)
			return dbDSN
		},
		Busy: func(t testing.TB, dbDSN string) bool {
			var n int
			err := sqlservertest.Open(t, dsn).QueryRow(`SELECT count(*) FROM sys.dm_exec_requests r
JOIN sys.dm_exec_sessions s ON s.session_id = r.session_id WHERE s.program_name = 'dbscrub'`).Scan(&n)
			if err != nil {
				t.Fatal(err)
			}
			return n > 0
		},
		AllChecks: all,
		Snapshot: func(t testing.TB, dbDSN string) string {
			var rows, sum int64
			var modified string
			db := sqlservertest.Open(t, dbDSN)
			if err := db.QueryRow(`SELECT COUNT_BIG(*), CHECKSUM_AGG(CHECKSUM(*)),
  (SELECT CONVERT(varchar(30), MAX(modify_date), 126) FROM sys.objects) FROM dbo.t`).Scan(&rows, &sum, &modified); err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("rows=%d checksum=%d modified=%s", rows, sum, modified)
		},
	})
}
