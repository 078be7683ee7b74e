package alarm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/dbscrub/dbscrub/checks"
)

// A Store persists alarm state so that a restart neither forgets a firing
// alarm nor notifies it again as new. The history store implements it.
type Store interface {
	// Alarms returns every stored alarm record (firing and resolved).
	Alarms(ctx context.Context) ([]Record, error)
	// SaveAlarms inserts or replaces records by key.
	SaveAlarms(ctx context.Context, recs ...Record) error
}

// A Sink delivers alarms to people or systems. Send receives one batch of
// alarms (firing and resolved) and must not keep the slice. It returns an
// error when the batch was not accepted; the Manager then retries it on a
// later [Manager.Tick]. Send must honour ctx.
type Sink interface {
	// Name identifies the sink in logs, metrics and delivery bookkeeping;
	// it must be stable across restarts and unique within a Manager.
	Name() string
	Send(ctx context.Context, alarms []Alarm) error
}

// A Renotifier is a [Sink] that needs firing alarms re-sent at its own
// interval rather than the Manager's (Alertmanager expires alerts that are
// not re-sent).
type Renotifier interface {
	Renotify() time.Duration
}

// Condition is the outcome of evaluating one alarm rule: whether the
// problem identified by Key is present now (Active) and, if so, how to
// describe it. Conditions that are not Active resolve a firing alarm.
type Condition struct {
	Key
	// Active reports whether the problem is present.
	Active bool
	// Severity overrides the kind's configured severity when set.
	Severity Severity
	// Summary and Description describe the problem for a person. On a
	// resolving condition they replace the alarm's text when not empty.
	Summary     string
	Description string
	// Findings behind the problem; the Manager caps them.
	Findings []checks.Finding
	// Labels of the target (owner, team, runbook_url).
	Labels map[string]string
	// RunID is the history run that produced the condition, if any.
	RunID int64
	// TaskKeys are the tasks whose findings raised the condition
	// (corruption, risk).
	TaskKeys []string
}

// Option configures a [Manager].
type Option func(*config) error

type config struct {
	sinks       []Sink
	renotify    time.Duration
	maxFindings int
	maxBatch    int
	sendTimeout time.Duration
	now         func() time.Time
	logger      *slog.Logger
	severity    map[Kind]Severity
	mp          metric.MeterProvider
	sync        bool
}

func defaultConfig() config {
	return config{
		renotify:    4 * time.Hour,
		maxFindings: 20,
		maxBatch:    100,
		sendTimeout: time.Minute,
		now:         time.Now,
		logger:      slog.New(slog.DiscardHandler),
		severity:    map[Kind]Severity{},
	}
}

// WithSinks adds sinks. Sink names must be unique.
func WithSinks(sinks ...Sink) Option {
	return func(c *config) error {
		for i, s := range sinks {
			if s == nil {
				return fmt.Errorf("%w: sink %d is nil", checks.ErrInvalidOption, i)
			}
		}
		c.sinks = append(c.sinks, sinks...)
		return nil
	}
}

// WithRenotify sets how often a firing alarm is sent again while it
// persists (default 4h). d must be positive.
func WithRenotify(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: renotify interval must be positive, got %s", checks.ErrInvalidOption, d)
		}
		c.renotify = d
		return nil
	}
}

// WithMaxFindings caps the findings carried by one alarm (default 20).
// n must be at least 1.
func WithMaxFindings(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: max findings must be at least 1, got %d", checks.ErrInvalidOption, n)
		}
		c.maxFindings = n
		return nil
	}
}

// WithMaxBatch caps how many alarms one Send call carries (default 100).
// n must be at least 1.
func WithMaxBatch(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: max batch must be at least 1, got %d", checks.ErrInvalidOption, n)
		}
		c.maxBatch = n
		return nil
	}
}

// WithSendTimeout bounds one Send call (default 1m), retries included.
// d must be positive.
func WithSendTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: send timeout must be positive, got %s", checks.ErrInvalidOption, d)
		}
		c.sendTimeout = d
		return nil
	}
}

// WithClock replaces time.Now, for tests and for a scheduler's fake clock.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", checks.ErrInvalidOption)
		}
		c.now = now
		return nil
	}
}

// WithLogger sets the logger for deliveries and sink failures. By default
// nothing is logged.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", checks.ErrInvalidOption)
		}
		c.logger = l
		return nil
	}
}

// WithSeverity sets the severity of a kind (see [DefaultSeverity]).
func WithSeverity(k Kind, s Severity) Option {
	return func(c *config) error {
		if !k.Valid() {
			return fmt.Errorf("%w: unknown alarm kind %q", checks.ErrInvalidOption, k)
		}
		if !s.Valid() {
			return fmt.Errorf("%w: unknown severity %q", checks.ErrInvalidOption, s)
		}
		c.severity[k] = s
		return nil
	}
}

// WithSyncDelivery makes Apply deliver what it made due before returning,
// instead of in the background: for one-shot programs that exit right
// after, and for tests. A daemon should keep the default, which batches
// the notifications of many runs together.
func WithSyncDelivery() Option {
	return func(c *config) error {
		c.sync = true
		return nil
	}
}

// WithMeterProvider sets the meter provider for the delivery metrics
// (default: the global provider).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) error {
		if mp == nil {
			return fmt.Errorf("%w: nil meter provider", checks.ErrInvalidOption)
		}
		c.mp = mp
		return nil
	}
}

// Manager applies the alarm rules and delivers notifications. It is safe
// for concurrent use.
type Manager struct {
	cfg   config
	store Store

	mu       sync.Mutex
	recs     map[Key]*Record
	inflight map[string]map[Key]bool // sink name → keys being sent
	saved    map[Key]time.Time       // LastSeen as last persisted

	notifications metric.Int64Counter
	reg           metric.Registration

	round     sync.Mutex // one delivery round at a time
	kick      chan struct{}
	stop      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
}

// NewManager returns a Manager that keeps its state in store (nil keeps it
// in memory only) and loads the alarms already there.
func NewManager(ctx context.Context, store Store, opts ...Option) (*Manager, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	names := map[string]bool{}
	for _, s := range cfg.sinks {
		if names[s.Name()] {
			return nil, fmt.Errorf("%w: two sinks are named %q", checks.ErrInvalidOption, s.Name())
		}
		names[s.Name()] = true
	}
	m := &Manager{cfg: cfg, store: store, recs: map[Key]*Record{}, inflight: map[string]map[Key]bool{}, saved: map[Key]time.Time{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	if store != nil {
		recs, err := store.Alarms(ctx)
		if err != nil {
			return nil, fmt.Errorf("alarm: loading alarm state: %w", err)
		}
		for i := range recs {
			r := recs[i]
			if r.Delivered == nil {
				r.Delivered = map[string]Delivery{}
			}
			m.recs[r.Key()] = &r
			m.saved[r.Key()] = r.LastSeen
		}
	}
	if err := m.initMetrics(); err != nil {
		return nil, err
	}
	go m.loop()
	return m, nil
}

// loop delivers in the background whenever Apply changed something. Kicks
// coalesce: a burst of runs is delivered in a few batched rounds, not one
// request per run.
func (m *Manager) loop() {
	defer close(m.stopped)
	for {
		select {
		case <-m.stop:
			return
		case <-m.kick:
			m.deliverRound(context.Background())
		}
	}
}

func (m *Manager) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *Manager) deliverRound(ctx context.Context) {
	m.round.Lock()
	defer m.round.Unlock()
	m.deliver(ctx)
}

func (m *Manager) initMetrics() error {
	mp := m.cfg.mp
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	meter := mp.Meter("github.com/dbscrub/dbscrub/scheduler/alarm")
	var err error
	m.notifications, err = meter.Int64Counter("dbscrub.alarm.notifications",
		metric.WithUnit("{notification}"),
		metric.WithDescription("Alarm notifications handed to sinks, by sink and result (ok or error)."))
	if err != nil {
		return err
	}
	firing, err := meter.Int64ObservableGauge("dbscrub.alarms.firing",
		metric.WithUnit("{alarm}"),
		metric.WithDescription("Alarms currently firing, by kind and severity."))
	if err != nil {
		return err
	}
	m.reg, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		type ks struct {
			k Kind
			s Severity
		}
		counts := map[ks]int64{}
		m.mu.Lock()
		for _, r := range m.recs {
			if r.State == StateFiring {
				counts[ks{r.Kind, r.Severity}]++
			}
		}
		m.mu.Unlock()
		for _, k := range []Kind{KindCorruption, KindNotVerified, KindStale, KindRisk} {
			for _, s := range []Severity{SeverityCritical, SeverityWarning, SeverityInfo} {
				if n, ok := counts[ks{k, s}]; ok || s == DefaultSeverity(k) {
					o.ObserveInt64(firing, n, metric.WithAttributes(attribute.String("dbscrub.alarm.kind", string(k)), attribute.String("dbscrub.alarm.severity", string(s))))
				}
			}
		}
		return nil
	}, firing)
	return err
}

// Close stops background delivery and unregisters the Manager's metric
// callback. Call Tick first to deliver what is due. It does not close the
// store.
func (m *Manager) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.stop)
		<-m.stopped
		if m.reg != nil {
			err = m.reg.Unregister()
		}
	})
	return err
}

// Get returns the record of an alarm, firing or resolved.
func (m *Manager) Get(k Key) (Record, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[k]
	if !ok {
		return Record{}, false
	}
	return r.clone(), true
}

// Firing returns the firing alarms, sorted by key.
func (m *Manager) Firing() []Alarm {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Alarm
	for _, r := range m.recs {
		if r.State == StateFiring {
			out = append(out, r.Alarm.clone())
		}
	}
	slices.SortFunc(out, func(a, b Alarm) int { return compareKeys(a.Key(), b.Key()) })
	return out
}

func compareKeys(a, b Key) int {
	if a.Target != b.Target {
		return cmpString(a.Target, b.Target)
	}
	if a.Check != b.Check {
		return cmpString(a.Check, b.Check)
	}
	return cmpString(string(a.Kind), string(b.Kind))
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Apply applies conditions: an active condition fires a new alarm or
// refreshes a firing one; an inactive one resolves a firing alarm. State
// changes are persisted before Apply returns; the notifications they make
// due are delivered in the background, batched with those of other calls
// (use [Manager.Tick] to deliver synchronously). The error reports a
// failure to persist; sink failures are logged and counted, never
// returned.
func (m *Manager) Apply(ctx context.Context, conds ...Condition) error {
	if len(conds) == 0 {
		return nil
	}
	m.mu.Lock()
	now := m.cfg.now()
	touched := false
	var toSave []Record
	for _, c := range conds {
		if c.Target == "" || !c.Kind.Valid() {
			m.mu.Unlock()
			return fmt.Errorf("alarm: invalid condition key %s", c.Key)
		}
		if rec, save := m.applyOne(c, now); rec != nil {
			touched = true
			if save {
				toSave = append(toSave, rec.clone())
				m.saved[c.Key] = rec.LastSeen
			}
		}
	}
	err := m.save(ctx, toSave)
	m.mu.Unlock()
	if touched {
		if m.cfg.sync {
			m.deliverRound(ctx)
		} else {
			m.poke()
		}
	}
	return err
}

// applyOne applies c under m.mu and returns the record it touched (nil when
// nothing changed) and whether the record must be persisted.
func (m *Manager) applyOne(c Condition, now time.Time) (*Record, bool) {
	rec := m.recs[c.Key]
	if !c.Active {
		if rec == nil || rec.State != StateFiring {
			return nil, false
		}
		rec.State = StateResolved
		rec.ResolvedAt = now
		rec.LastSeen = now
		rec.ChangedAt = now
		rec.Version++
		if c.Summary != "" {
			rec.Summary = c.Summary
		}
		if c.Description != "" {
			rec.Description = c.Description
		}
		if c.RunID != 0 {
			rec.RunID = c.RunID
		}
		return rec, true
	}
	sev := c.Severity
	if !sev.Valid() {
		sev = m.severityOf(c.Kind)
	}
	findings := c.Findings
	if len(findings) > m.cfg.maxFindings {
		findings = findings[:m.cfg.maxFindings]
	}
	changed := false
	if rec == nil || rec.State != StateFiring {
		nr := &Record{Alarm: Alarm{Target: c.Target, Check: c.Check, Kind: c.Kind, State: StateFiring, FirstSeen: now}, ChangedAt: now, Delivered: map[string]Delivery{}}
		if rec != nil {
			nr.Fired, nr.Delivered, nr.Version = rec.Fired, rec.Delivered, rec.Version
		}
		nr.Fired++
		nr.Version++
		rec = nr
		m.recs[c.Key] = rec
		changed = true
	} else if sev.rank() > rec.Severity.rank() {
		// Escalation: owed to every sink again.
		rec.ChangedAt = now
		rec.Version++
		changed = true
	}
	changed = changed || rec.Severity != sev || rec.Summary != c.Summary || rec.Description != c.Description ||
		rec.FindingsTotal != len(c.Findings) || !slices.Equal(rec.TaskKeys, c.TaskKeys) || !maps.Equal(rec.Labels, c.Labels) ||
		(c.RunID != 0 && rec.RunID != c.RunID)
	rec.Severity = sev
	rec.Summary = c.Summary
	rec.Description = c.Description
	rec.Findings = append([]checks.Finding(nil), findings...)
	rec.FindingsTotal = len(c.Findings)
	rec.Labels = maps.Clone(c.Labels)
	rec.TaskKeys = append([]string(nil), c.TaskKeys...)
	rec.LastSeen = now
	if c.RunID != 0 {
		rec.RunID = c.RunID
	}
	// Persist LastSeen at most hourly when nothing else changed, so that a
	// stale alarm confirmed every minute does not write every minute.
	save := changed || now.Sub(m.saved[c.Key]) >= time.Hour
	return rec, save
}

func (m *Manager) severityOf(k Kind) Severity {
	if s, ok := m.cfg.severity[k]; ok {
		return s
	}
	return DefaultSeverity(k)
}

// save persists records; the caller holds m.mu so that saves of one key
// never overtake each other.
func (m *Manager) save(ctx context.Context, recs []Record) error {
	if m.store == nil || len(recs) == 0 {
		return nil
	}
	if err := m.store.SaveAlarms(context.WithoutCancel(ctx), recs...); err != nil {
		m.cfg.logger.Error("dbscrub: could not save alarm state", "alarms", len(recs), "error", err)
		return fmt.Errorf("alarm: saving alarm state: %w", err)
	}
	return nil
}

// Tick delivers every notification that is due now — new states,
// re-notifications of firing alarms, deliveries that failed before — and
// returns when the sinks have answered. Call it periodically (the
// scheduler does, every evaluation interval, and once more at shutdown).
func (m *Manager) Tick(ctx context.Context) error {
	m.deliverRound(ctx)
	return nil
}

// due reports whether sink is owed a notification of r.
func (m *Manager) due(r *Record, s Sink, now time.Time) bool {
	d, ok := r.Delivered[s.Name()]
	if r.State == StateResolved {
		// Send resolved once, and only to sinks that were told it fired.
		return ok && d.Version < r.Version
	}
	if !ok || d.Version < r.Version {
		return true
	}
	every := m.cfg.renotify
	if rn, ok := s.(Renotifier); ok && rn.Renotify() > 0 {
		every = rn.Renotify()
	}
	return now.Sub(d.At) >= every
}

type delivery struct {
	sink     Sink
	alarms   []Alarm
	versions []int64
}

// sortByKey orders the batch by key so that sinks see a stable order.
func (d *delivery) sortByKey() {
	idx := make([]int, len(d.alarms))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return compareKeys(d.alarms[a].Key(), d.alarms[b].Key()) })
	alarms := make([]Alarm, len(idx))
	versions := make([]int64, len(idx))
	for i, j := range idx {
		alarms[i], versions[i] = d.alarms[j], d.versions[j]
	}
	d.alarms, d.versions = alarms, versions
}

// deliver sends what is due, one goroutine per sink, and waits for them.
// Callers hold m.round.
func (m *Manager) deliver(ctx context.Context) {
	if len(m.cfg.sinks) == 0 {
		return
	}
	m.mu.Lock()
	now := m.cfg.now()
	var jobs []delivery
	for _, s := range m.cfg.sinks {
		inf := m.inflight[s.Name()]
		if inf == nil {
			inf = map[Key]bool{}
			m.inflight[s.Name()] = inf
		}
		d := delivery{sink: s}
		visit := func(k Key, r *Record) {
			if inf[k] || !m.due(r, s, now) {
				return
			}
			inf[k] = true
			d.alarms = append(d.alarms, r.Alarm.clone())
			d.versions = append(d.versions, r.Version)
		}
		for k, r := range m.recs {
			visit(k, r)
		}
		if len(d.alarms) > 0 {
			d.sortByKey()
			jobs = append(jobs, d)
		}
	}
	m.mu.Unlock()
	if len(jobs) == 0 {
		return
	}

	type result struct {
		job  int
		from int
		to   int
		err  error
	}
	results := make(chan result, 64)
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for from := 0; from < len(j.alarms); from += m.cfg.maxBatch {
				to := min(from+m.cfg.maxBatch, len(j.alarms))
				results <- result{job: i, from: from, to: to, err: m.send(ctx, j.sink, j.alarms[from:to])}
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()

	// Results are processed as they come, without holding m.mu while a
	// sink is slow: Apply never waits for a sink.
	delivered := map[Key]bool{}
	for res := range results {
		m.mu.Lock()
		j := jobs[res.job]
		name := j.sink.Name()
		outcome := "ok"
		if res.err != nil {
			outcome = "error"
		}
		m.notifications.Add(ctx, int64(res.to-res.from), metric.WithAttributes(attribute.String("dbscrub.alarm.sink", name), attribute.String("result", outcome)))
		for i := res.from; i < res.to; i++ {
			k := j.alarms[i].Key()
			delete(m.inflight[name], k)
			r, ok := m.recs[k]
			if !ok || res.err != nil {
				continue
			}
			r.Delivered[name] = Delivery{At: now, Version: j.versions[i]}
			delivered[k] = true
		}
		m.mu.Unlock()
		if res.err != nil {
			m.cfg.logger.Warn("dbscrub: alarm sink failed; will retry", "sink", name, "alarms", res.to-res.from, "error", res.err)
		} else {
			m.cfg.logger.Debug("dbscrub: alarms delivered", "sink", name, "alarms", res.to-res.from)
		}
	}
	// Save the records as they are now: an Apply may have changed them
	// meanwhile, and an older copy must not overwrite its state.
	m.mu.Lock()
	defer m.mu.Unlock()
	toSave := make([]Record, 0, len(delivered))
	for k := range delivered {
		if r, ok := m.recs[k]; ok {
			toSave = append(toSave, r.clone())
		}
	}
	_ = m.save(ctx, toSave)
}

// send calls the sink under the send timeout, turning a panic into an error.
func (m *Manager) send(ctx context.Context, s Sink, alarms []Alarm) (err error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.sendTimeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("alarm: sink %s panicked: %v", s.Name(), p)
		}
	}()
	err = s.Send(ctx, alarms)
	if err == nil && ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// The sink ignored the deadline but reported success; believe it.
		return nil
	}
	return err
}

// Delivery records one accepted notification of an alarm by a sink.
type Delivery struct {
	// At is when the notification was sent.
	At time.Time `json:"at"`
	// Version is the alarm's version that was sent.
	Version int64 `json:"version"`
}
