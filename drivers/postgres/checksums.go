package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/dbscrub/dbscrub/checks"
)

// checksumsCheck is the "checksums" check.
type checksumsCheck struct{ r *run }

func (c *checksumsCheck) Name() string { return CheckChecksums }

// ChecksumFailures is the server's count of data page checksum failures
// relevant to one database.
type ChecksumFailures struct {
	// Enabled reports whether the cluster has data checksums; without them
	// no failure is ever counted.
	Enabled bool
	// Count is pg_stat_database.checksum_failures of the database plus that
	// of the shared catalogs (the row with datid 0). The server counts since
	// the statistics were last reset (pg_stat_reset, or a crash).
	Count int64
	// Database and Shared are the two parts of Count.
	Database, Shared int64
	// LastFailure is the latest checksum_last_failure of the two, zero
	// when none.
	LastFailure time.Time
}

const checksumQuery = `SELECT pg_catalog.current_setting('data_checksums') = 'on',
	COALESCE((SELECT d.checksum_failures FROM pg_catalog.pg_stat_database d WHERE d.datname = pg_catalog.current_database()), 0),
	COALESCE((SELECT d.checksum_failures FROM pg_catalog.pg_stat_database d WHERE d.datid = 0), 0),
	(SELECT max(d.checksum_last_failure) FROM pg_catalog.pg_stat_database d WHERE d.datname = pg_catalog.current_database() OR d.datid = 0)`

// ChecksumFailures reads the checksum failure counter of the database (see
// [ChecksumFailures]) in a read-only transaction. A caller that runs checks
// on its own persists Count and passes it back with
// [WithChecksumFailuresBaseline], so that only new failures are reported;
// under a scheduler the checksums check does that itself, through the
// [checks.Counters] of the run (see [CounterChecksumFailures]). It needs
// PostgreSQL 12 or later.
func (t *Target) ChecksumFailures(ctx context.Context) (ChecksumFailures, error) {
	s, err := t.begin(ctx, sessionOpts{})
	if err != nil {
		return ChecksumFailures{}, err
	}
	defer s.close()
	return s.checksumFailures(ctx)
}

func (s *session) checksumFailures(ctx context.Context) (ChecksumFailures, error) {
	var cf ChecksumFailures
	var last sql.NullTime
	if err := s.tx.QueryRowContext(ctx, checksumQuery).Scan(&cf.Enabled, &cf.Database, &cf.Shared, &last); err != nil {
		return cf, s.t.scrub(fmt.Errorf("postgres: reading checksum failures: %s", oneLine(err.Error())))
	}
	cf.Count = cf.Database + cf.Shared
	if last.Valid {
		cf.LastFailure = last.Time
	}
	return cf, nil
}

// Plan plans one task for the database.
func (c *checksumsCheck) Plan(ctx context.Context) ([]checks.Task, error) {
	caps, err := c.r.capabilities(ctx)
	if err != nil {
		return nil, err
	}
	if caps.ServerVersionNum < 120000 {
		return nil, checks.Skip("pg_stat_database.checksum_failures needs PostgreSQL 12 or later; the server runs %s", caps.ServerVersion)
	}
	t := c.r.t
	db := caps.Database
	return []checks.Task{{
		Key: db, Object: "database " + db, Statement: checksumQuery,
		Run: func(ctx context.Context) (checks.Result, error) {
			return c.r.runTask(ctx, sessionOpts{}, "database "+db, func(s *session, f *findings) (checks.Result, error) {
				cf, err := s.checksumFailures(ctx)
				if err != nil {
					return checks.Result{}, err
				}
				if !cf.Enabled {
					f.add(checks.Finding{
						Severity: checks.StatusWarning,
						Object:   db,
						Code:     "data_checksums_off",
						Message:  "data checksums are off in this cluster: PostgreSQL cannot tell a page damaged by storage, memory or a torn write from a good one, so it returns wrong data silently instead of failing",
						Remedy:   "enable checksums offline: stop the server cleanly and run pg_checksums --enable -D <data directory> (PostgreSQL 12+; it rewrites every data file, so it takes time proportional to the cluster size; do it on each replica too, or rebuild replicas); new clusters: initdb --data-checksums",
					})
					return checks.Result{Objects: 1}, nil
				}
				ctrs, scheduled := checks.CountersFrom(ctx)
				base, err := checksumBaseline(ctx, t.cfg.checksumBaseline, ctrs, scheduled)
				if err != nil {
					return checks.Result{}, err
				}
				msg := "dbscrub: checksum failures"
				if fd, ok := checksumFinding(db, cf, base, scheduled); ok {
					f.add(fd)
				} else if cf.Count > 0 {
					// Not corruption again: it was reported when counted.
					msg = "dbscrub: checksum failures counted earlier, none new since the baseline (reported when they were counted)"
				}
				t.cfg.logger.Info(msg, "database", db, "count", cf.Count, "database_count", cf.Database, "shared_count", cf.Shared, "baseline", base.String())
				if scheduled {
					if err := ctrs.Set(ctx, CounterChecksumFailures, cf.Count); err != nil {
						return checks.Result{}, fmt.Errorf("postgres: recording the checksum failure count: %w", err)
					}
				}
				return checks.Result{Objects: 1}, nil
			})
		},
	}}, nil
}

// CounterChecksumFailures is the name under which the checksums check
// keeps the last seen checksum failure count ([ChecksumFailures].Count) in
// the [checks.Counters] of a run's context, which a scheduler provides:
// each run reads it as its baseline and records the count it saw, so that
// a failure is reported as corruption on the run that first sees it, and
// not again on every later run while the server's counter stays the same.
const CounterChecksumFailures = "checksum_failures"

// baseline is the checksum failure count to compare with.
type baseline struct {
	set    bool
	value  int64
	seenAt time.Time // zero when it came from WithChecksumFailuresBaseline
}

func (b baseline) String() string {
	switch {
	case !b.set:
		return "none"
	case b.seenAt.IsZero():
		return fmt.Sprintf("%d (WithChecksumFailuresBaseline)", b.value)
	}
	return fmt.Sprintf("%d (seen at %s)", b.value, b.seenAt.UTC().Format(time.RFC3339))
}

// checksumBaseline returns the count to compare with: the one a previous
// run recorded in the run's counters, else the option's, else none.
func checksumBaseline(ctx context.Context, opt *int64, ctrs checks.Counters, scheduled bool) (baseline, error) {
	if scheduled {
		last, ok, err := ctrs.Last(ctx, CounterChecksumFailures)
		if err != nil {
			return baseline{}, fmt.Errorf("postgres: reading the checksum failure count of the last run: %w", err)
		}
		if ok && last.Value >= 0 {
			return baseline{set: true, value: last.Value, seenAt: last.SeenAt}, nil
		}
	}
	if opt != nil {
		return baseline{set: true, value: *opt}, nil
	}
	return baseline{}, nil
}

// checksumFinding judges a checksum failure count against the baseline:
// failures counted since the baseline are corruption (all of them without
// a baseline; those counted since the statistics were reset when the count
// is below it); an unchanged count is not reported again. scheduled says
// the count is recorded for the next run, which the finding then says.
func checksumFinding(db string, cf ChecksumFailures, base baseline, scheduled bool) (checks.Finding, bool) {
	var what string
	switch {
	case cf.Count <= 0:
		return checks.Finding{}, false
	case !base.set:
		what = fmt.Sprintf("PostgreSQL counted %d data page checksum %s", cf.Count, failuresWord(cf.Count))
	case cf.Count > base.value:
		from := fmt.Sprint(base.value)
		if !base.seenAt.IsZero() {
			from += " (at " + base.seenAt.UTC().Format(time.RFC3339) + ")"
		}
		what = fmt.Sprintf("the data page checksum failure count went up from %s to %d", from, cf.Count)
	case cf.Count < base.value:
		what = fmt.Sprintf("PostgreSQL counted %d data page checksum %s since its statistics were reset (the count was %d before)", cf.Count, failuresWord(cf.Count), base.value)
	default:
		return checks.Finding{}, false // unchanged: reported when it went up
	}
	msg := what + fmt.Sprintf(" (this database: %d, shared catalogs: %d)", cf.Database, cf.Shared)
	if !cf.LastFailure.IsZero() {
		msg += "; last failure at " + cf.LastFailure.UTC().Format(time.RFC3339)
	}
	if scheduled {
		msg += fmt.Sprintf("; the count of %d is recorded: later runs report only failures counted after it, while the heap and btree checks keep reporting damaged pages they can read", cf.Count)
	}
	return checks.Finding{
		Severity: checks.StatusCorrupt,
		Object:   db,
		Code:     "checksum_failures",
		Message:  msg,
		Remedy:   "some session read a page whose checksum did not match: find 'page verification failed' or 'invalid page in block' in the server log to learn which relation and block; run the heap and btree checks; check the storage and the kernel log for I/O errors; restore damaged relations from a backup",
	}, true
}

func failuresWord(n int64) string {
	if n == 1 {
		return "failure"
	}
	return "failures"
}
