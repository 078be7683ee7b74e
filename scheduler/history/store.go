// Package history stores what dbscrub did and found: runs and their
// reports, findings, the last known good run per target and check,
// coverage (when each task key, that is each object, was last verified),
// alarm state and last seen counter values.
//
// [Store] is the interface; [OpenSQLite] is the embedded default (one file,
// schema created and migrated at open) and [NewMemory] keeps everything in
// memory, for tests and one-shot runs. A PostgreSQL store for fleets can
// implement the same interface; the conformance suite in
// history/storetest checks any implementation.
package history

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/scheduler/alarm"
)

// ErrNotFound means the requested run does not exist (or was pruned).
var ErrNotFound = errors.New("history: not found")

// Trigger says what started a run.
type Trigger string

// The triggers.
const (
	// TriggerSchedule is a run started by the target's schedule.
	TriggerSchedule Trigger = "schedule"
	// TriggerManual is a run started by RunNow.
	TriggerManual Trigger = "manual"
	// TriggerGate is a blocking Check before a migration or a disk move:
	// every task runs, whatever rolling coverage says.
	TriggerGate Trigger = "gate"
)

// DeferredPrefix starts the skip reason of a task that rolling coverage
// deferred because it was verified earlier in the current cycle. Stores
// keep such tasks' coverage as it was, whereas a task the check itself
// skips is dropped from coverage (it is not expected to be verified).
const DeferredPrefix = "rolling coverage: "

// IsDeferred reports whether a task report is a task rolling coverage
// deferred.
func IsDeferred(t checks.TaskReport) bool {
	return t.State == checks.TaskSkipped && strings.HasPrefix(t.Reason, DeferredPrefix)
}

// Run is one finished run of a target.
type Run struct {
	// ID is assigned by [Store.RecordRun].
	ID int64 `json:"id"`
	// Target is the scheduler's stable target name.
	Target  string  `json:"target"`
	Trigger Trigger `json:"trigger"`
	// StartedAt and FinishedAt are on the scheduler's clock. Coverage
	// counts a completed task as verified at StartedAt: never later than
	// the truth.
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	// Deadline is when the run stopped starting tasks (the end of its
	// maintenance window or time budget); zero when it had none.
	Deadline time.Time `json:"deadline,omitzero"`
	// Status and Reason repeat the report's.
	Status checks.Status `json:"status"`
	Reason string        `json:"reason,omitempty"`
	// Report is the full report.
	Report *checks.Report `json:"report"`
	// Cycles sets, per check, the rolling coverage cycle that is open after
	// this run: its start, or the zero time when no cycle is open (the next
	// run plans every task). A check absent from the map keeps its cycle.
	Cycles map[string]time.Time `json:"cycles,omitempty"`
}

// RunSummary is a run without its report.
type RunSummary struct {
	ID         int64           `json:"id"`
	Target     string          `json:"target"`
	Trigger    Trigger         `json:"trigger"`
	StartedAt  time.Time       `json:"started_at"`
	FinishedAt time.Time       `json:"finished_at"`
	Status     checks.Status   `json:"status"`
	Reason     string          `json:"reason,omitempty"`
	Coverage   checks.Coverage `json:"coverage"`
	Findings   int             `json:"findings"`
}

// Summary returns the run without its report.
func (r *Run) Summary() RunSummary {
	s := RunSummary{ID: r.ID, Target: r.Target, Trigger: r.Trigger, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Status: r.Status, Reason: r.Reason}
	if r.Report != nil {
		s.Coverage = r.Report.Coverage
		for _, c := range r.Report.Checks {
			s.Findings += len(c.Findings)
		}
	}
	return s
}

// RunQuery selects runs. Zero fields do not filter.
type RunQuery struct {
	Target string
	Since  time.Time // StartedAt >= Since
	Before time.Time // StartedAt < Before
	Status checks.Status
	// Limit caps the result (default 100); runs come newest first.
	Limit int
}

// Finding is a stored finding with where and when it was found.
type Finding struct {
	checks.Finding
	RunID   int64     `json:"run_id"`
	Target  string    `json:"target"`
	FoundAt time.Time `json:"found_at"`
}

// FindingQuery selects findings. Zero fields do not filter.
type FindingQuery struct {
	Target string
	Check  string
	Since  time.Time
	// Limit caps the result (default 100); newest first.
	Limit int
}

// CheckState is what is known about one check of one target.
type CheckState struct {
	Target string `json:"target"`
	Check  string `json:"check"`
	// The last run of the check.
	LastRunID  int64         `json:"last_run_id"`
	LastRunAt  time.Time     `json:"last_run_at"`
	LastStatus checks.Status `json:"last_status"`
	LastReason string        `json:"last_reason,omitempty"`
	// The last known good: the last run in which the check succeeded (see
	// [Succeeded]). Zero when the check never succeeded.
	LastSuccessRunID int64     `json:"last_success_run_id,omitempty"`
	LastSuccessAt    time.Time `json:"last_success_at,omitzero"`
	// CycleStartedAt is the start of the open rolling coverage cycle, zero
	// when none is open.
	CycleStartedAt time.Time `json:"cycle_started_at,omitzero"`
	// Coverage summarizes the check's task keys.
	Coverage CoverageSummary `json:"coverage"`
}

// Succeeded reports whether a check report counts as a success for last
// known good and the SLA: it planned, nothing is corrupt, no task failed
// or was cancelled, and it verified something (a task completed) or was
// deliberately skipped as a whole. Tasks the time budget left out do not
// prevent success (per-object coverage tracks them), but a run whose
// budget ended before any task completed verified nothing and is not one.
func Succeeded(cr *checks.CheckReport) bool {
	if cr.PlanError != "" || cr.Coverage.TasksFailed > 0 || cr.Coverage.TasksCancelled > 0 {
		return false
	}
	switch cr.Status {
	case checks.StatusSkipped:
		return cr.Coverage.TasksNotCovered == 0
	case checks.StatusHealthy, checks.StatusWarning:
		return cr.Coverage.TasksCompleted > 0
	}
	return false
}

// CoverageSummary aggregates the coverage of a set of task keys.
type CoverageSummary struct {
	// Keys is the number of known task keys.
	Keys int `json:"keys"`
	// NeverVerified counts keys that never completed.
	NeverVerified int `json:"never_verified"`
	// OldestVerifiedAt is the oldest last verification among keys that
	// completed at least once, and OldestVerifiedObject its object.
	OldestVerifiedAt     time.Time `json:"oldest_verified_at,omitzero"`
	OldestVerifiedObject string    `json:"oldest_verified_object,omitempty"`
	// OldestUnverifiedSince is the earliest first-planned time among keys
	// that never completed, and OldestUnverifiedObject its object.
	OldestUnverifiedSince  time.Time `json:"oldest_unverified_since,omitzero"`
	OldestUnverifiedObject string    `json:"oldest_unverified_object,omitempty"`
}

// Oldest returns the time from which the least recently verified object
// counts as unverified: its last verification, or the time it was first
// planned when it never completed (whichever is earlier among keys).
func (c CoverageSummary) Oldest() (at time.Time, object string, never bool) {
	at, object = c.OldestVerifiedAt, c.OldestVerifiedObject
	if !c.OldestUnverifiedSince.IsZero() && (at.IsZero() || c.OldestUnverifiedSince.Before(at)) {
		return c.OldestUnverifiedSince, c.OldestUnverifiedObject, true
	}
	return at, object, false
}

func (c *CoverageSummary) add(k KeyState) {
	c.Keys++
	if k.LastVerifiedAt.IsZero() {
		c.NeverVerified++
		if c.OldestUnverifiedSince.IsZero() || k.FirstSeen.Before(c.OldestUnverifiedSince) {
			c.OldestUnverifiedSince, c.OldestUnverifiedObject = k.FirstSeen, k.Object
		}
		return
	}
	if c.OldestVerifiedAt.IsZero() || k.LastVerifiedAt.Before(c.OldestVerifiedAt) {
		c.OldestVerifiedAt, c.OldestVerifiedObject = k.LastVerifiedAt, k.Object
	}
}

// KeyState is the coverage of one task key: when the object it covers was
// last verified.
type KeyState struct {
	Target    string `json:"target"`
	Check     string `json:"check"`
	Key       string `json:"key"`
	Object    string `json:"object"`
	CostBytes int64  `json:"cost_bytes"`
	// FirstSeen is when the key was first planned.
	FirstSeen time.Time `json:"first_seen"`
	// LastVerifiedAt is the start of the last run in which the task ran to
	// completion, and LastStatus the task's status then. Zero: never.
	LastVerifiedAt time.Time     `json:"last_verified_at,omitzero"`
	LastStatus     checks.Status `json:"last_status,omitempty"`
	// LastAttemptAt and LastState describe the last run that tried the
	// task (rolling coverage deferrals are not attempts).
	LastAttemptAt time.Time        `json:"last_attempt_at,omitzero"`
	LastState     checks.TaskState `json:"last_state,omitempty"`
}

// TargetState is what is known about one target.
type TargetState struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	// FirstSeen is when the target was first registered; it survives
	// restarts, so a target that never succeeds is stale after its SLA.
	FirstSeen time.Time `json:"first_seen"`
	// LastRegistered is the last registration.
	LastRegistered time.Time `json:"last_registered"`
	// LastRun is the newest run, nil when none.
	LastRun *RunSummary `json:"last_run,omitempty"`
	// Checks are the per-check states, by check name.
	Checks []CheckState `json:"checks"`
}

// Counter is the last seen value of a counter, such as PostgreSQL's
// pg_stat_database.checksum_failures, so that a check can report an
// increase since the previous run. It is [checks.Counter], the value
// checks read through [checks.Counters].
type Counter = checks.Counter

// PruneResult counts what [Store.Prune] removed.
type PruneResult struct {
	Runs     int64 `json:"runs"`
	Findings int64 `json:"findings"`
	Alarms   int64 `json:"alarms"`
}

// Store keeps dbscrub's history. Implementations must be safe for
// concurrent use. Times are stored with at least microsecond precision.
type Store interface {
	// RegisterTarget records that a target exists with these labels and
	// returns when it was first registered (kept across restarts).
	RegisterTarget(ctx context.Context, name string, labels map[string]string, at time.Time) (firstSeen time.Time, err error)

	// RecordRun stores a finished run atomically: the run and its report,
	// its findings, the per-check last run and last known good (see
	// [Succeeded]), the rolling cycles (see [Run.Cycles]) and coverage:
	// every task key of a check that planned is kept (first seen, last
	// verified when it completed, last attempt), keys no longer planned and
	// tasks the check itself skipped are dropped, tasks deferred by rolling
	// coverage (see [IsDeferred]) keep their state. It sets run.ID and
	// returns it.
	RecordRun(ctx context.Context, run *Run) (int64, error)
	// Run returns one run with its report, or an error wrapping
	// [ErrNotFound].
	Run(ctx context.Context, id int64) (*Run, error)
	// Runs returns run summaries, newest first.
	Runs(ctx context.Context, q RunQuery) ([]RunSummary, error)
	// Findings returns stored findings, newest first.
	Findings(ctx context.Context, q FindingQuery) ([]Finding, error)

	// Targets returns every registered target with its last run and check
	// states, sorted by name.
	Targets(ctx context.Context) ([]TargetState, error)
	// CheckStates returns the check states of one target, sorted by check.
	CheckStates(ctx context.Context, target string) ([]CheckState, error)
	// Coverage returns the task keys of a target (of one check when check
	// is not empty), sorted by check and key.
	Coverage(ctx context.Context, target, check string) ([]KeyState, error)

	// Alarms and SaveAlarms persist alarm state (see [alarm.Store]).
	Alarms(ctx context.Context) ([]alarm.Record, error)
	SaveAlarms(ctx context.Context, recs ...alarm.Record) error

	// Counter returns the last seen value of a counter of a target.
	Counter(ctx context.Context, target, name string) (Counter, bool, error)
	// SetCounter records the value of a counter.
	SetCounter(ctx context.Context, target, name string, c Counter) error

	// Prune deletes runs (and their findings) that started before before,
	// and resolved alarms resolved before before. Current state (check
	// states, coverage, firing alarms, counters) is kept.
	Prune(ctx context.Context, before time.Time) (PruneResult, error)

	// Close releases the store.
	Close() error
}

var _ alarm.Store = Store(nil)
