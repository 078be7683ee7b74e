package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/scheduler/history"
)

func TestSchedules(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	tests := []struct {
		name     string
		schedule Schedule
		want     []time.Time // successive run starts, UTC
	}{
		{"cron in UTC", Schedule{Cron: "30 2 * * *"}, []time.Time{t0.Add(2*time.Hour + 30*time.Minute), t0.Add(26*time.Hour + 30*time.Minute)}},
		{"cron with Location", Schedule{Cron: "0 2 * * *", Location: ny}, []time.Time{t0.Add(7 * time.Hour), t0.Add(31 * time.Hour)}},
		{"cron with CRON_TZ", Schedule{Cron: "CRON_TZ=America/New_York 0 2 * * 1-5"}, []time.Time{t0.Add(7 * time.Hour), t0.Add(31 * time.Hour)}},
		{"interval", Schedule{Every: 6 * time.Hour}, []time.Time{t0.Add(6 * time.Hour), t0.Add(12 * time.Hour)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.register(Target{Name: "db", Target: &fakeTarget{checks: []*fakeCheck{newCheck("heap", tasksOf(2)...)}}, Plan: Plan{Schedule: tt.schedule}})
			h.s.Start()
			for _, want := range tt.want {
				h.block(2) // the target's job and the evaluation job
				st, err := h.s.Status(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if !st[0].NextRun.Equal(want) {
					t.Fatalf("next run = %s, want %s", st[0].NextRun.UTC(), want)
				}
				h.clk.Advance(want.Sub(h.clk.Now()) - time.Second)
				h.noRun() // no timer expired: nothing can have started
				h.clk.Advance(time.Second)
				r := h.run()
				if !r.StartedAt.Equal(want) || r.Trigger != history.TriggerSchedule || r.Status != checks.StatusHealthy {
					t.Fatalf("run = %s %s %s, want a healthy scheduled run at %s", r.StartedAt.UTC(), r.Trigger, r.Status, want)
				}
			}
		})
	}
}

func TestJitter(t *testing.T) {
	h := newHarness(t)
	h.s.cfg.jitter = func(max time.Duration) time.Duration {
		if max != 30*time.Minute {
			t.Errorf("jitter max = %s", max)
		}
		return 10 * time.Minute
	}
	h.register(Target{Name: "db", Target: &fakeTarget{checks: []*fakeCheck{newCheck("heap", tasksOf(1)...)}},
		Plan: Plan{Schedule: Schedule{Cron: "0 2 * * *"}, Jitter: 30 * time.Minute}})
	h.s.Start()
	h.block(2)
	h.clk.Advance(2 * time.Hour)
	h.block(3) // the jitter timer, the next fire, the evaluation job
	h.noRun()
	h.clk.Advance(10 * time.Minute)
	if r := h.run(); !r.StartedAt.Equal(t0.Add(2*time.Hour + 10*time.Minute)) {
		t.Fatalf("run started at %s, want 02:10", r.StartedAt)
	}
}

func TestWindow(t *testing.T) {
	h := newHarness(t)
	ck := newCheck("heap", tasksOf(2)...)
	h.register(Target{Name: "db", Target: &fakeTarget{checks: []*fakeCheck{ck}},
		Plan: Plan{Schedule: Schedule{Every: time.Hour}, Window: Window{Start: "0 1 * * *", Duration: 2 * time.Hour}, Budget: 4 * time.Hour}})
	h.s.Start()

	h.block(2)
	h.clk.Advance(time.Hour) // 01:00: the window opens
	r := h.run()
	if want := t0.Add(3 * time.Hour); !r.Deadline.Equal(want) {
		t.Errorf("deadline = %s, want the window's close %s (earlier than the budget)", r.Deadline, want)
	}
	h.block(2)
	h.clk.Advance(time.Hour) // 02:00: inside
	if r := h.run(); !r.Deadline.Equal(t0.Add(3 * time.Hour)) {
		t.Errorf("deadline = %s", r.Deadline)
	}
	h.block(2)
	h.clk.Advance(time.Hour) // 03:00: closed (windows are half-open)
	if got := h.skip(); got != "db:outside_window" {
		t.Fatalf("skip = %q", got)
	}
	h.noRun()
	if got := len(ck.ranKeys()); got != 4 {
		t.Fatalf("ran %d tasks, want 4 (two runs)", got)
	}
}

func TestWindowClosesWhileQueued(t *testing.T) {
	h := newHarness(t, WithMaxConcurrent(1))
	b := newBlocker()
	busy := newCheck("heap", fakeTask{key: "t", object: "o", cost: 1, run: b.run("busy")})
	h.register(Target{Name: "busy", Target: &fakeTarget{checks: []*fakeCheck{busy}}, Plan: Plan{Schedule: Schedule{Every: 7 * 24 * time.Hour}}})
	h.register(Target{Name: "db", Target: &fakeTarget{checks: []*fakeCheck{newCheck("heap", tasksOf(1)...)}},
		Plan: Plan{Schedule: Schedule{Cron: "0 1 * * *"}, Window: Window{Start: "0 1 * * *", Duration: time.Hour}}})
	queued := make(chan struct{}, 10)
	h.s.lim.onQueue = func() { queued <- struct{}{} }
	h.s.Start()
	if err := h.s.RunNow(context.Background(), "busy"); err != nil {
		t.Fatal(err)
	}
	b.waitStarted(t)
	h.block(3)
	h.clk.Advance(time.Hour) // 01:00: db fires inside its window, and queues
	<-queued
	h.block(3)
	h.clk.Advance(time.Hour) // 02:00: the window has closed
	close(b.release)
	if r := h.run(); r.Target != "busy" {
		t.Fatalf("run of %s", r.Target)
	}
	if got := h.skip(); got != "db:window_closed" {
		t.Fatalf("skip %q", got)
	}
	h.noRun()
}

func TestWindowParsingAndContains(t *testing.T) {
	w, err := ParseWindow("22:00-02:00", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	cw, err := w.compile(time.UTC, t0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		at       time.Time
		open     bool
		closesAt time.Time
	}{
		{t0.Add(-time.Hour), true, t0.Add(2 * time.Hour)}, // 23:00 the day before
		{t0.Add(time.Hour), true, t0.Add(2 * time.Hour)},
		{t0.Add(2 * time.Hour), false, time.Time{}},
		{t0.Add(12 * time.Hour), false, time.Time{}},
		{t0.Add(22 * time.Hour), true, t0.Add(26 * time.Hour)},
	}
	for _, tt := range tests {
		closes, open := cw.at(tt.at)
		if open != tt.open || !closes.Equal(tt.closesAt) {
			t.Errorf("at %s: open=%v closes=%s, want %v %s", tt.at, open, closes, tt.open, tt.closesAt)
		}
	}
	for _, bad := range []string{"", "25:00-01:00", "1-2", "01:00"} {
		if _, err := ParseWindow(bad, nil); !errors.Is(err, checks.ErrInvalidOption) {
			t.Errorf("ParseWindow(%q) = %v, want ErrInvalidOption", bad, err)
		}
	}
}

func TestRegisterValidation(t *testing.T) {
	ft := &fakeTarget{}
	ok := Plan{Schedule: Schedule{Every: time.Hour}}
	tests := []struct {
		name string
		t    Target
	}{
		{"no name", Target{Target: ft, Plan: ok}},
		{"no target", Target{Name: "x", Plan: ok}},
		{"both target and open", Target{Name: "x", Target: ft, Open: func(context.Context) (checks.Target, error) { return ft, nil }, Plan: ok}},
		{"no schedule", Target{Name: "x", Target: ft}},
		{"both cron and every", Target{Name: "x", Target: ft, Plan: Plan{Schedule: Schedule{Cron: "* * * * *", Every: time.Hour}}}},
		{"bad cron", Target{Name: "x", Target: ft, Plan: Plan{Schedule: Schedule{Cron: "61 * * * *"}}}},
		{"negative budget", Target{Name: "x", Target: ft, Plan: Plan{Schedule: ok.Schedule, Budget: -1}}},
		{"window without duration", Target{Name: "x", Target: ft, Plan: Plan{Schedule: ok.Schedule, Window: Window{Start: "0 1 * * *"}}}},
		{"bad runner option", Target{Name: "x", Target: ft, Plan: Plan{Schedule: ok.Schedule, Options: []checks.Option{checks.WithJobs(0)}}}},
	}
	h := newHarness(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := h.s.Register(context.Background(), tt.t); !errors.Is(err, checks.ErrInvalidOption) {
				t.Fatalf("Register = %v, want ErrInvalidOption", err)
			}
		})
	}
	h.register(Target{Name: "dup", Target: ft, Plan: ok})
	if err := h.s.Register(context.Background(), Target{Name: "dup", Target: ft, Plan: ok}); !errors.Is(err, ErrDuplicateTarget) {
		t.Fatalf("duplicate Register = %v", err)
	}
	if err := h.s.RunNow(context.Background(), "nope"); !errors.Is(err, ErrUnknownTarget) {
		t.Fatalf("RunNow unknown = %v", err)
	}
	for _, o := range []Option{WithMaxConcurrent(0), WithMaxPerServer(0), WithEvaluateEvery(0), WithRetention(-time.Hour), WithClock(nil), WithStore(nil)} {
		if _, err := New(context.Background(), o); !errors.Is(err, checks.ErrInvalidOption) {
			t.Errorf("New with a bad option = %v, want ErrInvalidOption", err)
		}
	}
}

func TestDefaultSLA(t *testing.T) {
	tg := Target{Name: "x", Target: &fakeTarget{}, Plan: Plan{Schedule: Schedule{Cron: "0 2 * * *"}}}
	_, _, sla, err := tg.validate(time.UTC, t0)
	if err != nil || sla != 48*time.Hour {
		t.Fatalf("daily cron: SLA %s %v, want 48h", sla, err)
	}
	tg.Plan = Plan{Schedule: Schedule{Every: time.Hour}, Window: Window{Start: "0 1 * * 6", Duration: time.Hour}}
	if _, _, sla, _ = tg.validate(time.UTC, t0); sla != 14*24*time.Hour {
		t.Fatalf("weekly window: SLA %s, want 336h", sla)
	}
	tg.Plan.SLA = -1
	if _, _, sla, _ = tg.validate(time.UTC, t0); sla >= 0 {
		t.Fatalf("disabled SLA = %s", sla)
	}
}

// blocker is a task that signals when it starts and waits to be released
// (or for its context).
type blocker struct {
	started chan string
	release chan struct{}
}

func newBlocker() *blocker {
	return &blocker{started: make(chan string, 100), release: make(chan struct{})}
}

func (b *blocker) run(key string) func(ctx context.Context) (checks.Result, error) {
	return func(ctx context.Context) (checks.Result, error) {
		b.started <- key
		select {
		case <-b.release:
			return checks.Result{Objects: 1, Bytes: 1}, nil
		case <-ctx.Done():
			return checks.Result{}, ctx.Err()
		}
	}
}

func (b *blocker) waitStarted(t *testing.T) string {
	t.Helper()
	select {
	case k := <-b.started:
		return k
	case <-time.After(waitFor):
		t.Fatal("task never started")
	}
	return ""
}

func TestSingletonRunNowAndGate(t *testing.T) {
	h := newHarness(t)
	b := newBlocker()
	ck := newCheck("heap", fakeTask{key: "t1", object: "public.t1", cost: 1, run: b.run("t1")})
	h.register(Target{Name: "db", Target: &fakeTarget{checks: []*fakeCheck{ck}}, Plan: Plan{Schedule: Schedule{Every: time.Hour}}})
	h.s.Start()

	if err := h.s.RunNow(context.Background(), "db"); err != nil {
		t.Fatal(err)
	}
	b.waitStarted(t)
	if err := h.s.RunNow(context.Background(), "db"); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second RunNow = %v, want ErrAlreadyRunning", err)
	}
	// The schedule fires while the manual run is in progress: skipped.
	h.block(2)
	h.clk.Advance(time.Hour)
	if got := h.skip(); got != "db:already_running" {
		t.Fatalf("skip = %q", got)
	}
	// A gate waits for the run in progress, then runs.
	type result struct {
		rep *checks.Report
		err error
	}
	gate := make(chan result, 1)
	go func() {
		rep, err := h.s.Check(context.Background(), "db")
		gate <- result{rep, err}
	}()
	close(b.release)
	res := <-gate
	// Both runs are recorded, the manual one first.
	h.run()
	h.run()
	runs, err := h.store.Runs(context.Background(), history.RunQuery{Target: "db"})
	if err != nil || len(runs) != 2 || runs[1].Trigger != history.TriggerManual || runs[0].Trigger != history.TriggerGate {
		t.Fatalf("runs %+v %v, want a manual run then a gate", runs, err)
	}
	if res.err != nil || res.rep.Status != checks.StatusHealthy {
		t.Fatalf("Check = %v, %v", res.rep.Status, res.err)
	}
}

func TestCheckGateVerdicts(t *testing.T) {
	h := newHarness(t)
	ck := newCheck("heap", tasksOf(2)...)
	ck.setRun("t2", corruptRun("public.t2", "invalid page header"))
	h.register(Target{Name: "db", Target: &fakeTarget{checks: []*fakeCheck{ck}}, Plan: Plan{Schedule: Schedule{Every: 24 * time.Hour}}})
	rep, err := h.s.Check(context.Background(), "db")
	if !errors.Is(err, checks.ErrCorrupt) || rep.Status != checks.StatusCorrupt {
		t.Fatalf("Check = %v %v, want corrupt", rep.Status, err)
	}
	h.run()
	ck.setRun("t2", func(context.Context) (checks.Result, error) { return checks.Result{}, errServerGone })
	if _, err := h.s.Check(context.Background(), "db"); !errors.Is(err, checks.ErrNotVerified) {
		t.Fatalf("Check = %v, want ErrNotVerified", err)
	}
	h.run()
	// A cancelled gate is not verified, and is recorded as such.
	b := newBlocker()
	ck.setRun("t2", b.run("t2"))
	ctx, cancel := context.WithCancel(context.Background())
	go func() { b.waitStarted(t); cancel() }()
	rep, err = h.s.Check(ctx, "db")
	if !errors.Is(err, checks.ErrNotVerified) || rep.Status != checks.StatusError {
		t.Fatalf("cancelled Check = %v %v", rep.Status, err)
	}
	if r := h.run(); r.Status != checks.StatusError {
		t.Fatalf("recorded %s", r.Status)
	}
}

func TestConcurrencyLimits(t *testing.T) {
	h := newHarness(t, WithMaxConcurrent(2), WithMaxPerServer(1))
	queued := make(chan struct{}, 10)
	h.s.lim.onQueue = func() { queued <- struct{}{} }
	b := newBlocker()
	var mu sync.Mutex
	active, maxActive := map[string]int{}, map[string]int{}
	var total, maxTotal int32
	mk := func(name, host string) Target {
		run := b.run(name)
		task := fakeTask{key: "t", object: "o", cost: 1, run: func(ctx context.Context) (checks.Result, error) {
			mu.Lock()
			active[host]++
			maxActive[host] = max(maxActive[host], active[host])
			mu.Unlock()
			n := atomic.AddInt32(&total, 1)
			for m := atomic.LoadInt32(&maxTotal); n > m && !atomic.CompareAndSwapInt32(&maxTotal, m, n); m = atomic.LoadInt32(&maxTotal) {
			}
			defer func() {
				mu.Lock()
				active[host]--
				mu.Unlock()
				atomic.AddInt32(&total, -1)
			}()
			return run(ctx)
		}}
		return Target{Name: name, Target: &fakeTarget{info: checks.TargetInfo{Engine: "postgresql", Host: host, Port: 5432}, checks: []*fakeCheck{newCheck("heap", task)}},
			Plan: Plan{Schedule: Schedule{Every: 24 * time.Hour}}}
	}
	for _, tg := range []Target{mk("a1", "h1"), mk("a2", "h1"), mk("a3", "h1"), mk("b1", "h2")} {
		h.register(tg)
		if err := h.s.RunNow(context.Background(), tg.Name); err != nil {
			t.Fatal(err)
		}
	}
	// Two start (one per server); the two other h1 targets queue.
	b.waitStarted(t)
	b.waitStarted(t)
	for range 2 {
		select {
		case <-queued:
		case <-time.After(waitFor):
			t.Fatal("runs never queued")
		}
	}
	if n := h.s.lim.running(); n != 2 {
		t.Fatalf("%d runs hold a slot, want 2", n)
	}
	close(b.release)
	for range 4 {
		if r := h.run(); r.Status != checks.StatusHealthy {
			t.Fatalf("%s: %s", r.Target, r.Status)
		}
	}
	if maxActive["h1"] != 1 || maxActive["h2"] != 1 || maxTotal > 2 {
		t.Fatalf("max active per server %v, in total %d", maxActive, maxTotal)
	}
}

func TestShutdownInterruptsRuns(t *testing.T) {
	h := newHarness(t)
	b := newBlocker()
	ck := newCheck("heap", fakeTask{key: "t1", object: "public.big", cost: 3, run: b.run("t1")},
		fakeTask{key: "t2", object: "public.t2", cost: 2}, fakeTask{key: "t3", object: "public.t3", cost: 1})
	h.register(Target{Name: "db", Target: &fakeTarget{checks: []*fakeCheck{ck}}, Plan: Plan{Schedule: Schedule{Every: 24 * time.Hour}}})
	h.s.Start()
	if err := h.s.RunNow(context.Background(), "db"); err != nil {
		t.Fatal(err)
	}
	b.waitStarted(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := h.s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	r := h.run()
	if r.Status != checks.StatusError {
		t.Fatalf("interrupted run is %s, want error", r.Status)
	}
	st := taskStates(r)
	if st["t1"] != checks.TaskFailed || st["t2"] != checks.TaskCancelled || st["t3"] != checks.TaskCancelled {
		t.Fatalf("task states %v", st)
	}
	if !strings.Contains(r.Reason, "interrupted") || !strings.Contains(r.Reason, ErrClosed.Error()) {
		t.Fatalf("reason %q does not say it was interrupted by the shutdown", r.Reason)
	}
	// Recorded in the history, and alarmed.
	runs, err := h.store.Runs(context.Background(), history.RunQuery{Target: "db"})
	if err != nil || len(runs) != 1 || runs[0].Status != checks.StatusError {
		t.Fatalf("history: %+v %v", runs, err)
	}
	as := h.notification()
	if len(as) != 1 || as[0].Kind != "not_verified" || as[0].Check != "heap" {
		t.Fatalf("alarms %+v", as)
	}
	// Everything refuses work afterwards.
	if err := h.s.RunNow(context.Background(), "db"); !errors.Is(err, ErrClosed) {
		t.Fatalf("RunNow after shutdown = %v", err)
	}
	if _, err := h.s.Check(context.Background(), "db"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Check after shutdown = %v", err)
	}
	if err := h.s.Register(context.Background(), Target{Name: "x", Target: &fakeTarget{}, Plan: Plan{Schedule: Schedule{Every: time.Hour}}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Register after shutdown = %v", err)
	}
}

func TestOpenPerRunAndServerLearning(t *testing.T) {
	h := newHarness(t)
	ft := &closingTarget{fakeTarget: fakeTarget{info: checks.TargetInfo{Engine: "postgresql", Name: "postgres://app@db1:5432/app", Host: "db1", Port: 5432, Database: "app"},
		checks: []*fakeCheck{newCheck("heap", tasksOf(1)...)}}}
	opens := 0
	h.register(Target{Name: "db", Open: func(context.Context) (checks.Target, error) { opens++; return ft, nil }, Plan: Plan{Schedule: Schedule{Every: 24 * time.Hour}}})
	h.runNow("db")
	h.runNow("db")
	if opens != 2 || ft.closed.Load() != 2 {
		t.Fatalf("opened %d, closed %d times, want 2 and 2", opens, ft.closed.Load())
	}
	st, _ := h.s.Status(context.Background())
	if st[0].Server != "db1:5432" {
		t.Fatalf("server = %q, want it learned from the target's info", st[0].Server)
	}
}

type closingTarget struct {
	fakeTarget
	closed atomic.Int32
}

func (c *closingTarget) Close() error { c.closed.Add(1); return nil }

func TestCounters(t *testing.T) {
	h := newHarness(t)
	var got []int64
	ck := newCheck("checksums", fakeTask{key: "db", object: "database app", cost: 1, run: func(ctx context.Context) (checks.Result, error) {
		c, ok := CountersFrom(ctx)
		if !ok {
			return checks.Result{}, errors.New("no counters in the run context")
		}
		last, seen, err := c.Last(ctx, "checksum_failures")
		if err != nil {
			return checks.Result{}, err
		}
		if seen {
			got = append(got, last.Value)
		}
		return checks.Result{Objects: 1}, c.Set(ctx, "checksum_failures", int64(len(got)+3))
	}})
	h.register(Target{Name: "db", Target: &fakeTarget{checks: []*fakeCheck{ck}}, Plan: Plan{Schedule: Schedule{Every: 24 * time.Hour}}})
	h.runNow("db")
	h.runNow("db")
	if len(got) != 1 || got[0] != 3 {
		t.Fatalf("counter values seen: %v, want [3]", got)
	}
}

func TestRetention(t *testing.T) {
	h := newHarness(t, WithRetention(48*time.Hour))
	h.register(Target{Name: "db", Target: &fakeTarget{checks: []*fakeCheck{newCheck("heap", tasksOf(1)...)}}, Plan: Plan{Schedule: Schedule{Every: 7 * 24 * time.Hour}}})
	old := h.runNow("db")
	h.clk.Advance(24 * time.Hour)
	recent := h.runNow("db")
	h.clk.Advance(25 * time.Hour)
	h.s.prune() // the hourly retention job's work
	ctx := context.Background()
	if _, err := h.store.Run(ctx, old.ID); !errors.Is(err, history.ErrNotFound) {
		t.Fatalf("run older than the retention: %v", err)
	}
	if _, err := h.store.Run(ctx, recent.ID); err != nil {
		t.Fatal(err)
	}
	st, _ := h.s.Status(ctx)
	if len(st[0].Checks) != 1 || !st[0].Checks[0].LastSuccessAt.Equal(recent.StartedAt) {
		t.Fatalf("current state lost: %+v", st[0].Checks)
	}
}

func TestUnregister(t *testing.T) {
	h := newHarness(t)
	sched := Plan{Schedule: Schedule{Cron: "0 2 * * *"}}
	h.register(Target{Name: "a", Target: &fakeTarget{checks: []*fakeCheck{newCheck("heap", tasksOf(1)...)}}, Plan: sched})
	h.register(Target{Name: "b", Target: &fakeTarget{checks: []*fakeCheck{newCheck("heap", tasksOf(1)...)}}, Plan: sched})
	if len(h.s.groups) != 1 {
		t.Fatalf("%d groups, want one timer for a shared schedule", len(h.s.groups))
	}
	if err := h.s.Unregister("a"); err != nil {
		t.Fatal(err)
	}
	if err := h.s.RunNow(context.Background(), "a"); !errors.Is(err, ErrUnknownTarget) {
		t.Fatalf("RunNow = %v", err)
	}
	if err := h.s.Unregister("a"); !errors.Is(err, ErrUnknownTarget) {
		t.Fatalf("Unregister twice = %v", err)
	}
	h.s.Start()
	h.block(2)
	h.clk.Advance(2 * time.Hour)
	if r := h.run(); r.Target != "b" {
		t.Fatalf("run of %s", r.Target)
	}
	h.noRun()
	if err := h.s.Unregister("b"); err != nil {
		t.Fatal(err)
	}
	if len(h.s.groups) != 0 {
		t.Fatal("the empty group's job was not removed")
	}
	// The name can be registered again.
	h.register(Target{Name: "a", Target: &fakeTarget{checks: []*fakeCheck{newCheck("heap", tasksOf(1)...)}}, Plan: sched})
}

// failingStore fails RecordRun while fail is set.
type failingStore struct {
	history.Store
	fail atomic.Bool
}

func (f *failingStore) RecordRun(ctx context.Context, run *history.Run) (int64, error) {
	if f.fail.Load() {
		return 0, errors.New("disk full")
	}
	return f.Store.RecordRun(ctx, run)
}

// TestCountersCommittedAfterRecord: a value set during a run is seen by
// the run itself at once, and stored only once the run is recorded, so a
// run whose findings were lost does not move the counter past them.
func TestCountersCommittedAfterRecord(t *testing.T) {
	store := &failingStore{Store: history.NewMemory()}
	h := newHarness(t, WithStore(store))
	next := int64(5)
	var seen []int64
	ck := newCheck("checksums", fakeTask{key: "db", object: "database app", cost: 1, run: func(ctx context.Context) (checks.Result, error) {
		c, ok := checks.CountersFrom(ctx) // what a driver uses
		if !ok {
			return checks.Result{}, errors.New("no counters in the run context")
		}
		last, found, err := c.Last(ctx, "checksum_failures")
		if err != nil {
			return checks.Result{}, err
		}
		if !found {
			last.Value = -1
		}
		seen = append(seen, last.Value)
		if err := c.Set(ctx, "checksum_failures", next); err != nil {
			return checks.Result{}, err
		}
		if now, _, _ := c.Last(ctx, "checksum_failures"); now.Value != next {
			return checks.Result{}, fmt.Errorf("Last after Set = %d, want %d", now.Value, next)
		}
		return checks.Result{Objects: 1}, nil
	}})
	h.register(Target{Name: "db", Target: &fakeTarget{checks: []*fakeCheck{ck}}, Plan: Plan{Schedule: Schedule{Every: 24 * time.Hour}}})
	if r := h.runNow("db"); r.Status != checks.StatusHealthy {
		t.Fatalf("run: %s %s", r.Status, r.Reason)
	}
	store.fail.Store(true)
	next = 9
	h.runNow("db") // not recorded: the counter stays at 5
	if c, _, _ := store.Counter(context.Background(), "db", "checksum_failures"); c.Value != 5 || !c.SeenAt.Equal(t0) {
		t.Fatalf("counter after an unrecorded run: %+v", c)
	}
	store.fail.Store(false)
	h.runNow("db")
	if c, _, _ := store.Counter(context.Background(), "db", "checksum_failures"); c.Value != 9 {
		t.Fatalf("counter: %+v", c)
	}
	if want := []int64{-1, 5, 5}; !slices.Equal(seen, want) {
		t.Fatalf("values seen %v, want %v", seen, want)
	}
}
