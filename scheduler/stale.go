package scheduler

import (
	"fmt"
	"time"

	"github.com/dbscrub/dbscrub/scheduler/alarm"
)

// staleConditions evaluates the dead man's switch of a target at now:
//
//   - per expected check (the plan's, or those seen in the history): stale
//     when its last success is older than the SLA, or when an object of
//     the check was last verified (or, never verified, first planned)
//     longer ago than the SLA;
//   - a check that never succeeded counts from the target's first
//     registration, which survives restarts: a target that never had a
//     successful check is the most urgent, not silently ignored;
//   - with no check known at all (it never got as far as planning), the
//     alarm is about the whole target.
func (s *Scheduler) staleConditions(e *entry, now time.Time) []alarm.Condition {
	if e.sla <= 0 {
		return nil
	}
	sla := e.sla
	e.mu.Lock()
	defer e.mu.Unlock()
	labels := e.t.Labels
	key := func(check string) alarm.Key { return alarm.Key{Target: e.name, Check: check, Kind: alarm.KindStale} }
	names := e.checkNamesLocked()
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }

	whole := alarm.Condition{Key: key(""), Labels: labels}
	if len(names) == 0 {
		whole.Active = now.Sub(e.firstSeen) > sla
		whole.Summary = fmt.Sprintf("%s has never been checked successfully since it was registered at %s (SLA %s)", e.name, ts(e.firstSeen), sla)
		whole.Description = "dbscrub has not verified this target at all within its SLA. Check that its schedule fires, that its maintenance window is long enough, and that dbscrub can connect."
		return []alarm.Condition{whole}
	}
	conds := []alarm.Condition{whole} // inactive: resolves a whole-target alarm once checks are known
	for _, name := range names {
		cs := e.states[name]
		c := alarm.Condition{Key: key(name), Labels: labels}
		last, never := cs.LastSuccessAt, cs.LastSuccessAt.IsZero()
		if never {
			last = e.firstSeen
		}
		oldest, object, neverVerified := cs.Coverage.Oldest()
		switch {
		case now.Sub(last) > sla && never:
			c.Active = true
			c.Summary = fmt.Sprintf("No successful %s check of %s since it was registered at %s (SLA %s)", name, e.name, ts(e.firstSeen), sla)
		case now.Sub(last) > sla:
			c.Active = true
			c.Summary = fmt.Sprintf("No successful %s check of %s since %s (SLA %s)", name, e.name, ts(last), sla)
		case !oldest.IsZero() && now.Sub(oldest) > sla && neverVerified:
			c.Active = true
			c.Summary = fmt.Sprintf("%s: %s (check %s) has never been verified since it was first planned at %s (SLA %s)", e.name, object, name, ts(oldest), sla)
		case !oldest.IsZero() && now.Sub(oldest) > sla:
			c.Active = true
			c.Summary = fmt.Sprintf("%s: %s (check %s) was last verified at %s (SLA %s)", e.name, object, name, ts(oldest), sla)
		default:
			c.Summary = fmt.Sprintf("%s (check %s) verified within its SLA again", e.name, name)
		}
		if c.Active {
			c.Description = fmt.Sprintf("Last run: %s, status %s. Last success: %s. Objects: %d known, %d never verified; least recently verified: %s.\n"+
				"The data may be healthy, but dbscrub has not proved it within the SLA. If runs do not finish within the maintenance window, rolling coverage spreads them over several nights: lengthen the window or the SLA.",
				tsOrNever(cs.LastRunAt), orNone(string(cs.LastStatus)), tsOrNever(cs.LastSuccessAt), cs.Coverage.Keys, cs.Coverage.NeverVerified, orNone(object))
		}
		conds = append(conds, c)
	}
	return conds
}

func tsOrNever(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
