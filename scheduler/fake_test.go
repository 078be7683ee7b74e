package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/scheduler/alarm"
	"github.com/dbscrub/dbscrub/scheduler/history"
)

// fakeTarget is a checks.Target whose checks are fakeChecks.
type fakeTarget struct {
	info   checks.TargetInfo
	checks []*fakeCheck
}

func (t *fakeTarget) Info() checks.TargetInfo { return t.info }

func (t *fakeTarget) Checks(names ...string) ([]checks.Check, error) {
	if len(names) == 0 {
		out := make([]checks.Check, len(t.checks))
		for i, c := range t.checks {
			out[i] = c
		}
		return out, nil
	}
	var out []checks.Check
	for _, n := range names {
		found := false
		for _, c := range t.checks {
			if c.name == n {
				out = append(out, c)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: %s", checks.ErrUnknownCheck, n)
		}
	}
	return out, nil
}

// fakeCheck plans fakeTasks. Its behaviour can be changed between runs.
type fakeCheck struct {
	name string

	mu      sync.Mutex
	tasks   []fakeTask
	planErr error
	ran     []string // task keys in the order they ran
}

type fakeTask struct {
	key, object string
	cost        int64
	// run overrides the default (healthy, bytes = cost).
	run func(ctx context.Context) (checks.Result, error)
}

func newCheck(name string, tasks ...fakeTask) *fakeCheck {
	return &fakeCheck{name: name, tasks: tasks}
}

// tasksOf returns n healthy tasks t1..tn with costs n..1 (t1 largest).
func tasksOf(n int) []fakeTask {
	var out []fakeTask
	for i := 1; i <= n; i++ {
		out = append(out, fakeTask{key: fmt.Sprintf("t%d", i), object: fmt.Sprintf("public.t%d", i), cost: int64(n - i + 1)})
	}
	return out
}

func (c *fakeCheck) Name() string { return c.name }

func (c *fakeCheck) set(f func(c *fakeCheck)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c)
}

func (c *fakeCheck) setRun(key string, run func(ctx context.Context) (checks.Result, error)) {
	c.set(func(c *fakeCheck) {
		for i := range c.tasks {
			if c.tasks[i].key == key {
				c.tasks[i].run = run
			}
		}
	})
}

func (c *fakeCheck) ranKeys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.ran...)
}

func (c *fakeCheck) Plan(ctx context.Context) ([]checks.Task, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.planErr != nil {
		return nil, c.planErr
	}
	var out []checks.Task
	for _, ft := range c.tasks {
		ft := ft
		out = append(out, checks.Task{
			Key: ft.key, Object: ft.object, Cost: ft.cost,
			Run: func(ctx context.Context) (checks.Result, error) {
				c.mu.Lock()
				c.ran = append(c.ran, ft.key)
				c.mu.Unlock()
				if ft.run != nil {
					return ft.run(ctx)
				}
				return checks.Result{Objects: 1, Bytes: ft.cost}, nil
			},
		})
	}
	return out, nil
}

func corruptRun(object, msg string) func(context.Context) (checks.Result, error) {
	return func(context.Context) (checks.Result, error) {
		return checks.Result{Objects: 1, Findings: []checks.Finding{{Object: object, Message: msg, Severity: checks.StatusCorrupt, Location: checks.Location{Page: checks.Int(7)}}}}, nil
	}
}

func warningRun(object, msg string) func(context.Context) (checks.Result, error) {
	return func(context.Context) (checks.Result, error) {
		return checks.Result{Objects: 1, Findings: []checks.Finding{{Object: object, Message: msg, Severity: checks.StatusWarning}}}, nil
	}
}

var t0 = time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC) // a Monday

// harness is a scheduler on a fake clock with hooks to wait on.
type harness struct {
	t     *testing.T
	clk   *clockwork.FakeClock
	s     *Scheduler
	store history.Store
	runs  chan *history.Run
	skips chan string
	sent  chan []alarm.Alarm
}

func newHarness(t *testing.T, opts ...Option) *harness {
	t.Helper()
	h := &harness{t: t, clk: clockwork.NewFakeClockAt(t0), runs: make(chan *history.Run, 100), skips: make(chan string, 100), sent: make(chan []alarm.Alarm, 100)}
	base := []Option{
		WithClock(h.clk),
		WithLocation(time.UTC),
		WithEvaluateEvery(365 * 24 * time.Hour), // tests call EvaluateAlarms or set their own
		WithOnRun(func(_ context.Context, r *history.Run) { h.runs <- r }),
		WithSinks(alarm.FuncSink("test", func(_ context.Context, as []alarm.Alarm) error {
			h.sent <- append([]alarm.Alarm(nil), as...)
			return nil
		})),
	}
	s, err := New(context.Background(), append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	s.cfg.onSkip = func(target, reason string) { h.skips <- target + ":" + reason }
	h.s, h.store = s, s.Store()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return h
}

const waitFor = 20 * time.Second // a failsafe, never a timing assumption

func (h *harness) register(tg Target) {
	h.t.Helper()
	if err := h.s.Register(context.Background(), tg); err != nil {
		h.t.Fatal(err)
	}
}

// block waits until the fake clock has n timers (the scheduler has armed
// its jobs) so that Advance fires them.
func (h *harness) block(n int) {
	h.t.Helper()
	// A round trip through gocron's scheduler goroutine: it has finished
	// processing the previous fire (which reads the clock) before the test
	// moves the clock again.
	_ = h.s.gs.Jobs()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := h.clk.BlockUntilContext(ctx, n); err != nil {
		h.t.Fatalf("clock never had %d timers: %v", n, err)
	}
}

func (h *harness) run() *history.Run {
	h.t.Helper()
	select {
	case r := <-h.runs:
		return r
	case <-time.After(waitFor):
		h.t.Fatal("no run finished")
	}
	return nil
}

func (h *harness) noRun() {
	h.t.Helper()
	select {
	case r := <-h.runs:
		h.t.Fatalf("unexpected run at %s: %s", r.StartedAt, r.Status)
	default:
	}
}

func (h *harness) skip() string {
	h.t.Helper()
	select {
	case s := <-h.skips:
		return s
	case <-time.After(waitFor):
		h.t.Fatal("no skip")
	}
	return ""
}

// notification waits for the next batch sent to the test sink.
func (h *harness) notification() []alarm.Alarm {
	h.t.Helper()
	select {
	case as := <-h.sent:
		return as
	case <-time.After(waitFor):
		h.t.Fatal("no notification")
	}
	return nil
}

func (h *harness) noNotification() {
	h.t.Helper()
	h.s.alarms.Tick(context.Background()) // deliveries in flight are done; anything due is sent now
	select {
	case as := <-h.sent:
		h.t.Fatalf("unexpected notification: %+v", as)
	default:
	}
}

// runNow starts a manual run and waits for it.
func (h *harness) runNow(name string) *history.Run {
	h.t.Helper()
	if err := h.s.RunNow(context.Background(), name); err != nil {
		h.t.Fatal(err)
	}
	return h.run()
}

func taskStates(r *history.Run) map[string]checks.TaskState {
	out := map[string]checks.TaskState{}
	for _, cr := range r.Report.Checks {
		for _, t := range cr.Tasks {
			out[t.Key] = t.State
		}
	}
	return out
}

var errServerGone = errors.New("server closed the connection unexpectedly")
