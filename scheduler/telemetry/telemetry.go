// Package telemetry turns dbscrub runs into OpenTelemetry spans and
// metrics, using only the OpenTelemetry API: the application chooses the
// SDK and exporters, and passes providers as options (the globals by
// default).
//
// # Spans
//
// [Telemetry.Observer] returns a [checks.Observer] that opens one span per
// run ("dbscrub.run"), a child per check ("dbscrub.check") and a child per
// task that started ("dbscrub.task"), all of kind CLIENT, with the
// semantic-convention attributes db.system.name, db.namespace,
// server.address and server.port, and dbscrub.* attributes: dbscrub.target,
// dbscrub.check, dbscrub.task.key, dbscrub.object, dbscrub.status,
// dbscrub.bytes.planned, dbscrub.bytes.verified and coverage counts.
// Corruption sets the span status to Error with error.type "corruption";
// a check that could not verify sets Error with error.type "not_verified".
// Each finding is a span event named "dbscrub.finding".
//
// # Metrics
//
//   - dbscrub.run.duration (histogram, s): db.system.name, dbscrub.status
//   - dbscrub.task.duration (histogram, s): db.system.name, dbscrub.check,
//     dbscrub.status
//   - dbscrub.runs (counter): dbscrub.target, dbscrub.status
//   - dbscrub.runs.skipped (counter): dbscrub.target, dbscrub.reason
//   - dbscrub.findings (counter): dbscrub.target, dbscrub.check,
//     dbscrub.severity
//   - dbscrub.bytes_verified (counter, By): dbscrub.target, dbscrub.check
//   - dbscrub.last_success.timestamp (gauge, s): dbscrub.target,
//     dbscrub.check — Unix time of the last successful check, 0 when the
//     check never succeeded. A Prometheus exporter names it
//     dbscrub_last_success_timestamp_seconds; alert on
//     time() - dbscrub_last_success_timestamp_seconds > SLA, which fires
//     first for targets that never succeeded.
//   - dbscrub.coverage.age (gauge, s): dbscrub.target — age of the least
//     recently verified object (an object never verified counts from the
//     Unix epoch, so it is the most urgent, not the least).
//
// Histograms carry no target attribute so that a fleet of thousands of
// databases does not multiply their buckets; counters and gauges do.
package telemetry

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/dbscrub/dbscrub/checks"
)

// ScopeName is the instrumentation scope of dbscrub's tracer and meter.
const ScopeName = "github.com/dbscrub/dbscrub"

// Attribute keys of the dbscrub.* namespace.
const (
	AttrTarget         = attribute.Key("dbscrub.target")
	AttrCheck          = attribute.Key("dbscrub.check")
	AttrTaskKey        = attribute.Key("dbscrub.task.key")
	AttrTaskState      = attribute.Key("dbscrub.task.state")
	AttrObject         = attribute.Key("dbscrub.object")
	AttrStatus         = attribute.Key("dbscrub.status")
	AttrReason         = attribute.Key("dbscrub.reason")
	AttrSeverity       = attribute.Key("dbscrub.severity")
	AttrBytesPlanned   = attribute.Key("dbscrub.bytes.planned")
	AttrBytesVerified  = attribute.Key("dbscrub.bytes.verified")
	AttrObjects        = attribute.Key("dbscrub.objects.verified")
	AttrFindings       = attribute.Key("dbscrub.findings")
	AttrAttempts       = attribute.Key("dbscrub.attempts")
	AttrTasksPlanned   = attribute.Key("dbscrub.tasks.planned")
	AttrTasksCompleted = attribute.Key("dbscrub.tasks.completed")
	AttrTasksFailed    = attribute.Key("dbscrub.tasks.failed")
	AttrTasksSkipped   = attribute.Key("dbscrub.tasks.skipped")
	AttrTasksNotCov    = attribute.Key("dbscrub.tasks.not_covered")
	AttrTasksCancelled = attribute.Key("dbscrub.tasks.cancelled")
	AttrFindingCode    = attribute.Key("dbscrub.finding.code")
	AttrFindingMessage = attribute.Key("dbscrub.finding.message")
	AttrFindingLoc     = attribute.Key("dbscrub.finding.location")
)

// The error.type values set on spans.
const (
	ErrorTypeCorruption  = "corruption"
	ErrorTypeNotVerified = "not_verified"
)

// maxEvents caps finding events per span.
const maxEvents = 100

// Option configures [New].
type Option func(*config) error

type config struct {
	tp  trace.TracerProvider
	mp  metric.MeterProvider
	now func() time.Time
}

// WithTracerProvider sets the tracer provider (default: the global one).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) error {
		if tp == nil {
			return fmt.Errorf("%w: nil tracer provider", checks.ErrInvalidOption)
		}
		c.tp = tp
		return nil
	}
}

// WithMeterProvider sets the meter provider (default: the global one).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) error {
		if mp == nil {
			return fmt.Errorf("%w: nil meter provider", checks.ErrInvalidOption)
		}
		c.mp = mp
		return nil
	}
}

// WithClock replaces time.Now for the coverage age gauge (a scheduler
// passes its clock).
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", checks.ErrInvalidOption)
		}
		c.now = now
		return nil
	}
}

// Telemetry records spans and metrics for dbscrub runs. It is safe for
// concurrent use.
type Telemetry struct {
	tracer trace.Tracer
	now    func() time.Time

	runDuration   metric.Float64Histogram
	taskDuration  metric.Float64Histogram
	runs          metric.Int64Counter
	skipped       metric.Int64Counter
	findings      metric.Int64Counter
	bytesVerified metric.Int64Counter
	reg           metric.Registration

	mu          sync.Mutex
	lastSuccess map[[2]string]time.Time
	oldest      map[string]time.Time
}

// New returns a Telemetry recording to the configured providers.
func New(opts ...Option) (*Telemetry, error) {
	cfg := config{now: time.Now}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.tp == nil {
		cfg.tp = otel.GetTracerProvider()
	}
	if cfg.mp == nil {
		cfg.mp = otel.GetMeterProvider()
	}
	t := &Telemetry{
		tracer:      cfg.tp.Tracer(ScopeName),
		now:         cfg.now,
		lastSuccess: map[[2]string]time.Time{},
		oldest:      map[string]time.Time{},
	}
	m := cfg.mp.Meter(ScopeName)
	var err error
	buckets := metric.WithExplicitBucketBoundaries(0.01, 0.1, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400)
	if t.runDuration, err = m.Float64Histogram("dbscrub.run.duration", metric.WithUnit("s"), buckets,
		metric.WithDescription("Duration of a dbscrub run of one target.")); err != nil {
		return nil, err
	}
	if t.taskDuration, err = m.Float64Histogram("dbscrub.task.duration", metric.WithUnit("s"), buckets,
		metric.WithDescription("Duration of one dbscrub task.")); err != nil {
		return nil, err
	}
	if t.runs, err = m.Int64Counter("dbscrub.runs", metric.WithUnit("{run}"),
		metric.WithDescription("Finished runs, by target and status.")); err != nil {
		return nil, err
	}
	if t.skipped, err = m.Int64Counter("dbscrub.runs.skipped", metric.WithUnit("{run}"),
		metric.WithDescription("Scheduled runs that did not start (outside the maintenance window, already running), by target and reason.")); err != nil {
		return nil, err
	}
	if t.findings, err = m.Int64Counter("dbscrub.findings", metric.WithUnit("{finding}"),
		metric.WithDescription("Findings reported by checks, by target, check and severity.")); err != nil {
		return nil, err
	}
	if t.bytesVerified, err = m.Int64Counter("dbscrub.bytes_verified", metric.WithUnit("By"),
		metric.WithDescription("Bytes verified by checks, by target and check.")); err != nil {
		return nil, err
	}
	lastSuccess, err := m.Float64ObservableGauge("dbscrub.last_success.timestamp", metric.WithUnit("s"),
		metric.WithDescription("Unix time of the last successful check of a target (0: never). Alert on time() minus this."))
	if err != nil {
		return nil, err
	}
	coverageAge, err := m.Float64ObservableGauge("dbscrub.coverage.age", metric.WithUnit("s"),
		metric.WithDescription("Age of the least recently verified object of a target; never verified counts from the Unix epoch."))
	if err != nil {
		return nil, err
	}
	t.reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		now := t.now()
		t.mu.Lock()
		defer t.mu.Unlock()
		for k, at := range t.lastSuccess {
			o.ObserveFloat64(lastSuccess, unixSeconds(at), metric.WithAttributes(AttrTarget.String(k[0]), AttrCheck.String(k[1])))
		}
		for target, at := range t.oldest {
			o.ObserveFloat64(coverageAge, now.Sub(time.Unix(0, 0)).Seconds()-unixSeconds(at), metric.WithAttributes(AttrTarget.String(target)))
		}
		return nil
	}, lastSuccess, coverageAge)
	if err != nil {
		return nil, err
	}
	return t, nil
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

// Close unregisters the gauges' callback.
func (t *Telemetry) Close() error {
	if t.reg != nil {
		return t.reg.Unregister()
	}
	return nil
}

// SetLastSuccess sets the last successful check of a target; the zero time
// means never (reported as 0).
func (t *Telemetry) SetLastSuccess(target, check string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastSuccess[[2]string{target, check}] = at
}

// ForgetCheck stops reporting the last success of one check of a target.
func (t *Telemetry) ForgetCheck(target, check string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.lastSuccess, [2]string{target, check})
}

// SetOldestVerified sets when the least recently verified object of a
// target was verified; the zero time means never.
func (t *Telemetry) SetOldestVerified(target string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.oldest[target] = at
}

// Forget stops reporting gauges for a target.
func (t *Telemetry) Forget(target string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.oldest, target)
	for k := range t.lastSuccess {
		if k[0] == target {
			delete(t.lastSuccess, k)
		}
	}
}

// RunSkipped counts a scheduled run that did not start.
func (t *Telemetry) RunSkipped(ctx context.Context, target, reason string) {
	t.skipped.Add(ctx, 1, metric.WithAttributes(AttrTarget.String(target), AttrReason.String(reason)))
}

// Observer returns a [checks.Observer] for runs of target (the scheduler's
// stable name; when empty, the report's target name is used).
func (t *Telemetry) Observer(target string) checks.Observer {
	return &observer{t: t, target: target}
}

type observer struct {
	t      *Telemetry
	target string
}

type runInfoKey struct{}
type taskSpanKey struct{}

type runInfo struct {
	target string
	engine string
	attrs  []attribute.KeyValue
}

func infoFrom(ctx context.Context) *runInfo {
	if ri, ok := ctx.Value(runInfoKey{}).(*runInfo); ok {
		return ri
	}
	return &runInfo{}
}

// DBAttributes returns the semantic-convention attributes of a target.
func DBAttributes(info checks.TargetInfo) []attribute.KeyValue {
	var attrs []attribute.KeyValue
	if info.Engine != "" {
		attrs = append(attrs, semconv.DBSystemNameKey.String(info.Engine))
	}
	if info.Database != "" {
		attrs = append(attrs, semconv.DBNamespace(info.Database))
	}
	if info.Host != "" {
		attrs = append(attrs, semconv.ServerAddress(info.Host))
	}
	if info.Port != 0 {
		attrs = append(attrs, semconv.ServerPort(info.Port))
	}
	return attrs
}

func (o *observer) RunStarted(ctx context.Context, info checks.TargetInfo) context.Context {
	target := o.target
	if target == "" {
		target = info.Name
	}
	ri := &runInfo{target: target, engine: info.Engine, attrs: append(DBAttributes(info), AttrTarget.String(target))}
	ctx = context.WithValue(ctx, runInfoKey{}, ri)
	ctx, _ = o.t.tracer.Start(ctx, "dbscrub.run", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(ri.attrs...))
	return ctx
}

func (o *observer) CheckStarted(ctx context.Context, check string) context.Context {
	ri := infoFrom(ctx)
	ctx, _ = o.t.tracer.Start(ctx, "dbscrub.check", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(append(append([]attribute.KeyValue(nil), ri.attrs...), AttrCheck.String(check))...))
	return ctx
}

func (o *observer) TaskStarted(ctx context.Context, check string, task checks.Task) context.Context {
	ri := infoFrom(ctx)
	attrs := append(append([]attribute.KeyValue(nil), ri.attrs...),
		AttrCheck.String(check), AttrTaskKey.String(task.Key), AttrObject.String(task.Object), AttrBytesPlanned.Int64(task.Cost))
	if task.Statement != "" {
		attrs = append(attrs, semconv.DBQueryText(task.Statement))
	}
	ctx, _ = o.t.tracer.Start(ctx, "dbscrub.task", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return context.WithValue(ctx, taskSpanKey{}, true)
}

func (o *observer) TaskFinished(ctx context.Context, check string, tr checks.TaskReport, findings []checks.Finding) {
	if ctx.Value(taskSpanKey{}) == nil {
		return // never started (not covered, cancelled): no span of its own
	}
	ri := infoFrom(ctx)
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(AttrStatus.String(string(tr.Status)), AttrTaskState.String(string(tr.State)),
		AttrBytesVerified.Int64(tr.BytesVerified), AttrObjects.Int64(tr.ObjectsVerified),
		AttrFindings.Int(len(findings)), AttrAttempts.Int(tr.Attempts))
	addFindingEvents(span, findings)
	setStatus(span, tr.Status, tr.Reason)
	span.End()
	var attrs []attribute.KeyValue
	if ri.engine != "" {
		attrs = append(attrs, semconv.DBSystemNameKey.String(ri.engine))
	}
	attrs = append(attrs, AttrCheck.String(check), AttrStatus.String(string(tr.Status)))
	o.t.taskDuration.Record(ctx, tr.DurationSeconds, metric.WithAttributes(attrs...))
}

func (o *observer) CheckFinished(ctx context.Context, cr *checks.CheckReport) {
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(AttrStatus.String(string(cr.Status)))
	span.SetAttributes(coverageAttrs(cr.Coverage)...)
	span.SetAttributes(AttrFindings.Int(len(cr.Findings)))
	setStatus(span, cr.Status, cr.Reason)
	span.End()
}

func (o *observer) RunFinished(ctx context.Context, rep *checks.Report) {
	ri := infoFrom(ctx)
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(AttrStatus.String(string(rep.Status)))
	span.SetAttributes(coverageAttrs(rep.Coverage)...)
	setStatus(span, rep.Status, rep.Reason)
	span.End()

	target := ri.target
	if target == "" {
		target = rep.Target.Name
	}
	var dattrs []attribute.KeyValue
	if rep.Target.Engine != "" {
		dattrs = append(dattrs, semconv.DBSystemNameKey.String(rep.Target.Engine))
	}
	o.t.runDuration.Record(ctx, rep.DurationSeconds, metric.WithAttributes(append(dattrs, AttrStatus.String(string(rep.Status)))...))
	o.t.runs.Add(ctx, 1, metric.WithAttributes(AttrTarget.String(target), AttrStatus.String(string(rep.Status))))
	for _, cr := range rep.Checks {
		var corrupt, warn int64
		for _, f := range cr.Findings {
			if f.Severity == checks.StatusWarning {
				warn++
			} else {
				corrupt++
			}
		}
		for sev, n := range map[checks.Status]int64{checks.StatusCorrupt: corrupt, checks.StatusWarning: warn} {
			if n > 0 {
				o.t.findings.Add(ctx, n, metric.WithAttributes(AttrTarget.String(target), AttrCheck.String(cr.Check), AttrSeverity.String(string(sev))))
			}
		}
		o.t.bytesVerified.Add(ctx, cr.Coverage.BytesVerified, metric.WithAttributes(AttrTarget.String(target), AttrCheck.String(cr.Check)))
	}
}

func coverageAttrs(c checks.Coverage) []attribute.KeyValue {
	return []attribute.KeyValue{
		AttrTasksPlanned.Int(c.TasksPlanned), AttrTasksCompleted.Int(c.TasksCompleted), AttrTasksFailed.Int(c.TasksFailed),
		AttrTasksSkipped.Int(c.TasksSkipped), AttrTasksNotCov.Int(c.TasksNotCovered), AttrTasksCancelled.Int(c.TasksCancelled),
		AttrBytesPlanned.Int64(c.BytesPlanned), AttrBytesVerified.Int64(c.BytesVerified), AttrObjects.Int64(c.ObjectsVerified),
	}
}

func setStatus(span trace.Span, s checks.Status, reason string) {
	if len(reason) > 1024 {
		reason = reason[:1024] + "..."
	}
	switch s {
	case checks.StatusCorrupt:
		span.SetAttributes(semconv.ErrorTypeKey.String(ErrorTypeCorruption))
		span.SetStatus(codes.Error, reason)
	case checks.StatusError:
		span.SetAttributes(semconv.ErrorTypeKey.String(ErrorTypeNotVerified))
		span.SetStatus(codes.Error, reason)
	default:
		if reason != "" {
			span.SetAttributes(AttrReason.String(reason))
		}
	}
}

func addFindingEvents(span trace.Span, findings []checks.Finding) {
	for i, f := range findings {
		if i == maxEvents {
			span.AddEvent("dbscrub.findings.truncated", trace.WithAttributes(AttrFindings.Int(len(findings))))
			return
		}
		msg := f.Message
		if len(msg) > 1024 {
			msg = msg[:1024] + "..."
		}
		attrs := []attribute.KeyValue{
			AttrCheck.String(f.Check), AttrSeverity.String(string(f.Severity)), AttrObject.String(f.Object),
			AttrFindingMessage.String(msg),
		}
		if f.Task != "" {
			attrs = append(attrs, AttrTaskKey.String(f.Task))
		}
		if f.Code != "" {
			attrs = append(attrs, AttrFindingCode.String(f.Code))
		}
		if loc := f.Location.String(); loc != "" {
			attrs = append(attrs, AttrFindingLoc.String(loc))
		}
		span.AddEvent("dbscrub.finding", trace.WithAttributes(attrs...))
	}
}
