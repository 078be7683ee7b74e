package history

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the embedded SQLite driver, registered as "sqlite"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/scheduler/alarm"
)

// SQLite is the embedded default [Store]: one SQLite file (plus its WAL
// files), schema created and migrated at open. Several processes may open
// the same file (a daemon writing, `dbscrub status` reading); writes are
// serialized by SQLite's locking with a busy timeout.
type SQLite struct {
	db   *sql.DB
	path string
}

var _ Store = (*SQLite)(nil)

// SQLiteOption configures [OpenSQLite].
type SQLiteOption func(*sqliteConfig) error

type sqliteConfig struct {
	busyTimeout time.Duration
}

// WithBusyTimeout sets how long a statement waits for another process's
// lock on the file (default 10s). d must be positive.
func WithBusyTimeout(d time.Duration) SQLiteOption {
	return func(c *sqliteConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: busy timeout must be positive, got %s", checks.ErrInvalidOption, d)
		}
		c.busyTimeout = d
		return nil
	}
}

// SchemaVersion is the newest schema version this package creates. A file
// with a newer schema (written by a newer dbscrub) is refused rather than
// misread.
const SchemaVersion = 1

// migrations[i] brings the schema from version i to i+1. Never edit a
// released migration; append a new one.
var migrations = []string{
	// 1: the initial schema. Times are Unix nanoseconds (UTC); NULL is "never".
	`
CREATE TABLE targets (
	name            TEXT PRIMARY KEY,
	labels          TEXT NOT NULL DEFAULT '{}',
	first_seen      INTEGER NOT NULL,
	last_registered INTEGER NOT NULL
);
CREATE TABLE runs (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	target      TEXT NOT NULL,
	trigger     TEXT NOT NULL,
	started_at  INTEGER NOT NULL,
	finished_at INTEGER NOT NULL,
	deadline    INTEGER,
	status      TEXT NOT NULL,
	reason      TEXT NOT NULL DEFAULT '',
	coverage    TEXT NOT NULL,
	findings    INTEGER NOT NULL DEFAULT 0,
	report      TEXT NOT NULL,
	cycles      TEXT
);
CREATE INDEX runs_target_started ON runs (target, started_at);
CREATE INDEX runs_started ON runs (started_at);
CREATE TABLE findings (
	run_id     INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	seq        INTEGER NOT NULL,
	target     TEXT NOT NULL,
	check_name TEXT NOT NULL,
	found_at   INTEGER NOT NULL,
	finding    TEXT NOT NULL,
	PRIMARY KEY (run_id, seq)
);
CREATE INDEX findings_target_found ON findings (target, found_at);
CREATE TABLE check_state (
	target              TEXT NOT NULL,
	check_name          TEXT NOT NULL,
	last_run_id         INTEGER NOT NULL,
	last_run_at         INTEGER NOT NULL,
	last_status         TEXT NOT NULL,
	last_reason         TEXT NOT NULL DEFAULT '',
	last_success_run_id INTEGER,
	last_success_at     INTEGER,
	cycle_started_at    INTEGER,
	PRIMARY KEY (target, check_name)
) WITHOUT ROWID;
CREATE TABLE coverage (
	target           TEXT NOT NULL,
	check_name       TEXT NOT NULL,
	key              TEXT NOT NULL,
	object           TEXT NOT NULL,
	cost             INTEGER NOT NULL,
	first_seen       INTEGER NOT NULL,
	last_verified_at INTEGER,
	last_status      TEXT,
	last_attempt_at  INTEGER,
	last_state       TEXT,
	seen_run         INTEGER NOT NULL,
	PRIMARY KEY (target, check_name, key)
) WITHOUT ROWID;
CREATE TABLE alarms (
	target      TEXT NOT NULL,
	check_name  TEXT NOT NULL,
	kind        TEXT NOT NULL,
	state       TEXT NOT NULL,
	resolved_at INTEGER,
	record      TEXT NOT NULL,
	PRIMARY KEY (target, check_name, kind)
) WITHOUT ROWID;
CREATE TABLE counters (
	target  TEXT NOT NULL,
	name    TEXT NOT NULL,
	value   INTEGER NOT NULL,
	seen_at INTEGER NOT NULL,
	PRIMARY KEY (target, name)
) WITHOUT ROWID;
`,
}

// OpenSQLite opens (creating it if needed) the history file at path and
// brings its schema up to date. Use ":memory:" for a private in-memory
// database.
func OpenSQLite(ctx context.Context, path string, opts ...SQLiteOption) (*SQLite, error) {
	cfg := sqliteConfig{busyTimeout: 10 * time.Second}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if path == "" {
		return nil, fmt.Errorf("%w: empty history path", checks.ErrInvalidOption)
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("%w: history path %q must not contain '?' or '#'", checks.ErrInvalidOption, path)
	}
	params := "_busy_timeout=" + strconv.FormatInt(cfg.busyTimeout.Milliseconds(), 10) +
		"&_foreign_keys=1&_txlock=immediate&_synchronous=NORMAL"
	if path != ":memory:" {
		params += "&_journal_mode=WAL"
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+params)
	if err != nil {
		return nil, fmt.Errorf("history: opening %s: %w", path, err)
	}
	// One connection: statements of this process never contend with each
	// other for SQLite's write lock (and ":memory:" stays one database).
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	s := &SQLite{db: db, path: path}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *SQLite) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("history: opening %s: %w", s.path, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("history: %s: %w", s.path, err)
	}
	var version int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&version); err != nil {
		return fmt.Errorf("history: %s: reading schema version: %w", s.path, err)
	}
	if version > len(migrations) {
		return fmt.Errorf("history: %s has schema version %d, newer than this dbscrub understands (%d); upgrade dbscrub", s.path, version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("history: %s: migrating to schema version %d: %w", s.path, v+1, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, v+1, time.Now().UnixNano()); err != nil {
			return fmt.Errorf("history: %s: %w", s.path, err)
		}
	}
	return tx.Commit()
}

// Version returns the schema version of the open file.
func (s *SQLite) Version(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// Close closes the file.
func (s *SQLite) Close() error { return s.db.Close() }

// nanos stores a time; the zero time is NULL.
func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// RegisterTarget implements [Store].
func (s *SQLite) RegisterTarget(ctx context.Context, name string, labels map[string]string, at time.Time) (time.Time, error) {
	if name == "" {
		return time.Time{}, fmt.Errorf("history: empty target name")
	}
	lb, err := json.Marshal(labels)
	if err != nil {
		return time.Time{}, err
	}
	var first int64
	err = s.db.QueryRowContext(ctx, `
INSERT INTO targets (name, labels, first_seen, last_registered) VALUES (?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET labels = excluded.labels, last_registered = excluded.last_registered
RETURNING first_seen`, name, string(lb), at.UnixNano(), at.UnixNano()).Scan(&first)
	if err != nil {
		return time.Time{}, fmt.Errorf("history: registering %s: %w", name, err)
	}
	return time.Unix(0, first).UTC(), nil
}

// RecordRun implements [Store].
func (s *SQLite) RecordRun(ctx context.Context, run *Run) (int64, error) {
	if err := validateRun(run); err != nil {
		return 0, err
	}
	report, err := json.Marshal(run.Report)
	if err != nil {
		return 0, fmt.Errorf("history: encoding report: %w", err)
	}
	cov, _ := json.Marshal(run.Report.Coverage)
	var cycles any
	if len(run.Cycles) > 0 {
		b, _ := json.Marshal(run.Cycles)
		cycles = string(b)
	}
	sum := run.Summary()

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("history: recording run of %s: %w", run.Target, err)
	}
	defer tx.Rollback()
	fail := func(err error) (int64, error) {
		return 0, fmt.Errorf("history: recording run of %s: %w", run.Target, err)
	}
	at := run.StartedAt.UnixNano()
	if _, err := tx.ExecContext(ctx, `INSERT INTO targets (name, first_seen, last_registered) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`, run.Target, at, at); err != nil {
		return fail(err)
	}
	var id int64
	if err := tx.QueryRowContext(ctx, `
INSERT INTO runs (target, trigger, started_at, finished_at, deadline, status, reason, coverage, findings, report, cycles)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		run.Target, string(run.Trigger), at, run.FinishedAt.UnixNano(), nanos(run.Deadline), string(run.Status), run.Reason, string(cov), sum.Findings, string(report), cycles).Scan(&id); err != nil {
		return fail(err)
	}

	insFinding, err := tx.PrepareContext(ctx, `INSERT INTO findings (run_id, seq, target, check_name, found_at, finding) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fail(err)
	}
	defer insFinding.Close()
	seq := 0
	for _, cr := range run.Report.Checks {
		for _, f := range cr.Findings {
			b, _ := json.Marshal(f)
			if _, err := insFinding.ExecContext(ctx, id, seq, run.Target, cr.Check, at, string(b)); err != nil {
				return fail(err)
			}
			seq++
		}
	}

	upKey, err := tx.PrepareContext(ctx, `
INSERT INTO coverage (target, check_name, key, object, cost, first_seen, last_verified_at, last_status, last_attempt_at, last_state, seen_run)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (target, check_name, key) DO UPDATE SET
	object = excluded.object,
	cost = excluded.cost,
	seen_run = excluded.seen_run,
	last_verified_at = COALESCE(excluded.last_verified_at, coverage.last_verified_at),
	last_status = CASE WHEN excluded.last_verified_at IS NULL THEN coverage.last_status ELSE excluded.last_status END,
	last_attempt_at = excluded.last_attempt_at,
	last_state = excluded.last_state`)
	if err != nil {
		return fail(err)
	}
	defer upKey.Close()
	upDeferred, err := tx.PrepareContext(ctx, `
INSERT INTO coverage (target, check_name, key, object, cost, first_seen, seen_run)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (target, check_name, key) DO UPDATE SET
	object = excluded.object, cost = excluded.cost, seen_run = excluded.seen_run`)
	if err != nil {
		return fail(err)
	}
	defer upDeferred.Close()

	for _, d := range derive(run) {
		var succID, succAt any
		if d.success {
			succID, succAt = id, at
		}
		var cycle any
		if d.cycleSet {
			cycle = nanos(d.cycle)
		}
		if _, err := tx.ExecContext(ctx, `
INSERT INTO check_state (target, check_name, last_run_id, last_run_at, last_status, last_reason, last_success_run_id, last_success_at, cycle_started_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (target, check_name) DO UPDATE SET
	last_run_id = excluded.last_run_id,
	last_run_at = excluded.last_run_at,
	last_status = excluded.last_status,
	last_reason = excluded.last_reason,
	last_success_run_id = COALESCE(excluded.last_success_run_id, check_state.last_success_run_id),
	last_success_at = COALESCE(excluded.last_success_at, check_state.last_success_at),
	cycle_started_at = CASE WHEN ? THEN excluded.cycle_started_at ELSE check_state.cycle_started_at END`,
			run.Target, d.check, id, at, string(d.status), d.reason, succID, succAt, cycle, d.cycleSet); err != nil {
			return fail(err)
		}
		if !d.keysKnown {
			continue
		}
		for _, k := range d.keys {
			if k.deferred {
				_, err = upDeferred.ExecContext(ctx, run.Target, d.check, k.key, k.object, k.cost, at, id)
			} else {
				var verAt, verStatus any
				if k.completed {
					verAt, verStatus = at, string(k.status)
				}
				_, err = upKey.ExecContext(ctx, run.Target, d.check, k.key, k.object, k.cost, at, verAt, verStatus, at, string(k.state), id)
			}
			if err != nil {
				return fail(err)
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM coverage WHERE target = ? AND check_name = ? AND seen_run <> ?`, run.Target, d.check, id); err != nil {
			return fail(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	run.ID = id
	return id, nil
}

// Run implements [Store].
func (s *SQLite) Run(ctx context.Context, id int64) (*Run, error) {
	var (
		r                 Run
		trigger, status   string
		started, finished int64
		deadline          sql.NullInt64
		report            string
		cycles            sql.NullString
	)
	err := s.db.QueryRowContext(ctx, `SELECT id, target, trigger, started_at, finished_at, deadline, status, reason, report, cycles FROM runs WHERE id = ?`, id).
		Scan(&r.ID, &r.Target, &trigger, &started, &finished, &deadline, &status, &r.Reason, &report, &cycles)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("run %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("history: reading run %d: %w", id, err)
	}
	r.Trigger, r.Status = Trigger(trigger), checks.Status(status)
	r.StartedAt, r.FinishedAt = time.Unix(0, started).UTC(), time.Unix(0, finished).UTC()
	r.Deadline = fromNanos(deadline)
	r.Report = &checks.Report{}
	if err := json.Unmarshal([]byte(report), r.Report); err != nil {
		return nil, fmt.Errorf("history: decoding run %d: %w", id, err)
	}
	if cycles.Valid {
		if err := json.Unmarshal([]byte(cycles.String), &r.Cycles); err != nil {
			return nil, fmt.Errorf("history: decoding run %d: %w", id, err)
		}
	}
	return &r, nil
}

// Runs implements [Store].
func (s *SQLite) Runs(ctx context.Context, q RunQuery) ([]RunSummary, error) {
	where, args := []string{"1 = 1"}, []any{}
	if q.Target != "" {
		where, args = append(where, "target = ?"), append(args, q.Target)
	}
	if !q.Since.IsZero() {
		where, args = append(where, "started_at >= ?"), append(args, q.Since.UnixNano())
	}
	if !q.Before.IsZero() {
		where, args = append(where, "started_at < ?"), append(args, q.Before.UnixNano())
	}
	if q.Status != "" {
		where, args = append(where, "status = ?"), append(args, string(q.Status))
	}
	args = append(args, defaultLimit(q.Limit))
	rows, err := s.db.QueryContext(ctx, `SELECT id, target, trigger, started_at, finished_at, status, reason, coverage, findings FROM runs WHERE `+
		strings.Join(where, " AND ")+` ORDER BY started_at DESC, id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("history: listing runs: %w", err)
	}
	defer rows.Close()
	out := []RunSummary{}
	for rows.Next() {
		rs, err := scanRunSummary(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, rs)
	}
	return out, rows.Err()
}

type scanner interface{ Scan(dest ...any) error }

func scanRunSummary(sc scanner) (RunSummary, error) {
	var (
		rs                RunSummary
		trigger, status   string
		started, finished int64
		cov               string
	)
	if err := sc.Scan(&rs.ID, &rs.Target, &trigger, &started, &finished, &status, &rs.Reason, &cov, &rs.Findings); err != nil {
		return rs, fmt.Errorf("history: reading runs: %w", err)
	}
	rs.Trigger, rs.Status = Trigger(trigger), checks.Status(status)
	rs.StartedAt, rs.FinishedAt = time.Unix(0, started).UTC(), time.Unix(0, finished).UTC()
	if err := json.Unmarshal([]byte(cov), &rs.Coverage); err != nil {
		return rs, fmt.Errorf("history: decoding run %d: %w", rs.ID, err)
	}
	return rs, nil
}

// Findings implements [Store].
func (s *SQLite) Findings(ctx context.Context, q FindingQuery) ([]Finding, error) {
	where, args := []string{"1 = 1"}, []any{}
	if q.Target != "" {
		where, args = append(where, "target = ?"), append(args, q.Target)
	}
	if q.Check != "" {
		where, args = append(where, "check_name = ?"), append(args, q.Check)
	}
	if !q.Since.IsZero() {
		where, args = append(where, "found_at >= ?"), append(args, q.Since.UnixNano())
	}
	args = append(args, defaultLimit(q.Limit))
	rows, err := s.db.QueryContext(ctx, `SELECT run_id, target, found_at, finding FROM findings WHERE `+
		strings.Join(where, " AND ")+` ORDER BY found_at DESC, run_id DESC, seq LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("history: listing findings: %w", err)
	}
	defer rows.Close()
	out := []Finding{}
	for rows.Next() {
		var (
			f   Finding
			at  int64
			raw string
		)
		if err := rows.Scan(&f.RunID, &f.Target, &at, &raw); err != nil {
			return nil, fmt.Errorf("history: reading findings: %w", err)
		}
		f.FoundAt = time.Unix(0, at).UTC()
		if err := json.Unmarshal([]byte(raw), &f.Finding); err != nil {
			return nil, fmt.Errorf("history: decoding finding: %w", err)
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// Targets implements [Store].
func (s *SQLite) Targets(ctx context.Context) ([]TargetState, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, labels, first_seen, last_registered FROM targets ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("history: listing targets: %w", err)
	}
	var out []TargetState
	idx := map[string]int{}
	for rows.Next() {
		var (
			t           TargetState
			labels      string
			first, last int64
		)
		if err := rows.Scan(&t.Name, &labels, &first, &last); err != nil {
			rows.Close()
			return nil, fmt.Errorf("history: reading targets: %w", err)
		}
		_ = json.Unmarshal([]byte(labels), &t.Labels)
		t.FirstSeen, t.LastRegistered = time.Unix(0, first).UTC(), time.Unix(0, last).UTC()
		t.Checks = []CheckState{}
		idx[t.Name] = len(out)
		out = append(out, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	states, err := s.checkStates(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, cs := range states {
		if i, ok := idx[cs.Target]; ok {
			out[i].Checks = append(out[i].Checks, cs)
		}
	}
	last, err := s.db.QueryContext(ctx, `SELECT id, target, trigger, started_at, finished_at, status, reason, coverage, findings FROM runs
WHERE id IN (SELECT MAX(id) FROM runs GROUP BY target)`)
	if err != nil {
		return nil, fmt.Errorf("history: listing targets: %w", err)
	}
	defer last.Close()
	for last.Next() {
		rs, err := scanRunSummary(last)
		if err != nil {
			return nil, err
		}
		if i, ok := idx[rs.Target]; ok {
			out[i].LastRun = &rs
		}
	}
	if out == nil {
		out = []TargetState{}
	}
	return out, last.Err()
}

// CheckStates implements [Store].
func (s *SQLite) CheckStates(ctx context.Context, target string) ([]CheckState, error) {
	if target == "" {
		return []CheckState{}, nil
	}
	return s.checkStates(ctx, target)
}

// checkStates loads the check states of one target, or of all when target
// is empty, with their coverage summaries.
func (s *SQLite) checkStates(ctx context.Context, target string) ([]CheckState, error) {
	filter, args := "", []any{}
	if target != "" {
		filter, args = " WHERE target = ?", []any{target}
	}
	rows, err := s.db.QueryContext(ctx, `SELECT target, check_name, last_run_id, last_run_at, last_status, last_reason,
last_success_run_id, last_success_at, cycle_started_at FROM check_state`+filter+` ORDER BY target, check_name`, args...)
	if err != nil {
		return nil, fmt.Errorf("history: reading check states: %w", err)
	}
	out := []CheckState{}
	idx := map[[2]string]int{}
	for rows.Next() {
		var (
			cs                     CheckState
			lastAt                 int64
			status                 string
			succID                 sql.NullInt64
			succAt, cycle, lastAtN sql.NullInt64
		)
		if err := rows.Scan(&cs.Target, &cs.Check, &cs.LastRunID, &lastAt, &status, &cs.LastReason, &succID, &succAt, &cycle); err != nil {
			rows.Close()
			return nil, fmt.Errorf("history: reading check states: %w", err)
		}
		lastAtN = sql.NullInt64{Int64: lastAt, Valid: true}
		cs.LastRunAt, cs.LastStatus = fromNanos(lastAtN), checks.Status(status)
		cs.LastSuccessRunID, cs.LastSuccessAt = succID.Int64, fromNanos(succAt)
		cs.CycleStartedAt = fromNanos(cycle)
		idx[[2]string{cs.Target, cs.Check}] = len(out)
		out = append(out, cs)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}

	// Counts, then the oldest verified and the oldest never-verified key per
	// check (SQLite returns the bare object column of the MIN row).
	type agg struct {
		query string
		apply func(cs *CheckState, n1, n2 int64, at sql.NullInt64, object sql.NullString)
	}
	aggs := []agg{
		{`SELECT target, check_name, COUNT(*), SUM(last_verified_at IS NULL), NULL, NULL FROM coverage` + filter + ` GROUP BY target, check_name`,
			func(cs *CheckState, n1, n2 int64, _ sql.NullInt64, _ sql.NullString) {
				cs.Coverage.Keys, cs.Coverage.NeverVerified = int(n1), int(n2)
			}},
		{`SELECT target, check_name, 0, 0, MIN(last_verified_at), object FROM coverage` + and(filter, "last_verified_at IS NOT NULL") + ` GROUP BY target, check_name`,
			func(cs *CheckState, _, _ int64, at sql.NullInt64, object sql.NullString) {
				cs.Coverage.OldestVerifiedAt, cs.Coverage.OldestVerifiedObject = fromNanos(at), object.String
			}},
		{`SELECT target, check_name, 0, 0, MIN(first_seen), object FROM coverage` + and(filter, "last_verified_at IS NULL") + ` GROUP BY target, check_name`,
			func(cs *CheckState, _, _ int64, at sql.NullInt64, object sql.NullString) {
				cs.Coverage.OldestUnverifiedSince, cs.Coverage.OldestUnverifiedObject = fromNanos(at), object.String
			}},
	}
	for _, a := range aggs {
		rows, err := s.db.QueryContext(ctx, a.query, args...)
		if err != nil {
			return nil, fmt.Errorf("history: reading coverage: %w", err)
		}
		for rows.Next() {
			var (
				t, c   string
				n1, n2 int64
				at     sql.NullInt64
				object sql.NullString
			)
			if err := rows.Scan(&t, &c, &n1, &n2, &at, &object); err != nil {
				rows.Close()
				return nil, fmt.Errorf("history: reading coverage: %w", err)
			}
			if i, ok := idx[[2]string{t, c}]; ok {
				a.apply(&out[i], n1, n2, at, object)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func and(filter, cond string) string {
	if filter == "" {
		return " WHERE " + cond
	}
	return filter + " AND " + cond
}

// Coverage implements [Store].
func (s *SQLite) Coverage(ctx context.Context, target, check string) ([]KeyState, error) {
	q, args := `SELECT target, check_name, key, object, cost, first_seen, last_verified_at, last_status, last_attempt_at, last_state FROM coverage WHERE target = ?`, []any{target}
	if check != "" {
		q, args = q+" AND check_name = ?", append(args, check)
	}
	rows, err := s.db.QueryContext(ctx, q+" ORDER BY check_name, key", args...)
	if err != nil {
		return nil, fmt.Errorf("history: reading coverage of %s: %w", target, err)
	}
	defer rows.Close()
	out := []KeyState{}
	for rows.Next() {
		var (
			k                 KeyState
			first             int64
			verAt, attAt      sql.NullInt64
			status, taskState sql.NullString
		)
		if err := rows.Scan(&k.Target, &k.Check, &k.Key, &k.Object, &k.CostBytes, &first, &verAt, &status, &attAt, &taskState); err != nil {
			return nil, fmt.Errorf("history: reading coverage of %s: %w", target, err)
		}
		k.FirstSeen = time.Unix(0, first).UTC()
		k.LastVerifiedAt, k.LastStatus = fromNanos(verAt), checks.Status(status.String)
		k.LastAttemptAt, k.LastState = fromNanos(attAt), checks.TaskState(taskState.String)
		out = append(out, k)
	}
	return out, rows.Err()
}

// Alarms implements [Store].
func (s *SQLite) Alarms(ctx context.Context) ([]alarm.Record, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT record FROM alarms ORDER BY target, check_name, kind`)
	if err != nil {
		return nil, fmt.Errorf("history: reading alarms: %w", err)
	}
	defer rows.Close()
	out := []alarm.Record{}
	for rows.Next() {
		var raw string
		if err := rows.Scan(&raw); err != nil {
			return nil, fmt.Errorf("history: reading alarms: %w", err)
		}
		var r alarm.Record
		if err := json.Unmarshal([]byte(raw), &r); err != nil {
			return nil, fmt.Errorf("history: decoding alarm: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// SaveAlarms implements [Store].
func (s *SQLite) SaveAlarms(ctx context.Context, recs ...alarm.Record) error {
	if len(recs) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("history: saving alarms: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO alarms (target, check_name, kind, state, resolved_at, record) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (target, check_name, kind) DO UPDATE SET state = excluded.state, resolved_at = excluded.resolved_at, record = excluded.record`)
	if err != nil {
		return fmt.Errorf("history: saving alarms: %w", err)
	}
	defer stmt.Close()
	for _, r := range recs {
		if r.Target == "" || !r.Kind.Valid() {
			return fmt.Errorf("history: invalid alarm key %s", r.Key())
		}
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("history: encoding alarm: %w", err)
		}
		if _, err := stmt.ExecContext(ctx, r.Target, r.Check, string(r.Kind), string(r.State), nanos(r.ResolvedAt), string(b)); err != nil {
			return fmt.Errorf("history: saving alarm %s: %w", r.Key(), err)
		}
	}
	return tx.Commit()
}

// Counter implements [Store].
func (s *SQLite) Counter(ctx context.Context, target, name string) (Counter, bool, error) {
	var v, at int64
	err := s.db.QueryRowContext(ctx, `SELECT value, seen_at FROM counters WHERE target = ? AND name = ?`, target, name).Scan(&v, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return Counter{}, false, nil
	}
	if err != nil {
		return Counter{}, false, fmt.Errorf("history: reading counter %s of %s: %w", name, target, err)
	}
	return Counter{Value: v, SeenAt: time.Unix(0, at).UTC()}, true, nil
}

// SetCounter implements [Store].
func (s *SQLite) SetCounter(ctx context.Context, target, name string, c Counter) error {
	if target == "" || name == "" {
		return fmt.Errorf("history: counter needs a target and a name")
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO counters (target, name, value, seen_at) VALUES (?, ?, ?, ?)
ON CONFLICT (target, name) DO UPDATE SET value = excluded.value, seen_at = excluded.seen_at`, target, name, c.Value, c.SeenAt.UnixNano())
	if err != nil {
		return fmt.Errorf("history: saving counter %s of %s: %w", name, target, err)
	}
	return nil
}

// Prune implements [Store].
func (s *SQLite) Prune(ctx context.Context, before time.Time) (PruneResult, error) {
	var res PruneResult
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("history: pruning: %w", err)
	}
	defer tx.Rollback()
	b := before.UnixNano()
	steps := []struct {
		q string
		n *int64
	}{
		{`DELETE FROM findings WHERE run_id IN (SELECT id FROM runs WHERE started_at < ?)`, &res.Findings},
		{`DELETE FROM runs WHERE started_at < ?`, &res.Runs},
		{`DELETE FROM alarms WHERE state = 'resolved' AND resolved_at < ?`, &res.Alarms},
	}
	for _, st := range steps {
		r, err := tx.ExecContext(ctx, st.q, b)
		if err != nil {
			return PruneResult{}, fmt.Errorf("history: pruning: %w", err)
		}
		*st.n, _ = r.RowsAffected()
	}
	if err := tx.Commit(); err != nil {
		return PruneResult{}, fmt.Errorf("history: pruning: %w", err)
	}
	return res, nil
}
