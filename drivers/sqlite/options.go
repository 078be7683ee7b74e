package sqlite

import (
	"fmt"
	"math"
	"time"

	"github.com/dbscrub/dbscrub/checks"
)

// An Option configures a [Target] made by [Open] or [New]. An option with
// an out-of-range value makes Open or New fail with an error wrapping
// [checks.ErrInvalidOption].
type Option func(*config) error

type config struct {
	quick          bool
	maxErrors      int
	busyTimeout    time.Duration
	busyTimeoutSet bool
}

// DefaultMaxErrors is how many problems a check reports before it stops,
// unless [WithMaxErrors] says otherwise.
const DefaultMaxErrors = 100

// DefaultBusyTimeout is how long a check waits for a lock held by a writer,
// unless [WithBusyTimeout] says otherwise.
const DefaultBusyTimeout = 5 * time.Second

func newConfig(opts []Option) (config, error) {
	cfg := config{maxErrors: DefaultMaxErrors, busyTimeout: DefaultBusyTimeout}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return config{}, err
		}
	}
	return cfg, nil
}

// WithQuickCheck makes the integrity check run PRAGMA quick_check instead
// of PRAGMA integrity_check. quick_check still reads every b-tree page and
// verifies the page structure, the freelist and page accounting, and NOT
// NULL and CHECK constraints, but it does not verify UNIQUE constraints or
// that index entries match their rows, so it runs in O(N) time instead of
// O(N log N) and misses damage confined to an index's contents. Use it for
// frequent checks of large files and run the full check less often.
func WithQuickCheck() Option {
	return func(c *config) error {
		c.quick = true
		return nil
	}
}

// WithMaxErrors sets how many problems a check reports before it stops
// (PRAGMA integrity_check(n); the foreign key check stops reading orphan
// rows after n per table). A check that reaches the limit says so in a
// final finding ("and possibly more: stopped after n errors"). n must be at
// least 1; the default is [DefaultMaxErrors].
func WithMaxErrors(n int) Option {
	return func(c *config) error {
		if n < 1 || n > math.MaxInt32 {
			return fmt.Errorf("%w: sqlite: max errors must be between 1 and %d, got %d", checks.ErrInvalidOption, math.MaxInt32, n)
		}
		c.maxErrors = n
		return nil
	}
}

// WithBusyTimeout sets how long a check waits for a lock another
// connection holds (PRAGMA busy_timeout) before it gives up with an error
// (SQLITE_BUSY, retried once by the Runner). Zero means do not wait. d must
// not be negative; the default is [DefaultBusyTimeout]; it is rounded up to
// whole milliseconds.
//
// It applies to targets made by [Open]. [New] rejects it: the pool belongs
// to the caller, who sets its busy timeout in the pool's DSN (for
// modernc.org/sqlite, "_pragma=busy_timeout(5000)").
func WithBusyTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 || d > math.MaxInt32*time.Millisecond {
			return fmt.Errorf("%w: sqlite: busy timeout must be between 0 and %s, got %s", checks.ErrInvalidOption, math.MaxInt32*time.Millisecond, d)
		}
		c.busyTimeout = d
		c.busyTimeoutSet = true
		return nil
	}
}

// busyTimeoutMillis returns the busy timeout in whole milliseconds, rounded up.
func (c config) busyTimeoutMillis() int64 {
	ms := int64(c.busyTimeout / time.Millisecond)
	if c.busyTimeout%time.Millisecond != 0 {
		ms++
	}
	return ms
}
