// Package storetest is the conformance suite every history.Store must
// pass: the in-memory store, the embedded SQLite store and any future one
// (PostgreSQL for fleets) run the same tests.
package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/scheduler/alarm"
	"github.com/dbscrub/dbscrub/scheduler/history"
)

// T0 is the time the suite's runs start from.
var T0 = time.Date(2025, 1, 6, 1, 0, 0, 0, time.UTC)

// Task describes a task outcome for [Report].
type Task struct {
	Key, Object string
	State       checks.TaskState
	Status      checks.Status
	Reason      string
	Cost        int64
	Findings    []checks.Finding
}

// Completed is a healthy completed task.
func Completed(key string) Task {
	return Task{Key: key, Object: "public." + key, State: checks.TaskCompleted, Status: checks.StatusHealthy, Cost: 10}
}

// Report builds a report of one check from task outcomes, as a Runner
// would (coverage and status derived from the tasks).
func Report(check string, tasks ...Task) *checks.Report {
	cr := &checks.CheckReport{Check: check, Findings: []checks.Finding{}, Tasks: []checks.TaskReport{}}
	status := checks.StatusHealthy
	for _, t := range tasks {
		tr := checks.TaskReport{Key: t.Key, Object: t.Object, State: t.State, Status: t.Status, Reason: t.Reason, CostBytes: t.Cost, Findings: len(t.Findings)}
		cr.Coverage.TasksPlanned++
		cr.Coverage.BytesPlanned += t.Cost
		switch t.State {
		case checks.TaskCompleted:
			cr.Coverage.TasksCompleted++
			cr.Coverage.BytesVerified += t.Cost
			tr.BytesVerified = t.Cost
		case checks.TaskFailed:
			cr.Coverage.TasksFailed++
		case checks.TaskSkipped:
			cr.Coverage.TasksSkipped++
		case checks.TaskNotCovered:
			cr.Coverage.TasksNotCovered++
		case checks.TaskCancelled:
			cr.Coverage.TasksCancelled++
		}
		status = status.Worse(t.Status)
		for _, f := range t.Findings {
			f.Check, f.Task = check, t.Key
			cr.Findings = append(cr.Findings, f)
		}
		cr.Tasks = append(cr.Tasks, tr)
	}
	cr.Status = status
	return &checks.Report{SchemaVersion: checks.SchemaVersion, Target: checks.TargetInfo{Engine: "postgresql", Name: "postgres://app@db/app"},
		Status: status, Checks: []*checks.CheckReport{cr}, Coverage: cr.Coverage}
}

// PlanFailed builds a report of one check that could not plan.
func PlanFailed(check, why string) *checks.Report {
	cr := &checks.CheckReport{Check: check, Status: checks.StatusError, PlanError: why, Reason: "could not plan: " + why, Findings: []checks.Finding{}, Tasks: []checks.TaskReport{}}
	return &checks.Report{SchemaVersion: checks.SchemaVersion, Status: checks.StatusError, Reason: cr.Reason, Checks: []*checks.CheckReport{cr}}
}

// Run runs the conformance suite. open returns a new, empty store; the
// suite closes it.
func Run(t *testing.T, open func(t *testing.T) history.Store) {
	tests := []struct {
		name string
		f    func(t *testing.T, s history.Store)
	}{
		{"RegisterTarget", testRegisterTarget},
		{"RecordAndReadRuns", testRecordAndReadRuns},
		{"LastKnownGood", testLastKnownGood},
		{"Coverage", testCoverage},
		{"Cycles", testCycles},
		{"Targets", testTargets},
		{"Alarms", testAlarms},
		{"Counters", testCounters},
		{"Prune", testPrune},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			defer s.Close()
			tt.f(t, s)
		})
	}
}

func record(t *testing.T, s history.Store, target string, at time.Time, rep *checks.Report) *history.Run {
	t.Helper()
	r := &history.Run{Target: target, Trigger: history.TriggerSchedule, StartedAt: at, FinishedAt: at.Add(time.Minute), Status: rep.Status, Reason: rep.Reason, Report: rep}
	if _, err := s.RecordRun(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if r.ID == 0 {
		t.Fatal("RecordRun did not set the ID")
	}
	return r
}

func checkState(t *testing.T, s history.Store, target, check string) history.CheckState {
	t.Helper()
	states, err := s.CheckStates(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	for _, cs := range states {
		if cs.Check == check {
			return cs
		}
	}
	t.Fatalf("no state for %s/%s in %+v", target, check, states)
	return history.CheckState{}
}

func testRegisterTarget(t *testing.T, s history.Store) {
	ctx := context.Background()
	first, err := s.RegisterTarget(ctx, "db", map[string]string{"team": "a"}, T0)
	if err != nil || !first.Equal(T0) {
		t.Fatalf("first registration: %s %v", first, err)
	}
	again, err := s.RegisterTarget(ctx, "db", map[string]string{"team": "b"}, T0.Add(time.Hour))
	if err != nil || !again.Equal(T0) {
		t.Fatalf("second registration returned first seen %s %v, want %s", again, err, T0)
	}
	ts, err := s.Targets(ctx)
	if err != nil || len(ts) != 1 || ts[0].Labels["team"] != "b" || !ts[0].LastRegistered.Equal(T0.Add(time.Hour)) {
		t.Fatalf("targets %+v %v", ts, err)
	}
	if _, err := s.RegisterTarget(ctx, "", nil, T0); err == nil {
		t.Fatal("empty name accepted")
	}
}

func testRecordAndReadRuns(t *testing.T, s history.Store) {
	ctx := context.Background()
	rep := Report("heap", Completed("a"), Task{Key: "b", Object: "public.b", State: checks.TaskCompleted, Status: checks.StatusCorrupt, Cost: 5,
		Findings: []checks.Finding{{Severity: checks.StatusCorrupt, Object: "public.b", Message: "bad page", Location: checks.Location{Page: checks.Int(3)}}}})
	r1 := record(t, s, "db", T0, rep)
	r2 := record(t, s, "db", T0.Add(time.Hour), Report("heap", Completed("a")))
	record(t, s, "other", T0.Add(2*time.Hour), Report("heap", Completed("a")))

	got, err := s.Run(ctx, r1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Target != "db" || !got.StartedAt.Equal(T0) || got.Status != checks.StatusCorrupt || len(got.Report.Checks) != 1 ||
		got.Report.Checks[0].Findings[0].Location.Page == nil || *got.Report.Checks[0].Findings[0].Location.Page != 3 {
		t.Fatalf("run %+v", got)
	}
	if _, err := s.Run(ctx, 999999); !errors.Is(err, history.ErrNotFound) {
		t.Fatalf("missing run: %v", err)
	}
	runs, err := s.Runs(ctx, history.RunQuery{Target: "db"})
	if err != nil || len(runs) != 2 || runs[0].ID != r2.ID || runs[1].ID != r1.ID || runs[1].Findings != 1 || runs[1].Coverage.BytesVerified != 15 {
		t.Fatalf("runs %+v %v", runs, err)
	}
	if runs, _ := s.Runs(ctx, history.RunQuery{Status: checks.StatusCorrupt}); len(runs) != 1 || runs[0].ID != r1.ID {
		t.Fatalf("by status %+v", runs)
	}
	if runs, _ := s.Runs(ctx, history.RunQuery{Since: T0.Add(time.Hour), Before: T0.Add(2 * time.Hour)}); len(runs) != 1 || runs[0].ID != r2.ID {
		t.Fatalf("by time %+v", runs)
	}
	if runs, _ := s.Runs(ctx, history.RunQuery{Limit: 1}); len(runs) != 1 {
		t.Fatalf("limit %+v", runs)
	}
	fs, err := s.Findings(ctx, history.FindingQuery{Target: "db"})
	if err != nil || len(fs) != 1 || fs[0].RunID != r1.ID || fs[0].Message != "bad page" || fs[0].Check != "heap" || fs[0].Task != "b" || !fs[0].FoundAt.Equal(T0) {
		t.Fatalf("findings %+v %v", fs, err)
	}
	if err := func() error { _, err := s.RecordRun(ctx, &history.Run{Target: "db"}); return err }(); err == nil {
		t.Fatal("a run without a report was accepted")
	}
}

func testLastKnownGood(t *testing.T, s history.Store) {
	good := record(t, s, "db", T0, Report("heap", Completed("a")))
	record(t, s, "db", T0.Add(time.Hour), Report("heap", Task{Key: "a", Object: "public.a", State: checks.TaskFailed, Status: checks.StatusError, Reason: "timeout"}))
	cs := checkState(t, s, "db", "heap")
	if cs.LastStatus != checks.StatusError || !cs.LastRunAt.Equal(T0.Add(time.Hour)) {
		t.Fatalf("last run %+v", cs)
	}
	if cs.LastSuccessRunID != good.ID || !cs.LastSuccessAt.Equal(T0) {
		t.Fatalf("last known good %+v, want run %d at %s", cs, good.ID, T0)
	}
	// Nothing completed before the budget ended: not a success.
	record(t, s, "db", T0.Add(2*time.Hour), Report("heap", Task{Key: "a", Object: "public.a", State: checks.TaskNotCovered, Status: checks.StatusWarning}))
	if cs := checkState(t, s, "db", "heap"); !cs.LastSuccessAt.Equal(T0) {
		t.Fatalf("a run that verified nothing became the last success: %+v", cs)
	}
}

func testCoverage(t *testing.T, s history.Store) {
	ctx := context.Background()
	record(t, s, "db", T0, Report("heap", Completed("a"), Completed("b"),
		Task{Key: "c", Object: "public.c", State: checks.TaskNotCovered, Status: checks.StatusWarning},
		Task{Key: "temp", Object: "pg_temp.x", State: checks.TaskSkipped, Status: checks.StatusSkipped, Reason: "temporary table"}))
	t1 := T0.Add(24 * time.Hour)
	record(t, s, "db", t1, Report("heap",
		Task{Key: "a", Object: "public.a", State: checks.TaskSkipped, Status: checks.StatusSkipped, Reason: history.DeferredPrefix + "verified earlier"},
		Task{Key: "c", Object: "public.c", State: checks.TaskFailed, Status: checks.StatusError, Reason: "lost connection"},
		Completed("d")))
	// b is no longer planned (dropped); the check's own skip is not coverage.
	keys, err := s.Coverage(ctx, "db", "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]history.KeyState{}
	for _, k := range keys {
		got[k.Key] = k
	}
	if len(got) != 3 {
		t.Fatalf("keys %+v, want a, c, d", keys)
	}
	if a := got["a"]; !a.LastVerifiedAt.Equal(T0) || a.LastStatus != checks.StatusHealthy || !a.FirstSeen.Equal(T0) || !a.LastAttemptAt.Equal(T0) {
		t.Errorf("deferred a: %+v", a)
	}
	if c := got["c"]; !c.LastVerifiedAt.IsZero() || !c.LastAttemptAt.Equal(t1) || c.LastState != checks.TaskFailed || !c.FirstSeen.Equal(T0) {
		t.Errorf("failed c: %+v", c)
	}
	if d := got["d"]; !d.LastVerifiedAt.Equal(t1) || !d.FirstSeen.Equal(t1) || d.CostBytes != 10 || d.Object != "public.d" {
		t.Errorf("new d: %+v", d)
	}
	cs := checkState(t, s, "db", "heap")
	want := history.CoverageSummary{Keys: 3, NeverVerified: 1, OldestVerifiedAt: T0, OldestVerifiedObject: "public.a", OldestUnverifiedSince: T0, OldestUnverifiedObject: "public.c"}
	if cs.Coverage.Keys != want.Keys || cs.Coverage.NeverVerified != want.NeverVerified || !cs.Coverage.OldestVerifiedAt.Equal(want.OldestVerifiedAt) ||
		cs.Coverage.OldestVerifiedObject != want.OldestVerifiedObject || !cs.Coverage.OldestUnverifiedSince.Equal(want.OldestUnverifiedSince) || cs.Coverage.OldestUnverifiedObject != want.OldestUnverifiedObject {
		t.Errorf("summary %+v, want %+v", cs.Coverage, want)
	}
	// A check that could not plan leaves coverage as it was.
	record(t, s, "db", t1.Add(time.Hour), PlanFailed("heap", "permission denied"))
	if keys, _ := s.Coverage(ctx, "db", "heap"); len(keys) != 3 {
		t.Fatalf("after a plan error: %+v", keys)
	}
	if keys, _ := s.Coverage(ctx, "db", "other"); len(keys) != 0 {
		t.Fatalf("check filter: %+v", keys)
	}
}

func testCycles(t *testing.T, s history.Store) {
	r := Report("heap", Completed("a"))
	run := &history.Run{Target: "db", Trigger: history.TriggerSchedule, StartedAt: T0, FinishedAt: T0, Status: r.Status, Report: r, Cycles: map[string]time.Time{"heap": T0}}
	if _, err := s.RecordRun(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	if cs := checkState(t, s, "db", "heap"); !cs.CycleStartedAt.Equal(T0) {
		t.Fatalf("cycle %s", cs.CycleStartedAt)
	}
	record(t, s, "db", T0.Add(time.Hour), Report("heap", Completed("a"))) // no Cycles entry: kept
	if cs := checkState(t, s, "db", "heap"); !cs.CycleStartedAt.Equal(T0) {
		t.Fatalf("cycle not kept: %s", cs.CycleStartedAt)
	}
	run = &history.Run{Target: "db", Trigger: history.TriggerSchedule, StartedAt: T0.Add(2 * time.Hour), FinishedAt: T0, Status: r.Status, Report: r, Cycles: map[string]time.Time{"heap": {}}}
	if _, err := s.RecordRun(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	if cs := checkState(t, s, "db", "heap"); !cs.CycleStartedAt.IsZero() {
		t.Fatalf("cycle not closed: %s", cs.CycleStartedAt)
	}
	got, err := s.Run(context.Background(), run.ID)
	if err != nil || len(got.Cycles) != 1 {
		t.Fatalf("cycles not stored with the run: %+v %v", got, err)
	}
}

func testTargets(t *testing.T, s history.Store) {
	ctx := context.Background()
	if _, err := s.RegisterTarget(ctx, "b", nil, T0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RegisterTarget(ctx, "a", map[string]string{"team": "x"}, T0); err != nil {
		t.Fatal(err)
	}
	record(t, s, "a", T0, Report("heap", Completed("k")))
	last := record(t, s, "a", T0.Add(time.Hour), Report("heap", Completed("k")))
	ts, err := s.Targets(ctx)
	if err != nil || len(ts) != 2 || ts[0].Name != "a" || ts[1].Name != "b" {
		t.Fatalf("targets %+v %v", ts, err)
	}
	if ts[0].LastRun == nil || ts[0].LastRun.ID != last.ID || len(ts[0].Checks) != 1 || ts[0].Checks[0].Coverage.Keys != 1 {
		t.Fatalf("a: %+v", ts[0])
	}
	if ts[1].LastRun != nil || len(ts[1].Checks) != 0 {
		t.Fatalf("b: %+v", ts[1])
	}
}

func testAlarms(t *testing.T, s history.Store) {
	ctx := context.Background()
	rec := alarm.Record{
		Alarm: alarm.Alarm{Target: "db", Check: "heap", Kind: alarm.KindCorruption, Severity: alarm.SeverityCritical, State: alarm.StateFiring,
			Summary: "corrupt", Findings: []checks.Finding{{Severity: checks.StatusCorrupt, Object: "public.a", Message: "bad"}}, FindingsTotal: 1, Labels: map[string]string{"team": "x"},
			FirstSeen: T0, LastSeen: T0},
		ChangedAt: T0, Version: 1, Delivered: map[string]alarm.Delivery{"log": {At: T0, Version: 1}}, Fired: 1, TaskKeys: []string{"a"},
	}
	whole := alarm.Record{Alarm: alarm.Alarm{Target: "db", Kind: alarm.KindNotVerified, State: alarm.StateFiring, FirstSeen: T0}}
	if err := s.SaveAlarms(ctx, rec, whole); err != nil {
		t.Fatal(err)
	}
	rec.State, rec.ResolvedAt, rec.Version = alarm.StateResolved, T0.Add(time.Hour), 2
	if err := s.SaveAlarms(ctx, rec); err != nil {
		t.Fatal(err)
	}
	got, err := s.Alarms(ctx)
	if err != nil || len(got) != 2 {
		t.Fatalf("alarms %+v %v", got, err)
	}
	var r alarm.Record
	for _, g := range got {
		if g.Kind == alarm.KindCorruption {
			r = g
		}
	}
	if r.State != alarm.StateResolved || r.Version != 2 || r.Delivered["log"].Version != 1 || r.TaskKeys[0] != "a" || r.Labels["team"] != "x" || !r.ResolvedAt.Equal(T0.Add(time.Hour)) {
		t.Fatalf("alarm %+v", r)
	}
	if err := s.SaveAlarms(ctx, alarm.Record{}); err == nil {
		t.Fatal("an alarm without a key was accepted")
	}
}

func testCounters(t *testing.T, s history.Store) {
	ctx := context.Background()
	if _, ok, err := s.Counter(ctx, "db", "checksum_failures"); ok || err != nil {
		t.Fatalf("unset counter: %v %v", ok, err)
	}
	if err := s.SetCounter(ctx, "db", "checksum_failures", history.Counter{Value: 3, SeenAt: T0}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCounter(ctx, "db", "checksum_failures", history.Counter{Value: 5, SeenAt: T0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	c, ok, err := s.Counter(ctx, "db", "checksum_failures")
	if !ok || err != nil || c.Value != 5 || !c.SeenAt.Equal(T0.Add(time.Hour)) {
		t.Fatalf("counter %+v %v %v", c, ok, err)
	}
}

func testPrune(t *testing.T, s history.Store) {
	ctx := context.Background()
	bad := Task{Key: "a", Object: "public.a", State: checks.TaskCompleted, Status: checks.StatusCorrupt, Cost: 1,
		Findings: []checks.Finding{{Severity: checks.StatusCorrupt, Object: "public.a", Message: "bad"}}}
	old := record(t, s, "db", T0, Report("heap", bad))
	recent := record(t, s, "db", T0.Add(48*time.Hour), Report("heap", Completed("a")))
	resolved := alarm.Record{Alarm: alarm.Alarm{Target: "db", Check: "heap", Kind: alarm.KindCorruption, State: alarm.StateResolved, ResolvedAt: T0.Add(time.Hour)}}
	firing := alarm.Record{Alarm: alarm.Alarm{Target: "db", Check: "heap", Kind: alarm.KindStale, State: alarm.StateFiring, FirstSeen: T0}}
	if err := s.SaveAlarms(ctx, resolved, firing); err != nil {
		t.Fatal(err)
	}
	res, err := s.Prune(ctx, T0.Add(24*time.Hour))
	if err != nil || res.Runs != 1 || res.Findings != 1 || res.Alarms != 1 {
		t.Fatalf("prune %+v %v", res, err)
	}
	if _, err := s.Run(ctx, old.ID); !errors.Is(err, history.ErrNotFound) {
		t.Fatalf("old run still there: %v", err)
	}
	if _, err := s.Run(ctx, recent.ID); err != nil {
		t.Fatal(err)
	}
	if fs, _ := s.Findings(ctx, history.FindingQuery{}); len(fs) != 0 {
		t.Fatalf("findings left: %+v", fs)
	}
	if as, _ := s.Alarms(ctx); len(as) != 1 || as[0].Kind != alarm.KindStale {
		t.Fatalf("alarms left: %+v", as)
	}
	// Current state stays.
	if cs := checkState(t, s, "db", "heap"); cs.LastRunID != recent.ID {
		t.Fatalf("check state %+v", cs)
	}
}
