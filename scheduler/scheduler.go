package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-co-op/gocron/v2"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/scheduler/alarm"
	"github.com/dbscrub/dbscrub/scheduler/history"
	"github.com/dbscrub/dbscrub/scheduler/telemetry"
)

// Errors returned by the Scheduler. Test for them with errors.Is.
var (
	// ErrUnknownTarget means no target is registered under the name.
	ErrUnknownTarget = errors.New("unknown target")
	// ErrDuplicateTarget means a target with the name is already registered.
	ErrDuplicateTarget = errors.New("target already registered")
	// ErrAlreadyRunning means a run of the target is in progress (one run
	// per target at a time).
	ErrAlreadyRunning = errors.New("a run of this target is already in progress")
	// ErrClosed means the scheduler was shut down.
	ErrClosed = errors.New("scheduler shut down")
)

// defaultMemoryRuns bounds the runs the default in-memory store keeps.
const defaultMemoryRuns = 1000

// Scheduler runs checks against registered targets on their plans, keeps
// their history, raises alarms and records telemetry. Create one with
// [New], register targets, then [Scheduler.Start]; stop it with
// [Scheduler.Shutdown]. It is safe for concurrent use.
type Scheduler struct {
	cfg    config
	gs     gocron.Scheduler
	store  history.Store
	alarms *alarm.Manager
	tel    *telemetry.Telemetry
	lim    *limiter

	base   context.Context
	cancel context.CancelCauseFunc

	mu      sync.Mutex
	entries map[string]*entry
	started bool
	closed  bool
	runs    sync.WaitGroup

	gmu    sync.Mutex
	groups map[string]*group // by schedule

	evalMu sync.Mutex // periodic jobs never overlap
}

// group is the targets sharing one schedule: one gocron job fires them
// all, so that a fleet on one schedule costs one timer, not thousands of
// jobs and goroutines.
type group struct {
	key     string
	job     gocron.Job
	entries map[string]*entry
}

// entry is a registered target and what the scheduler caches about it.
type entry struct {
	name   string
	t      Target
	sched  compiled
	window *compiledWindow
	sla    time.Duration
	group  *group        // set once registered (under s.gmu)
	ready  bool          // registration complete (under s.mu)
	lock   chan struct{} // one run at a time

	mu           sync.Mutex
	server       string
	info         checks.TargetInfo
	firstSeen    time.Time
	states       map[string]history.CheckState
	runningSince time.Time
}

// New returns a Scheduler configured by opts. It loads alarm state from the
// store. Nothing runs before [Scheduler.Start].
func New(ctx context.Context, opts ...Option) (*Scheduler, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.store == nil {
		cfg.store = history.NewMemory(history.WithMaxRuns(defaultMemoryRuns))
	}
	telOpts := []telemetry.Option{telemetry.WithClock(cfg.clock.Now)}
	if cfg.tp != nil {
		telOpts = append(telOpts, telemetry.WithTracerProvider(cfg.tp))
	}
	if cfg.mp != nil {
		telOpts = append(telOpts, telemetry.WithMeterProvider(cfg.mp))
	}
	tel, err := telemetry.New(telOpts...)
	if err != nil {
		return nil, fmt.Errorf("scheduler: telemetry: %w", err)
	}
	aopts := append([]alarm.Option{}, cfg.alarmOpts...)
	aopts = append(aopts, alarm.WithClock(cfg.clock.Now), alarm.WithLogger(cfg.logger), alarm.WithSinks(cfg.sinks...))
	if cfg.mp != nil {
		aopts = append(aopts, alarm.WithMeterProvider(cfg.mp))
	}
	am, err := alarm.NewManager(ctx, cfg.store, aopts...)
	if err != nil {
		tel.Close()
		return nil, err
	}
	gs, err := gocron.NewScheduler(gocron.WithClock(cfg.clock), gocron.WithLocation(cfg.location))
	if err != nil {
		tel.Close()
		am.Close()
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	s := &Scheduler{
		cfg:     cfg,
		gs:      gs,
		store:   cfg.store,
		alarms:  am,
		tel:     tel,
		lim:     newLimiter(cfg.maxConcurrent, cfg.maxPerServer),
		entries: map[string]*entry{},
		groups:  map[string]*group{},
	}
	s.base, s.cancel = context.WithCancelCause(context.Background())
	if _, err := gs.NewJob(gocron.DurationJob(cfg.evaluateEvery), gocron.NewTask(s.evaluate), gocron.WithName("dbscrub: evaluate alarms")); err != nil {
		s.closeAll()
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	if cfg.retention > 0 {
		if _, err := gs.NewJob(gocron.DurationJob(time.Hour), gocron.NewTask(s.prune), gocron.WithName("dbscrub: retention")); err != nil {
			s.closeAll()
			return nil, fmt.Errorf("scheduler: %w", err)
		}
	}
	return s, nil
}

func (s *Scheduler) closeAll() {
	_ = s.gs.Shutdown()
	_ = s.tel.Close()
	_ = s.alarms.Close()
}

// Store returns the history store.
func (s *Scheduler) Store() history.Store { return s.store }

// Alarms returns the alarm manager (firing alarms, records).
func (s *Scheduler) Alarms() *alarm.Manager { return s.alarms }

// Register adds a target. It records the target in the history (keeping
// its first registration time across restarts) and schedules its runs.
// Targets may be registered before or after Start.
func (s *Scheduler) Register(ctx context.Context, t Target) error {
	now := s.cfg.clock.Now()
	sch, win, sla, err := t.validate(s.cfg.location, now)
	if err != nil {
		return err
	}
	t = t.clone()
	e := &entry{name: t.Name, t: t, sched: sch, window: win, sla: sla, lock: make(chan struct{}, 1), server: t.Server}
	if t.Target != nil {
		e.info = t.Target.Info()
		if e.server == "" {
			e.server = serverOf(e.info)
		}
	} else {
		e.info = checks.TargetInfo{Name: t.Name}
	}
	e.info = secrets(t.Secrets).info(e.info)

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if _, dup := s.entries[t.Name]; dup {
		s.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrDuplicateTarget, t.Name)
	}
	s.entries[t.Name] = e // reserve the name
	s.mu.Unlock()
	fail := func(err error) error {
		s.mu.Lock()
		delete(s.entries, t.Name)
		s.mu.Unlock()
		return err
	}

	first, err := s.store.RegisterTarget(ctx, t.Name, t.Labels, now)
	if err != nil {
		return fail(err)
	}
	states, err := s.store.CheckStates(ctx, t.Name)
	if err != nil {
		return fail(err)
	}
	e.mu.Lock()
	e.firstSeen = first
	e.mu.Unlock()
	e.setStates(states)
	if err := s.join(e); err != nil {
		return fail(fmt.Errorf("%w: target %q: %v", checks.ErrInvalidOption, t.Name, err))
	}
	s.mu.Lock()
	e.ready = true
	s.mu.Unlock()
	s.publish(e)
	return nil
}

// join adds e to the group of its schedule, creating the group's gocron
// job if needed.
func (s *Scheduler) join(e *entry) error {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	key := e.sched.key()
	g := s.groups[key]
	if g == nil {
		g = &group{key: key, entries: map[string]*entry{}}
		job, err := s.gs.NewJob(e.sched.jobDefinition(), gocron.NewTask(s.fire, g), gocron.WithName(key))
		if err != nil {
			return err
		}
		g.job = job
		s.groups[key] = g
	}
	g.entries[e.name] = e
	e.group = g
	return nil
}

// leave removes e from its group, and the group's job once it is empty.
func (s *Scheduler) leave(e *entry) {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	g := e.group
	if g == nil {
		return
	}
	delete(g.entries, e.name)
	if len(g.entries) == 0 {
		_ = s.gs.RemoveJob(g.job.ID())
		delete(s.groups, g.key)
	}
}

// fire is the gocron job of a group: it queues a run of every target of
// the group, most urgent first (a target that never succeeded first).
func (s *Scheduler) fire(g *group) {
	s.gmu.Lock()
	es := make([]*entry, 0, len(g.entries))
	for _, e := range g.entries {
		es = append(es, e)
	}
	s.gmu.Unlock()
	type urgent struct {
		e    *entry
		last time.Time
	}
	us := make([]urgent, len(es))
	for i, e := range es {
		e.mu.Lock()
		us[i] = urgent{e, e.lastSuccessLocked()}
		e.mu.Unlock()
	}
	slices.SortFunc(us, func(a, b urgent) int {
		if c := a.last.Compare(b.last); c != 0 {
			return c
		}
		return cmpStr(a.e.name, b.e.name)
	})
	for _, u := range us {
		s.scheduled(u.e)
	}
}

// Unregister removes a target: no further run starts. A run in progress
// finishes. Its history and alarms are kept.
func (s *Scheduler) Unregister(name string) error {
	s.mu.Lock()
	e, ok := s.entries[name]
	delete(s.entries, name)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownTarget, name)
	}
	s.leave(e)
	s.tel.Forget(name)
	return nil
}

// Start starts the schedules.
func (s *Scheduler) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return
	}
	s.started = true
	s.gs.Start()
}

func (s *Scheduler) lookup(name string) (*entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	e, ok := s.entries[name]
	if !ok || !e.ready {
		return nil, fmt.Errorf("%w: %s", ErrUnknownTarget, name)
	}
	return e, nil
}

// track counts a run in progress so that Shutdown waits for it. It fails
// once the scheduler is shut down.
func (s *Scheduler) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.runs.Add(1)
	return true
}

// runContext returns a context carrying ctx's values (trace context) that
// is cancelled by the scheduler's shutdown, and also by ctx when
// followCancel is set.
func (s *Scheduler) runContext(ctx context.Context, followCancel bool) (context.Context, context.CancelFunc) {
	parent := ctx
	if !followCancel {
		parent = context.WithoutCancel(ctx)
	}
	rctx, cancel := context.WithCancelCause(parent)
	stop := context.AfterFunc(s.base, func() { cancel(context.Cause(s.base)) })
	return rctx, func() { stop(); cancel(context.Canceled) }
}

// RunNow queues a run of the target now and returns at once; the run
// executes in the background when the concurrency limits allow (ahead of
// scheduled runs). It ignores the maintenance window but honours the time
// budget and rolling coverage. ctx carries values (a trace parent) into
// the run; cancelling it does not stop the run, Shutdown does. It fails
// with ErrAlreadyRunning when a run of the target is queued or in
// progress.
func (s *Scheduler) RunNow(ctx context.Context, name string) error {
	e, err := s.lookup(name)
	if err != nil {
		return err
	}
	if !e.tryLock() {
		return fmt.Errorf("%w: %s", ErrAlreadyRunning, name)
	}
	rctx, cancel := s.runContext(ctx, false)
	if !s.start(rctx, cancel, e, history.TriggerManual, time.Time{}) {
		cancel()
		e.unlock()
		return ErrClosed
	}
	return nil
}

// Check runs every planned task of the target now and waits for the
// result: a gate before a migration or a disk move. It waits for a run in
// progress to finish first, ignores the maintenance window, the time
// budget and rolling coverage, and goes ahead of every other waiting run.
// The run is recorded and alarms are evaluated as for any run.
//
// It returns the report and its verdict ([checks.Report.Err]): nil when
// every planned task completed and nothing is corrupt, an error wrapping
// [checks.ErrCorrupt] or [checks.ErrNotVerified] otherwise. Cancelling ctx
// interrupts the run (reported as not verified). Errors from the
// scheduler itself (unknown target, shut down, ctx done before the run
// started) come with a nil report.
func (s *Scheduler) Check(ctx context.Context, name string) (*checks.Report, error) {
	e, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	if err := e.lockCtx(ctx, s.base); err != nil {
		return nil, err
	}
	if !s.track() {
		e.unlock()
		return nil, ErrClosed
	}
	defer s.runs.Done()
	rctx, cancel := s.runContext(ctx, true)
	defer cancel()
	e.mu.Lock()
	server, lastSuccess := e.server, e.lastSuccessLocked()
	e.mu.Unlock()
	if err := s.lim.acquire(rctx, server, classOf(history.TriggerGate), lastSuccess); err != nil {
		e.unlock()
		return nil, fmt.Errorf("%s: waiting for a run slot: %w", name, err)
	}
	run, err := s.execute(rctx, e, history.TriggerGate, server, time.Time{})
	e.unlock()
	if err != nil {
		return nil, err
	}
	s.notify(rctx, run)
	return run.Report, run.Report.Err()
}

// scheduled queues a scheduled run of e (after its jitter): no goroutine
// waits for a slot.
func (s *Scheduler) scheduled(e *entry) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return
	}
	if j := e.t.Plan.Jitter; j > 0 {
		if d := s.cfg.jitter(j); d > 0 {
			s.cfg.clock.AfterFunc(d, func() { s.startScheduled(e) })
			return
		}
	}
	s.startScheduled(e)
}

func (s *Scheduler) startScheduled(e *entry) {
	if !e.tryLock() {
		s.skipped(e, "already_running", "a run of the target is still queued or in progress")
		return
	}
	windowEnd, open := s.admitScheduled(e, s.cfg.clock.Now())
	if !open {
		e.unlock()
		s.skipped(e, "outside_window", "outside its maintenance window")
		return
	}
	if !s.start(s.base, func() {}, e, history.TriggerSchedule, windowEnd) {
		e.unlock()
	}
}

func (s *Scheduler) skipped(e *entry, reason, why string) {
	s.tel.RunSkipped(s.base, e.name, reason)
	s.cfg.logger.Info("dbscrub: scheduled run not started", "target", e.name, "reason", why)
	if s.cfg.onSkip != nil {
		s.cfg.onSkip(e.name, reason)
	}
}

// Shutdown stops the schedules, cancels running checks — their tasks are
// recorded as interrupted, status error, never healthy — and waits until
// they are recorded and their alarms delivered, or ctx is done. Later
// calls to RunNow, Check and Register fail with ErrClosed. The store is
// not closed.
func (s *Scheduler) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel(ErrClosed)
	s.lim.close() // queued runs are dropped; running ones are interrupted

	done := make(chan struct{})
	go func() {
		s.runs.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("scheduler: shutdown: runs still recording: %w", context.Cause(ctx))
	}
	if gerr := s.gs.ShutdownWithContext(ctx); gerr != nil && err == nil && !errors.Is(gerr, gocron.ErrStopSchedulerTimedOut) {
		err = fmt.Errorf("scheduler: shutdown: %w", gerr)
	}
	_ = s.alarms.Tick(ctx) // deliver what the interrupted runs raised
	_ = s.tel.Close()
	_ = s.alarms.Close()
	return err
}

// evaluate is the periodic job: stale alarms, then due notifications.
// Evaluations never overlap; one that fires while another runs waits for
// it rather than being dropped.
func (s *Scheduler) evaluate() {
	s.evalMu.Lock()
	defer s.evalMu.Unlock()
	ctx := s.base
	now := s.cfg.clock.Now()
	s.mu.Lock()
	entries := make([]*entry, 0, len(s.entries))
	for _, e := range s.entries {
		if e.ready {
			entries = append(entries, e)
		}
	}
	s.mu.Unlock()
	var conds []alarm.Condition
	for _, e := range entries {
		conds = append(conds, s.staleConditions(e, now)...)
		s.publish(e)
	}
	if err := s.alarms.Apply(ctx, conds...); err != nil {
		s.cfg.logger.Error("dbscrub: evaluating stale alarms", "error", err)
	}
	_ = s.alarms.Tick(ctx)
}

// EvaluateAlarms evaluates stale alarms and delivers due notifications now,
// as the periodic evaluation does (see [WithEvaluateEvery]).
func (s *Scheduler) EvaluateAlarms() { s.evaluate() }

// prune applies the retention.
func (s *Scheduler) prune() {
	s.evalMu.Lock()
	defer s.evalMu.Unlock()
	before := s.cfg.clock.Now().Add(-s.cfg.retention)
	res, err := s.store.Prune(s.base, before)
	if err != nil {
		s.cfg.logger.Error("dbscrub: pruning history", "error", err)
		return
	}
	if res.Runs+res.Alarms > 0 {
		s.cfg.logger.Info("dbscrub: pruned history", "before", before, "runs", res.Runs, "findings", res.Findings, "alarms", res.Alarms)
	}
}

// TargetStatus is the live state of one registered target.
type TargetStatus struct {
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels,omitempty"`
	Server   string            `json:"server,omitempty"`
	Schedule string            `json:"schedule"`
	Window   string            `json:"window"`
	// SLA is the effective SLA (0: stale alarms disabled).
	SLA time.Duration `json:"sla"`
	// NextRun is the next scheduled start (zero before Start).
	NextRun time.Time `json:"next_run,omitzero"`
	// RunningSince is set while a run is in progress.
	RunningSince time.Time `json:"running_since,omitzero"`
	// FirstSeen is the first registration, kept across restarts.
	FirstSeen time.Time `json:"first_seen"`
	// LastSuccess is the oldest last success among the target's checks
	// (zero: some check never succeeded, or none ran yet).
	LastSuccess time.Time `json:"last_success,omitzero"`
	// Checks are the per-check states from the history.
	Checks []history.CheckState `json:"checks"`
	// Alarms are the target's firing alarms.
	Alarms []alarm.Alarm `json:"alarms,omitempty"`
}

// Status returns the state of every registered target, sorted by name.
func (s *Scheduler) Status(ctx context.Context) ([]TargetStatus, error) {
	s.mu.Lock()
	entries := make([]*entry, 0, len(s.entries))
	for _, e := range s.entries {
		if e.ready {
			entries = append(entries, e)
		}
	}
	s.mu.Unlock()
	firing := map[string][]alarm.Alarm{}
	for _, a := range s.alarms.Firing() {
		firing[a.Target] = append(firing[a.Target], a)
	}
	out := make([]TargetStatus, 0, len(entries))
	next := map[*group]time.Time{}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e.mu.Lock()
		st := TargetStatus{
			Name: e.name, Labels: e.t.Labels, Server: e.server, Schedule: e.t.Plan.Schedule.String(), Window: e.t.Plan.Window.String(),
			SLA: max(e.sla, 0), RunningSince: e.runningSince, FirstSeen: e.firstSeen, LastSuccess: e.lastSuccessLocked(),
			Alarms: firing[e.name],
		}
		for _, cs := range e.states {
			st.Checks = append(st.Checks, cs)
		}
		e.mu.Unlock()
		slices.SortFunc(st.Checks, func(a, b history.CheckState) int { return cmpStr(a.Check, b.Check) })
		s.gmu.Lock()
		g := e.group
		s.gmu.Unlock()
		if g != nil {
			at, ok := next[g]
			if !ok {
				at, _ = g.job.NextRun()
				next[g] = at
			}
			st.NextRun = at
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b TargetStatus) int { return cmpStr(a.Name, b.Name) })
	return out, nil
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// --- entry helpers ---

func (e *entry) tryLock() bool {
	select {
	case e.lock <- struct{}{}:
		return true
	default:
		return false
	}
}

func (e *entry) lockCtx(ctx, base context.Context) error {
	select {
	case e.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-base.Done():
		return ErrClosed
	}
}

func (e *entry) unlock() { <-e.lock }

func (e *entry) setStates(states []history.CheckState) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.states = make(map[string]history.CheckState, len(states))
	for _, cs := range states {
		e.states[cs.Check] = cs
	}
}

// checkNames returns the checks the target is expected to run: the plan's
// when it names them, else those seen in the history; with the plan's
// extra checks once any check is known (before that, the stale rule is
// about the whole target).
func (e *entry) checkNamesLocked() []string {
	var names []string
	if len(e.t.Plan.Checks) > 0 {
		names = slices.Clone(e.t.Plan.Checks)
	} else {
		names = make([]string, 0, len(e.states))
		for n := range e.states {
			names = append(names, n)
		}
		slices.Sort(names)
	}
	if len(names) == 0 {
		return names
	}
	for _, x := range e.t.Plan.Extra {
		if !slices.Contains(names, x.Name) {
			names = append(names, x.Name)
		}
	}
	return names
}

// lastSuccessLocked returns the oldest last success among the expected
// checks; zero when one never succeeded (the most urgent).
func (e *entry) lastSuccessLocked() time.Time {
	names := e.checkNamesLocked()
	if len(names) == 0 {
		return time.Time{}
	}
	var oldest time.Time
	for i, n := range names {
		at := e.states[n].LastSuccessAt
		if at.IsZero() {
			return time.Time{}
		}
		if i == 0 || at.Before(oldest) {
			oldest = at
		}
	}
	return oldest
}

func (e *entry) cycleStart(check string) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.states[check].CycleStartedAt
}

// publish pushes the entry's cached state to the telemetry gauges.
func (s *Scheduler) publish(e *entry) {
	e.mu.Lock()
	names := e.checkNamesLocked()
	type ls struct {
		check string
		at    time.Time
	}
	var successes []ls
	var oldest time.Time
	never := len(names) == 0
	for _, n := range names {
		cs := e.states[n]
		successes = append(successes, ls{n, cs.LastSuccessAt})
		at, _, _ := cs.Coverage.Oldest()
		if cs.Coverage.Keys == 0 {
			at = cs.LastSuccessAt
		}
		if cs.Coverage.NeverVerified > 0 || at.IsZero() {
			never = true
		} else if oldest.IsZero() || at.Before(oldest) {
			oldest = at
		}
	}
	e.mu.Unlock()
	if len(successes) == 0 {
		s.tel.SetLastSuccess(e.name, "", time.Time{})
	} else {
		s.tel.ForgetCheck(e.name, "")
	}
	for _, x := range successes {
		s.tel.SetLastSuccess(e.name, x.check, x.at)
	}
	if never {
		oldest = time.Time{}
	}
	s.tel.SetOldestVerified(e.name, oldest)
}
