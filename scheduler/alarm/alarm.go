// Package alarm turns dbscrub results into alarms a person can act on, and
// delivers them.
//
// An [Alarm] is identified by its [Key]: target, check and [Kind]. The
// [Manager] applies the rules:
//
//   - fire once per new problem: a condition that becomes true creates a
//     firing alarm and notifies every [Sink] once;
//   - re-notify at an interval (see [WithRenotify]) while the problem
//     persists, never more often;
//   - send resolved once when a later run shows the problem gone;
//   - never flood: alarms are deduplicated by key, each sink receives one
//     batch per delivery round, and a sink that fails does not stop
//     anything: its failure is logged and counted
//     (dbscrub.alarm.notifications{result="error"}) and the delivery is
//     retried on the next [Manager.Tick].
//
// The kinds are [KindCorruption] (the engine reported corruption),
// [KindNotVerified] (dbscrub could not verify: unreachable, authentication,
// timeout, missing extension, interrupted), [KindStale] (no successful
// check within the SLA: the dead man's switch) and [KindRisk] (warnings that
// put data at risk, such as checksums turned off).
//
// Sinks: [LogSink] (slog), [Webhook] (generic JSON POST with retries and a
// timeout), [Alertmanager] (the Prometheus Alertmanager v2 API) and
// [FuncSink] (a Go func).
package alarm

import (
	"maps"
	"time"

	"github.com/dbscrub/dbscrub/checks"
)

// Kind says what an alarm is about. Its values are stable strings used in
// labels, JSON and the history store.
type Kind string

// The alarm kinds.
const (
	// KindCorruption means a check found corruption.
	KindCorruption Kind = "corruption"
	// KindNotVerified means dbscrub could not verify (could not connect,
	// authentication failure, timeout, missing extension or privilege,
	// interrupted run).
	KindNotVerified Kind = "not_verified"
	// KindStale means no successful check within the SLA, or an object not
	// verified within the SLA: the dead man's switch.
	KindStale Kind = "stale"
	// KindRisk means a check verified but reported a warning that puts data
	// at risk (checksums off, zero_damaged_pages on, ...).
	KindRisk Kind = "risk"
)

// Valid reports whether k is one of the defined kinds.
func (k Kind) Valid() bool {
	switch k {
	case KindCorruption, KindNotVerified, KindStale, KindRisk:
		return true
	}
	return false
}

// Severity says how urgent an alarm is.
type Severity string

// The severities, from most to least urgent.
const (
	SeverityCritical Severity = "critical"
	SeverityWarning  Severity = "warning"
	SeverityInfo     Severity = "info"
)

func (s Severity) rank() int {
	switch s {
	case SeverityCritical:
		return 3
	case SeverityWarning:
		return 2
	case SeverityInfo:
		return 1
	}
	return 0
}

// Valid reports whether s is one of the defined severities.
func (s Severity) Valid() bool { return s.rank() > 0 }

// DefaultSeverity returns the severity of a kind unless configured
// otherwise: corruption and stale are critical, not_verified and risk are
// warnings.
func DefaultSeverity(k Kind) Severity {
	switch k {
	case KindCorruption, KindStale:
		return SeverityCritical
	}
	return SeverityWarning
}

// State is firing or resolved.
type State string

// The alarm states.
const (
	StateFiring   State = "firing"
	StateResolved State = "resolved"
)

// Key identifies an alarm: one alarm per target, check and kind. Check is
// empty for alarms about the whole target (it could not be opened, or it
// has never been checked).
type Key struct {
	Target string `json:"target"`
	Check  string `json:"check,omitempty"`
	Kind   Kind   `json:"kind"`
}

// String formats the key as target/check/kind.
func (k Key) String() string {
	c := k.Check
	if c == "" {
		c = "*"
	}
	return k.Target + "/" + c + "/" + string(k.Kind)
}

// Alarm is what sinks receive. Its JSON form is the webhook payload's
// element and is stable: fields may be added, never removed.
type Alarm struct {
	// Target is the scheduler's stable name of the target.
	Target string `json:"target"`
	// Check is the check name, or empty when the alarm is about the whole
	// target.
	Check    string   `json:"check,omitempty"`
	Kind     Kind     `json:"kind"`
	Severity Severity `json:"severity"`
	State    State    `json:"state"`
	// Summary says in one line what is wrong, for a person.
	Summary string `json:"summary"`
	// Description gives the details: the reason, the objects, what to do.
	Description string `json:"description,omitempty"`
	// Findings are the findings behind the alarm, capped (see
	// [WithMaxFindings]); FindingsTotal is how many there were.
	Findings      []checks.Finding `json:"findings,omitempty"`
	FindingsTotal int              `json:"findings_total,omitempty"`
	// Labels come from the target: owner, team, runbook_url — who to call.
	Labels map[string]string `json:"labels,omitempty"`
	// FirstSeen is when the problem was first seen; LastSeen when it was
	// last confirmed. ResolvedAt is set on resolved alarms.
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	// RunID is the history run that last confirmed (or resolved) the alarm,
	// when there is one.
	RunID int64 `json:"run_id,omitempty"`
}

// Key returns the alarm's key.
func (a Alarm) Key() Key { return Key{Target: a.Target, Check: a.Check, Kind: a.Kind} }

// RunbookURL returns the runbook_url label, if any.
func (a Alarm) RunbookURL() string { return a.Labels["runbook_url"] }

func (a Alarm) clone() Alarm {
	a.Labels = maps.Clone(a.Labels)
	a.Findings = append([]checks.Finding(nil), a.Findings...)
	return a
}

// Record is an alarm with the bookkeeping the [Manager] keeps to apply its
// rules. It is what a [Store] persists.
type Record struct {
	Alarm
	// ChangedAt is when the alarm last changed state (fired, resolved or
	// escalated).
	ChangedAt time.Time `json:"changed_at"`
	// Version counts state changes; every sink is owed a notification of
	// the latest version.
	Version int64 `json:"version"`
	// Delivered records, per sink name, the last notification the sink
	// accepted.
	Delivered map[string]Delivery `json:"delivered,omitempty"`
	// Fired counts how many times the alarm went from resolved (or absent)
	// to firing.
	Fired int `json:"fired"`
	// TaskKeys are the keys of the tasks whose findings raised a corruption
	// or risk alarm; the alarm resolves only once each of them has run to
	// completion again without such findings (or is no longer planned).
	TaskKeys []string `json:"task_keys,omitempty"`
}

func (r *Record) clone() Record {
	c := *r
	c.Alarm = r.Alarm.clone()
	c.Delivered = maps.Clone(r.Delivered)
	c.TaskKeys = append([]string(nil), r.TaskKeys...)
	return c
}
