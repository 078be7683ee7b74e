package scheduler

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/scheduler/history"
)

// slow returns a task body that outlasts the run's real-time budget. The
// runner measures its budget on the real clock (see the proposal for
// checks.WithClock in the report); the scheduler's own times are fake.
// This is simulated work, not a wait for the scheduler.
func slow(d time.Duration) func(context.Context) (checks.Result, error) {
	return func(ctx context.Context) (checks.Result, error) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return checks.Result{Objects: 1, Bytes: 4}, nil
		case <-ctx.Done():
			return checks.Result{}, ctx.Err()
		}
	}
}

const budget = 100 * time.Millisecond

func TestBudgetStopsStartingTasks(t *testing.T) {
	h := newHarness(t)
	ck := newCheck("heap", tasksOf(3)...)
	ck.setRun("t1", slow(3*budget))
	h.register(Target{Name: "db", Target: &fakeTarget{checks: []*fakeCheck{ck}}, Plan: Plan{Schedule: Schedule{Every: 7 * 24 * time.Hour}, Budget: budget}})
	r := h.runNow("db")
	if want := t0.Add(budget); !r.Deadline.Equal(want) {
		t.Errorf("deadline = %s, want %s", r.Deadline, want)
	}
	st := taskStates(r)
	if st["t1"] != checks.TaskCompleted || st["t2"] != checks.TaskNotCovered || st["t3"] != checks.TaskNotCovered {
		t.Fatalf("task states %v", st)
	}
	// Never healthy when tasks did not run; not an error either.
	if r.Status != checks.StatusWarning || !strings.Contains(r.Reason, "not covered") {
		t.Fatalf("status %s (%s), want warning: not covered", r.Status, r.Reason)
	}
	if got := r.Report.Coverage; got.BytesPlanned != 6 || got.BytesVerified != 4 {
		t.Fatalf("bytes planned %d verified %d: reports must stay true", got.BytesPlanned, got.BytesVerified)
	}
}

func TestRollingCoverage(t *testing.T) {
	h := newHarness(t)
	ck := newCheck("heap", tasksOf(4)...) // t1 is the largest
	h.register(Target{Name: "db", Target: &fakeTarget{checks: []*fakeCheck{ck}}, Plan: Plan{Schedule: Schedule{Every: 7 * 24 * time.Hour}, Budget: budget}})
	day := 24 * time.Hour

	// Night 1: the budget ends during t2; t3 and t4 are not covered.
	ck.setRun("t2", slow(3*budget))
	ck.setRun("t1", corruptRun("public.t1", "invalid page"))
	r1 := h.runNow("db")
	if st := taskStates(r1); st["t1"] != checks.TaskCompleted || st["t2"] != checks.TaskCompleted || st["t3"] != checks.TaskNotCovered {
		t.Fatalf("night 1: %v", st)
	}
	if c, ok := r1.Cycles["heap"]; !ok || !c.Equal(t0) {
		t.Fatalf("night 1 leaves cycle %v %v open, want %s", c, ok, t0)
	}

	// Night 2: t2 (healthy) is deferred; t1 found corruption, so it runs
	// again; then the tasks not yet covered. The budget ends during t3.
	h.clk.Advance(day)
	ck.set(func(c *fakeCheck) { c.ran = nil })
	ck.setRun("t2", nil)
	ck.setRun("t3", slow(3*budget))
	r2 := h.runNow("db")
	if got := ck.ranKeys(); !slices.Equal(got, []string{"t1", "t3"}) {
		t.Fatalf("night 2 ran %v, want [t1 t3]", got)
	}
	st := taskStates(r2)
	if st["t2"] != checks.TaskSkipped || st["t4"] != checks.TaskNotCovered {
		t.Fatalf("night 2: %v", st)
	}
	for _, tr := range r2.Report.Checks[0].Tasks {
		if tr.Key == "t2" && (!history.IsDeferred(tr) || !strings.Contains(tr.Reason, t0.Format(time.RFC3339))) {
			t.Fatalf("t2's skip reason %q must say it was verified in the cycle", tr.Reason)
		}
	}
	if c := r2.Cycles["heap"]; !c.Equal(t0) {
		t.Fatalf("night 2 cycle %s, want the same cycle %s", c, t0)
	}

	// Night 3: only what is left (t1 still corrupt, t4) runs; the cycle
	// closes.
	h.clk.Advance(day)
	ck.set(func(c *fakeCheck) { c.ran = nil })
	ck.setRun("t3", nil)
	ck.setRun("t1", nil) // repaired
	r3 := h.runNow("db")
	if got := ck.ranKeys(); !slices.Equal(got, []string{"t1", "t4"}) {
		t.Fatalf("night 3 ran %v, want [t1 t4]", got)
	}
	if c, ok := r3.Cycles["heap"]; !ok || !c.IsZero() {
		t.Fatalf("night 3 should close the cycle, got %v %v", c, ok)
	}
	if r3.Status != checks.StatusHealthy {
		t.Fatalf("night 3: %s %s", r3.Status, r3.Reason)
	}
	if got := r3.Report.Coverage; got.TasksSkipped != 2 || got.BytesVerified != 4+1 {
		t.Fatalf("night 3 coverage %+v: deferred tasks are not counted as verified", got)
	}

	// Coverage: when each object was last verified.
	keys, err := h.store.Coverage(context.Background(), "db", "heap")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{"t1": t0.Add(2 * day), "t2": t0, "t3": t0.Add(day), "t4": t0.Add(2 * day)}
	for _, k := range keys {
		if !k.LastVerifiedAt.Equal(want[k.Key]) {
			t.Errorf("%s last verified %s, want %s", k.Key, k.LastVerifiedAt, want[k.Key])
		}
	}

	// Night 4: a new cycle plans everything.
	h.clk.Advance(day)
	ck.set(func(c *fakeCheck) { c.ran = nil })
	h.runNow("db")
	if got := ck.ranKeys(); len(got) != 4 {
		t.Fatalf("night 4 ran %v, want every task", got)
	}
}

func TestGateIgnoresRollingAndClosesTheCycle(t *testing.T) {
	h := newHarness(t)
	ck := newCheck("heap", tasksOf(3)...)
	h.register(Target{Name: "db", Target: &fakeTarget{checks: []*fakeCheck{ck}}, Plan: Plan{Schedule: Schedule{Every: 7 * 24 * time.Hour}, Budget: budget}})
	ck.setRun("t1", slow(3*budget))
	h.runNow("db") // t2, t3 not covered: cycle open
	ck.setRun("t1", nil)
	ck.set(func(c *fakeCheck) { c.ran = nil })
	rep, err := h.s.Check(context.Background(), "db")
	if err != nil {
		t.Fatalf("gate: %v (%s)", err, rep.Reason)
	}
	if got := ck.ranKeys(); len(got) != 3 {
		t.Fatalf("gate ran %v, want every task", got)
	}
	r := h.run()
	if c, ok := r.Cycles["heap"]; !ok || !c.IsZero() {
		t.Fatalf("gate cycles %v", r.Cycles)
	}
	ck.set(func(c *fakeCheck) { c.ran = nil })
	h.runNow("db")
	if got := ck.ranKeys(); len(got) != 3 {
		t.Fatalf("after the gate, ran %v, want a full run", got)
	}
}

func TestWindowClosingMidRunLeavesTasksForNextNight(t *testing.T) {
	h := newHarness(t)
	ck := newCheck("heap", tasksOf(2)...)
	ck.setRun("t1", slow(3*budget))
	// The run fires 100ms (fake) before the window closes: the scheduler
	// turns that into the runner's budget.
	h.register(Target{Name: "db", Target: &fakeTarget{checks: []*fakeCheck{ck}},
		Plan: Plan{Schedule: Schedule{Every: 24 * time.Hour}, Window: Window{Start: "0 23 * * *", Duration: time.Hour + budget}}})
	h.s.Start()
	h.block(2)
	h.clk.Advance(24 * time.Hour)
	r := h.run()
	if want := t0.Add(24*time.Hour + budget); !r.Deadline.Equal(want) {
		t.Fatalf("deadline %s, want %s", r.Deadline, want)
	}
	if st := taskStates(r); st["t1"] != checks.TaskCompleted || st["t2"] != checks.TaskNotCovered {
		t.Fatalf("tasks %v", st)
	}
	if _, ok := r.Cycles["heap"]; !ok {
		t.Fatal("the cycle should stay open")
	}
}

// TestRollingCoverageRealClock: on a real clock the run's tasks are
// recorded as verified at the run's start, which must count as inside the
// cycle the run opened.
func TestRollingCoverageRealClock(t *testing.T) {
	runs := make(chan *history.Run, 10)
	s, err := New(context.Background(), WithOnRun(func(_ context.Context, r *history.Run) { runs <- r }))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	ck := newCheck("heap", tasksOf(3)...)
	ck.setRun("t1", slow(3*budget))
	if err := s.Register(context.Background(), Target{Name: "db", Target: &fakeTarget{checks: []*fakeCheck{ck}}, Plan: Plan{Schedule: Schedule{Every: 24 * time.Hour}, Budget: budget}}); err != nil {
		t.Fatal(err)
	}
	for night := 1; night <= 2; night++ {
		ck.set(func(c *fakeCheck) { c.ran = nil })
		if err := s.RunNow(context.Background(), "db"); err != nil {
			t.Fatal(err)
		}
		<-runs
		if night == 1 {
			ck.setRun("t1", nil)
		}
	}
	if got := ck.ranKeys(); !slices.Equal(got, []string{"t2", "t3"}) {
		t.Fatalf("night 2 ran %v, want [t2 t3]: t1 was verified in the cycle", got)
	}
}
