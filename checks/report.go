package checks

import (
	"fmt"
	"strings"
	"time"
)

// SchemaVersion is the version of the JSON report schema. It changes only
// when a field is removed or changes meaning; new fields may be added.
const SchemaVersion = 1

// TaskState says how far a task got.
type TaskState string

// The task states.
const (
	// TaskCompleted means the task ran to completion.
	TaskCompleted TaskState = "completed"
	// TaskFailed means the task started but could not verify (error,
	// timeout, cancellation, crash, panic).
	TaskFailed TaskState = "failed"
	// TaskSkipped means the task was deliberately not run.
	TaskSkipped TaskState = "skipped"
	// TaskNotCovered means the time budget ended before the task started.
	TaskNotCovered TaskState = "not_covered"
	// TaskCancelled means the run was cancelled before the task started.
	TaskCancelled TaskState = "cancelled"
)

// Report is the result of running checks against one target. It marshals to
// the documented JSON schema (see the README).
type Report struct {
	// SchemaVersion is [SchemaVersion].
	SchemaVersion int `json:"schema_version"`
	// Target identifies what was checked.
	Target TargetInfo `json:"target"`
	// Status is the rolled-up status of every check.
	Status Status `json:"status"`
	// Reason explains any status other than healthy.
	Reason string `json:"reason,omitempty"`
	// StartedAt and FinishedAt bound the run.
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	// DurationSeconds is FinishedAt - StartedAt in seconds.
	DurationSeconds float64 `json:"duration_seconds"`
	// Coverage sums the coverage of every check.
	Coverage Coverage `json:"coverage"`
	// Checks holds one report per check, in the order they were given.
	Checks []*CheckReport `json:"checks"`
}

// Coverage counts what was planned and what was verified.
type Coverage struct {
	TasksPlanned    int   `json:"tasks_planned"`
	TasksCompleted  int   `json:"tasks_completed"`
	TasksFailed     int   `json:"tasks_failed"`
	TasksSkipped    int   `json:"tasks_skipped"`
	TasksNotCovered int   `json:"tasks_not_covered"`
	TasksCancelled  int   `json:"tasks_cancelled"`
	ObjectsVerified int64 `json:"objects_verified"`
	BytesPlanned    int64 `json:"bytes_planned"`
	BytesVerified   int64 `json:"bytes_verified"`
}

// Complete reports whether every task that was not deliberately skipped ran
// to completion.
func (c Coverage) Complete() bool {
	return c.TasksCompleted+c.TasksSkipped == c.TasksPlanned
}

func (c *Coverage) add(o Coverage) {
	c.TasksPlanned += o.TasksPlanned
	c.TasksCompleted += o.TasksCompleted
	c.TasksFailed += o.TasksFailed
	c.TasksSkipped += o.TasksSkipped
	c.TasksNotCovered += o.TasksNotCovered
	c.TasksCancelled += o.TasksCancelled
	c.ObjectsVerified += o.ObjectsVerified
	c.BytesPlanned += o.BytesPlanned
	c.BytesVerified += o.BytesVerified
}

// CheckReport is the result of one check.
type CheckReport struct {
	// Check is the check name.
	Check string `json:"check"`
	// Status is the rolled-up status of the check's tasks.
	Status Status `json:"status"`
	// Reason explains any status other than healthy.
	Reason          string    `json:"reason,omitempty"`
	StartedAt       time.Time `json:"started_at"`
	FinishedAt      time.Time `json:"finished_at"`
	DurationSeconds float64   `json:"duration_seconds"`
	// PlanError is the error that stopped the check from planning, if any.
	PlanError string `json:"plan_error,omitempty"`
	// Coverage counts what the check planned and verified.
	Coverage Coverage `json:"coverage"`
	// Findings are the problems found, in task order.
	Findings []Finding `json:"findings"`
	// Tasks reports every planned task.
	Tasks []TaskReport `json:"tasks"`

	skipReason string // set when the whole check was skipped at planning
}

// TaskReport is the outcome of one task.
type TaskReport struct {
	Key    string    `json:"key"`
	Object string    `json:"object"`
	State  TaskState `json:"state"`
	// Status is the task's own status (healthy, warning, corrupt, error,
	// skipped; not_covered and cancelled tasks are warning and error).
	Status Status `json:"status"`
	// Reason explains any state other than completed.
	Reason          string    `json:"reason,omitempty"`
	CostBytes       int64     `json:"cost_bytes"`
	BytesVerified   int64     `json:"bytes_verified"`
	ObjectsVerified int64     `json:"objects_verified"`
	Findings        int       `json:"findings"`
	Attempts        int       `json:"attempts"`
	StartedAt       time.Time `json:"started_at,omitzero"`
	DurationSeconds float64   `json:"duration_seconds"`
}

// Findings returns every finding of every check.
func (r *Report) Findings() []Finding {
	var out []Finding
	for _, c := range r.Checks {
		out = append(out, c.Findings...)
	}
	return out
}

// NotCovered returns the tasks that were planned but did not run to
// completion (failed, not covered, cancelled), across all checks.
func (r *Report) NotCovered() []TaskReport {
	var out []TaskReport
	for _, c := range r.Checks {
		for _, t := range c.Tasks {
			if t.State != TaskCompleted && t.State != TaskSkipped {
				out = append(out, t)
			}
		}
	}
	return out
}

// Err returns nil when the report proves the target sound: every planned
// task completed and nothing is corrupt (warnings about risks are allowed).
// Otherwise it returns an error wrapping [ErrCorrupt] (corruption found) or
// [ErrNotVerified] (could not check, incomplete coverage, or nothing to
// verify), with the report's reason.
func (r *Report) Err() error {
	switch {
	case r.Status == StatusCorrupt:
		return fmt.Errorf("%s: %w: %s", r.Target.Name, ErrCorrupt, r.Reason)
	case r.Status == StatusError, r.Status == StatusSkipped, !r.Status.Valid():
		return fmt.Errorf("%s: %w: %s", r.Target.Name, ErrNotVerified, r.Reason)
	case !r.Coverage.Complete():
		return fmt.Errorf("%s: %w: %s", r.Target.Name, ErrNotVerified, r.Reason)
	}
	return nil
}

// finalize derives the check's coverage, status and reason from its tasks.
func (c *CheckReport) finalize() {
	c.DurationSeconds = c.FinishedAt.Sub(c.StartedAt).Seconds()
	cov := Coverage{TasksPlanned: len(c.Tasks)}
	var firstFailure, firstNotCovered, firstCancelled string
	for i := range c.Tasks {
		t := &c.Tasks[i]
		cov.BytesPlanned += t.CostBytes
		switch t.State {
		case TaskCompleted:
			cov.TasksCompleted++
			cov.BytesVerified += t.BytesVerified
			cov.ObjectsVerified += t.ObjectsVerified
		case TaskFailed:
			cov.TasksFailed++
			if firstFailure == "" {
				firstFailure = t.Object + ": " + t.Reason
			}
		case TaskSkipped:
			cov.TasksSkipped++
		case TaskNotCovered:
			cov.TasksNotCovered++
			if firstNotCovered == "" {
				firstNotCovered = t.Reason
			}
		case TaskCancelled:
			cov.TasksCancelled++
			if firstCancelled == "" {
				firstCancelled = t.Reason
			}
		}
	}
	c.Coverage = cov

	corrupt, warnings := 0, 0
	objects := map[string]bool{}
	for _, f := range c.Findings {
		if f.Severity == StatusWarning {
			warnings++
		} else {
			corrupt++
			objects[f.Object] = true
		}
	}
	unfinished := cov.TasksFailed + cov.TasksCancelled

	var reasons []string
	status := StatusHealthy
	switch {
	case c.PlanError != "":
		status, reasons = StatusError, append(reasons, "could not plan: "+c.PlanError)
	case c.skipReason != "":
		status, reasons = StatusSkipped, append(reasons, c.skipReason)
	}
	if corrupt > 0 {
		status = StatusCorrupt
		reasons = append(reasons, fmt.Sprintf("%d corruption %s in %d %s",
			corrupt, plural(corrupt, "finding", "findings"), len(objects), plural(len(objects), "object", "objects")))
	}
	if cov.TasksFailed > 0 {
		status = status.Worse(StatusError)
		reasons = append(reasons, fmt.Sprintf("%d of %d tasks could not verify (first: %s)", cov.TasksFailed, cov.TasksPlanned, firstFailure))
	}
	if cov.TasksCancelled > 0 {
		status = status.Worse(StatusError)
		reasons = append(reasons, fmt.Sprintf("%d of %d tasks not started: %s", cov.TasksCancelled, cov.TasksPlanned, firstCancelled))
	}
	if cov.TasksNotCovered > 0 {
		status = status.Worse(StatusWarning)
		reasons = append(reasons, fmt.Sprintf("%d of %d tasks not covered: %s", cov.TasksNotCovered, cov.TasksPlanned, firstNotCovered))
	}
	if warnings > 0 {
		status = status.Worse(StatusWarning)
		reasons = append(reasons, fmt.Sprintf("%d %s", warnings, plural(warnings, "warning", "warnings")))
	}
	if status == StatusHealthy && cov.TasksCompleted == 0 && unfinished == 0 && cov.TasksNotCovered == 0 {
		status = StatusSkipped
		if cov.TasksSkipped > 0 {
			reasons = append(reasons, fmt.Sprintf("all %d tasks skipped (first: %s)", cov.TasksSkipped, firstSkipReason(c.Tasks)))
		} else {
			reasons = append(reasons, "nothing to verify: no objects matched")
		}
	}
	c.Status = status
	c.Reason = strings.Join(reasons, "; ")
}

func firstSkipReason(tasks []TaskReport) string {
	for _, t := range tasks {
		if t.State == TaskSkipped {
			return t.Object + ": " + t.Reason
		}
	}
	return ""
}

// finalize rolls the checks up into the target's status and reason.
func (r *Report) finalize() {
	r.DurationSeconds = r.FinishedAt.Sub(r.StartedAt).Seconds()
	r.Coverage = Coverage{}
	status := StatusSkipped
	var reasons []string
	for _, c := range r.Checks {
		r.Coverage.add(c.Coverage)
		status = status.Worse(c.Status)
		if c.Status != StatusHealthy && c.Reason != "" {
			reasons = append(reasons, c.Check+": "+c.Reason)
		}
	}
	if len(r.Checks) == 0 && r.Reason == "" {
		reasons = append(reasons, "no checks selected")
	}
	if r.Status == StatusError { // set before any check ran (no checks could be built)
		status = StatusError
	}
	r.Status = status
	if r.Reason == "" {
		r.Reason = strings.Join(reasons, "; ")
	} else if len(reasons) > 0 {
		r.Reason += "; " + strings.Join(reasons, "; ")
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
