package checks

import (
	"context"
	"time"
)

// Counter is the last recorded value of a counter of a target, such as
// PostgreSQL's pg_stat_database.checksum_failures.
type Counter struct {
	// Value is the value seen.
	Value int64 `json:"value"`
	// SeenAt is when it was seen.
	SeenAt time.Time `json:"seen_at"`
}

// Counters keeps counters of the target being checked from one run to the
// next, so that a check can report what changed since the previous run
// rather than everything the server ever counted: PostgreSQL's checksums
// check reports corruption only when checksum_failures went up.
//
// A scheduler puts one in the context of every run (see [WithCounters]);
// tasks find it with [CountersFrom]. Counters are per target: names need
// only be unique among the checks of one engine. Implementations must be
// safe for concurrent use.
type Counters interface {
	// Last returns the value recorded by a previous run (or earlier in
	// this run), and false when none was.
	Last(ctx context.Context, name string) (Counter, bool, error)
	// Set records the value seen now. A scheduler may keep it until the
	// run is recorded, so that a value never moves past a finding that
	// was not stored.
	Set(ctx context.Context, name string, value int64) error
}

type countersKey struct{}

// WithCounters returns a copy of ctx that carries c: the tasks of checks
// run under it read and record counters there. A nil c removes them.
func WithCounters(ctx context.Context, c Counters) context.Context {
	return context.WithValue(ctx, countersKey{}, c)
}

// CountersFrom returns the counters ctx carries, when a scheduler (or the
// caller, with [WithCounters]) put some there. Without them a check
// behaves as on a first run: it has no earlier value to compare with.
func CountersFrom(ctx context.Context) (Counters, bool) {
	c, ok := ctx.Value(countersKey{}).(Counters)
	return c, ok
}
