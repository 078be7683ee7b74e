package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/jonboulle/clockwork"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/scheduler/alarm"
	"github.com/dbscrub/dbscrub/scheduler/history"
)

// An Option configures a [Scheduler]. Invalid values make [New] fail with
// an error wrapping [checks.ErrInvalidOption].
type Option func(*config) error

type config struct {
	clock         clockwork.Clock
	location      *time.Location
	store         history.Store
	sinks         []alarm.Sink
	alarmOpts     []alarm.Option
	tp            trace.TracerProvider
	mp            metric.MeterProvider
	logger        *slog.Logger
	maxConcurrent int
	maxPerServer  int
	evaluateEvery time.Duration
	retention     time.Duration
	onRun         func(context.Context, *history.Run)
	runnerOpts    []checks.Option
	recordTimeout time.Duration
	// jitter returns a random delay in [0, max); replaced in tests.
	jitter func(max time.Duration) time.Duration
	// onSkip is told about scheduled runs that did not start; tests only.
	onSkip func(target, reason string)
}

func defaultConfig() config {
	return config{
		clock:         clockwork.NewRealClock(),
		location:      time.Local,
		logger:        slog.New(slog.DiscardHandler),
		maxConcurrent: 4,
		maxPerServer:  1,
		evaluateEvery: time.Minute,
		recordTimeout: 30 * time.Second,
		jitter: func(max time.Duration) time.Duration {
			return time.Duration(rand.Int64N(int64(max)))
		},
	}
}

// WithClock sets the clock that drives schedules, windows, budgets,
// history times and alarms (gocron's WithClock underneath). Tests pass a
// clockwork fake clock. The default is the real clock.
func WithClock(c clockwork.Clock) Option {
	return func(cfg *config) error {
		if c == nil {
			return fmt.Errorf("%w: nil clock", checks.ErrInvalidOption)
		}
		cfg.clock = c
		return nil
	}
}

// WithLocation sets the default time zone of cron schedules and windows
// (default time.Local).
func WithLocation(loc *time.Location) Option {
	return func(cfg *config) error {
		if loc == nil {
			return fmt.Errorf("%w: nil location", checks.ErrInvalidOption)
		}
		cfg.location = loc
		return nil
	}
}

// WithStore sets the history store (see history.OpenSQLite). The default
// keeps history in memory only (the newest 1000 runs, and the current
// state of every target); it is lost when the process ends. The scheduler
// does not close the store.
func WithStore(s history.Store) Option {
	return func(cfg *config) error {
		if s == nil {
			return fmt.Errorf("%w: nil store", checks.ErrInvalidOption)
		}
		cfg.store = s
		return nil
	}
}

// WithSinks adds alarm sinks (alarm.LogSink, alarm.NewWebhook,
// alarm.NewAlertmanager, alarm.FuncSink). Without sinks alarms are still
// evaluated and stored.
func WithSinks(sinks ...alarm.Sink) Option {
	return func(cfg *config) error {
		for i, s := range sinks {
			if s == nil {
				return fmt.Errorf("%w: sink %d is nil", checks.ErrInvalidOption, i)
			}
		}
		cfg.sinks = append(cfg.sinks, sinks...)
		return nil
	}
}

// WithAlarmOptions passes options to the alarm manager: alarm.WithRenotify,
// alarm.WithMaxFindings, alarm.WithSeverity, ... The scheduler sets the
// manager's clock, logger, meter provider and sinks itself.
func WithAlarmOptions(opts ...alarm.Option) Option {
	return func(cfg *config) error {
		cfg.alarmOpts = append(cfg.alarmOpts, opts...)
		return nil
	}
}

// WithTracerProvider sets the tracer provider (default: the global one).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(cfg *config) error {
		if tp == nil {
			return fmt.Errorf("%w: nil tracer provider", checks.ErrInvalidOption)
		}
		cfg.tp = tp
		return nil
	}
}

// WithMeterProvider sets the meter provider (default: the global one).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(cfg *config) error {
		if mp == nil {
			return fmt.Errorf("%w: nil meter provider", checks.ErrInvalidOption)
		}
		cfg.mp = mp
		return nil
	}
}

// WithLogger sets the logger (default: discard). Each run logs through it
// with a "target" attribute, with the target's Secrets scrubbed.
func WithLogger(l *slog.Logger) Option {
	return func(cfg *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", checks.ErrInvalidOption)
		}
		cfg.logger = l
		return nil
	}
}

// WithMaxConcurrent limits how many runs execute at once across all
// targets (default 4). n must be at least 1.
func WithMaxConcurrent(n int) Option {
	return func(cfg *config) error {
		if n < 1 {
			return fmt.Errorf("%w: max concurrent runs must be at least 1, got %d", checks.ErrInvalidOption, n)
		}
		cfg.maxConcurrent = n
		return nil
	}
}

// WithMaxPerServer limits how many runs execute at once against targets
// of one server (see [Target.Server]; default 1), so that fifty databases
// on one host are not all checked at once. n must be at least 1.
func WithMaxPerServer(n int) Option {
	return func(cfg *config) error {
		if n < 1 {
			return fmt.Errorf("%w: max runs per server must be at least 1, got %d", checks.ErrInvalidOption, n)
		}
		cfg.maxPerServer = n
		return nil
	}
}

// WithEvaluateEvery sets how often stale alarms are evaluated and due
// notifications re-sent (default 1m). d must be positive.
func WithEvaluateEvery(d time.Duration) Option {
	return func(cfg *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: evaluation interval must be positive, got %s", checks.ErrInvalidOption, d)
		}
		cfg.evaluateEvery = d
		return nil
	}
}

// WithRetention deletes runs, findings and resolved alarms older than d
// from the store, checked hourly. Current state (last known good,
// coverage, firing alarms) is kept. By default history is kept forever.
// d must be positive.
func WithRetention(d time.Duration) Option {
	return func(cfg *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: retention must be positive, got %s", checks.ErrInvalidOption, d)
		}
		cfg.retention = d
		return nil
	}
}

// WithOnRun sets a function called after each run is recorded and its
// alarms evaluated, for progress output or tests. It runs on the run's
// goroutine and must not block for long.
func WithOnRun(f func(ctx context.Context, run *history.Run)) Option {
	return func(cfg *config) error {
		cfg.onRun = f
		return nil
	}
}

// WithRunnerOptions sets runner options applied to every target
// (before the target's own Plan.Options).
func WithRunnerOptions(opts ...checks.Option) Option {
	return func(cfg *config) error {
		if _, err := checks.NewRunner(opts...); err != nil {
			return err
		}
		cfg.runnerOpts = append(cfg.runnerOpts, opts...)
		return nil
	}
}
