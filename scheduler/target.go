package scheduler

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-co-op/gocron/v2"

	"github.com/dbscrub/dbscrub/checks"
)

// Target is a database the scheduler checks on a plan.
type Target struct {
	// Name identifies the target in history, alarms and metrics. It must be
	// stable across restarts and unique within a scheduler. It is not a DSN.
	Name string
	// Labels travel with the target's alarms: owner, team, runbook_url —
	// who to call.
	Labels map[string]string
	// Server groups targets that share a database server for the
	// per-server concurrency limit ([WithMaxPerServer]). When empty, it is
	// host:port from the target's [checks.TargetInfo] (learned at the first
	// successful Open when the target is given by Open); targets without a
	// host (SQLite files) are not grouped.
	Server string

	// Target is the database to check. Set exactly one of Target and Open.
	Target checks.Target
	// Open returns the database to check, once per run; when the returned
	// target implements io.Closer, it is closed after the run. An error
	// makes the run's status error (not_verified alarm).
	Open func(ctx context.Context) (checks.Target, error)

	// Secrets are strings that must never appear in logs, spans, alarms or
	// the history: pass the DSN's password (redact.Password). Drivers
	// already keep passwords out of what they report; this is the second
	// line of defence, for errors that quote a connection string.
	Secrets []string

	// Plan says what runs when.
	Plan Plan
}

// Plan says which checks run against a target, when, and within which
// limits.
type Plan struct {
	// Checks are the names of the checks to run; empty runs the target's
	// default checks.
	Checks []string
	// Schedule says when runs start.
	Schedule Schedule
	// Window, when set, is the maintenance window: a scheduled run starts
	// only inside it and stops starting tasks when it closes (the tasks not
	// started are reported as not covered, and rolling coverage resumes
	// them on the next run). RunNow and Check ignore the window.
	Window Window
	// Budget, when positive, is the time budget of a run: no task starts
	// after it. RunNow honours it; Check does not (a gate verifies
	// everything, bounded by its context instead).
	Budget time.Duration
	// Jitter, when positive, delays each scheduled run by a random
	// duration in [0, Jitter), so that targets sharing a schedule do not
	// all start in the same second.
	Jitter time.Duration
	// SLA is the longest acceptable time without a successful check of
	// each check, and without verification of each object: beyond it a
	// stale alarm fires (the dead man's switch). Zero means twice the
	// longest gap between two scheduled runs (or maintenance windows);
	// negative disables stale alarms for the target.
	SLA time.Duration
	// Jobs is how many tasks of a run execute at once (default 1).
	Jobs int
	// TaskTimeout, when positive, bounds each task.
	TaskTimeout time.Duration
	// Options are extra runner options ([checks.WithRetries],
	// [checks.WithMaxRate], ...). The scheduler's own settings (jobs, task
	// timeout, budget, observer, logger) take precedence.
	Options []checks.Option
	// Extra are checks that run besides the target's checks named by
	// Checks (or its defaults): checks that need more than a name, such as
	// a comparison with a stored fingerprint ([CompareFingerprint]) or
	// with another database ([CompareDatabase]). Each is built for every
	// run, against the target of the run, and then goes through the same
	// runner, history, coverage, rolling coverage, alarms, telemetry and
	// stale rule as the named checks.
	Extra []ExtraCheck
}

// ExtraCheck is a check a [Plan] runs besides the target's named checks.
type ExtraCheck struct {
	// Name is the name of the check in reports, the history, alarms and
	// metrics. The check Build returns must have it. It must be unique
	// among the plan's extra checks and differ from the names of the
	// target's checks (a run whose target has a check of the same name
	// fails, not verified).
	Name string
	// Build returns the check for one run; t is the target of the run
	// (the Target, or what Open returned). When the check implements
	// io.Closer, it is closed after the run. An error (the check cannot
	// be prepared: a file is unreadable, a second database cannot be
	// opened) makes the check's status error, with a not_verified alarm:
	// never healthy, never silent.
	Build func(ctx context.Context, t checks.Target) (checks.Check, error)
}

// Schedule says when a target's runs start: a cron expression, or an
// interval. Set exactly one of Cron and Every.
type Schedule struct {
	// Cron is a standard 5-field cron expression ("30 2 * * *") or a
	// descriptor (@daily, @hourly, @every 6h). It may start with
	// "CRON_TZ=Area/City " to set its time zone. Targets with the same
	// expression and time zone share one timer.
	Cron string
	// Location is the time zone of Cron when it has no CRON_TZ prefix
	// (default: the scheduler's location, see [WithLocation]). It must be
	// a location loaded by name (time.LoadLocation).
	Location *time.Location
	// Every is an interval between runs. Targets with the same interval
	// share one timer: they run together, counted from the scheduler's
	// start (or from the registration of the first of them after Start).
	Every time.Duration
}

// String formats the schedule as ParseSchedule reads it.
func (s Schedule) String() string {
	if s.Every > 0 {
		return "@every " + s.Every.String()
	}
	if s.Location != nil && !hasTZ(s.Cron) {
		return "CRON_TZ=" + s.Location.String() + " " + s.Cron
	}
	return s.Cron
}

// ParseSchedule reads "@every 6h" (or "every 6h") as an interval, and
// anything else as a cron expression, with an optional CRON_TZ= prefix.
func ParseSchedule(s string) (Schedule, error) {
	s = strings.TrimSpace(s)
	for _, p := range []string{"@every ", "every "} {
		if rest, ok := strings.CutPrefix(s, p); ok {
			d, err := time.ParseDuration(strings.TrimSpace(rest))
			if err != nil || d <= 0 {
				return Schedule{}, fmt.Errorf("%w: schedule %q: bad interval", checks.ErrInvalidOption, s)
			}
			return Schedule{Every: d}, nil
		}
	}
	sch := Schedule{Cron: s}
	if _, err := sch.compile(time.UTC, time.Now()); err != nil {
		return Schedule{}, err
	}
	return sch, nil
}

func hasTZ(expr string) bool {
	return strings.HasPrefix(expr, "CRON_TZ=") || strings.HasPrefix(expr, "TZ=")
}

// compiled is a validated schedule or window opening.
type compiled struct {
	every time.Duration
	cron  gocron.Cron
	expr  string // with CRON_TZ
}

// next returns the next activation strictly after t.
func (c compiled) next(t time.Time) time.Time {
	if c.every > 0 {
		return t.Add(c.every)
	}
	return c.cron.Next(t)
}

func (s Schedule) compile(loc *time.Location, now time.Time) (compiled, error) {
	switch {
	case s.Every > 0 && s.Cron != "":
		return compiled{}, fmt.Errorf("%w: schedule has both Cron and Every", checks.ErrInvalidOption)
	case s.Every > 0:
		return compiled{every: s.Every}, nil
	case s.Every < 0:
		return compiled{}, fmt.Errorf("%w: schedule interval must be positive, got %s", checks.ErrInvalidOption, s.Every)
	case s.Cron == "":
		return compiled{}, fmt.Errorf("%w: schedule needs Cron or Every", checks.ErrInvalidOption)
	}
	expr, err := withTZ(s.Cron, s.Location, loc)
	if err != nil {
		return compiled{}, err
	}
	c := gocron.NewDefaultCron(false)
	if err := c.IsValid(expr, loc, now); err != nil {
		return compiled{}, fmt.Errorf("%w: cron expression %q: %v", checks.ErrInvalidOption, s.Cron, err)
	}
	return compiled{cron: c, expr: expr}, nil
}

// withTZ prefixes expr with the time zone it runs in.
func withTZ(expr string, loc, def *time.Location) (string, error) {
	expr = strings.TrimSpace(expr)
	if hasTZ(expr) {
		return expr, nil
	}
	if loc == nil {
		loc = def
	}
	if loc == nil {
		loc = time.Local
	}
	if _, err := time.LoadLocation(loc.String()); err != nil {
		return "", fmt.Errorf("%w: time zone %q cannot be loaded by name: %v", checks.ErrInvalidOption, loc.String(), err)
	}
	return "CRON_TZ=" + loc.String() + " " + expr, nil
}

// key identifies the schedule: targets with equal keys share a gocron job.
func (c compiled) key() string {
	if c.every > 0 {
		return "@every " + c.every.String()
	}
	return c.expr
}

func (c compiled) jobDefinition() gocron.JobDefinition {
	if c.every > 0 {
		return gocron.DurationJob(c.every)
	}
	return gocron.CronJob(c.expr, false)
}

// maxGap returns the longest gap between consecutive activations over the
// next n activations after now.
func (c compiled) maxGap(now time.Time, n int) time.Duration {
	if c.every > 0 {
		return c.every
	}
	var gap time.Duration
	prev := c.next(now)
	for i := 0; i < n && !prev.IsZero(); i++ {
		next := c.next(prev)
		if next.IsZero() {
			break
		}
		gap = max(gap, next.Sub(prev))
		prev = next
	}
	return gap
}

// Window is a recurring maintenance window: it opens at each activation of
// a cron expression and stays open for Duration. The zero Window means
// "always open".
type Window struct {
	// Start is a cron expression for when the window opens ("0 1 * * *"),
	// with an optional CRON_TZ= prefix.
	Start string
	// Duration is how long the window stays open.
	Duration time.Duration
	// Location is the time zone of Start when it has no CRON_TZ prefix
	// (default: the scheduler's location).
	Location *time.Location
}

// IsZero reports whether w is the zero Window (no window).
func (w Window) IsZero() bool { return w.Start == "" && w.Duration == 0 }

// String formats the window.
func (w Window) String() string {
	if w.IsZero() {
		return "always"
	}
	s := w.Start
	if w.Location != nil && !hasTZ(s) {
		s = "CRON_TZ=" + w.Location.String() + " " + s
	}
	return s + " for " + w.Duration.String()
}

// ParseWindow reads a daily window "HH:MM-HH:MM" in loc (nil: the
// scheduler's location). The end may be earlier than the start: the
// window then runs past midnight ("22:00-02:00").
func ParseWindow(s string, loc *time.Location) (Window, error) {
	from, to, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return Window{}, fmt.Errorf("%w: window %q: want HH:MM-HH:MM", checks.ErrInvalidOption, s)
	}
	fh, fm, err1 := clock(from)
	th, tm, err2 := clock(to)
	if err1 != nil || err2 != nil {
		return Window{}, fmt.Errorf("%w: window %q: want HH:MM-HH:MM", checks.ErrInvalidOption, s)
	}
	start := time.Duration(fh)*time.Hour + time.Duration(fm)*time.Minute
	end := time.Duration(th)*time.Hour + time.Duration(tm)*time.Minute
	d := end - start
	if d <= 0 {
		d += 24 * time.Hour
	}
	return Window{Start: fmt.Sprintf("%d %d * * *", fm, fh), Duration: d, Location: loc}, nil
}

func clock(s string) (h, m int, err error) {
	hs, ms, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return 0, 0, fmt.Errorf("bad time")
	}
	h, err1 := strconv.Atoi(hs)
	m, err2 := strconv.Atoi(ms)
	if err1 != nil || err2 != nil || h < 0 || h > 23 || m < 0 || m > 59 {
		return 0, 0, fmt.Errorf("bad time")
	}
	return h, m, nil
}

type compiledWindow struct {
	open compiled
	d    time.Duration
}

func (w Window) compile(loc *time.Location, now time.Time) (*compiledWindow, error) {
	if w.IsZero() {
		return nil, nil
	}
	if w.Duration <= 0 {
		return nil, fmt.Errorf("%w: window duration must be positive, got %s", checks.ErrInvalidOption, w.Duration)
	}
	c, err := Schedule{Cron: w.Start, Location: w.Location}.compile(loc, now)
	if err != nil {
		return nil, fmt.Errorf("window: %w", err)
	}
	return &compiledWindow{open: c, d: w.Duration}, nil
}

// at reports whether the window is open at t and, if so, when it closes.
// Windows are half-open: [open, open+Duration).
func (w *compiledWindow) at(t time.Time) (closes time.Time, open bool) {
	if w == nil {
		return time.Time{}, true
	}
	for s := w.open.next(t.Add(-w.d)); !s.IsZero() && !s.After(t); s = w.open.next(s) {
		closes, open = s.Add(w.d), true // the latest opening wins when windows overlap
	}
	return closes, open
}

// serverOf returns host:port of a target, or "" without a host.
func serverOf(info checks.TargetInfo) string {
	if info.Host == "" {
		return ""
	}
	if info.Port == 0 {
		return info.Host
	}
	return net.JoinHostPort(info.Host, strconv.Itoa(info.Port))
}

// validate checks a target and returns its compiled schedule and window
// and the effective SLA.
func (t *Target) validate(loc *time.Location, now time.Time) (compiled, *compiledWindow, time.Duration, error) {
	bad := func(format string, args ...any) (compiled, *compiledWindow, time.Duration, error) {
		return compiled{}, nil, 0, fmt.Errorf("%w: target %q: %s", checks.ErrInvalidOption, t.Name, fmt.Sprintf(format, args...))
	}
	p := t.Plan
	switch {
	case t.Name == "":
		return bad("empty name")
	case (t.Target == nil) == (t.Open == nil):
		return bad("set exactly one of Target and Open")
	case p.Budget < 0:
		return bad("negative budget %s", p.Budget)
	case p.Jitter < 0:
		return bad("negative jitter %s", p.Jitter)
	case p.Jobs < 0:
		return bad("negative jobs %d", p.Jobs)
	case p.TaskTimeout < 0:
		return bad("negative task timeout %s", p.TaskTimeout)
	}
	extra := map[string]bool{}
	for i, x := range p.Extra {
		switch {
		case x.Name == "" || strings.TrimSpace(x.Name) != x.Name:
			return bad("extra check %d: want a name without surrounding spaces, got %q", i, x.Name)
		case x.Build == nil:
			return bad("extra check %q: no Build function", x.Name)
		case extra[x.Name]:
			return bad("extra check %q given twice", x.Name)
		case slices.Contains(p.Checks, x.Name):
			return bad("extra check %q has the name of a check in Checks", x.Name)
		}
		extra[x.Name] = true
	}
	if _, err := checks.NewRunner(p.Options...); err != nil {
		return compiled{}, nil, 0, fmt.Errorf("target %q: %w", t.Name, err)
	}
	sch, err := p.Schedule.compile(loc, now)
	if err != nil {
		return compiled{}, nil, 0, fmt.Errorf("target %q: %w", t.Name, err)
	}
	win, err := p.Window.compile(loc, now)
	if err != nil {
		return compiled{}, nil, 0, fmt.Errorf("target %q: %w", t.Name, err)
	}
	sla := p.SLA
	if sla == 0 {
		gap := sch.maxGap(now, 16)
		if win != nil {
			gap = max(gap, win.open.maxGap(now, 16))
		}
		sla = 2 * gap
	}
	return sch, win, sla, nil
}

func (t Target) clone() Target {
	t.Labels = maps.Clone(t.Labels)
	t.Secrets = append([]string(nil), t.Secrets...)
	t.Plan.Checks = append([]string(nil), t.Plan.Checks...)
	t.Plan.Options = append([]checks.Option(nil), t.Plan.Options...)
	t.Plan.Extra = append([]ExtraCheck(nil), t.Plan.Extra...)
	return t
}
