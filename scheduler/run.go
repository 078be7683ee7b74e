package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/redact"
	"github.com/dbscrub/dbscrub/scheduler/history"
)

// errSkipped means a scheduled run did not start (window); not an error of
// the caller.
var errSkipped = errors.New("run not started")

func classOf(trig history.Trigger) int {
	switch trig {
	case history.TriggerGate:
		return 0
	case history.TriggerManual:
		return 1
	}
	return 2
}

// admitScheduled reports whether a scheduled run of e may start at now
// (inside the maintenance window) and when the window closes.
func (s *Scheduler) admitScheduled(e *entry, now time.Time) (windowEnd time.Time, ok bool) {
	if e.window == nil {
		return time.Time{}, true
	}
	return e.window.at(now)
}

// start queues a run of e, whose lock the caller holds. When the limiter
// grants a slot, the run executes on its own goroutine, then the lock is
// released and done is called; if the scheduler shuts down first, the run
// is dropped the same way. It returns false (and does nothing) when the
// scheduler is shut down.
func (s *Scheduler) start(ctx context.Context, done func(), e *entry, trig history.Trigger, windowEnd time.Time) bool {
	if !s.track() {
		return false
	}
	e.mu.Lock()
	server, lastSuccess := e.server, e.lastSuccessLocked()
	e.mu.Unlock()
	s.lim.submit(server, classOf(trig), lastSuccess,
		func() {
			defer s.runs.Done()
			run, _ := s.execute(ctx, e, trig, server, windowEnd)
			e.unlock()
			done()
			s.notify(ctx, run)
		},
		func() {
			s.cfg.logger.Info("dbscrub: queued run dropped: the scheduler shut down", "target", e.name, "trigger", string(trig))
			e.unlock()
			done()
			s.runs.Done()
		})
	return true
}

// execute performs one run of e once it holds a slot of server (released
// here); the caller holds e's lock. It returns the recorded run, or
// errSkipped when the maintenance window closed while the run waited.
func (s *Scheduler) execute(ctx context.Context, e *entry, trig history.Trigger, server string, windowEnd time.Time) (*history.Run, error) {
	plan := e.t.Plan
	held := true
	release := func() {
		if held {
			s.lim.release(server)
			held = false
		}
	}
	defer release()

	start := s.cfg.clock.Now()
	deadline := windowEnd
	if plan.Budget > 0 && trig != history.TriggerGate {
		if b := start.Add(plan.Budget); deadline.IsZero() || b.Before(deadline) {
			deadline = b
		}
	}
	if !deadline.IsZero() && !start.Before(deadline) {
		s.skipped(e, "window_closed", "the maintenance window closed while the run waited for a free slot")
		return nil, errSkipped
	}

	e.mu.Lock()
	e.runningSince = start
	e.mu.Unlock()
	counters := newRunCounters(s.store, e.name, s.cfg.clock)
	rep, cycles := s.runChecks(ctx, e, trig, start, deadline, counters)
	finished := s.cfg.clock.Now()
	e.mu.Lock()
	e.runningSince = time.Time{}
	e.mu.Unlock()

	run := &history.Run{
		Target: e.name, Trigger: trig, StartedAt: start, FinishedAt: finished, Deadline: deadline,
		Status: rep.Status, Reason: rep.Reason, Report: rep, Cycles: cycles,
	}
	// Record even when the run was interrupted by a shutdown.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.recordTimeout)
	defer cancel()
	if _, err := s.store.RecordRun(rctx, run); err != nil {
		s.cfg.logger.Error("dbscrub: could not record run", "target", e.name, "error", err)
	} else if err := counters.commit(rctx); err != nil {
		// The next run compares with the older values: it reports again
		// what this one reported, rather than nothing.
		s.cfg.logger.Error("dbscrub: could not record counters", "target", e.name, "error", err)
	}
	if states, err := s.store.CheckStates(rctx, e.name); err != nil {
		s.cfg.logger.Error("dbscrub: could not read check states", "target", e.name, "error", err)
	} else {
		e.setStates(states)
	}
	s.publish(e)
	// The slot covers recording too, so that a burst of runs never piles
	// up goroutines on the store; alarms are evaluated after it.
	release()
	level := slog.LevelInfo
	if rep.Status == checks.StatusCorrupt || rep.Status == checks.StatusError {
		level = slog.LevelWarn
	}
	s.cfg.logger.Log(rctx, level, "dbscrub: run finished", "target", e.name, "trigger", string(trig), "run_id", run.ID,
		"status", string(rep.Status), "reason", rep.Reason, "tasks_completed", rep.Coverage.TasksCompleted,
		"tasks_planned", rep.Coverage.TasksPlanned, "bytes_verified", rep.Coverage.BytesVerified)

	if err := s.alarms.ObserveReport(rctx, e.name, e.t.Labels, run.ID, rep); err != nil {
		s.cfg.logger.Error("dbscrub: could not apply alarms", "target", e.name, "error", err)
	}
	if err := s.alarms.Apply(rctx, s.staleConditions(e, s.cfg.clock.Now())...); err != nil {
		s.cfg.logger.Error("dbscrub: could not apply stale alarms", "target", e.name, "error", err)
	}
	return run, nil
}

// notify calls the WithOnRun hook, after the target's lock is released so
// that the hook may start another run of it.
func (s *Scheduler) notify(ctx context.Context, run *history.Run) {
	if s.cfg.onRun != nil && run != nil {
		s.cfg.onRun(context.WithoutCancel(ctx), run)
	}
}

// failedTarget stands for a target that could not be opened: the runner
// then reports the run as could-not-verify, with the reason.
type failedTarget struct {
	info checks.TargetInfo
	err  error
}

func (f failedTarget) Info() checks.TargetInfo                  { return f.info }
func (f failedTarget) Checks(...string) ([]checks.Check, error) { return nil, f.err }

// runChecks opens the target and runs its checks; it always returns a
// report (scrubbed of the target's secrets) and the rolling cycles to
// record.
func (s *Scheduler) runChecks(ctx context.Context, e *entry, trig history.Trigger, start, deadline time.Time, counters *runCounters) (*checks.Report, map[string]time.Time) {
	plan := e.t.Plan
	sec := secrets(e.t.Secrets)
	ctx = checks.WithCounters(ctx, counters)

	logger := s.cfg.logger
	if !sec.none() {
		logger = slog.New(redact.Handler(logger.Handler(), sec...))
	}
	logger = logger.With("target", e.name)
	var obs checks.Observer = s.tel.Observer(e.name)
	if !sec.none() {
		obs = scrubObserver{inner: obs, s: sec}
	}
	opts := append([]checks.Option{}, s.cfg.runnerOpts...)
	opts = append(opts, plan.Options...)
	opts = append(opts, checks.WithJobs(max(plan.Jobs, 1)), checks.WithObserver(obs), checks.WithLogger(logger))
	if plan.TaskTimeout > 0 {
		opts = append(opts, checks.WithTaskTimeout(plan.TaskTimeout))
	}
	if !deadline.IsZero() {
		// The runner measures its budget on the real clock; the deadline
		// comes from the scheduler's clock (the same one in production).
		if left := deadline.Sub(s.cfg.clock.Now()); left > 0 {
			opts = append(opts, checks.WithBudget(left))
		} else {
			opts = append(opts, checks.WithBudget(time.Nanosecond))
		}
	}
	runner, err := checks.NewRunner(opts...)
	if err != nil { // validated at Register; defensive
		runner, _ = checks.NewRunner(checks.WithObserver(obs), checks.WithLogger(logger))
		return s.failed(ctx, runner, e, sec, fmt.Errorf("invalid runner options: %w", err)), nil
	}

	var target checks.Target
	closeFn := func() {}
	if e.t.Target != nil {
		target = e.t.Target
	} else {
		t, err := e.t.Open(ctx)
		if err == nil && t == nil {
			err = errors.New("scheduler: the target's Open returned no target")
		}
		if err != nil {
			return s.failed(ctx, runner, e, sec, fmt.Errorf("could not open the target: %w", err)), nil
		}
		target = t
		if c, ok := t.(io.Closer); ok {
			closeFn = func() {
				if err := c.Close(); err != nil {
					logger.Warn("dbscrub: closing target", "error", sec.err(err))
				}
			}
		}
		info := sec.info(t.Info())
		e.mu.Lock()
		e.info = info
		if e.t.Server == "" {
			e.server = serverOf(info)
		}
		e.mu.Unlock()
	}
	defer closeFn()

	cks, err := target.Checks(plan.Checks...)
	if err != nil {
		return s.failed(ctx, runner, e, sec, fmt.Errorf("could not select checks: %w", err)), nil
	}
	extras, closeExtras, err := buildExtras(ctx, plan.Extra, target, cks, sec)
	if err != nil {
		return s.failed(ctx, runner, e, sec, err), nil
	}
	defer closeExtras(logger)
	cks = append(cks, extras...)
	var rolls []*rollingCheck
	if trig != history.TriggerGate {
		for i, ck := range cks {
			if ck == nil {
				continue
			}
			// The cycle a run opens starts at the run's start, the time its
			// completed tasks are recorded as verified at.
			rc := &rollingCheck{Check: ck, s: s, e: e, start: start, logger: logger}
			rolls = append(rolls, rc)
			cks[i] = rc
		}
	}
	rep := runner.Run(ctx, target, cks...)
	sec.report(rep)

	cycles := map[string]time.Time{}
	byName := map[string]*checks.CheckReport{}
	for _, cr := range rep.Checks {
		byName[cr.Check] = cr
	}
	for _, rc := range rolls {
		if cr := byName[rc.Name()]; cr != nil {
			if at, ok := rc.after(cr); ok {
				cycles[rc.Name()] = at
			}
		}
	}
	if trig == history.TriggerGate {
		for _, cr := range rep.Checks {
			if cr.PlanError == "" && cr.Coverage.Complete() {
				cycles[cr.Check] = time.Time{} // everything verified: no cycle left open
			}
		}
	}
	return rep, cycles
}

// failed returns the report of a run that could not reach the checks.
func (s *Scheduler) failed(ctx context.Context, runner *checks.Runner, e *entry, sec secrets, err error) *checks.Report {
	e.mu.Lock()
	info := e.info
	e.mu.Unlock()
	if cause := context.Cause(ctx); cause != nil {
		err = fmt.Errorf("interrupted (%v): %w", cause, err)
	}
	rep := runner.Run(ctx, failedTarget{info: info, err: sec.err(err)})
	sec.report(rep)
	return rep
}

// buildExtras builds the plan's extra checks for one run. A check that
// cannot be built is replaced by one that fails to plan with the reason,
// so that it is reported under its name as not verified. An extra check
// named like one of the target's checks fails the whole run: two checks
// of one name would mix up their history. closeAll closes what the
// checks opened.
func buildExtras(ctx context.Context, extra []ExtraCheck, target checks.Target, cks []checks.Check, sec secrets) (out []checks.Check, closeAll func(*slog.Logger), err error) {
	var closers []io.Closer
	closeAll = func(logger *slog.Logger) {
		for _, c := range closers {
			if err := c.Close(); err != nil {
				logger.Warn("dbscrub: closing an extra check", "error", sec.err(err))
			}
		}
	}
	if len(extra) == 0 {
		return nil, closeAll, nil
	}
	names := map[string]bool{}
	for _, ck := range cks {
		if ck != nil {
			names[ck.Name()] = true
		}
	}
	for _, x := range extra {
		if names[x.Name] {
			return nil, closeAll, fmt.Errorf("extra check %q has the name of one of the target's checks; rename one of them", x.Name)
		}
	}
	for _, x := range extra {
		ck, err := x.Build(ctx, target)
		if err == nil && ck == nil {
			err = errors.New("its Build function returned no check")
		}
		if err == nil && ck.Name() != x.Name {
			if c, ok := ck.(io.Closer); ok {
				closers = append(closers, c)
			}
			err = fmt.Errorf("its Build function returned a check named %q", ck.Name())
		}
		if err != nil {
			if cause := context.Cause(ctx); cause != nil {
				err = fmt.Errorf("interrupted (%v): %w", cause, err)
			}
			out = append(out, unpreparedCheck{name: x.Name, err: sec.err(fmt.Errorf("could not prepare the check: %w", err))})
			continue
		}
		if c, ok := ck.(io.Closer); ok {
			closers = append(closers, c)
		}
		out = append(out, ck)
	}
	return out, closeAll, nil
}

// unpreparedCheck stands for an extra check that could not be built: it
// fails to plan with the reason (status error, not_verified alarm).
type unpreparedCheck struct {
	name string
	err  error
}

func (u unpreparedCheck) Name() string                                { return u.name }
func (u unpreparedCheck) Plan(context.Context) ([]checks.Task, error) { return nil, u.err }
