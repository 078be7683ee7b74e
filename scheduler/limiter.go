package scheduler

import (
	"context"
	"slices"
	"sync"
	"time"
)

// limiter grants run slots under a global and a per-server limit. Waiting
// runs are queued as small structs, not goroutines, so that a fleet whose
// targets share one schedule costs little while it waits. They are served
// by priority, not arrival: gates first, then manual runs, then scheduled
// ones; within a class the target whose last success is oldest goes first,
// and a target that never succeeded is the most urgent of all. Both slots
// are granted together, so a waiter for a busy server never blocks waiters
// for other servers.
type limiter struct {
	mu        sync.Mutex
	global    int
	perServer int
	used      int
	servers   map[string]int
	waiters   []*waiter // sorted by priority
	seq       uint64
	closed    bool
	onQueue   func() // tests: told when a run starts waiting
}

type priority struct {
	class       int       // 0 gate, 1 manual, 2 schedule
	lastSuccess time.Time // zero: never, most urgent
	seq         uint64
}

func (p priority) less(o priority) bool {
	if p.class != o.class {
		return p.class < o.class
	}
	if !p.lastSuccess.Equal(o.lastSuccess) {
		return p.lastSuccess.Before(o.lastSuccess) // the zero time sorts first
	}
	return p.seq < o.seq
}

// waiter is a run waiting for a slot. grant runs on a new goroutine once
// the slot is taken; abort runs instead when the limiter is closed first.
type waiter struct {
	server  string
	prio    priority
	grant   func()
	abort   func()
	granted bool
}

func newLimiter(global, perServer int) *limiter {
	return &limiter{global: global, perServer: perServer, servers: map[string]int{}}
}

// fits reports whether a run against server may start now; mu held.
func (l *limiter) fits(server string) bool {
	return l.used < l.global && (server == "" || l.servers[server] < l.perServer)
}

func (l *limiter) take(server string) {
	l.used++
	if server != "" {
		l.servers[server]++
	}
}

// submit queues a run; grant is called on a new goroutine when it gets its
// slot (the caller must then release it), abort if the limiter closes
// first. It returns the waiter, for cancel.
func (l *limiter) submit(server string, class int, lastSuccess time.Time, grant, abort func()) *waiter {
	l.mu.Lock()
	l.seq++
	w := &waiter{server: server, prio: priority{class: class, lastSuccess: lastSuccess, seq: l.seq}, grant: grant, abort: abort}
	if l.closed {
		l.mu.Unlock()
		if abort != nil {
			go abort()
		}
		return w
	}
	// Fast path: nobody more urgent waits for a slot this run could use.
	if l.fits(server) && !l.blockedBy(w) {
		l.take(server)
		w.granted = true
		l.mu.Unlock()
		go grant()
		return w
	}
	i, _ := slices.BinarySearchFunc(l.waiters, w, func(a, b *waiter) int {
		if a.prio.less(b.prio) {
			return -1
		}
		return 1
	})
	l.waiters = slices.Insert(l.waiters, i, w)
	onQueue := l.onQueue
	l.mu.Unlock()
	if onQueue != nil {
		onQueue()
	}
	return w
}

// cancel removes a waiter that has not been granted; it reports false when
// the slot was already granted (the grant function runs or ran).
func (l *limiter) cancel(w *waiter) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w.granted {
		return false
	}
	if i := slices.Index(l.waiters, w); i >= 0 {
		l.waiters = slices.Delete(l.waiters, i, i+1)
		l.grantLocked() // w may have been holding back less urgent waiters
		return true
	}
	return false
}

// acquire waits for a slot, for callers that block anyway (a gate).
func (l *limiter) acquire(ctx context.Context, server string, class int, lastSuccess time.Time) error {
	ready := make(chan struct{})
	aborted := make(chan struct{})
	w := l.submit(server, class, lastSuccess, func() { close(ready) }, func() { close(aborted) })
	select {
	case <-ready:
		return nil
	case <-aborted:
		return ErrClosed
	case <-ctx.Done():
		if l.cancel(w) {
			return context.Cause(ctx)
		}
		<-ready // granted meanwhile: hand it back
		l.release(server)
		return context.Cause(ctx)
	}
}

// blockedBy reports whether a waiter more urgent than w could use the slot
// w would take; mu held.
func (l *limiter) blockedBy(w *waiter) bool {
	for _, o := range l.waiters {
		if !o.prio.less(w.prio) {
			return false
		}
		if o.server == "" || o.server == w.server || l.servers[o.server] < l.perServer {
			return true
		}
	}
	return false
}

func (l *limiter) release(server string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.used--
	if server != "" {
		if l.servers[server]--; l.servers[server] <= 0 {
			delete(l.servers, server)
		}
	}
	l.grantLocked()
}

// grantLocked grants slots to the most urgent waiters that fit; mu held.
func (l *limiter) grantLocked() {
	for i := 0; i < len(l.waiters) && l.used < l.global; {
		w := l.waiters[i]
		if !l.fits(w.server) {
			i++
			continue
		}
		l.take(w.server)
		w.granted = true
		l.waiters = slices.Delete(l.waiters, i, i+1)
		go w.grant()
	}
}

// close aborts every queued run and refuses new ones.
func (l *limiter) close() {
	l.mu.Lock()
	l.closed = true
	queued := l.waiters
	l.waiters = nil
	l.mu.Unlock()
	for _, w := range queued {
		if w.abort != nil {
			go w.abort()
		}
	}
}

// running returns the number of slots in use.
func (l *limiter) running() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.used
}

// queued returns the number of runs waiting.
func (l *limiter) queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.waiters)
}
