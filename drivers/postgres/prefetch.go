package postgres

import (
	"context"
	"sync"
)

// A listing is a catalog listing one check needs to plan (the heap
// check's relations, the btree check's indexes), started ahead of time so
// that the listings of the checks of one run are read at once, on
// separate connections, instead of one after another: the runner plans
// checks in turn, and each listing costs a catalog scan plus a
// pg_relation_size per relation (tens of milliseconds on a database with
// thousands of relations).
//
// A prefetched listing serves one Plan only; later Plans list again.
type listing[T any] struct {
	mu      sync.Mutex
	pending chan struct{} // closed when v and err are set; nil: none
	v       []T
	err     error
}

// start lists in the background with fn, unless a listing is pending.
func (l *listing[T]) start(ctx context.Context, fn func(context.Context) ([]T, error)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pending != nil {
		return
	}
	done := make(chan struct{})
	l.pending = done
	go func() {
		v, err := fn(ctx)
		l.mu.Lock()
		l.v, l.err = v, err
		l.mu.Unlock()
		close(done)
	}()
}

// take returns the prefetched listing, waiting for it, or lists with fn
// when none is pending. A prefetched listing that failed is listed again
// (the failure may have been the prefetch's own, such as a connection
// limit).
func (l *listing[T]) take(ctx context.Context, fn func(context.Context) ([]T, error)) ([]T, error) {
	l.mu.Lock()
	done := l.pending
	l.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		l.mu.Lock()
		v, err := l.v, l.err
		l.pending, l.v, l.err = nil, nil, nil
		l.mu.Unlock()
		if err == nil {
			return v, nil
		}
	}
	return fn(ctx)
}
