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
// [ChecksumFailures]) in a read-only transaction. A scheduler persists
// Count and passes it back with [WithChecksumFailuresBaseline], so that only
// new failures are reported. It needs PostgreSQL 12 or later.
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
				base := t.cfg.checksumBaseline
				t.cfg.logger.Info("dbscrub: checksum failures", "database", db, "count", cf.Count, "database_count", cf.Database, "shared_count", cf.Shared, "baseline", base)
				var newFailures int64
				var what string
				switch {
				case base == nil:
					newFailures = cf.Count
					what = fmt.Sprintf("PostgreSQL counted %d data page checksum failures", cf.Count)
				case cf.Count > *base:
					newFailures = cf.Count - *base
					what = fmt.Sprintf("the data page checksum failure count went up from %d to %d", *base, cf.Count)
				case cf.Count < *base && cf.Count > 0:
					newFailures = cf.Count
					what = fmt.Sprintf("PostgreSQL counted %d data page checksum failures since its statistics were reset (the count was %d before)", cf.Count, *base)
				}
				if newFailures > 0 {
					msg := what + fmt.Sprintf(" (this database: %d, shared catalogs: %d)", cf.Database, cf.Shared)
					if !cf.LastFailure.IsZero() {
						msg += "; last failure at " + cf.LastFailure.UTC().Format(time.RFC3339)
					}
					f.add(checks.Finding{
						Severity: checks.StatusCorrupt,
						Object:   db,
						Code:     "checksum_failures",
						Message:  msg,
						Remedy:   "some session read a page whose checksum did not match: find 'page verification failed' or 'invalid page in block' in the server log to learn which relation and block; run the heap and btree checks; check the storage and the kernel log for I/O errors; restore damaged relations from a backup",
					})
				}
				return checks.Result{Objects: 1}, nil
			})
		},
	}}, nil
}
