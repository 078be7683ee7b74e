package checks

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"sync"
	"time"
)

// A Runner executes checks against targets: it plans every check, then runs
// the tasks on N workers, longest first (by [Task.Estimate], else by
// [Task.Cost]; with one worker, in the order planned), under the run's
// context, a per-task
// timeout, a total time budget and an optional rate limit, and rolls the
// results up into a [Report]. A Runner is safe for concurrent use.
type Runner struct {
	cfg config
}

// NewRunner returns a Runner configured by opts. It fails with an error
// wrapping [ErrInvalidOption] when an option value is out of range.
func NewRunner(opts ...Option) (*Runner, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	return &Runner{cfg: cfg}, nil
}

// queued is one task waiting for a worker.
type queued struct {
	check, index int // position in Report.Checks and CheckReport.Tasks
	task         Task
	findings     []Finding
	ctx          context.Context // the check's context from the Observer
}

// Run runs cks against t, or the checks given by [WithChecks], or else the
// target's default checks. It always returns a report: failures to plan or
// run become statuses with reasons, never a missing report. A cancelled ctx
// stops the run; tasks interrupted or not started are reported as such and
// make the status error.
func (r *Runner) Run(ctx context.Context, t Target, cks ...Check) *Report {
	cfg := r.cfg
	rep := &Report{SchemaVersion: SchemaVersion, Target: t.Info(), StartedAt: cfg.now(), Checks: []*CheckReport{}}
	runCtx := cfg.observer.RunStarted(ctx, rep.Target)
	defer func() {
		rep.FinishedAt = cfg.now()
		rep.Target = t.Info() // planning may have learnt more (the server version)
		rep.finalize()
		cfg.observer.RunFinished(runCtx, rep)
	}()

	if len(cks) == 0 {
		cks = cfg.checks
	}
	if len(cks) == 0 {
		var err error
		if cks, err = t.Checks(); err != nil {
			rep.Status, rep.Reason = StatusError, "could not select checks: "+err.Error()
			return rep
		}
	}
	var deadline time.Time
	if cfg.budget > 0 {
		deadline = rep.StartedAt.Add(cfg.budget)
	}

	queue, checkCtx := r.plan(runCtx, rep, cks)
	r.execute(ctx, rep, queue, deadline)

	for _, q := range queue {
		cr := rep.Checks[q.check]
		cr.Findings = append(cr.Findings, q.findings...)
	}
	for _, cr := range rep.Checks {
		cr.FinishedAt = cr.StartedAt
		for _, tr := range cr.Tasks {
			if end := tr.StartedAt.Add(time.Duration(tr.DurationSeconds * float64(time.Second))); !tr.StartedAt.IsZero() && end.After(cr.FinishedAt) {
				cr.FinishedAt = end
			}
		}
		if cr.Findings == nil {
			cr.Findings = []Finding{}
		}
		if cr.Tasks == nil {
			cr.Tasks = []TaskReport{}
		}
		cr.finalize()
	}
	for i, cr := range rep.Checks {
		cfg.observer.CheckFinished(checkCtx[i], cr)
	}
	return rep
}

// plan plans every check and returns the runnable tasks in the order they
// start (longest first with several workers),
// and the Observer's context of each check.
func (r *Runner) plan(ctx context.Context, rep *Report, cks []Check) ([]*queued, []context.Context) {
	var queue []*queued
	checkCtx := make([]context.Context, len(cks))
	for i, ck := range cks {
		cr := &CheckReport{Check: ck.Name(), StartedAt: r.cfg.now()}
		rep.Checks = append(rep.Checks, cr)
		checkCtx[i] = r.cfg.observer.CheckStarted(ctx, ck.Name())
		tasks, err := r.safePlan(checkCtx[i], ck)
		if err != nil {
			var se *SkipError
			if errors.As(err, &se) {
				cr.skipReason = se.Reason
			} else {
				cr.PlanError = err.Error()
			}
			continue
		}
		seen := make(map[string]bool, len(tasks))
		for j, tk := range tasks {
			tr := TaskReport{Key: tk.Key, Object: tk.Object, CostBytes: tk.Cost}
			switch {
			case tk.Skip != "":
				tr.State, tr.Status, tr.Reason = TaskSkipped, StatusSkipped, tk.Skip
			case tk.Key == "" || seen[tk.Key]:
				tr.State, tr.Status, tr.Reason = TaskFailed, StatusError, fmt.Sprintf("check %s planned a task with an empty or duplicate key %q", ck.Name(), tk.Key)
			case tk.Run == nil:
				tr.State, tr.Status, tr.Reason = TaskFailed, StatusError, fmt.Sprintf("check %s planned task %q without a Run function", ck.Name(), tk.Key)
			default:
				queue = append(queue, &queued{check: i, index: j, task: tk, ctx: checkCtx[i]})
			}
			seen[tk.Key] = true
			cr.Tasks = append(cr.Tasks, tr)
		}
	}
	if r.cfg.jobs > 1 {
		// Longest first, so that the longest tasks do not end up running
		// alone at the end while the other workers idle. One worker takes
		// as long in any order, so it keeps the order planned, which
		// checks choose to read data well (a table's heap before its
		// indexes, so that an index check that scans the table finds it
		// cached).
		sort.SliceStable(queue, func(a, b int) bool { return queue[a].task.duration() > queue[b].task.duration() })
	}
	return queue, checkCtx
}

func (r *Runner) safePlan(ctx context.Context, ck Check) (tasks []Task, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.cfg.logger.Error("dbscrub: panic while planning", "check", ck.Name(), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("panic while planning: %v", p)
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("run cancelled before planning: %w", context.Cause(ctx))
	}
	return ck.Plan(ctx)
}

// execute runs the queue on cfg.jobs workers.
func (r *Runner) execute(ctx context.Context, rep *Report, queue []*queued, deadline time.Time) {
	var (
		mu       sync.Mutex
		next     int
		progress = Progress{TasksTotal: len(queue)}
		pacer    = newPacer(r.cfg.maxRate, r.cfg.now())
	)
	for _, q := range queue {
		progress.BytesTotal += q.task.Cost
	}
	report := func(q *queued, done bool) {
		mu.Lock()
		defer mu.Unlock()
		if done {
			progress.TasksDone++
			progress.BytesDone += q.task.Cost
		}
		if r.cfg.progress != nil {
			r.cfg.progress(progress)
		}
	}
	if len(queue) > 0 {
		report(nil, false)
	}
	// take returns the next task to start: the first one left of a group
	// that is running (so that tasks reading the same table read it side
	// by side, while it is cached), else the first one left.
	taken := make([]bool, len(queue))
	running := map[string]int{}
	take := func(done *queued) *queued {
		mu.Lock()
		defer mu.Unlock()
		if done != nil && done.task.Group != "" {
			running[done.task.Group]--
		}
		for next < len(queue) && taken[next] {
			next++
		}
		if next >= len(queue) {
			return nil
		}
		pick := next
		if len(running) > 0 {
			for i := next; i < len(queue); i++ {
				if g := queue[i].task.Group; !taken[i] && g != "" && running[g] > 0 {
					pick = i
					break
				}
			}
		}
		taken[pick] = true
		if g := queue[pick].task.Group; g != "" {
			running[g]++
		}
		return queue[pick]
	}

	var wg sync.WaitGroup
	for w := 0; w < min(r.cfg.jobs, len(queue)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for q := take(nil); q != nil; q = take(q) {
				tr := &rep.Checks[q.check].Tasks[q.index]
				check := rep.Checks[q.check].Check
				if err := r.admit(ctx, pacer, q.task.Cost, deadline); err != nil {
					tr.Reason = err.Error()
					if errors.Is(err, errBudget) {
						tr.State, tr.Status = TaskNotCovered, StatusWarning
					} else {
						tr.State, tr.Status = TaskCancelled, StatusError
					}
					r.cfg.observer.TaskFinished(q.ctx, check, *tr, nil)
				} else {
					tctx := r.cfg.observer.TaskStarted(q.ctx, check, q.task)
					r.runWithRetries(tctx, ctx, check, q, tr)
					r.cfg.observer.TaskFinished(tctx, check, *tr, q.findings)
				}
				report(q, true)
			}
		}()
	}
	wg.Wait()
}

var errBudget = errors.New("time budget exhausted")

// admit decides whether a task may start now: not after cancellation, not
// after the budget, and not faster than the rate limit allows.
func (r *Runner) admit(ctx context.Context, p *pacer, cost int64, deadline time.Time) error {
	if ctx.Err() != nil {
		return fmt.Errorf("run cancelled before the task started: %v", context.Cause(ctx))
	}
	over := func() bool { return !deadline.IsZero() && !r.cfg.now().Before(deadline) }
	if over() {
		return fmt.Errorf("%w: the time budget of %s ended before the task started", errBudget, r.cfg.budget)
	}
	if wait := p.reserve(cost, r.cfg.now()); wait > 0 {
		if !deadline.IsZero() && r.cfg.now().Add(wait).After(deadline) {
			return fmt.Errorf("%w: the rate limit would start the task after the time budget of %s", errBudget, r.cfg.budget)
		}
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case <-ctx.Done():
			return fmt.Errorf("run cancelled before the task started: %v", context.Cause(ctx))
		case <-timer.C:
		}
	}
	return nil
}

// runWithRetries runs a task under tctx (the Observer's task context),
// retrying errors that wrap ErrRetryable, and records the outcome in tr and
// q.findings. ctx is the run's own context, to tell cancellation from a
// task's own failure.
func (r *Runner) runWithRetries(tctx, ctx context.Context, check string, q *queued, tr *TaskReport) {
	tr.StartedAt = r.cfg.now()
	var (
		res Result
		err error
	)
	for {
		tr.Attempts++
		res, err = r.runTask(tctx, check, q.task)
		if err == nil || !errors.Is(err, ErrRetryable) || tr.Attempts > r.cfg.retries || ctx.Err() != nil {
			break
		}
		r.cfg.logger.Warn("dbscrub: retrying task", "check", check, "task", q.task.Key, "attempt", tr.Attempts, "error", err)
		backoff := time.NewTimer(time.Duration(tr.Attempts) * 500 * time.Millisecond)
		select {
		case <-ctx.Done():
		case <-backoff.C:
		}
		backoff.Stop()
	}
	tr.DurationSeconds = r.cfg.now().Sub(tr.StartedAt).Seconds()

	for _, f := range res.Findings {
		if f.Check == "" {
			f.Check = check
		}
		f.Task = q.task.Key
		if f.Object == "" {
			f.Object = q.task.Object
		}
		if f.Severity != StatusWarning {
			f.Severity = StatusCorrupt
		}
		q.findings = append(q.findings, f)
	}
	tr.Findings = len(q.findings)
	tr.Status = StatusHealthy
	for _, f := range q.findings {
		tr.Status = tr.Status.Worse(f.Severity)
	}
	if err != nil {
		tr.State = TaskFailed
		tr.Status = tr.Status.Worse(StatusError)
		tr.Reason = err.Error()
		if ctx.Err() != nil {
			tr.Reason = fmt.Sprintf("interrupted: the run was cancelled while the task ran (%v)", err)
		}
		r.cfg.logger.Error("dbscrub: task could not verify", "check", check, "task", q.task.Key, "object", q.task.Object, "error", tr.Reason)
		return
	}
	tr.State = TaskCompleted
	tr.BytesVerified = res.Bytes
	tr.ObjectsVerified = res.Objects
}

// runTask runs one attempt under the task timeout, turning a panic into an
// error.
func (r *Runner) runTask(ctx context.Context, check string, tk Task) (res Result, err error) {
	if r.cfg.taskTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, r.cfg.taskTimeout, fmt.Errorf("task timeout of %s", r.cfg.taskTimeout))
		defer cancel()
	}
	defer func() {
		if p := recover(); p != nil {
			r.cfg.logger.Error("dbscrub: panic in check", "check", check, "task", tk.Key, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			res, err = Result{}, fmt.Errorf("panic in check %s: %v", check, p)
		}
	}()
	res, err = tk.Run(ctx)
	if err != nil && ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %s: %w", r.cfg.taskTimeout, err)
	}
	return res, err
}

// pacer spaces task starts so that the planned bytes started stay under a
// rate: the n-th task may start once the bytes of the tasks before it have
// had their time.
type pacer struct {
	mu      sync.Mutex
	rate    int64
	start   time.Time
	started int64
}

func newPacer(rate int64, now time.Time) *pacer { return &pacer{rate: rate, start: now} }

// reserve books cost bytes and returns how long to wait before starting.
func (p *pacer) reserve(cost int64, now time.Time) time.Duration {
	if p.rate <= 0 {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	at := p.start.Add(time.Duration(float64(p.started) / float64(p.rate) * float64(time.Second)))
	p.started += cost
	return at.Sub(now)
}

// duration is what the Runner orders tasks by: the task's Estimate, or one
// nanosecond per byte of its Cost.
func (t *Task) duration() time.Duration {
	if t.Estimate > 0 {
		return t.Estimate
	}
	return time.Duration(max(t.Cost, 0))
}
