package scheduler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/jonboulle/clockwork"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/scheduler/history"
)

// Counters gives a check the last seen value of a counter of the target
// being checked (such as PostgreSQL's checksum_failures), so that it can
// report an increase since the previous run. The scheduler puts one in the
// context of every run; drivers find it with [checks.CountersFrom] (they
// never import this package), and [CountersFrom] is the same.
//
// Values set during a run are written to the history once the run is
// recorded, never before: a run whose findings were not stored does not
// move a counter past them, so the next run reports them again rather than
// never. Within a run, Last returns what Set recorded.
type Counters = checks.Counters

// CountersFrom returns the counters of the target a run is checking, when
// the run was started by a Scheduler. It is [checks.CountersFrom].
func CountersFrom(ctx context.Context) (Counters, bool) {
	return checks.CountersFrom(ctx)
}

// runCounters are the counters of one run of one target: reads go to the
// store (or to a value set earlier in the run), writes wait for commit.
type runCounters struct {
	store  history.Store
	target string
	clock  clockwork.Clock

	mu      sync.Mutex
	pending map[string]history.Counter
}

func newRunCounters(store history.Store, target string, clock clockwork.Clock) *runCounters {
	return &runCounters{store: store, target: target, clock: clock, pending: map[string]history.Counter{}}
}

// Last implements [checks.Counters].
func (c *runCounters) Last(ctx context.Context, name string) (history.Counter, bool, error) {
	c.mu.Lock()
	v, ok := c.pending[name]
	c.mu.Unlock()
	if ok {
		return v, true, nil
	}
	v, ok, err := c.store.Counter(ctx, c.target, name)
	if err != nil {
		return history.Counter{}, false, fmt.Errorf("scheduler: reading counter %s: %w", name, err)
	}
	return v, ok, nil
}

// Set implements [checks.Counters]: the value is written by commit.
func (c *runCounters) Set(_ context.Context, name string, value int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending[name] = history.Counter{Value: value, SeenAt: c.clock.Now()}
	return nil
}

// commit writes the values set during the run, once the run is recorded.
func (c *runCounters) commit(ctx context.Context) error {
	c.mu.Lock()
	pending := maps.Clone(c.pending)
	c.mu.Unlock()
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(pending)) {
		if err := c.store.SetCounter(ctx, c.target, name, pending[name]); err != nil {
			errs = append(errs, fmt.Errorf("counter %s: %w", name, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("scheduler: recording counters: %w", errors.Join(errs...))
	}
	return nil
}
