package scheduler

import (
	"context"

	"github.com/jonboulle/clockwork"

	"github.com/dbscrub/dbscrub/scheduler/history"
)

// Counters gives a check the last seen value of a counter of the target
// being checked (such as PostgreSQL's checksum_failures), so that it can
// report an increase since the previous run. The scheduler puts one in the
// context of every run; see [CountersFrom].
type Counters interface {
	// Last returns the value recorded by a previous run, if any.
	Last(ctx context.Context, name string) (history.Counter, bool, error)
	// Set records the value seen now.
	Set(ctx context.Context, name string, value int64) error
}

type countersKey struct{}

// CountersFrom returns the counters of the target a run is checking, when
// the run was started by a Scheduler.
func CountersFrom(ctx context.Context) (Counters, bool) {
	c, ok := ctx.Value(countersKey{}).(Counters)
	return c, ok
}

type targetCounters struct {
	store  history.Store
	target string
	clock  clockwork.Clock
}

func (c targetCounters) Last(ctx context.Context, name string) (history.Counter, bool, error) {
	return c.store.Counter(ctx, c.target, name)
}

func (c targetCounters) Set(ctx context.Context, name string, value int64) error {
	return c.store.SetCounter(ctx, c.target, name, history.Counter{Value: value, SeenAt: c.clock.Now()})
}
