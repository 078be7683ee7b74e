package sqlserver_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/drivers/sqlserver"
	"github.com/dbscrub/dbscrub/drivers/sqlserver/sqlservertest"
)

// Integration tests: they run against the SQL Server named by
// DBSCRUB_SQLSERVER_DSN and are skipped, with one loud line, without it.
// See the package documentation for the container to run them against.

var allChecks = []string{"checkdb", "checktable", "checkalloc", "checkcatalog", "suspect_pages", "last_known_good", "page_verify", "backups"}

func integrationTarget(t *testing.T, dsn string, opts ...sqlserver.Option) *sqlserver.Target {
	t.Helper()
	tg, err := sqlserver.Open(dsn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

func run(t *testing.T, tg *sqlserver.Target, names ...string) *checks.Report {
	t.Helper()
	cks, err := tg.Checks(names...)
	if err != nil {
		t.Fatal(err)
	}
	r, err := checks.NewRunner(checks.WithJobs(2), checks.WithTaskTimeout(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	rep := r.Run(ctx, tg, cks...)
	for _, c := range rep.Checks {
		t.Logf("%s: %s %s", c.Check, c.Status, c.Reason)
		for _, f := range c.Findings {
			t.Logf("  %s %s %s [%s]: %s", f.Severity, f.Code, f.Object, f.Location.String(), f.Message)
		}
	}
	return rep
}

func TestIntegration(t *testing.T) {
	dsn := sqlservertest.DSN(t)

	t.Run("Probe", func(t *testing.T) {
		tg := integrationTarget(t, dsn)
		caps, err := tg.Probe(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s %s (%s), database %s %s, sysadmin %v, db_owner %v, AG %q role %q",
			caps.Deployment(), caps.ProductVersion, caps.Edition, caps.Database, caps.State, caps.Sysadmin, caps.DBOwner, caps.AvailabilityGroup, caps.ReplicaRole)
		if caps.ProductVersion == "" || caps.Database == "" || caps.State == "" {
			t.Errorf("incomplete probe: %+v", caps)
		}
		if tg.Info().ServerVersion != caps.ProductVersion {
			t.Errorf("Info().ServerVersion = %q", tg.Info().ServerVersion)
		}
	})

	t.Run("DSNDatabaseNotCorrupt", func(t *testing.T) {
		rep := run(t, integrationTarget(t, dsn), allChecks...)
		for _, c := range rep.Checks {
			if c.Status == checks.StatusCorrupt || c.Status == checks.StatusError {
				t.Errorf("%s: %s: %s", c.Check, c.Status, c.Reason)
			}
		}
	})

	t.Run("CleanDatabaseIsHealthy", func(t *testing.T) {
		name, dbDSN := sqlservertest.CreateDatabase(t, dsn)
		tg := integrationTarget(t, dbDSN, sqlserver.WithMaxDOP(2), sqlserver.WithDataPurity(), sqlserver.WithExtendedLogicalChecks())
		// A clean CHECKDB sets LastGoodCheckDbTime; a backup WITH CHECKSUM
		// satisfies the backups check.
		if rep := run(t, tg, "checkdb"); rep.Err() != nil {
			t.Fatalf("checkdb of a new database: %v", rep.Err())
		}
		sqlservertest.BackUp(t, dsn, name)
		rep := run(t, tg, allChecks...)
		for _, c := range rep.Checks {
			if c.Status != checks.StatusHealthy {
				t.Errorf("%s: %s: %s", c.Check, c.Status, c.Reason)
			}
		}
		ct := rep.Checks[1]
		if ct.Check != "checktable" || ct.Coverage.TasksCompleted < 2 {
			t.Errorf("checktable covered %+v, want dbo.t and dbo.v", ct.Coverage)
		}
		if err := rep.Err(); err != nil {
			t.Errorf("Gate: %v", err)
		}
	})

	t.Run("WritePageCorruptionIsCaught", func(t *testing.T) {
		if !sqlservertest.IsSysadmin(t, dsn) {
			t.Skip("the login is not sysadmin: DBCC WRITEPAGE needs it")
		}
		name, dbDSN := sqlservertest.CreateDatabase(t, dsn)
		file, page := sqlservertest.CorruptDataPage(t, dsn, name, "dbo.t")
		t.Logf("damaged page (%d:%d) of %s.dbo.t", file, page, name)
		rep := run(t, integrationTarget(t, dbDSN), "checkdb", "checktable")
		for _, c := range rep.Checks {
			if c.Status != checks.StatusCorrupt {
				t.Errorf("%s: %s (%s), want corrupt", c.Check, c.Status, c.Reason)
			}
			found := false
			for _, f := range c.Findings {
				if strings.HasPrefix(f.Object, "dbo.t") && f.Location.Page != nil && *f.Location.Page == page {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: no finding names dbo.t page %d: %+v", c.Check, page, c.Findings)
			}
		}
		if !errors.Is(rep.Err(), checks.ErrCorrupt) {
			t.Errorf("Gate: %v, want ErrCorrupt", rep.Err())
		}
	})

	t.Run("Cancellation", func(t *testing.T) {
		tg := integrationTarget(t, dsn)
		cks, err := tg.Checks("checkdb")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		r, _ := checks.NewRunner()
		time.AfterFunc(50*time.Millisecond, cancel)
		rep := r.Run(ctx, tg, cks...)
		if rep.Status == checks.StatusHealthy {
			// The check may have finished in 50ms on a tiny database.
			t.Logf("checkdb finished before the cancellation")
		} else if !errors.Is(rep.Err(), checks.ErrNotVerified) && !errors.Is(rep.Err(), checks.ErrCorrupt) {
			t.Errorf("cancelled run: %s %v", rep.Status, rep.Err())
		}
	})
}
