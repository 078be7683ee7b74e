package sqlserver

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/dbscrub/dbscrub/checks"
)

// suspectPagesSQL reads the pages SQL Server recorded as damaged. One row
// per page (msdb keeps at most 1,000 rows); event_type changes to 4, 5 or
// 7 when the page is restored, repaired or deallocated.
const suspectPagesSQL = `SELECT sp.file_id, sp.page_id, sp.event_type, sp.error_count, sp.last_update_date
FROM msdb.dbo.suspect_pages AS sp
WHERE sp.database_id = DB_ID(@p1)
ORDER BY sp.last_update_date DESC, sp.file_id, sp.page_id;`

// lastKnownGoodSQL reads the time of the last clean DBCC CHECKDB, and the
// server's clock to compare it with (both in the server's local time).
const lastKnownGoodSQL = `SELECT CAST(DATABASEPROPERTYEX(@p1, 'LastGoodCheckDbTime') AS datetime2(3)) AS last_good,
  CAST(GETDATE() AS datetime2(3)) AS server_now;`

// pageVerifySQL reads the database's PAGE_VERIFY option.
const pageVerifySQL = `SELECT d.page_verify_option_desc
FROM sys.databases AS d
WHERE d.name = @p1;`

// backupsSQL reads the latest full backup, and every backup taken from a
// damaged database (is_damaged = 1) since that full backup.
const backupsSQL = `SELECT TOP (1) bs.backup_finish_date, bs.has_backup_checksums, bs.is_damaged, bs.is_copy_only,
  DATEDIFF(SECOND, bs.backup_finish_date, GETDATE()) AS age_seconds
FROM msdb.dbo.backupset AS bs
WHERE bs.database_name = @p1 AND bs.type = 'D'
ORDER BY bs.backup_finish_date DESC;
SELECT bs.type, bs.backup_finish_date, bs.has_backup_checksums
FROM msdb.dbo.backupset AS bs
WHERE bs.database_name = @p1 AND bs.is_damaged = 1
  AND bs.backup_finish_date >= COALESCE((SELECT MAX(f.backup_finish_date) FROM msdb.dbo.backupset AS f
                                         WHERE f.database_name = @p1 AND f.type = 'D'), '19000101')
ORDER BY bs.backup_finish_date DESC;`

// metaTask plans a task that runs one query and judges its response.
func (t *Target) metaTask(check, what, stmt string, caps *Capabilities, pool connector, judge func(*response) []checks.Finding) []checks.Task {
	database := caps.Database
	return []checks.Task{{
		Key:       database,
		Object:    database,
		Statement: t.explain(stmt, "@p1 = database name"),
		Run: func(ctx context.Context) (checks.Result, error) {
			resp, err := t.query(ctx, pool, check, what, stmt, database)
			if err != nil {
				return checks.Result{}, err
			}
			return checks.Result{Findings: judge(resp), Objects: 1}, nil
		},
	}}
}

// suspect_pages event types.
var suspectEvents = map[int64]string{
	1: "an 823 error or an 824 error other than a bad checksum or a torn page",
	2: "a bad checksum (824)",
	3: "a torn page (824)",
	4: "restored",
	5: "repaired by DBCC",
	7: "deallocated by DBCC",
}

func (t *Target) planSuspectPages(caps *Capabilities, pool connector) ([]checks.Task, error) {
	database := caps.Database
	return t.metaTask(CheckSuspectPages, "reading msdb.dbo.suspect_pages", suspectPagesSQL, caps, pool, func(resp *response) []checks.Finding {
		var out []checks.Finding
		history := 0
		for _, r := range firstRows(resp) {
			ev := r.IntOr("event_type", 0)
			file, page := r.IntOr("file_id", 0), r.IntOr("page_id", 0)
			switch ev {
			case 4, 5, 7:
				history++ // fixed: history, not a finding
				continue
			}
			what, ok := suspectEvents[ev]
			if !ok {
				what = fmt.Sprintf("event type %d", ev)
			}
			last := r.String("last_update_date")
			out = append(out, checks.Finding{
				Severity: checks.StatusCorrupt,
				Object:   database,
				Location: checks.Location{File: checks.Int(file), Page: checks.Int(page)},
				Code:     fmt.Sprintf("suspect_pages event_type %d", ev),
				Message: fmt.Sprintf("page (%d:%d) is recorded in msdb.dbo.suspect_pages: %s, %d errors, last at %s (server time)",
					file, page, what, r.IntOr("error_count", 0), last),
				Remedy: fmt.Sprintf("run DBCC CHECKDB to find the damaged object; restore the page (RESTORE DATABASE %s PAGE = '%d:%d' ...) or the database from a clean backup, then check the storage. "+
					"Once fixed the row's event_type becomes 4, 5 or 7; delete old rows yourself (msdb keeps at most 1,000)", quoteName(database), file, page),
			})
		}
		if history > 0 {
			t.cfg.logger.Debug("dbscrub: suspect_pages history rows (restored, repaired or deallocated) ignored", "database", database, "rows", history)
		}
		return out
	}), nil
}

func (t *Target) planLastKnownGood(caps *Capabilities, pool connector) ([]checks.Task, error) {
	database := caps.Database
	maxAge := t.cfg.lastGoodMaxAge
	return t.metaTask(CheckLastKnownGood, "reading LastGoodCheckDbTime", lastKnownGoodSQL, caps, pool, func(resp *response) []checks.Finding {
		rows := firstRows(resp)
		var last, now time.Time
		var okLast, okNow bool
		if len(rows) > 0 {
			last, okLast = rows[0].Time("last_good")
			now, okNow = rows[0].Time("server_now")
		}
		warn := func(msg, rem string) []checks.Finding {
			return []checks.Finding{{Severity: checks.StatusWarning, Object: database, Code: "LastGoodCheckDbTime", Message: msg, Remedy: rem}}
		}
		const runIt = "run DBCC CHECKDB (dbscrub's checkdb check) on a schedule, at least every "
		switch {
		case !okLast:
			return warn(fmt.Sprintf("database %s: the server does not report LastGoodCheckDbTime (it needs SQL Server 2016 SP2, 2017 CU9 or later): the last clean DBCC CHECKDB is unknown", database),
				runIt+fmtAge(maxAge)+", and keep its results")
		case last.Year() <= 1900:
			return warn(fmt.Sprintf("database %s has never been checked with DBCC CHECKDB (LastGoodCheckDbTime is 1900-01-01)", database),
				runIt+fmtAge(maxAge))
		}
		if !okNow {
			now = time.Now()
		}
		age := now.Sub(last)
		if age > maxAge {
			msg := fmt.Sprintf("the last clean DBCC CHECKDB of database %s finished %s ago (%s, server time), more than %s", database, fmtAge(age), last.Format("2006-01-02 15:04"), fmtAge(maxAge))
			if caps.ReadOnly || caps.Secondary() {
				msg += "; checks of a read-only database or a secondary replica do not update it"
			}
			return warn(msg, runIt+fmtAge(maxAge))
		}
		return nil
	}), nil
}

func (t *Target) planPageVerify(caps *Capabilities, pool connector) ([]checks.Task, error) {
	database := caps.Database
	return t.metaTask(CheckPageVerify, "reading the PAGE_VERIFY option", pageVerifySQL, caps, pool, func(resp *response) []checks.Finding {
		rows := firstRows(resp)
		if len(rows) == 0 {
			return []checks.Finding{{Severity: checks.StatusWarning, Object: database, Code: "page_verify_option",
				Message: fmt.Sprintf("database %s is not visible in sys.databases: its PAGE_VERIFY option is unknown", database)}}
		}
		opt := strings.ToUpper(rows[0].String("page_verify_option_desc"))
		if opt == "CHECKSUM" {
			return nil
		}
		return []checks.Finding{{
			Severity: checks.StatusWarning,
			Object:   database,
			Code:     "page_verify_option",
			Message:  fmt.Sprintf("database %s has PAGE_VERIFY %s: SQL Server cannot detect most damage to its pages (error 824) when it reads them", database, opt),
			Remedy:   fmt.Sprintf("ALTER DATABASE %s SET PAGE_VERIFY CHECKSUM; pages get a checksum when they are next written (rebuild the indexes to cover every page)", quoteName(database)),
		}}
	}), nil
}

func (t *Target) planBackups(caps *Capabilities, pool connector) ([]checks.Task, error) {
	database := caps.Database
	maxAge := t.cfg.backupMaxAge
	return t.metaTask(CheckBackups, "reading msdb.dbo.backupset", backupsSQL, caps, pool, func(resp *response) []checks.Finding {
		var out []checks.Finding
		warn := func(msg, rem string) {
			out = append(out, checks.Finding{Severity: checks.StatusWarning, Object: database, Code: "backupset", Message: msg, Remedy: rem})
		}
		elsewhere := ""
		if caps.AvailabilityGroup != "" {
			elsewhere = fmt.Sprintf(" (msdb only records the backups taken on this replica of availability group %s)", caps.AvailabilityGroup)
		} else if caps.EngineEdition == EngineEditionManagedInstance {
			elsewhere = " (Azure SQL Managed Instance's automatic backups may not be recorded in msdb)"
		}
		rows := firstRows(resp)
		if len(rows) == 0 {
			warn(fmt.Sprintf("no full backup of database %s is recorded in msdb.dbo.backupset%s", database, elsewhere),
				fmt.Sprintf("take full backups WITH CHECKSUM at least every %s, and test restores", fmtAge(maxAge)))
		} else {
			r := rows[0]
			finished := r.String("backup_finish_date")
			if age := time.Duration(r.IntOr("age_seconds", 0)) * time.Second; age > maxAge {
				warn(fmt.Sprintf("the latest full backup of database %s finished %s ago (%s, server time), more than %s%s", database, fmtAge(age), finished, fmtAge(maxAge), elsewhere),
					fmt.Sprintf("take full backups WITH CHECKSUM at least every %s", fmtAge(maxAge)))
			}
			if !r.Bool("has_backup_checksums") {
				warn(fmt.Sprintf("the latest full backup of database %s (%s) was taken without backup checksums: damaged pages were not detected while backing up, and the backup cannot be verified", database, finished),
					"add WITH CHECKSUM to BACKUP DATABASE (or set the server's 'backup checksum default' option to 1)")
			}
		}
		if len(resp.sets) > 1 {
			for _, r := range resp.sets[1].Rows() {
				out = append(out, checks.Finding{
					Severity: checks.StatusCorrupt,
					Object:   database,
					Code:     "backupset.is_damaged",
					Message: fmt.Sprintf("a %s backup of database %s finished at %s (server time) was taken from a damaged database (is_damaged = 1: BACKUP hit errors and went on with CONTINUE_AFTER_ERROR)",
						backupType(r.String("type")), database, r.String("backup_finish_date")),
					Remedy: "run DBCC CHECKDB now; do not rely on this backup: restore from an earlier clean one if the database is damaged",
				})
			}
		}
		return out
	}), nil
}

func backupType(t string) string {
	switch strings.ToUpper(strings.TrimSpace(t)) {
	case "D":
		return "full"
	case "I":
		return "differential"
	case "L":
		return "log"
	case "F":
		return "file or filegroup"
	case "G":
		return "differential file"
	case "P":
		return "partial"
	case "Q":
		return "differential partial"
	}
	return "type " + t
}

// fmtAge formats a duration in days and hours for people.
func fmtAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	days := int64(d / (24 * time.Hour))
	hours := int64((d % (24 * time.Hour)) / time.Hour)
	switch {
	case days > 0 && hours > 0:
		return fmt.Sprintf("%dd%dh", days, hours)
	case days > 0:
		return fmt.Sprintf("%dd", days)
	case hours > 0:
		return fmt.Sprintf("%dh", hours)
	}
	return d.Round(time.Minute).String()
}
