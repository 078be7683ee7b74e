package alarm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/scheduler/alarm"
	"github.com/dbscrub/dbscrub/scheduler/history"
)

var t0 = time.Date(2025, 1, 6, 2, 0, 0, 0, time.UTC)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// recorder is a sink that keeps what it received.
type recorder struct {
	name string
	mu   sync.Mutex
	got  [][]alarm.Alarm
	fail error
}

func (r *recorder) Name() string { return r.name }
func (r *recorder) Send(_ context.Context, as []alarm.Alarm) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, append([]alarm.Alarm(nil), as...))
	return r.fail
}

// take returns and forgets the batches received.
func (r *recorder) take() [][]alarm.Alarm {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.got
	r.got = nil
	return out
}

func (r *recorder) setFail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = err
}

func key(check string, k alarm.Kind) alarm.Key { return alarm.Key{Target: "db", Check: check, Kind: k} }

func cond(k alarm.Key, active bool, summary string) alarm.Condition {
	return alarm.Condition{Key: k, Active: active, Summary: summary, Labels: map[string]string{"team": "x"}}
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	clk := &clock{now: t0}
	rec := &recorder{name: "rec"}
	store := history.NewMemory()
	m, err := alarm.NewManager(ctx, store, alarm.WithSinks(rec), alarm.WithClock(clk.Now), alarm.WithRenotify(time.Hour), alarm.WithSyncDelivery())
	if err != nil {
		t.Fatal(err)
	}
	k := key("heap", alarm.KindCorruption)

	steps := []struct {
		name    string
		advance time.Duration
		conds   []alarm.Condition
		tick    bool
		want    []alarm.State // states notified, in order
	}{
		{"new problem fires", 0, []alarm.Condition{cond(k, true, "bad")}, false, []alarm.State{alarm.StateFiring}},
		{"same problem: deduplicated", 10 * time.Minute, []alarm.Condition{cond(k, true, "bad")}, false, nil},
		{"tick before the interval: nothing", 10 * time.Minute, nil, true, nil},
		{"tick after the interval: re-notified", 41 * time.Minute, nil, true, []alarm.State{alarm.StateFiring}},
		{"again right away: nothing", 0, nil, true, nil},
		{"inactive: resolved", time.Minute, []alarm.Condition{cond(k, false, "")}, false, []alarm.State{alarm.StateResolved}},
		{"resolved stays quiet", 3 * time.Hour, []alarm.Condition{cond(k, false, "")}, true, nil},
		{"back again: fires anew", time.Minute, []alarm.Condition{cond(k, true, "bad again")}, false, []alarm.State{alarm.StateFiring}},
	}
	for _, st := range steps {
		clk.Add(st.advance)
		if err := m.Apply(ctx, st.conds...); err != nil {
			t.Fatal(err)
		}
		if st.tick {
			m.Tick(ctx)
		}
		var got []alarm.State
		for _, b := range rec.take() {
			for _, a := range b {
				got = append(got, a.State)
			}
		}
		if strings.Join(states(got), ",") != strings.Join(states(st.want), ",") {
			t.Fatalf("%s: notified %v, want %v", st.name, got, st.want)
		}
	}
	r, _ := m.Get(k)
	if r.Fired != 2 || !r.FirstSeen.Equal(clk.Now()) || r.Summary != "bad again" || r.Labels["team"] != "x" {
		t.Fatalf("record %+v", r)
	}
	// The state survives a restart: a new manager does not notify again.
	m2, err := alarm.NewManager(ctx, store, alarm.WithSinks(rec), alarm.WithClock(clk.Now), alarm.WithRenotify(time.Hour), alarm.WithSyncDelivery())
	if err != nil {
		t.Fatal(err)
	}
	m2.Apply(ctx, cond(k, true, "bad again"))
	m2.Tick(ctx)
	if got := rec.take(); len(got) != 0 {
		t.Fatalf("after restart: %+v", got)
	}
	if f := m2.Firing(); len(f) != 1 || f[0].Summary != "bad again" {
		t.Fatalf("firing after restart %+v", f)
	}
}

func states(ss []alarm.State) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

func TestFailingSinksAreRetriedAndIsolated(t *testing.T) {
	ctx := context.Background()
	good, bad := &recorder{name: "good"}, &recorder{name: "bad", fail: errors.New("HTTP 503")}
	panicky := alarm.FuncSink("panicky", func(context.Context, []alarm.Alarm) error { panic("boom") })
	var logs bytes.Buffer
	m, err := alarm.NewManager(ctx, nil, alarm.WithSinks(good, bad, panicky), alarm.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))), alarm.WithSyncDelivery())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(ctx, cond(key("heap", alarm.KindNotVerified), true, "cannot connect")); err != nil {
		t.Fatalf("a failing sink must not fail Apply: %v", err)
	}
	if len(good.take()) != 1 || len(bad.take()) != 1 {
		t.Fatal("every sink should have been tried")
	}
	if !strings.Contains(logs.String(), "HTTP 503") || !strings.Contains(logs.String(), "panicked") {
		t.Fatalf("logs: %s", logs.String())
	}
	m.Tick(ctx)
	if len(good.take()) != 0 || len(bad.take()) != 1 {
		t.Fatal("only the failed sink is retried")
	}
	bad.setFail(nil)
	m.Tick(ctx)
	m.Tick(ctx)
	if n := len(bad.take()); n != 1 {
		t.Fatalf("recovered sink got %d batches, want 1", n)
	}
}

func TestResolvedOnlyToSinksThatSawItFire(t *testing.T) {
	ctx := context.Background()
	a, b := &recorder{name: "a"}, &recorder{name: "b", fail: errors.New("down")}
	m, _ := alarm.NewManager(ctx, nil, alarm.WithSinks(a, b), alarm.WithSyncDelivery())
	k := key("heap", alarm.KindRisk)
	m.Apply(ctx, cond(k, true, "checksums off"))
	m.Apply(ctx, cond(k, false, ""))
	b.setFail(nil)
	m.Tick(ctx)
	if got := a.take(); len(got) != 2 || got[1][0].State != alarm.StateResolved {
		t.Fatalf("a got %+v", got)
	}
	if got := b.take(); len(got) != 1 { // the failed firing attempt only
		t.Fatalf("b got %+v: it never learned the alarm fired, so no resolved", got)
	}
}

func TestBatchingSeverityAndEscalation(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{name: "rec"}
	clk := &clock{now: t0}
	m, err := alarm.NewManager(ctx, nil, alarm.WithSinks(rec), alarm.WithMaxBatch(2), alarm.WithClock(clk.Now),
		alarm.WithSeverity(alarm.KindNotVerified, alarm.SeverityCritical), alarm.WithMaxFindings(1), alarm.WithSyncDelivery())
	if err != nil {
		t.Fatal(err)
	}
	var conds []alarm.Condition
	for _, c := range []string{"a", "b", "c", "d", "e"} {
		conds = append(conds, cond(key(c, alarm.KindNotVerified), true, "x"))
	}
	m.Apply(ctx, conds...)
	batches := rec.take()
	if len(batches) != 3 || len(batches[0]) != 2 || batches[0][0].Check != "a" || batches[0][0].Severity != alarm.SeverityCritical {
		t.Fatalf("batches %+v", batches)
	}
	// Findings are capped; the total is kept.
	k := key("heap", alarm.KindRisk)
	c := cond(k, true, "risky")
	c.Severity = alarm.SeverityInfo
	c.Findings = []checks.Finding{{Object: "a"}, {Object: "b"}}
	m.Apply(ctx, c)
	got := rec.take()[0][0]
	if len(got.Findings) != 1 || got.FindingsTotal != 2 || got.Severity != alarm.SeverityInfo {
		t.Fatalf("alarm %+v", got)
	}
	// Escalation notifies at once, whatever the re-notify interval.
	c.Severity = alarm.SeverityCritical
	m.Apply(ctx, c)
	if got := rec.take(); len(got) != 1 || got[0][0].Severity != alarm.SeverityCritical {
		t.Fatalf("escalation %+v", got)
	}
}

func TestBackgroundDeliveryBatchesRuns(t *testing.T) {
	ctx := context.Background()
	block := make(chan struct{})
	inSink := make(chan struct{})
	var mu sync.Mutex
	var batches [][]alarm.Alarm
	first := true
	sink := alarm.FuncSink("slow", func(_ context.Context, as []alarm.Alarm) error {
		mu.Lock()
		wait := first
		first = false
		batches = append(batches, as)
		mu.Unlock()
		if wait {
			close(inSink)
			<-block // the first delivery is slow; meanwhile many runs report
		}
		return nil
	})
	m, err := alarm.NewManager(ctx, nil, alarm.WithSinks(sink))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.Apply(ctx, cond(key("c0", alarm.KindNotVerified), true, "down"))
	<-inSink                   // the first round is in the sink
	for i := 1; i <= 50; i++ { // fifty targets become unreachable
		m.Apply(ctx, cond(key(fmt.Sprintf("c%d", i), alarm.KindNotVerified), true, "down"))
	}
	close(block)
	m.Tick(ctx)
	mu.Lock()
	defer mu.Unlock()
	if len(batches) != 2 || len(batches[1]) != 50 {
		t.Fatalf("%d batches (%d alarms in the second), want 2: a burst is delivered together, not one request per run", len(batches), len(batches[len(batches)-1]))
	}
}

func TestOptionsValidation(t *testing.T) {
	bad := []alarm.Option{alarm.WithRenotify(0), alarm.WithMaxFindings(0), alarm.WithMaxBatch(0), alarm.WithSendTimeout(0), alarm.WithClock(nil),
		alarm.WithLogger(nil), alarm.WithSeverity("nope", alarm.SeverityCritical), alarm.WithSeverity(alarm.KindRisk, "loud"), alarm.WithSinks(nil), alarm.WithMeterProvider(nil)}
	for i, o := range bad {
		if _, err := alarm.NewManager(context.Background(), nil, o); !errors.Is(err, checks.ErrInvalidOption) {
			t.Errorf("option %d: %v, want ErrInvalidOption", i, err)
		}
	}
	if _, err := alarm.NewManager(context.Background(), nil, alarm.WithSinks(&recorder{name: "x"}, &recorder{name: "x"})); !errors.Is(err, checks.ErrInvalidOption) {
		t.Errorf("duplicate sink names: %v", err)
	}
	if err := func() error {
		m, _ := alarm.NewManager(context.Background(), nil)
		return m.Apply(context.Background(), alarm.Condition{Key: alarm.Key{Target: "db", Kind: "weird"}, Active: true})
	}(); err == nil {
		t.Error("a condition with an unknown kind was applied")
	}
}

// report builds a one-check report the way the runner does.
func report(check string, tasks []checks.TaskReport, findings ...checks.Finding) *checks.Report {
	cr := &checks.CheckReport{Check: check, Tasks: tasks, Findings: findings, Status: checks.StatusHealthy}
	for _, tr := range tasks {
		cr.Coverage.TasksPlanned++
		switch tr.State {
		case checks.TaskCompleted:
			cr.Coverage.TasksCompleted++
		case checks.TaskFailed:
			cr.Coverage.TasksFailed++
		case checks.TaskNotCovered:
			cr.Coverage.TasksNotCovered++
		}
		cr.Status = cr.Status.Worse(tr.Status)
	}
	for _, f := range findings {
		cr.Status = cr.Status.Worse(f.Severity)
	}
	return &checks.Report{Target: checks.TargetInfo{Engine: "postgresql", Name: "postgres://app@db1/app"}, Status: cr.Status, Checks: []*checks.CheckReport{cr}}
}

func TestReportConditionsResolveOnlyWhenProved(t *testing.T) {
	ctx := context.Background()
	m, _ := alarm.NewManager(ctx, nil)
	done := func(key string, st checks.Status) checks.TaskReport {
		return checks.TaskReport{Key: key, Object: "public." + key, State: checks.TaskCompleted, Status: st}
	}
	bad := checks.Finding{Check: "heap", Task: "t1", Severity: checks.StatusCorrupt, Object: "public.t1", Message: "invalid page header", Location: checks.Location{Page: checks.Int(7)}, Remedy: "restore from backup"}
	k := key("heap", alarm.KindCorruption)
	m.ObserveReport(ctx, "db", nil, 1, report("heap", []checks.TaskReport{done("t1", checks.StatusCorrupt), done("t2", checks.StatusHealthy)}, bad))
	r, _ := m.Get(k)
	if r.State != alarm.StateFiring || len(r.TaskKeys) != 1 || r.TaskKeys[0] != "t1" || !strings.Contains(r.Description, "page 7") || !strings.Contains(r.Description, "restore from backup") {
		t.Fatalf("record %+v", r)
	}
	steps := []struct {
		name  string
		tasks []checks.TaskReport
		state alarm.State
	}{
		{"t1 not covered: unknown, keep firing", []checks.TaskReport{{Key: "t1", State: checks.TaskNotCovered, Status: checks.StatusWarning}, done("t2", checks.StatusHealthy)}, alarm.StateFiring},
		{"t1 failed: unknown, keep firing", []checks.TaskReport{{Key: "t1", State: checks.TaskFailed, Status: checks.StatusError}}, alarm.StateFiring},
		{"t1 clean again: resolved", []checks.TaskReport{done("t1", checks.StatusHealthy), {Key: "t2", State: checks.TaskNotCovered, Status: checks.StatusWarning}}, alarm.StateResolved},
	}
	for _, st := range steps {
		m.ObserveReport(ctx, "db", nil, 2, report("heap", st.tasks))
		if r, _ := m.Get(k); r.State != st.state {
			t.Fatalf("%s: %s", st.name, r.State)
		}
	}
	// A plan error says nothing about corruption.
	m.ObserveReport(ctx, "db", nil, 3, report("heap", []checks.TaskReport{done("t1", checks.StatusCorrupt)}, bad))
	pe := report("heap", nil)
	pe.Checks[0].PlanError, pe.Checks[0].Status = "permission denied", checks.StatusError
	m.ObserveReport(ctx, "db", nil, 4, pe)
	if r, _ := m.Get(k); r.State != alarm.StateFiring {
		t.Fatalf("a plan error resolved corruption")
	}
	if r, _ := m.Get(key("heap", alarm.KindNotVerified)); r.State != alarm.StateFiring || !strings.Contains(r.Summary, "could not verify") {
		t.Fatalf("not_verified %+v", r)
	}
	// The object is gone from the plan: resolved.
	m.ObserveReport(ctx, "db", nil, 5, report("heap", []checks.TaskReport{done("t2", checks.StatusHealthy)}))
	if r, _ := m.Get(k); r.State != alarm.StateResolved {
		t.Fatalf("dropped object did not resolve: %s", r.State)
	}
}

func TestLogSink(t *testing.T) {
	var buf bytes.Buffer
	s := alarm.LogSink(slog.New(slog.NewJSONHandler(&buf, nil)))
	err := s.Send(context.Background(), []alarm.Alarm{
		{Target: "db", Check: "heap", Kind: alarm.KindCorruption, Severity: alarm.SeverityCritical, State: alarm.StateFiring, Summary: "Corruption found", Labels: map[string]string{"team": "x"}},
		{Target: "db", Kind: alarm.KindStale, Severity: alarm.SeverityCritical, State: alarm.StateResolved, Summary: "ok again", ResolvedAt: t0},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{`"level":"ERROR"`, `"msg":"dbscrub alarm firing: Corruption found"`, `"team":"x"`, `"level":"INFO"`, `"state":"resolved"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}
