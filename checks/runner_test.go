package checks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunStatuses(t *testing.T) {
	corrupt := Finding{Severity: StatusCorrupt, Object: "t1", Message: "bad tuple", Location: Location{Page: Int(3)}}
	warn := Finding{Severity: StatusWarning, Object: "checksums", Message: "off"}
	tests := []struct {
		name       string
		checks     []Check
		want       Status
		wantReason []string
		complete   bool
		wantErr    error
	}{
		{"all healthy", []Check{check("a", ok("1", 100), ok("2", 50))}, StatusHealthy, nil, true, nil},
		{"corruption", []Check{check("a", ok("1", 100), finds("2", corrupt))}, StatusCorrupt, []string{"a: 1 corruption finding in 1 object"}, true, ErrCorrupt},
		{"warning only", []Check{check("a", finds("1", warn))}, StatusWarning, []string{"1 warning"}, true, nil},
		{"task error", []Check{check("a", ok("1", 1), fails("2", errors.New("connection refused")))}, StatusError, []string{"1 of 2 tasks could not verify", "connection refused"}, false, ErrNotVerified},
		{"corrupt beats error", []Check{check("a", finds("1", corrupt), fails("2", errors.New("boom")))}, StatusCorrupt, []string{"corruption", "could not verify"}, false, ErrCorrupt},
		{"plan error", []Check{check("a", ok("1", 1)), &fakeCheck{name: "b", err: errors.New("amcheck is not installed")}}, StatusError, []string{"b: could not plan: amcheck is not installed"}, true, ErrNotVerified},
		{"plan panic", []Check{&fakeCheck{name: "b", panic: true}}, StatusError, []string{"panic while planning: plan exploded"}, true, ErrNotVerified},
		{"check skipped", []Check{check("a", ok("1", 1)), &fakeCheck{name: "b", err: Skip("not a primary")}}, StatusHealthy, nil, true, nil},
		{"everything skipped", []Check{&fakeCheck{name: "b", err: Skip("not a primary")}}, StatusSkipped, []string{"not a primary"}, true, ErrNotVerified},
		{"no tasks planned", []Check{check("a")}, StatusSkipped, []string{"nothing to verify"}, true, ErrNotVerified},
		{"task skipped", []Check{check("a", ok("1", 1), Task{Key: "2", Object: "temp", Skip: "temporary relation"})}, StatusHealthy, nil, true, nil},
		{"all tasks skipped", []Check{check("a", Task{Key: "2", Object: "temp", Skip: "temporary relation"})}, StatusSkipped, []string{"temp: temporary relation"}, true, ErrNotVerified},
		{"panicking task", []Check{check("a", ok("1", 1), Task{Key: "p", Cost: 1, Run: func(context.Context) (Result, error) { panic("nil map") }})}, StatusError, []string{"panic in check a: nil map"}, false, ErrNotVerified},
		{"task without run", []Check{check("a", Task{Key: "x", Cost: 1})}, StatusError, []string{"without a Run function"}, false, ErrNotVerified},
		{"duplicate key", []Check{check("a", ok("1", 1), ok("1", 2))}, StatusError, []string{"duplicate key"}, false, ErrNotVerified},
		{"finding without severity counts as corruption", []Check{check("a", finds("1", Finding{Message: "x"}))}, StatusCorrupt, []string{"corruption"}, true, ErrCorrupt},
		{"no checks", []Check{}, StatusSkipped, []string{"nothing"}, true, ErrNotVerified},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tgt := target(tt.checks...)
			r := mustRunner(t, WithJobs(2))
			var rep *Report
			if len(tt.checks) == 0 {
				rep = r.Run(context.Background(), &fakeTarget{checks: []Check{check("empty")}})
			} else {
				rep = r.Run(context.Background(), tgt)
			}
			if rep.Status != tt.want {
				t.Fatalf("status = %s (%s), want %s", rep.Status, rep.Reason, tt.want)
			}
			if tt.want != StatusHealthy && rep.Reason == "" {
				t.Errorf("status %s without a reason", rep.Status)
			}
			if !containsAll(rep.Reason, tt.wantReason...) {
				t.Errorf("reason %q does not contain %q", rep.Reason, tt.wantReason)
			}
			if rep.Coverage.Complete() != tt.complete {
				t.Errorf("coverage complete = %v, want %v (%+v)", rep.Coverage.Complete(), tt.complete, rep.Coverage)
			}
			err := rep.Err()
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Err() = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestFindingsAreAnnotated(t *testing.T) {
	f := Finding{Severity: StatusCorrupt, Message: "bad"}
	rep := mustRunner(t).Run(context.Background(), target(check("heap", finds("k1", f))))
	got := rep.Findings()
	if len(got) != 1 {
		t.Fatalf("findings = %d, want 1", len(got))
	}
	if got[0].Check != "heap" || got[0].Task != "k1" || got[0].Object != "obj-k1" {
		t.Errorf("finding not annotated: %+v", got[0])
	}
	if tr := rep.Checks[0].Tasks[0]; tr.Findings != 1 || tr.Status != StatusCorrupt || tr.State != TaskCompleted {
		t.Errorf("task report %+v", tr)
	}
}

func TestTaskOrder(t *testing.T) {
	type spec struct {
		key      string
		cost     int64
		estimate time.Duration
	}
	cases := []struct {
		name string
		jobs int
		a, b []spec
		want []string
	}{
		{
			name: "by cost without estimates",
			jobs: 2,
			a:    []spec{{"small", 1, 0}, {"big", 1000, 0}},
			b:    []spec{{"medium", 100, 0}, {"tiny", 0, 0}},
			want: []string{"big", "medium", "small", "tiny"},
		},
		{
			// An index check that costs fewer bytes but more time than a
			// table chunk must start first.
			name: "by estimate",
			jobs: 2,
			a:    []spec{{"heap-1", 1000, 90 * time.Millisecond}, {"heap-2", 1000, 90 * time.Millisecond}},
			b:    []spec{{"index", 800, 400 * time.Millisecond}, {"batch", 10, time.Millisecond}},
			want: []string{"index", "heap-1", "heap-2", "batch"},
		},
		{
			// Without an estimate a task counts 1 ns per byte.
			name: "mixed",
			jobs: 3,
			a:    []spec{{"estimated", 10, 2 * time.Microsecond}},
			b:    []spec{{"bytes-3000", 3000, 0}, {"bytes-1000", 1000, 0}},
			want: []string{"bytes-3000", "estimated", "bytes-1000"},
		},
		{
			// One worker keeps the order planned: the checks' order, then
			// each check's (a table's heap before its index).
			name: "one worker: as planned",
			jobs: 1,
			a:    []spec{{"heap-1", 1000, 90 * time.Millisecond}, {"heap-2", 1000, 90 * time.Millisecond}},
			b:    []spec{{"index", 800, 400 * time.Millisecond}, {"batch", 10, time.Millisecond}},
			want: []string{"heap-1", "heap-2", "index", "batch"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var started []string
			rec := func(sp spec) Task {
				tk := ok(sp.key, sp.cost)
				tk.Estimate = sp.estimate
				tk.Run = func(ctx context.Context) (Result, error) {
					mu.Lock()
					started = append(started, sp.key)
					mu.Unlock()
					return Result{Bytes: sp.cost}, nil
				}
				return tk
			}
			var a, b []Task
			for _, sp := range tc.a {
				a = append(a, rec(sp))
			}
			for _, sp := range tc.b {
				b = append(b, rec(sp))
			}
			r := mustRunner(t, WithJobs(tc.jobs))
			queue, _ := r.plan(context.Background(), &Report{}, []Check{check("a", a...), check("b", b...)})
			var order []string
			for _, q := range queue {
				order = append(order, q.task.Key)
			}
			if fmt.Sprint(order) != fmt.Sprint(tc.want) {
				t.Errorf("queue order = %v, want %v", order, tc.want)
			}
			// And the run starts every task.
			rep := r.Run(context.Background(), target(check("a", a...), check("b", b...)))
			if len(started) != len(tc.want) || rep.Status != StatusHealthy {
				t.Errorf("ran %v (status %s), want all of %v", started, rep.Status, tc.want)
			}
			if tc.jobs == 1 && fmt.Sprint(started) != fmt.Sprint(tc.want) {
				t.Errorf("one worker ran %v, want %v", started, tc.want)
			}
		})
	}
}

func TestParallelism(t *testing.T) {
	var running, peak atomic.Int32
	release := make(chan struct{})
	var tasks []Task
	for i := range 6 {
		tk := ok(fmt.Sprint(i), 10)
		tk.Run = func(ctx context.Context) (Result, error) {
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			<-release
			running.Add(-1)
			return Result{}, nil
		}
		tasks = append(tasks, tk)
	}
	done := make(chan *Report)
	go func() { done <- mustRunner(t, WithJobs(3)).Run(context.Background(), target(check("a", tasks...))) }()
	for peak.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	rep := <-done
	if peak.Load() != 3 {
		t.Errorf("peak concurrency = %d, want 3", peak.Load())
	}
	if rep.Status != StatusHealthy {
		t.Errorf("status %s: %s", rep.Status, rep.Reason)
	}
}

func TestCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	running := blocks("running")
	running.Cost = 100
	inner := running.Run
	running.Run = func(ctx context.Context) (Result, error) {
		close(started)
		return inner(ctx)
	}
	go func() { <-started; cancel() }()
	rep := mustRunner(t, WithJobs(1)).Run(ctx, target(check("a", running, ok("later", 1))))
	if rep.Status != StatusError {
		t.Fatalf("status = %s, want error", rep.Status)
	}
	tasks := rep.Checks[0].Tasks
	if tasks[0].State != TaskFailed || !containsAll(tasks[0].Reason, "interrupted") {
		t.Errorf("running task: %+v", tasks[0])
	}
	if tasks[1].State != TaskCancelled || tasks[1].Status != StatusError {
		t.Errorf("queued task: %+v", tasks[1])
	}
	if !errors.Is(rep.Err(), ErrNotVerified) {
		t.Errorf("Err() = %v", rep.Err())
	}
}

func TestCancelledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep := mustRunner(t).Run(ctx, target(check("a", ok("1", 1))))
	if rep.Status != StatusError || !containsAll(rep.Reason, "cancelled") {
		t.Errorf("status %s: %s", rep.Status, rep.Reason)
	}
}

func TestTaskTimeout(t *testing.T) {
	rep := mustRunner(t, WithTaskTimeout(20*time.Millisecond)).Run(context.Background(), target(check("a", blocks("slow"), ok("fast", 1))))
	if rep.Status != StatusError {
		t.Fatalf("status %s: %s", rep.Status, rep.Reason)
	}
	tr := rep.Checks[0].Tasks[0]
	if tr.State != TaskFailed || !containsAll(tr.Reason, "timed out after 20ms") {
		t.Errorf("slow task: %+v", tr)
	}
	if rep.Checks[0].Tasks[1].State != TaskCompleted {
		t.Errorf("the run must carry on after a timeout: %+v", rep.Checks[0].Tasks[1])
	}
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestBudget(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC)}
	tick := func(key string, cost int64) Task {
		tk := ok(key, cost)
		tk.Run = func(ctx context.Context) (Result, error) {
			clk.Add(40 * time.Minute)
			return Result{Objects: 1, Bytes: cost}, nil
		}
		return tk
	}
	rep := mustRunner(t, WithBudget(time.Hour), withClock(clk.Now)).Run(context.Background(),
		target(check("a", tick("1", 300), tick("2", 200), tick("3", 100))))
	if rep.Status != StatusWarning {
		t.Fatalf("status = %s (%s), want warning", rep.Status, rep.Reason)
	}
	cov := rep.Coverage
	if cov.TasksCompleted != 2 || cov.TasksNotCovered != 1 || cov.BytesVerified != 500 || cov.BytesPlanned != 600 {
		t.Errorf("coverage %+v", cov)
	}
	nc := rep.NotCovered()
	if len(nc) != 1 || nc[0].Key != "3" || nc[0].State != TaskNotCovered {
		t.Errorf("not covered = %+v", nc)
	}
	if !containsAll(rep.Reason, "1 of 3 tasks not covered", "time budget of 1h0m0s") {
		t.Errorf("reason %q", rep.Reason)
	}
	if !errors.Is(rep.Err(), ErrNotVerified) {
		t.Errorf("a run that did not cover everything must not pass a gate: %v", rep.Err())
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name      string
		failures  int
		retries   int
		err       error
		wantState TaskState
		attempts  int
	}{
		{"retryable succeeds on second try", 1, 1, Retryable(errors.New("terminating connection because of crash of another server process")), TaskCompleted, 2},
		{"retryable gives up", 5, 1, Retryable(errors.New("crash")), TaskFailed, 2},
		{"plain error not retried", 1, 3, errors.New("permission denied"), TaskFailed, 1},
		{"retries off", 1, 0, Retryable(errors.New("crash")), TaskFailed, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			tk := Task{Key: "k", Object: "o", Cost: 1, Run: func(context.Context) (Result, error) {
				calls++
				if calls <= tt.failures {
					return Result{}, tt.err
				}
				return Result{Objects: 1}, nil
			}}
			rep := mustRunner(t, WithRetries(tt.retries)).Run(context.Background(), target(check("a", tk)))
			tr := rep.Checks[0].Tasks[0]
			if tr.State != tt.wantState || tr.Attempts != tt.attempts {
				t.Errorf("state %s attempts %d, want %s %d", tr.State, tr.Attempts, tt.wantState, tt.attempts)
			}
		})
	}
}

func TestCrashFindingWithError(t *testing.T) {
	// A driver reports a server crash on an object as a finding together
	// with an error: the finding counts, the task is not covered.
	tk := Task{Key: "k", Object: "public.t", Cost: 1, Run: func(context.Context) (Result, error) {
		return Result{Findings: []Finding{{Severity: StatusCorrupt, Message: "the server crashed while verifying public.t"}}},
			errors.New("connection lost")
	}}
	rep := mustRunner(t).Run(context.Background(), target(check("heap", tk, ok("other", 1))))
	if rep.Status != StatusCorrupt || rep.Coverage.Complete() {
		t.Errorf("status %s complete %v", rep.Status, rep.Coverage.Complete())
	}
	if tr := rep.Checks[0].Tasks[0]; tr.State != TaskFailed || tr.Findings != 1 {
		t.Errorf("task %+v", tr)
	}
}

func TestProgress(t *testing.T) {
	var seen []Progress
	mustRunner(t, WithJobs(2), WithProgress(func(p Progress) { seen = append(seen, p) })).
		Run(context.Background(), target(check("a", ok("1", 100), ok("2", 50), fails("3", errors.New("x")))))
	if len(seen) != 4 {
		t.Fatalf("progress calls = %d, want 4: %+v", len(seen), seen)
	}
	last := seen[len(seen)-1]
	if last.TasksDone != 3 || last.TasksTotal != 3 || last.BytesDone != last.BytesTotal || last.BytesTotal != 160 {
		t.Errorf("last progress %+v", last)
	}
}

func TestMaxRate(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	p := newPacer(100, clk.Now())
	waits := []time.Duration{p.reserve(100, clk.Now()), p.reserve(100, clk.Now()), p.reserve(50, clk.Now())}
	want := []time.Duration{0, time.Second, 2 * time.Second}
	if fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Errorf("waits = %v, want %v", waits, want)
	}
	clk.Add(10 * time.Second)
	if w := p.reserve(1, clk.Now()); w > 0 {
		t.Errorf("after idle time no wait expected, got %v", w)
	}
}

func TestMaxRateBeyondBudget(t *testing.T) {
	rep := mustRunner(t, WithMaxRate(10), WithBudget(time.Second)).Run(context.Background(),
		target(check("a", ok("1", 100), ok("2", 100))))
	if rep.Status != StatusWarning || rep.Coverage.TasksNotCovered != 1 {
		t.Errorf("status %s coverage %+v: %s", rep.Status, rep.Coverage, rep.Reason)
	}
}

func TestInvalidOptions(t *testing.T) {
	for name, opt := range map[string]Option{
		"jobs 0":            WithJobs(0),
		"jobs negative":     WithJobs(-1),
		"zero task timeout": WithTaskTimeout(0),
		"zero budget":       WithBudget(0),
		"negative budget":   WithBudget(-time.Second),
		"zero rate":         WithMaxRate(0),
		"negative retries":  WithRetries(-1),
		"nil logger":        WithLogger(nil),
		"nil observer":      WithObserver(nil),
		"nil check":         WithChecks(nil),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewRunner(opt); !errors.Is(err, ErrInvalidOption) {
				t.Errorf("err = %v, want ErrInvalidOption", err)
			}
			if rep, err := Gate(context.Background(), target(), opt); rep != nil || !errors.Is(err, ErrInvalidOption) {
				t.Errorf("Gate: %v %v", rep, err)
			}
		})
	}
}

func TestGate(t *testing.T) {
	corrupt := Finding{Severity: StatusCorrupt, Message: "bad"}
	tests := []struct {
		name string
		tgt  Target
		opts []Option
		want error
	}{
		{"healthy", target(check("a", ok("1", 1))), nil, nil},
		{"corrupt", target(check("a", finds("1", corrupt))), nil, ErrCorrupt},
		{"unreachable", target(&fakeCheck{name: "a", err: errors.New("dial tcp: connection refused")}), nil, ErrNotVerified},
		{"selected checks only", target(check("a", finds("1", corrupt))), []Option{WithChecks(check("b", ok("1", 1)))}, nil},
		{"target cannot list checks", &fakeTarget{err: errors.New("bad config")}, nil, ErrNotVerified},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := Gate(context.Background(), tt.tgt, tt.opts...)
			if rep == nil {
				t.Fatal("Gate must return a report")
			}
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestReportJSON(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 11, 21, 3, 0, 0, 0, time.UTC)}
	f := Finding{Severity: StatusCorrupt, Object: "public.t", Location: Location{Page: Int(0), Offset: Int(2)}, Code: "XX001", Message: "bad", Remedy: "restore"}
	rep := mustRunner(t, withClock(clk.Now)).Run(context.Background(), target(check("heap", finds("heap:public.t", f))))
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema_version", "target", "status", "reason", "started_at", "finished_at", "duration_seconds", "coverage", "checks"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report JSON lacks %q: %s", k, b)
		}
	}
	ck := m["checks"].([]any)[0].(map[string]any)
	fd := ck["findings"].([]any)[0].(map[string]any)
	loc := fd["location"].(map[string]any)
	if loc["page"] != 0.0 || loc["offset"] != 2.0 || loc["file"] != nil {
		t.Errorf("location %v: block 0 must be kept, absent fields omitted", loc)
	}
	for _, k := range []string{"check", "task", "severity", "object", "code", "message", "remedy"} {
		if _, ok := fd[k]; !ok {
			t.Errorf("finding JSON lacks %q", k)
		}
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Status != StatusCorrupt || len(back.Findings()) != 1 || *back.Findings()[0].Location.Page != 0 {
		t.Errorf("round trip lost data: %+v", back)
	}
	if err := json.Unmarshal([]byte(`{"status":"fine"}`), &back); err == nil {
		t.Error("unknown status must not unmarshal")
	}
}

func TestLocationString(t *testing.T) {
	tests := []struct {
		loc  Location
		want string
	}{
		{Location{}, ""},
		{Location{Page: Int(0)}, "page 0"},
		{Location{File: Int(1), Page: Int(7), Offset: Int(3)}, "file 1, page 7, offset 3"},
		{Location{Page: Int(2), Attribute: Int(4)}, "page 2, attribute 4"},
	}
	for _, tt := range tests {
		if got := tt.loc.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.loc, got, tt.want)
		}
	}
}

func TestStatusSeverity(t *testing.T) {
	order := []Status{StatusSkipped, StatusHealthy, StatusWarning, StatusError, StatusCorrupt}
	for i := 1; i < len(order); i++ {
		if order[i].Worse(order[i-1]) != order[i] || order[i-1].Worse(order[i]) != order[i] {
			t.Errorf("%s must be worse than %s", order[i], order[i-1])
		}
	}
	if Status("bogus").Severity() < StatusError.Severity() {
		t.Error("unknown status must never rank below error")
	}
}

// recordingObserver checks the Observer contract.
type recordingObserver struct {
	NopObserver
	mu     sync.Mutex
	events []string
}

type ctxKey string

func (o *recordingObserver) add(s string) { o.mu.Lock(); o.events = append(o.events, s); o.mu.Unlock() }
func (o *recordingObserver) RunStarted(ctx context.Context, ti TargetInfo) context.Context {
	o.add("run:" + ti.Name)
	return context.WithValue(ctx, ctxKey("run"), true)
}
func (o *recordingObserver) CheckStarted(ctx context.Context, check string) context.Context {
	if ctx.Value(ctxKey("run")) == nil {
		o.add("check without run context")
	}
	return context.WithValue(ctx, ctxKey("check"), check)
}
func (o *recordingObserver) TaskStarted(ctx context.Context, check string, tk Task) context.Context {
	if ctx.Value(ctxKey("check")) != check {
		o.add("task without check context")
	}
	return ctx
}
func (o *recordingObserver) TaskFinished(ctx context.Context, check string, tr TaskReport, fs []Finding) {
	o.add(fmt.Sprintf("task:%s:%s:%d", check, tr.State, len(fs)))
}
func (o *recordingObserver) CheckFinished(ctx context.Context, cr *CheckReport) {
	o.add("check:" + cr.Check + ":" + string(cr.Status))
}
func (o *recordingObserver) RunFinished(ctx context.Context, rep *Report) {
	o.add("end:" + string(rep.Status))
}

func TestObserver(t *testing.T) {
	o := &recordingObserver{}
	mustRunner(t, WithObserver(o)).Run(context.Background(), target(check("a", finds("1", Finding{Message: "x"}))))
	want := "[run:fake://db task:a:completed:1 check:a:corrupt end:corrupt]"
	if fmt.Sprint(o.events) != want {
		t.Errorf("events = %v, want %s", o.events, want)
	}
}

// infoTarget learns its server version while planning, as drivers do.
type infoTarget struct {
	fakeTarget
	version string
}

func (i *infoTarget) Info() TargetInfo {
	ti := i.fakeTarget.Info()
	ti.ServerVersion = i.version
	return ti
}

func TestTargetInfoRefreshedAfterPlanning(t *testing.T) {
	it := &infoTarget{}
	r := mustRunner(t, WithChecks(checkFunc("a", func() { it.version = "15.20" }, ok("1", 1))))
	rep := r.Run(context.Background(), it)
	if rep.Target.ServerVersion != "15.20" {
		t.Errorf("server version %q, want the one learnt while planning", rep.Target.ServerVersion)
	}
}

// checkFunc is a check whose Plan calls f first.
func checkFunc(name string, f func(), tasks ...Task) Check {
	return &planHook{fakeCheck: fakeCheck{name: name, tasks: tasks}, f: f}
}

type planHook struct {
	fakeCheck
	f func()
}

func (p *planHook) Plan(ctx context.Context) ([]Task, error) { p.f(); return p.fakeCheck.Plan(ctx) }

// TestGroupAffinity checks that while a task of a group runs, the other
// workers start the group's other tasks before longer tasks of no group.
func TestGroupAffinity(t *testing.T) {
	for _, tc := range []struct {
		name  string
		group string
		want  []string
	}{
		{"grouped", "table t", []string{"chunk", "other", "tiny"}},
		{"not grouped", "", []string{"other", "chunk", "tiny"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var order []string
			release := make(chan struct{})
			mk := func(key string, est time.Duration, group string, block bool) Task {
				tk := ok(key, 1)
				tk.Estimate, tk.Group = est, group
				tk.Run = func(ctx context.Context) (Result, error) {
					if block {
						<-release
						return Result{}, nil
					}
					mu.Lock()
					order = append(order, key)
					n := len(order)
					mu.Unlock()
					if n == 3 {
						close(release)
					}
					return Result{}, nil
				}
				return tk
			}
			rep := mustRunner(t, WithJobs(2)).Run(context.Background(), target(
				check("btree", mk("index", time.Second, tc.group, true)),
				check("heap", mk("chunk", 10*time.Millisecond, tc.group, false), mk("tiny", time.Millisecond, "", false)),
				check("other", mk("other", 100*time.Millisecond, "", false)),
			))
			if fmt.Sprint(order) != fmt.Sprint(tc.want) || rep.Status != StatusHealthy {
				t.Errorf("while the index ran, the other worker ran %v (status %s), want %v", order, rep.Status, tc.want)
			}
		})
	}
}
