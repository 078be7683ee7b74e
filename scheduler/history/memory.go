package history

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dbscrub/dbscrub/scheduler/alarm"
)

// Memory is a [Store] that keeps everything in memory: for tests, one-shot
// runs, and as the scheduler's default when no store is configured. Its
// history is lost when the process ends.
type Memory struct {
	mu       sync.Mutex
	nextID   int64
	targets  map[string]*TargetState
	runs     []*Run // ascending ID
	checks   map[[2]string]*CheckState
	keys     map[[2]string]map[string]*KeyState // target, check → key
	alarms   map[alarm.Key]alarm.Record
	counters map[[2]string]Counter
	closed   bool
	maxRuns  int
}

// A MemoryOption configures [NewMemory].
type MemoryOption func(*Memory)

// WithMaxRuns keeps only the newest n runs (and their findings); current
// state (check states, coverage, alarms) is not affected. By default every
// run is kept. n < 1 means no limit.
func WithMaxRuns(n int) MemoryOption {
	return func(m *Memory) { m.maxRuns = n }
}

// NewMemory returns an empty in-memory store.
func NewMemory(opts ...MemoryOption) *Memory {
	m := &Memory{
		targets:  map[string]*TargetState{},
		checks:   map[[2]string]*CheckState{},
		keys:     map[[2]string]map[string]*KeyState{},
		alarms:   map[alarm.Key]alarm.Record{},
		counters: map[[2]string]Counter{},
	}
	for _, o := range opts {
		if o != nil {
			o(m)
		}
	}
	return m
}

var _ Store = (*Memory)(nil)

func (m *Memory) lock() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return fmt.Errorf("history: store is closed")
	}
	return nil
}

// RegisterTarget implements [Store].
func (m *Memory) RegisterTarget(_ context.Context, name string, labels map[string]string, at time.Time) (time.Time, error) {
	if name == "" {
		return time.Time{}, fmt.Errorf("history: empty target name")
	}
	if err := m.lock(); err != nil {
		return time.Time{}, err
	}
	defer m.mu.Unlock()
	t, ok := m.targets[name]
	if !ok {
		t = &TargetState{Name: name, FirstSeen: at}
		m.targets[name] = t
	}
	t.Labels = maps.Clone(labels)
	t.LastRegistered = at
	return t.FirstSeen, nil
}

// RecordRun implements [Store].
func (m *Memory) RecordRun(_ context.Context, run *Run) (int64, error) {
	if err := validateRun(run); err != nil {
		return 0, err
	}
	// Keep a private deep copy, as a database would.
	b, err := json.Marshal(run)
	if err != nil {
		return 0, fmt.Errorf("history: encoding run: %w", err)
	}
	var cp Run
	if err := json.Unmarshal(b, &cp); err != nil {
		return 0, fmt.Errorf("history: encoding run: %w", err)
	}
	if err := m.lock(); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	m.nextID++
	run.ID, cp.ID = m.nextID, m.nextID
	m.runs = append(m.runs, &cp)
	if m.maxRuns > 0 && len(m.runs) > m.maxRuns+m.maxRuns/4 {
		m.runs = append([]*Run(nil), m.runs[len(m.runs)-m.maxRuns:]...)
	}
	if _, ok := m.targets[run.Target]; !ok {
		m.targets[run.Target] = &TargetState{Name: run.Target, FirstSeen: run.StartedAt, LastRegistered: run.StartedAt}
	}
	for _, d := range derive(run) {
		ck := [2]string{run.Target, d.check}
		cs := m.checks[ck]
		if cs == nil {
			cs = &CheckState{Target: run.Target, Check: d.check}
			m.checks[ck] = cs
		}
		cs.LastRunID, cs.LastRunAt, cs.LastStatus, cs.LastReason = run.ID, run.StartedAt, d.status, d.reason
		if d.success {
			cs.LastSuccessRunID, cs.LastSuccessAt = run.ID, run.StartedAt
		}
		if d.cycleSet {
			cs.CycleStartedAt = d.cycle
		}
		if !d.keysKnown {
			continue
		}
		old := m.keys[ck]
		next := make(map[string]*KeyState, len(d.keys))
		for _, k := range d.keys {
			ks := old[k.key]
			if ks == nil {
				ks = &KeyState{Target: run.Target, Check: d.check, Key: k.key}
			}
			applyKey(ks, k, run.StartedAt)
			next[k.key] = ks
		}
		m.keys[ck] = next
	}
	return run.ID, nil
}

// Run implements [Store].
func (m *Memory) Run(_ context.Context, id int64) (*Run, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	i := sort.Search(len(m.runs), func(i int) bool { return m.runs[i].ID >= id })
	if i == len(m.runs) || m.runs[i].ID != id {
		return nil, fmt.Errorf("run %d: %w", id, ErrNotFound)
	}
	b, _ := json.Marshal(m.runs[i])
	var cp Run
	if err := json.Unmarshal(b, &cp); err != nil {
		return nil, err
	}
	return &cp, nil
}

// Runs implements [Store].
func (m *Memory) Runs(_ context.Context, q RunQuery) ([]RunSummary, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var out []RunSummary
	limit := defaultLimit(q.Limit)
	for i := len(m.runs) - 1; i >= 0 && len(out) < limit; i-- {
		r := m.runs[i]
		if (q.Target != "" && r.Target != q.Target) || (!q.Since.IsZero() && r.StartedAt.Before(q.Since)) ||
			(!q.Before.IsZero() && !r.StartedAt.Before(q.Before)) || (q.Status != "" && r.Status != q.Status) {
			continue
		}
		out = append(out, r.Summary())
	}
	slices.SortStableFunc(out, func(a, b RunSummary) int { return compareRunSummaries(a, b) })
	return out, nil
}

// compareRunSummaries orders newest first (by start, then ID).
func compareRunSummaries(a, b RunSummary) int {
	if c := b.StartedAt.Compare(a.StartedAt); c != 0 {
		return c
	}
	switch {
	case a.ID > b.ID:
		return -1
	case a.ID < b.ID:
		return 1
	}
	return 0
}

// Findings implements [Store].
func (m *Memory) Findings(_ context.Context, q FindingQuery) ([]Finding, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var out []Finding
	for i := len(m.runs) - 1; i >= 0; i-- {
		r := m.runs[i]
		if (q.Target != "" && r.Target != q.Target) || (!q.Since.IsZero() && r.StartedAt.Before(q.Since)) {
			continue
		}
		for _, f := range runFindings(r) {
			if q.Check == "" || f.Check == q.Check {
				out = append(out, f)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Finding) int {
		if c := b.FoundAt.Compare(a.FoundAt); c != 0 {
			return c
		}
		return int(b.RunID - a.RunID)
	})
	if limit := defaultLimit(q.Limit); len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Targets implements [Store].
func (m *Memory) Targets(_ context.Context) ([]TargetState, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	out := make([]TargetState, 0, len(m.targets))
	for _, t := range m.targets {
		ts := *t
		ts.Labels = maps.Clone(t.Labels)
		ts.Checks = m.checkStatesLocked(t.Name)
		for i := len(m.runs) - 1; i >= 0; i-- {
			if m.runs[i].Target == t.Name {
				s := m.runs[i].Summary()
				ts.LastRun = &s
				break
			}
		}
		out = append(out, ts)
	}
	slices.SortFunc(out, func(a, b TargetState) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// CheckStates implements [Store].
func (m *Memory) CheckStates(_ context.Context, target string) ([]CheckState, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	return m.checkStatesLocked(target), nil
}

func (m *Memory) checkStatesLocked(target string) []CheckState {
	out := []CheckState{}
	for k, cs := range m.checks {
		if k[0] != target {
			continue
		}
		c := *cs
		c.Coverage = CoverageSummary{}
		for _, ks := range m.keys[k] {
			c.Coverage.add(*ks)
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b CheckState) int { return strings.Compare(a.Check, b.Check) })
	return out
}

// Coverage implements [Store].
func (m *Memory) Coverage(_ context.Context, target, check string) ([]KeyState, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	out := []KeyState{}
	for k, keys := range m.keys {
		if k[0] != target || (check != "" && k[1] != check) {
			continue
		}
		for _, ks := range keys {
			out = append(out, *ks)
		}
	}
	slices.SortFunc(out, func(a, b KeyState) int {
		if c := strings.Compare(a.Check, b.Check); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out, nil
}

// Alarms implements [Store].
func (m *Memory) Alarms(_ context.Context) ([]alarm.Record, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	out := make([]alarm.Record, 0, len(m.alarms))
	for _, r := range m.alarms {
		out = append(out, cloneRecord(r))
	}
	slices.SortFunc(out, func(a, b alarm.Record) int { return strings.Compare(a.Key().String(), b.Key().String()) })
	return out, nil
}

// SaveAlarms implements [Store].
func (m *Memory) SaveAlarms(_ context.Context, recs ...alarm.Record) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	for _, r := range recs {
		if r.Target == "" || !r.Kind.Valid() {
			return fmt.Errorf("history: invalid alarm key %s", r.Key())
		}
		m.alarms[r.Key()] = cloneRecord(r)
	}
	return nil
}

func cloneRecord(r alarm.Record) alarm.Record {
	r.Labels = maps.Clone(r.Labels)
	r.Findings = slices.Clone(r.Findings)
	r.Delivered = maps.Clone(r.Delivered)
	r.TaskKeys = slices.Clone(r.TaskKeys)
	return r
}

// Counter implements [Store].
func (m *Memory) Counter(_ context.Context, target, name string) (Counter, bool, error) {
	if err := m.lock(); err != nil {
		return Counter{}, false, err
	}
	defer m.mu.Unlock()
	c, ok := m.counters[[2]string{target, name}]
	return c, ok, nil
}

// SetCounter implements [Store].
func (m *Memory) SetCounter(_ context.Context, target, name string, c Counter) error {
	if target == "" || name == "" {
		return fmt.Errorf("history: counter needs a target and a name")
	}
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.counters[[2]string{target, name}] = c
	return nil
}

// Prune implements [Store].
func (m *Memory) Prune(_ context.Context, before time.Time) (PruneResult, error) {
	if err := m.lock(); err != nil {
		return PruneResult{}, err
	}
	defer m.mu.Unlock()
	var res PruneResult
	kept := m.runs[:0]
	for _, r := range m.runs {
		if r.StartedAt.Before(before) {
			res.Runs++
			res.Findings += int64(len(runFindings(r)))
			continue
		}
		kept = append(kept, r)
	}
	clear(m.runs[len(kept):])
	m.runs = kept
	for k, a := range m.alarms {
		if a.State == alarm.StateResolved && a.ResolvedAt.Before(before) {
			delete(m.alarms, k)
			res.Alarms++
		}
	}
	return res, nil
}

// Close implements [Store]; later calls fail.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
