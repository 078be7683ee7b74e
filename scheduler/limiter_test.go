package scheduler

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestLimiterServesTheMostUrgentFirst(t *testing.T) {
	l := newLimiter(1, 1)
	queued := make(chan struct{}, 10)
	l.onQueue = func() { queued <- struct{}{} }
	ctx := context.Background()
	if err := l.acquire(ctx, "h", 2, t0); err != nil {
		t.Fatal(err)
	}
	order := make(chan string, 10)
	wait := func(name string, class int, last time.Time) {
		l.submit("h", class, last, func() { order <- name }, nil)
		<-queued
	}
	wait("recent", 2, t0)
	wait("never", 2, time.Time{}) // never succeeded: most urgent of the scheduled runs
	wait("old", 2, t0.Add(-48*time.Hour))
	wait("manual", 1, t0)
	wait("gate", 0, t0)
	var got []string
	for range 5 {
		l.release("h")
		got = append(got, <-order)
	}
	if want := []string{"gate", "manual", "never", "old", "recent"}; !slices.Equal(got, want) {
		t.Fatalf("served %v, want %v", got, want)
	}
}

func TestLimiterPerServer(t *testing.T) {
	l := newLimiter(3, 1)
	queued := make(chan struct{}, 10)
	l.onQueue = func() { queued <- struct{}{} }
	ctx := context.Background()
	if err := l.acquire(ctx, "h1", 2, t0); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.acquire(ctx, "h1", 0, time.Time{}) }() // most urgent, but its server is busy
	<-queued
	// A waiter for a busy server does not hold back another server.
	if err := l.acquire(ctx, "h2", 2, t0); err != nil {
		t.Fatal(err)
	}
	if err := l.acquire(ctx, "", 2, t0); err != nil { // no server: only the global limit
		t.Fatal(err)
	}
	if n := l.running(); n != 3 {
		t.Fatalf("running %d", n)
	}
	l.release("h1")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Giving up: the context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.acquire(cctx, "h1", 2, t0); !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire = %v", err)
	}
	if l.queued() != 0 {
		t.Fatalf("waiters left: %d", l.queued())
	}
	// Closing drops what is queued and refuses the rest.
	aborted := make(chan struct{}, 2)
	l.submit("h1", 2, t0, func() { t.Error("granted after close") }, func() { aborted <- struct{}{} })
	<-queued
	l.close()
	<-aborted
	l.submit("h9", 2, t0, func() { t.Error("granted after close") }, func() { aborted <- struct{}{} })
	<-aborted
	if err := l.acquire(ctx, "h8", 0, t0); !errors.Is(err, ErrClosed) {
		t.Fatalf("acquire after close = %v", err)
	}
}

func TestLimiterBusyServerDoesNotBlockOthers(t *testing.T) {
	l := newLimiter(2, 1)
	queued := make(chan struct{}, 10)
	l.onQueue = func() { queued <- struct{}{} }
	ctx := context.Background()
	_ = l.acquire(ctx, "h1", 2, t0)
	_ = l.acquire(ctx, "h2", 2, t0)
	// An urgent waiter for h1 queues; a less urgent one for h3 queues
	// behind the global limit.
	urgent, cancel := context.WithCancel(ctx)
	errs := make(chan error, 2)
	go func() { errs <- l.acquire(urgent, "h1", 0, t0) }()
	<-queued
	go func() { errs <- l.acquire(ctx, "h3", 2, t0) }()
	<-queued
	l.release("h2") // a global slot frees: h1 is busy, so h3 gets it
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire = %v", err)
	}
}
