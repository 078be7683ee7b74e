package postgres

import (
	"context"
	"errors"
	"testing"
)

func TestListing(t *testing.T) {
	ctx := context.Background()
	calls := 0
	list := func(v ...int) func(context.Context) ([]int, error) {
		return func(context.Context) ([]int, error) { calls++; return v, nil }
	}
	var l listing[int]

	// Nothing prefetched: take lists.
	if got, err := l.take(ctx, list(1)); err != nil || len(got) != 1 || got[0] != 1 || calls != 1 {
		t.Fatalf("take without a prefetch = %v, %v (%d calls)", got, err, calls)
	}
	// Prefetched: take returns it, once; the next take lists again.
	l.start(ctx, list(2))
	l.start(ctx, list(99)) // a second start while one is pending is ignored
	if got, err := l.take(ctx, list(3)); err != nil || len(got) != 1 || got[0] != 2 {
		t.Fatalf("take after start = %v, %v; want the prefetched [2]", got, err)
	}
	if got, _ := l.take(ctx, list(4)); len(got) != 1 || got[0] != 4 {
		t.Fatalf("second take = %v; want a fresh listing [4]", got)
	}
	// A failed prefetch is listed again.
	l.start(ctx, func(context.Context) ([]int, error) { return nil, errors.New("too many connections") })
	if got, err := l.take(ctx, list(5)); err != nil || len(got) != 1 || got[0] != 5 {
		t.Fatalf("take after a failed prefetch = %v, %v; want [5]", got, err)
	}
	// A cancelled Plan does not wait for a slow prefetch.
	release := make(chan struct{})
	defer close(release)
	l.start(ctx, func(context.Context) ([]int, error) { <-release; return []int{6}, nil })
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.take(cctx, list(7)); !errors.Is(err, context.Canceled) {
		t.Fatalf("take with a cancelled context: %v", err)
	}
}
