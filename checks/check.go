package checks

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// A Check is one kind of integrity verification bound to a target, such as
// PostgreSQL heap verification or SQLite's integrity_check.
//
// Plan looks at the live database and returns the tasks that make up the
// check. It must not modify the database. A Plan error makes the check's
// status error (or skipped, when the error wraps a [*SkipError]).
type Check interface {
	// Name is the short, stable name users select the check by ("heap").
	Name() string
	// Plan returns the tasks to run.
	Plan(ctx context.Context) ([]Task, error)
}

// CheckInfo describes a check an engine offers, for listings such as
// `dbscrub checks`.
type CheckInfo struct {
	// Name is the name users select the check by.
	Name string `json:"name"`
	// Description says in one line what the check verifies.
	Description string `json:"description"`
	// Default reports whether the check runs when none is selected.
	Default bool `json:"default"`
}

// A Task is one independent unit of a check's work.
type Task struct {
	// Key identifies the task stably across runs (it must not contain OIDs or
	// anything else that changes when a database is restored), so that
	// coverage can be tracked and resumed. Keys are unique within a check.
	Key string
	// Object is the object the task verifies, for reports.
	Object string
	// Cost is the estimated work in bytes: the unit of progress, coverage
	// and the rate limit ([WithMaxRate]).
	Cost int64
	// Estimate is the estimated run time of the task, when the check can
	// tell (work per byte differs a lot between kinds of task: checking an
	// index can cost several times what checking the same bytes of a table
	// does). With several workers the Runner starts the longest tasks
	// first, so that the longest ones do not end up running alone at the
	// end; a task without an Estimate counts as one nanosecond per byte of
	// Cost (1 GB/s). With one worker the order cannot shorten a run, and
	// tasks run in the order planned (the checks' order, then each check's
	// own). Zero means unknown; it never limits the task.
	Estimate time.Duration
	// Group, when not empty, names the data the task reads, such as a
	// table, when tasks of one or more checks read the same data (a
	// table's heap in block ranges, and an index check that scans the
	// table). With several workers, while a task of a group runs, the
	// Runner starts the other tasks of that group before the rest, so
	// that they read the data side by side, while it is cached, instead of
	// one reading it cold after the other moved on.
	Group string
	// Skip, when not empty, means the task is deliberately not run; it is
	// reported as skipped with this reason. Run may then be nil.
	Skip string
	// Statement is the statement the task runs, with parameters as
	// placeholders, for people reviewing what a check does. Optional.
	Statement string
	// Run performs the verification. It returns the findings and what was
	// verified, or an error when it could not verify. Findings returned
	// together with an error are kept (a server crash on an object is both
	// a finding and an unfinished task). Errors wrapping [ErrRetryable] make
	// the Runner try the task again (see [WithRetries]).
	Run func(ctx context.Context) (Result, error)
}

// Result is what a task verified and found.
type Result struct {
	// Findings are the problems found.
	Findings []Finding
	// Objects is the number of objects verified.
	Objects int64
	// Bytes is the number of bytes verified.
	Bytes int64
}

// TargetInfo identifies a target in reports, logs and telemetry. It never
// holds a password.
type TargetInfo struct {
	// Engine is the OpenTelemetry db.system.name: "postgresql", "sqlite",
	// "microsoft.sql_server", "mysql".
	Engine string `json:"engine"`
	// Name is a display name: a DSN with the password removed, or a path.
	Name string `json:"name"`
	// Database is the database name (OpenTelemetry db.namespace).
	Database string `json:"database,omitempty"`
	// Host is the server address, when there is one.
	Host string `json:"host,omitempty"`
	// Port is the server port, when there is one.
	Port int `json:"port,omitempty"`
	// ServerVersion is the engine version, when known.
	ServerVersion string `json:"server_version,omitempty"`
}

// A Target is one database that checks run against. Drivers implement it.
type Target interface {
	// Info describes the target.
	Info() TargetInfo
	// Checks returns the named checks, or the target's default checks when
	// no name is given. An unknown name gives an error wrapping
	// [ErrUnknownCheck].
	Checks(names ...string) ([]Check, error)
}

// Sentinel errors. Test for them with errors.Is.
var (
	// ErrCorrupt means a check found corruption.
	ErrCorrupt = errors.New("corruption found")
	// ErrNotVerified means dbscrub could not verify everything it planned.
	ErrNotVerified = errors.New("not verified")
	// ErrRetryable marks a task error worth one more try, such as a
	// connection terminated because another server process crashed.
	ErrRetryable = errors.New("retryable")
	// ErrUnknownCheck means a check name the engine does not offer.
	ErrUnknownCheck = errors.New("unknown check")
	// ErrInvalidOption means an option value out of range.
	ErrInvalidOption = errors.New("invalid option")
)

// SkipError is returned (wrapped or not) by [Check.Plan] when the check does
// not apply to the target. The check is reported as skipped with Reason.
type SkipError struct {
	// Reason says why the check does not apply.
	Reason string
}

// Error returns the reason.
func (e *SkipError) Error() string { return "skipped: " + e.Reason }

// Skip returns a [*SkipError] with a formatted reason.
func Skip(format string, args ...any) error {
	return &SkipError{Reason: fmt.Sprintf(format, args...)}
}

// Retryable wraps err so that it also matches [ErrRetryable].
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return &retryableError{err}
}

type retryableError struct{ err error }

func (e *retryableError) Error() string   { return e.err.Error() }
func (e *retryableError) Unwrap() []error { return []error{e.err, ErrRetryable} }

// An Explainer is a [Check] that can list the statements it runs, with
// parameters as placeholders, without connecting, so that a DBA can review
// them before granting access (`dbscrub check --explain`). Every check of
// the bundled drivers implements it.
type Explainer interface {
	Statements() []string
}
