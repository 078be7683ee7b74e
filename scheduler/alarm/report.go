package alarm

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/dbscrub/dbscrub/checks"
)

// ObserveReport evaluates a finished run of target and applies the
// resulting conditions (see [Manager.Apply]):
//
//   - corruption, per check: fires when the check reported corruption; it
//     resolves once every task whose findings raised it has run to
//     completion again without corruption (or is no longer planned);
//   - risk, per check: the same for warning findings;
//   - not_verified, per check: fires when the check could not plan, or a
//     task failed or was cancelled (timeout, lost connection, interrupted
//     run); resolves when a later run of the check has neither;
//   - not_verified for the whole target (empty check): fires when no check
//     could even be selected (the target could not be opened, or it
//     offers no check); resolves on the next run that reaches the checks.
//
// Time budgets that end before every task ran are not alarms: rolling
// coverage and the stale rule handle them.
func (m *Manager) ObserveReport(ctx context.Context, target string, labels map[string]string, runID int64, rep *checks.Report) error {
	return m.Apply(ctx, m.ReportConditions(target, labels, runID, rep)...)
}

// ReportConditions returns the conditions [Manager.ObserveReport] applies,
// without applying them.
func (m *Manager) ReportConditions(target string, labels map[string]string, runID int64, rep *checks.Report) []Condition {
	base := func(check string, kind Kind) Condition {
		return Condition{Key: Key{Target: target, Check: check, Kind: kind}, Labels: labels, RunID: runID}
	}
	where := describeTarget(rep.Target)
	var conds []Condition

	tc := base("", KindNotVerified)
	if len(rep.Checks) == 0 {
		tc.Active = true
		tc.Summary = fmt.Sprintf("dbscrub could not verify %s: %s", target, firstLine(orDefault(rep.Reason, "no check ran")))
		tc.Description = fmt.Sprintf("Target: %s\nStatus: %s\nReason: %s\nNothing was verified: dbscrub could not open the target or select its checks. Check connectivity, credentials and the configured check names.",
			where, rep.Status, orDefault(rep.Reason, "no check ran"))
	} else {
		tc.Summary = fmt.Sprintf("dbscrub reached %s again", target)
	}
	conds = append(conds, tc)

	for _, cr := range rep.Checks {
		for _, k := range []Kind{KindCorruption, KindRisk} {
			sev := checks.StatusCorrupt
			if k == KindRisk {
				sev = checks.StatusWarning
			}
			if c, known := m.findingCondition(base(cr.Check, k), cr, sev, target, where); known {
				conds = append(conds, c)
			}
		}

		nv := base(cr.Check, KindNotVerified)
		unfinished := cr.Coverage.TasksFailed + cr.Coverage.TasksCancelled
		if cr.PlanError != "" || unfinished > 0 {
			nv.Active = true
			nv.Summary = fmt.Sprintf("dbscrub could not verify %s (check %s): %s", target, cr.Check, firstLine(cr.Reason))
			var b strings.Builder
			fmt.Fprintf(&b, "Target: %s\nCheck: %s\nStatus: %s\nReason: %s\n", where, cr.Check, cr.Status, cr.Reason)
			if cr.PlanError == "" {
				fmt.Fprintf(&b, "Tasks: %d planned, %d completed, %d failed, %d cancelled, %d not covered.\n",
					cr.Coverage.TasksPlanned, cr.Coverage.TasksCompleted, cr.Coverage.TasksFailed, cr.Coverage.TasksCancelled, cr.Coverage.TasksNotCovered)
				n := 0
				for _, t := range cr.Tasks {
					if t.State == checks.TaskFailed || t.State == checks.TaskCancelled {
						if n == 5 {
							b.WriteString("...\n")
							break
						}
						fmt.Fprintf(&b, "- %s (%s): %s\n", t.Object, t.State, t.Reason)
						n++
					}
				}
			}
			b.WriteString("Until a run completes, this data is not verified; it may be healthy or not.")
			nv.Description = b.String()
		} else {
			nv.Summary = fmt.Sprintf("dbscrub verified %s (check %s) again", target, cr.Check)
		}
		conds = append(conds, nv)
	}
	return conds
}

// findingCondition builds the corruption (sev = corrupt) or risk
// (sev = warning) condition of one check. known is false when the run
// neither confirms nor clears a firing alarm.
func (m *Manager) findingCondition(c Condition, cr *checks.CheckReport, sev checks.Status, target, where string) (_ Condition, known bool) {
	var findings []checks.Finding
	keys := map[string]bool{}
	objects := map[string]bool{}
	for _, f := range cr.Findings {
		isWarn := f.Severity == checks.StatusWarning
		if isWarn != (sev == checks.StatusWarning) {
			continue
		}
		findings = append(findings, f)
		if f.Task != "" {
			keys[f.Task] = true
		}
		objects[f.Object] = true
	}
	if len(findings) > 0 {
		c.Active = true
		c.Findings = findings
		c.TaskKeys = sortedKeys(keys)
		objs := sortedKeys(objects)
		list := strings.Join(objs[:min(3, len(objs))], ", ")
		if len(objs) > 3 {
			list += fmt.Sprintf(" and %d more", len(objs)-3)
		}
		if sev == checks.StatusCorrupt {
			c.Summary = fmt.Sprintf("Corruption found in %s (check %s): %d %s in %s", target, cr.Check, len(findings), plural(len(findings), "finding", "findings"), list)
		} else {
			c.Summary = fmt.Sprintf("Data at risk on %s (check %s): %s", target, cr.Check, firstLine(findings[0].Message))
		}
		var b strings.Builder
		fmt.Fprintf(&b, "Target: %s\nCheck: %s\n", where, cr.Check)
		for i, f := range findings {
			if i == 10 {
				fmt.Fprintf(&b, "... %d more findings\n", len(findings)-10)
				break
			}
			loc := f.Location.String()
			if loc != "" {
				loc = " (" + loc + ")"
			}
			fmt.Fprintf(&b, "- %s%s: %s\n", f.Object, loc, firstLine(f.Message))
		}
		if r := firstRemedy(findings); r != "" {
			b.WriteString("What to do: " + r)
		}
		c.Description = strings.TrimRight(b.String(), "\n")
		return c, true
	}
	// Not active in this run. Resolve only when the run proves it: the check
	// planned, and every task that raised the alarm ran to completion again
	// (or is no longer planned).
	prev, ok := m.Get(c.Key)
	if !ok || prev.State != StateFiring {
		return c, false // nothing to resolve
	}
	if cr.PlanError != "" || (cr.Status == checks.StatusSkipped && len(cr.Tasks) == 0) {
		return c, false
	}
	state := map[string]checks.TaskState{}
	for _, t := range cr.Tasks {
		state[t.Key] = t.State
	}
	for _, k := range prev.TaskKeys {
		if st, planned := state[k]; planned && st != checks.TaskCompleted {
			return c, false
		}
	}
	if len(prev.TaskKeys) == 0 && !cr.Coverage.Complete() {
		return c, false
	}
	if sev == checks.StatusCorrupt {
		c.Summary = fmt.Sprintf("No corruption found any more in %s (check %s)", target, cr.Check)
	} else {
		c.Summary = fmt.Sprintf("No risk reported any more on %s (check %s)", target, cr.Check)
	}
	return c, true
}

func describeTarget(t checks.TargetInfo) string {
	var parts []string
	if t.Engine != "" {
		parts = append(parts, t.Engine)
	}
	if t.Name != "" {
		parts = append(parts, t.Name)
	}
	if t.Database != "" && !strings.Contains(t.Name, t.Database) {
		parts = append(parts, "database "+t.Database)
	}
	if len(parts) == 0 {
		return "(unknown)"
	}
	return strings.Join(parts, " ")
}

func firstRemedy(fs []checks.Finding) string {
	for _, f := range fs {
		if f.Remedy != "" {
			return f.Remedy
		}
	}
	return ""
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
