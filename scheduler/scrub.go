package scheduler

import (
	"context"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/redact"
)

// The scheduler's second line of defence against leaking a password:
// drivers keep passwords out of what they report, and a target's Secrets
// are scrubbed again from every report, span, log line and alarm.

type secrets []string

func (s secrets) none() bool {
	for _, v := range s {
		if v != "" {
			return false
		}
	}
	return true
}

func (s secrets) str(v string) string {
	if s.none() {
		return v
	}
	return redact.Scrub(v, s...)
}

func (s secrets) err(err error) error {
	if err == nil || s.none() {
		return err
	}
	return redact.Error(err, s...)
}

func (s secrets) info(i checks.TargetInfo) checks.TargetInfo {
	i.Name, i.Database, i.Host = s.str(i.Name), s.str(i.Database), s.str(i.Host)
	return i
}

func (s secrets) finding(f checks.Finding) checks.Finding {
	f.Object, f.Message, f.Remedy, f.Code, f.Task = s.str(f.Object), s.str(f.Message), s.str(f.Remedy), s.str(f.Code), s.str(f.Task)
	return f
}

func (s secrets) findings(fs []checks.Finding) []checks.Finding {
	if s.none() || len(fs) == 0 {
		return fs
	}
	out := make([]checks.Finding, len(fs))
	for i, f := range fs {
		out[i] = s.finding(f)
	}
	return out
}

func (s secrets) task(t checks.TaskReport) checks.TaskReport {
	t.Key, t.Object, t.Reason = s.str(t.Key), s.str(t.Object), s.str(t.Reason)
	return t
}

func (s secrets) check(cr *checks.CheckReport) {
	if s.none() || cr == nil {
		return
	}
	cr.Reason, cr.PlanError = s.str(cr.Reason), s.str(cr.PlanError)
	for i := range cr.Tasks {
		cr.Tasks[i] = s.task(cr.Tasks[i])
	}
	for i := range cr.Findings {
		cr.Findings[i] = s.finding(cr.Findings[i])
	}
}

// report scrubs a report in place.
func (s secrets) report(r *checks.Report) {
	if s.none() || r == nil {
		return
	}
	r.Target = s.info(r.Target)
	r.Reason = s.str(r.Reason)
	for _, cr := range r.Checks {
		s.check(cr)
	}
}

// scrubObserver scrubs what it passes on. The reports given to
// CheckFinished and RunFinished are scrubbed in place: they are the ones
// the runner returns.
type scrubObserver struct {
	inner checks.Observer
	s     secrets
}

func (o scrubObserver) RunStarted(ctx context.Context, t checks.TargetInfo) context.Context {
	return o.inner.RunStarted(ctx, o.s.info(t))
}

func (o scrubObserver) CheckStarted(ctx context.Context, check string) context.Context {
	return o.inner.CheckStarted(ctx, check)
}

func (o scrubObserver) TaskStarted(ctx context.Context, check string, t checks.Task) context.Context {
	t.Key, t.Object, t.Statement = o.s.str(t.Key), o.s.str(t.Object), o.s.str(t.Statement)
	return o.inner.TaskStarted(ctx, check, t)
}

func (o scrubObserver) TaskFinished(ctx context.Context, check string, t checks.TaskReport, fs []checks.Finding) {
	o.inner.TaskFinished(ctx, check, o.s.task(t), o.s.findings(fs))
}

func (o scrubObserver) CheckFinished(ctx context.Context, cr *checks.CheckReport) {
	o.s.check(cr)
	o.inner.CheckFinished(ctx, cr)
}

func (o scrubObserver) RunFinished(ctx context.Context, r *checks.Report) {
	o.s.report(r)
	o.inner.RunFinished(ctx, r)
}
