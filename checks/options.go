package checks

import (
	"fmt"
	"log/slog"
	"time"
)

// An Option configures a [Runner] or a [Gate].
type Option func(*config) error

type config struct {
	jobs        int
	taskTimeout time.Duration
	budget      time.Duration
	maxRate     int64
	retries     int
	progress    func(Progress)
	logger      *slog.Logger
	checks      []Check
	observer    Observer
	now         func() time.Time
}

func defaultConfig() config {
	return config{jobs: 1, retries: 1, logger: slog.New(slog.DiscardHandler), observer: NopObserver{}, now: time.Now}
}

// Progress reports how far a run has got. BytesDone counts the planned cost
// of finished tasks (completed or not), so that BytesDone reaches BytesTotal.
type Progress struct {
	TasksDone  int
	TasksTotal int
	BytesDone  int64
	BytesTotal int64
}

// WithJobs sets how many tasks run at once (how many connections a run
// uses). The default is 1. n must be at least 1.
func WithJobs(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: jobs must be at least 1, got %d", ErrInvalidOption, n)
		}
		c.jobs = n
		return nil
	}
}

// WithTaskTimeout limits how long one task may run; a task that runs longer
// is cancelled and reported as failed (status error). d must be positive.
// By default tasks have no timeout of their own.
func WithTaskTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: task timeout must be positive, got %s", ErrInvalidOption, d)
		}
		c.taskTimeout = d
		return nil
	}
}

// WithBudget sets the total time budget of a run. When it ends, no further
// task is started; tasks already running finish (bounded by the task
// timeout), and tasks not started are reported as not covered, which makes
// the status warning, never healthy. d must be positive. By default there
// is no budget.
func WithBudget(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: time budget must be positive, got %s", ErrInvalidOption, d)
		}
		c.budget = d
		return nil
	}
}

// WithMaxRate limits the planned bytes started per second across all
// workers, so that a check stays gentle on a busy server. The Runner paces
// task starts by their cost; drivers keep tasks small enough for the pacing
// to be smooth. bytesPerSecond must be positive. By default there is no
// limit.
func WithMaxRate(bytesPerSecond int64) Option {
	return func(c *config) error {
		if bytesPerSecond <= 0 {
			return fmt.Errorf("%w: max rate must be positive, got %d bytes/s", ErrInvalidOption, bytesPerSecond)
		}
		c.maxRate = bytesPerSecond
		return nil
	}
}

// WithRetries sets how many more times a task whose error wraps
// [ErrRetryable] is tried (default 1). n must not be negative.
func WithRetries(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return fmt.Errorf("%w: retries must not be negative, got %d", ErrInvalidOption, n)
		}
		c.retries = n
		return nil
	}
}

// WithProgress sets a function called after planning and after every task,
// from one goroutine at a time.
func WithProgress(f func(Progress)) Option {
	return func(c *config) error {
		c.progress = f
		return nil
	}
}

// WithLogger sets the logger for task failures and panics. By default
// nothing is logged.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		c.logger = l
		return nil
	}
}

// WithChecks selects the checks [Gate] and [Runner.Run] run when none is
// passed explicitly. Without it, the target's default checks run.
func WithChecks(cks ...Check) Option {
	return func(c *config) error {
		for i, ck := range cks {
			if ck == nil {
				return fmt.Errorf("%w: check %d is nil", ErrInvalidOption, i)
			}
		}
		c.checks = cks
		return nil
	}
}

// WithObserver sets an [Observer] told about every run, check and task.
func WithObserver(o Observer) Option {
	return func(c *config) error {
		if o == nil {
			return fmt.Errorf("%w: nil observer", ErrInvalidOption)
		}
		c.observer = o
		return nil
	}
}

// withClock replaces time.Now, for tests.
func withClock(now func() time.Time) Option {
	return func(c *config) error {
		c.now = now
		return nil
	}
}
