package checks_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/dbscrub/dbscrub/checks"
)

// mapCounters is an in-memory checks.Counters.
type mapCounters struct {
	mu sync.Mutex
	m  map[string]checks.Counter
}

func (c *mapCounters) Last(_ context.Context, name string) (checks.Counter, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[name]
	return v, ok, nil
}

func (c *mapCounters) Set(_ context.Context, name string, value int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[name] = checks.Counter{Value: value, SeenAt: time.Now()}
	return nil
}

func TestCountersContext(t *testing.T) {
	ctx := context.Background()
	if _, ok := checks.CountersFrom(ctx); ok {
		t.Fatal("counters in a bare context")
	}
	c := &mapCounters{m: map[string]checks.Counter{}}
	cctx := checks.WithCounters(ctx, c)
	got, ok := checks.CountersFrom(cctx)
	if !ok || got != checks.Counters(c) {
		t.Fatalf("CountersFrom = %v, %v", got, ok)
	}
	// Tasks see them through derived contexts.
	sub, cancel := context.WithTimeout(cctx, time.Minute)
	defer cancel()
	got, _ = checks.CountersFrom(sub)
	if err := got.Set(sub, "n", 7); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := c.Last(ctx, "n"); err != nil || !ok || v.Value != 7 {
		t.Fatalf("Last = %+v, %v, %v", v, ok, err)
	}
	// A nil Counters removes them.
	if _, ok := checks.CountersFrom(checks.WithCounters(cctx, nil)); ok {
		t.Fatal("WithCounters(nil) still carries counters")
	}
}
