package checks

import (
	"context"
	"fmt"
	"strings"
)

// fakeTarget is a Target whose checks are given in the test.
type fakeTarget struct {
	checks []Check
	err    error
}

func (f *fakeTarget) Info() TargetInfo {
	return TargetInfo{Engine: "fake", Name: "fake://db", Database: "db"}
}

func (f *fakeTarget) Checks(names ...string) ([]Check, error) {
	if f.err != nil {
		return nil, f.err
	}
	if len(names) == 0 {
		return f.checks, nil
	}
	var out []Check
	for _, n := range names {
		found := false
		for _, c := range f.checks {
			if c.Name() == n {
				out = append(out, c)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("%w %q", ErrUnknownCheck, n)
		}
	}
	return out, nil
}

// fakeCheck plans the given tasks, or fails planning with err.
type fakeCheck struct {
	name  string
	tasks []Task
	err   error
	panic bool
}

func (f *fakeCheck) Name() string { return f.name }

func (f *fakeCheck) Plan(ctx context.Context) ([]Task, error) {
	if f.panic {
		panic("plan exploded")
	}
	return f.tasks, f.err
}

// ok returns a task that verifies cost bytes and finds nothing.
func ok(key string, cost int64) Task {
	return Task{Key: key, Object: "obj-" + key, Cost: cost, Run: func(ctx context.Context) (Result, error) {
		return Result{Objects: 1, Bytes: cost}, nil
	}}
}

// finds returns a task that completes with the given findings.
func finds(key string, fs ...Finding) Task {
	return Task{Key: key, Object: "obj-" + key, Cost: 10, Run: func(ctx context.Context) (Result, error) {
		return Result{Findings: fs, Objects: 1, Bytes: 10}, nil
	}}
}

// fails returns a task that fails with err.
func fails(key string, err error) Task {
	return Task{Key: key, Object: "obj-" + key, Cost: 10, Run: func(ctx context.Context) (Result, error) {
		return Result{}, err
	}}
}

// blocks returns a task that waits for ctx to end.
func blocks(key string) Task {
	return Task{Key: key, Object: "obj-" + key, Cost: 10, Run: func(ctx context.Context) (Result, error) {
		<-ctx.Done()
		return Result{}, ctx.Err()
	}}
}

func target(cks ...Check) *fakeTarget { return &fakeTarget{checks: cks} }

func check(name string, tasks ...Task) *fakeCheck { return &fakeCheck{name: name, tasks: tasks} }

func mustRunner(t interface{ Fatal(...any) }, opts ...Option) *Runner {
	r, err := NewRunner(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
