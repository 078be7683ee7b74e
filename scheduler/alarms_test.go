package scheduler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/scheduler/alarm"
)

var labels = map[string]string{"owner": "alice", "team": "payments", "runbook_url": "https://runbooks.example/db"}

func one(t *testing.T, as []alarm.Alarm) alarm.Alarm {
	t.Helper()
	if len(as) != 1 {
		t.Fatalf("got %d alarms, want 1: %+v", len(as), as)
	}
	return as[0]
}

func TestAlarmCorruptionLifecycle(t *testing.T) {
	h := newHarness(t, WithAlarmOptions(alarm.WithRenotify(time.Hour)))
	ck := newCheck("heap", tasksOf(2)...)
	ck.setRun("t2", corruptRun("public.orders", "invalid page header in block 7"))
	h.register(Target{Name: "orders", Labels: labels, Target: &fakeTarget{info: checks.TargetInfo{Engine: "postgresql", Name: "postgres://app@db1/orders"}, checks: []*fakeCheck{ck}},
		Plan: Plan{Schedule: Schedule{Every: 7 * 24 * time.Hour}}})

	// Fire once per new problem.
	h.runNow("orders")
	a := one(t, h.notification())
	if a.Kind != alarm.KindCorruption || a.State != alarm.StateFiring || a.Severity != alarm.SeverityCritical || a.Check != "heap" || a.Target != "orders" {
		t.Fatalf("alarm %+v", a)
	}
	if !strings.Contains(a.Summary, "Corruption found in orders") || !strings.Contains(a.Summary, "public.orders") {
		t.Fatalf("summary %q", a.Summary)
	}
	if a.Labels["team"] != "payments" || a.RunbookURL() != "https://runbooks.example/db" || a.FindingsTotal != 1 || len(a.Findings) != 1 || !a.FirstSeen.Equal(t0) {
		t.Fatalf("alarm %+v", a)
	}

	// The same problem again: no new notification.
	h.clk.Advance(30 * time.Minute)
	h.runNow("orders")
	h.noNotification()
	h.s.EvaluateAlarms()
	h.noNotification()

	// Re-notify once the interval has passed, not before.
	h.clk.Advance(31 * time.Minute)
	h.s.EvaluateAlarms()
	a = one(t, h.notification())
	if a.State != alarm.StateFiring || !a.FirstSeen.Equal(t0) || !a.LastSeen.Equal(t0.Add(30*time.Minute)) {
		t.Fatalf("re-notification %+v", a)
	}
	h.s.EvaluateAlarms()
	h.noNotification()

	// Resolved when a later run is healthy; once.
	ck.setRun("t2", nil)
	h.clk.Advance(time.Minute)
	h.runNow("orders")
	a = one(t, h.notification())
	if a.State != alarm.StateResolved || !a.ResolvedAt.Equal(t0.Add(62*time.Minute)) {
		t.Fatalf("resolution %+v", a)
	}
	h.runNow("orders")
	h.clk.Advance(2 * time.Hour)
	h.s.EvaluateAlarms()
	h.noNotification()
}

func TestAlarmCorruptionNotResolvedByAnIncompleteRun(t *testing.T) {
	h := newHarness(t)
	ck := newCheck("heap", tasksOf(2)...)
	ck.setRun("t1", corruptRun("public.t1", "bad"))
	h.register(Target{Name: "db", Target: &fakeTarget{checks: []*fakeCheck{ck}}, Plan: Plan{Schedule: Schedule{Every: 7 * 24 * time.Hour}}})
	h.runNow("db")
	one(t, h.notification())
	// The corrupt object's task now fails: not proved clean, so the
	// corruption alarm keeps firing (and not_verified fires).
	ck.setRun("t1", func(context.Context) (checks.Result, error) { return checks.Result{}, errServerGone })
	h.runNow("db")
	a := one(t, h.notification())
	if a.Kind != alarm.KindNotVerified {
		t.Fatalf("got %+v", a)
	}
	if r, _ := h.s.Alarms().Get(alarm.Key{Target: "db", Check: "heap", Kind: alarm.KindCorruption}); r.State != alarm.StateFiring {
		t.Fatalf("corruption alarm %s", r.State)
	}
}

func TestAlarmNotVerifiedServerStoppedMidCheck(t *testing.T) {
	h := newHarness(t)
	stop := make(chan struct{})
	started := make(chan struct{})
	ck := newCheck("heap", tasksOf(2)...)
	ck.setRun("t1", func(ctx context.Context) (checks.Result, error) {
		close(started)
		<-stop // the server goes away while the task runs
		return checks.Result{}, fmt.Errorf("reading block 42: %w", errServerGone)
	})
	ck.setRun("t2", func(context.Context) (checks.Result, error) {
		return checks.Result{}, errors.New("dial tcp 10.0.0.1:5432: connect: connection refused")
	})
	h.register(Target{Name: "db", Labels: labels, Target: &fakeTarget{checks: []*fakeCheck{ck}}, Plan: Plan{Schedule: Schedule{Every: 7 * 24 * time.Hour}}})
	if err := h.s.RunNow(context.Background(), "db"); err != nil {
		t.Fatal(err)
	}
	<-started
	close(stop)
	r := h.run()
	if r.Status != checks.StatusError {
		t.Fatalf("status %s, want error", r.Status)
	}
	a := one(t, h.notification())
	if a.Kind != alarm.KindNotVerified || a.Check != "heap" || a.Severity != alarm.SeverityWarning || !strings.Contains(a.Description, "server closed the connection") {
		t.Fatalf("alarm %+v", a)
	}
	ck.setRun("t1", nil)
	ck.setRun("t2", nil)
	h.runNow("db")
	if a := one(t, h.notification()); a.State != alarm.StateResolved || a.Kind != alarm.KindNotVerified {
		t.Fatalf("alarm %+v", a)
	}
}

func TestAlarmNotVerifiedUnreachable(t *testing.T) {
	h := newHarness(t)
	var down atomic.Bool
	down.Store(true)
	ft := &fakeTarget{info: checks.TargetInfo{Engine: "postgresql", Name: "postgres://app@db1/app"}, checks: []*fakeCheck{newCheck("heap", tasksOf(1)...)}}
	h.register(Target{Name: "db", Labels: labels, Open: func(ctx context.Context) (checks.Target, error) {
		if down.Load() {
			return nil, errors.New("dial tcp 10.0.0.1:5432: connect: connection refused")
		}
		return ft, nil
	}, Plan: Plan{Schedule: Schedule{Every: 7 * 24 * time.Hour}}})
	r := h.runNow("db")
	if r.Status != checks.StatusError || len(r.Report.Checks) != 0 {
		t.Fatalf("run %s %+v", r.Status, r.Report)
	}
	a := one(t, h.notification())
	if a.Kind != alarm.KindNotVerified || a.Check != "" || !strings.Contains(a.Summary, "connection refused") {
		t.Fatalf("alarm %+v", a)
	}
	h.runNow("db")
	h.noNotification()
	down.Store(false)
	h.runNow("db")
	if a := one(t, h.notification()); a.State != alarm.StateResolved || a.Check != "" {
		t.Fatalf("alarm %+v", a)
	}
}

func TestAlarmRisk(t *testing.T) {
	h := newHarness(t)
	ck := newCheck("settings", fakeTask{key: "checksums", object: "cluster", cost: 1, run: warningRun("cluster", "data checksums are off")})
	h.register(Target{Name: "db", Target: &fakeTarget{checks: []*fakeCheck{ck}}, Plan: Plan{Schedule: Schedule{Every: 7 * 24 * time.Hour}}})
	r := h.runNow("db")
	if r.Status != checks.StatusWarning {
		t.Fatalf("status %s", r.Status)
	}
	a := one(t, h.notification())
	if a.Kind != alarm.KindRisk || a.Severity != alarm.SeverityWarning || !strings.Contains(a.Summary, "checksums are off") {
		t.Fatalf("alarm %+v", a)
	}
	ck.setRun("checksums", nil)
	h.runNow("db")
	if a := one(t, h.notification()); a.State != alarm.StateResolved {
		t.Fatalf("alarm %+v", a)
	}
}

func TestAlarmStaleByPeriodicEvaluation(t *testing.T) {
	h := newHarness(t, WithEvaluateEvery(time.Hour))
	h.register(Target{Name: "db", Labels: labels, Target: &fakeTarget{checks: []*fakeCheck{newCheck("heap", tasksOf(2)...)}},
		Plan: Plan{Schedule: Schedule{Every: 7 * 24 * time.Hour}, SLA: 26 * time.Hour}})
	h.s.Start()
	h.runNow("db") // healthy at t0
	// Land between evaluations: a fake clock moved exactly onto an
	// interval's multiple makes gocron catch up onto "now" over and over.
	h.block(2)
	h.clk.Advance(25*time.Hour + 30*time.Minute) // evaluated: within the SLA
	h.block(2)
	h.clk.Advance(time.Hour) // the 26:00 evaluation sees 26:30: stale
	a := one(t, h.notification())
	if a.Kind != alarm.KindStale || a.Check != "heap" || a.Severity != alarm.SeverityCritical || !strings.Contains(a.Summary, "No successful heap check of db since 2025-01-06T00:00:00Z (SLA 26h0m0s)") {
		t.Fatalf("alarm %+v", a)
	}
	h.runNow("db") // a successful check lands: resolved
	var resolved alarm.Alarm
	for resolved.State != alarm.StateResolved { // a concurrent evaluation may re-send nothing; skip unrelated batches
		resolved = one(t, h.notification())
	}
	if resolved.Kind != alarm.KindStale {
		t.Fatalf("alarm %+v", resolved)
	}
}

func TestAlarmStaleObjectNotVerified(t *testing.T) {
	h := newHarness(t)
	ck := newCheck("heap", tasksOf(3)...)
	h.register(Target{Name: "db", Target: &fakeTarget{checks: []*fakeCheck{ck}}, Plan: Plan{Schedule: Schedule{Every: 7 * 24 * time.Hour}, SLA: 26 * time.Hour, Budget: budget}})
	// Every task outlasts the budget: each night verifies one object (the
	// check succeeds), rolling coverage moves on to the next.
	for _, k := range []string{"t1", "t2", "t3"} {
		ck.setRun(k, slow(2*budget))
	}
	h.runNow("db") // t1 at t0
	h.clk.Advance(24 * time.Hour)
	h.runNow("db") // t2 at t0+24h
	h.s.EvaluateAlarms()
	h.noNotification()
	h.clk.Advance(2*time.Hour + time.Second) // t1 and t3 are now older than the SLA
	h.s.EvaluateAlarms()
	a := one(t, h.notification())
	if a.Kind != alarm.KindStale || a.Check != "heap" || strings.Contains(a.Summary, "No successful") || !strings.Contains(a.Summary, "public.t") {
		t.Fatalf("alarm %+v", a)
	}
	if !strings.Contains(a.Description, "3 known, 1 never verified") {
		t.Fatalf("description %q", a.Description)
	}
}

func TestAlarmStaleNeverSucceededIsMostUrgent(t *testing.T) {
	h := newHarness(t)
	h.register(Target{Name: "db", Open: func(context.Context) (checks.Target, error) { return nil, errors.New("password authentication failed") },
		Plan: Plan{Schedule: Schedule{Every: 7 * 24 * time.Hour}, SLA: 2 * time.Hour}})
	h.s.EvaluateAlarms()
	h.noNotification() // registered just now: within the SLA
	h.clk.Advance(2*time.Hour + time.Second)
	h.s.EvaluateAlarms()
	a := one(t, h.notification())
	if a.Kind != alarm.KindStale || a.Check != "" || !strings.Contains(a.Summary, "never been checked successfully") {
		t.Fatalf("alarm %+v", a)
	}
	// The gauge says 0, so time() - last_success is huge: first in line.
	if st, _ := h.s.Status(context.Background()); !st[0].LastSuccess.IsZero() {
		t.Fatalf("last success %s", st[0].LastSuccess)
	}
}

func TestSinkFailureDoesNotStopChecks(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	var logs bytes.Buffer
	var calls atomic.Int32
	failing := alarm.FuncSink("broken", func(context.Context, []alarm.Alarm) error {
		calls.Add(1)
		return errors.New("sink is down")
	})
	h := newHarness(t, WithSinks(failing), WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))),
		WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	ck := newCheck("heap", tasksOf(1)...)
	ck.setRun("t1", corruptRun("public.t1", "bad"))
	h.register(Target{Name: "db", Target: &fakeTarget{checks: []*fakeCheck{ck}}, Plan: Plan{Schedule: Schedule{Every: 7 * 24 * time.Hour}}})
	r := h.runNow("db")
	if r.ID == 0 || r.Status != checks.StatusCorrupt {
		t.Fatalf("run %d %s", r.ID, r.Status)
	}
	one(t, h.notification())              // the healthy sink still got it
	h.s.alarms.Tick(context.Background()) // waits for that round; retries the failed sink
	if calls.Load() != 2 || !strings.Contains(logs.String(), "sink is down") {
		t.Fatalf("calls %d, logs %s", calls.Load(), logs.String())
	}
	// Not re-sent to the sink that has it.
	h.noNotification()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "dbscrub.alarm.notifications" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				sink, _ := dp.Attributes.Value("dbscrub.alarm.sink")
				res, _ := dp.Attributes.Value("result")
				got[sink.AsString()+"/"+res.AsString()] = dp.Value
			}
		}
	}
	if got["broken/error"] != 3 || got["test/ok"] != 1 {
		t.Fatalf("notification counts %v", got)
	}
}
