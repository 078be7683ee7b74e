package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/scheduler/history"
)

// Rolling coverage.
//
// A big database may not fit in one night's window. When a run's window or
// budget ends before every task ran (tasks not covered, or cancelled), the
// check's rolling cycle stays open. The next run plans the check as usual,
// and every task that already completed healthy since the cycle started is
// deferred: reported as skipped with a reason starting with
// history.DeferredPrefix ("rolling coverage: verified healthy at ... in the
// cycle started at ..."). Only the tasks not yet covered run, largest
// first, so that across several nights the whole database is verified.
// When a run leaves nothing uncovered the cycle closes and the next run
// plans everything again.
//
// This is honest: a deferred task is not counted as verified tonight
// (bytes planned and verified stay true), its reason says when it was, and
// coverage keeps its real last verification time, which the stale rule
// checks against the SLA. Tasks that failed, found corruption or warnings
// are never deferred: they run again on the next night. A gate (Check)
// never defers anything.

type rollingCheck struct {
	checks.Check
	s      *Scheduler
	e      *entry
	start  time.Time
	logger *slog.Logger

	planned bool
	cycle   time.Time // the cycle this run belongs to
}

// Plan plans the inner check and defers the tasks verified in the open
// cycle.
func (r *rollingCheck) Plan(ctx context.Context) ([]checks.Task, error) {
	tasks, err := r.Check.Plan(ctx)
	if err != nil {
		return tasks, err
	}
	r.planned = true
	r.cycle = r.start
	open := r.e.cycleStart(r.Name())
	if open.IsZero() {
		return tasks, nil
	}
	keys, err := r.s.store.Coverage(ctx, r.e.name, r.Name())
	if err != nil {
		// Plan everything rather than fail the check: slower, still honest.
		r.logger.Warn("dbscrub: rolling coverage unavailable, planning every task", "check", r.Name(), "error", err)
		return tasks, nil
	}
	verified := make(map[string]time.Time, len(keys))
	for _, k := range keys {
		if !k.LastVerifiedAt.IsZero() && !k.LastVerifiedAt.Before(open) && k.LastStatus == checks.StatusHealthy {
			verified[k.Key] = k.LastVerifiedAt
		}
	}
	pending := 0
	for _, t := range tasks {
		if _, ok := verified[t.Key]; !ok && t.Skip == "" {
			pending++
		}
	}
	if pending == 0 {
		return tasks, nil // the cycle is complete: start a new one
	}
	r.cycle = open
	out := make([]checks.Task, len(tasks))
	copy(out, tasks)
	for i := range out {
		if at, ok := verified[out[i].Key]; ok && out[i].Skip == "" {
			out[i].Skip = fmt.Sprintf("%sverified healthy at %s in the cycle started at %s; due again when the cycle completes",
				history.DeferredPrefix, at.UTC().Format(time.RFC3339), open.UTC().Format(time.RFC3339))
		}
	}
	return out, nil
}

// after returns the cycle to record once the check ran: kept open (its
// start) when the window or budget, or an interruption, left tasks not
// started; closed (zero) otherwise. ok is false when the check did not
// plan (the cycle is left as it was).
func (r *rollingCheck) after(cr *checks.CheckReport) (time.Time, bool) {
	if !r.planned || cr.PlanError != "" {
		return time.Time{}, false
	}
	if cr.Coverage.TasksNotCovered+cr.Coverage.TasksCancelled > 0 {
		return r.cycle, true
	}
	return time.Time{}, true
}
