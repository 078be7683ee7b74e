package history

import (
	"fmt"
	"time"

	"github.com/dbscrub/dbscrub/checks"
)

// The rules every Store applies in RecordRun live here, so that all
// implementations agree.

type checkDelta struct {
	check    string
	status   checks.Status
	reason   string
	success  bool
	cycleSet bool
	cycle    time.Time
	// keysKnown: the check planned, so its key set is exactly keys.
	keysKnown bool
	keys      []keyDelta
}

type keyDelta struct {
	key, object string
	cost        int64
	// deferred: rolling coverage skipped it; keep its verification state.
	deferred  bool
	state     checks.TaskState
	status    checks.Status
	completed bool
}

func validateRun(run *Run) error {
	switch {
	case run == nil:
		return fmt.Errorf("history: nil run")
	case run.Target == "":
		return fmt.Errorf("history: run without a target")
	case run.Report == nil:
		return fmt.Errorf("history: run without a report")
	case run.StartedAt.IsZero():
		return fmt.Errorf("history: run without a start time")
	}
	return nil
}

func derive(run *Run) []checkDelta {
	var out []checkDelta
	for _, cr := range run.Report.Checks {
		d := checkDelta{check: cr.Check, status: cr.Status, reason: cr.Reason, success: Succeeded(cr)}
		if c, ok := run.Cycles[cr.Check]; ok {
			d.cycleSet, d.cycle = true, c
		}
		if cr.PlanError == "" {
			d.keysKnown = true
			for _, t := range cr.Tasks {
				if t.State == checks.TaskSkipped && !IsDeferred(t) {
					continue // the check itself does not verify it: not coverage
				}
				d.keys = append(d.keys, keyDelta{
					key: t.Key, object: t.Object, cost: t.CostBytes,
					deferred:  IsDeferred(t),
					state:     t.State,
					status:    t.Status,
					completed: t.State == checks.TaskCompleted,
				})
			}
		}
		out = append(out, d)
	}
	return out
}

func runFindings(run *Run) []Finding {
	var out []Finding
	for _, cr := range run.Report.Checks {
		for _, f := range cr.Findings {
			out = append(out, Finding{Finding: f, RunID: run.ID, Target: run.Target, FoundAt: run.StartedAt})
		}
	}
	return out
}

// applyKey updates a key state with one run's outcome.
func applyKey(ks *KeyState, k keyDelta, at time.Time) {
	ks.Object, ks.CostBytes = k.object, k.cost
	if ks.FirstSeen.IsZero() {
		ks.FirstSeen = at
	}
	if k.deferred {
		return
	}
	ks.LastAttemptAt, ks.LastState = at, k.state
	if k.completed {
		ks.LastVerifiedAt, ks.LastStatus = at, k.status
	}
}

func defaultLimit(n int) int {
	if n <= 0 {
		return 100
	}
	return n
}
