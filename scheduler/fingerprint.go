package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/dbscrub/dbscrub/checks"
)

// Scheduled fingerprint comparisons.
//
// A fingerprint proves that a database still holds the rows it held (see
// [checks.Fingerprint]). Scheduled, the comparison becomes a check named
// [checks.CheckFingerprint] like any other: one task, key "fingerprint",
// whose findings are corruption findings naming each missing or extra
// table and each differing key range; its history, coverage, alarms
// (corruption, not_verified, stale), spans and metrics are the scheduler's
// usual ones.
//
// It is never reported healthy without comparing: when the stored
// fingerprint cannot be read, the other database cannot be opened, or the
// target cannot be fingerprinted, the check is not verified (status error,
// not_verified alarm); a comparison that compared no table at all (the
// table patterns selected nothing, or neither side has a table) is not
// verified either.

// ErrNothingCompared means a fingerprint comparison ran but compared no
// table: the table patterns selected none, or neither side has one.
var ErrNothingCompared = errors.New("nothing was compared")

// CompareFingerprint returns an [ExtraCheck] named
// [checks.CheckFingerprint] that compares the target of each run with the
// fingerprint load returns (taken earlier: before a migration or a disk
// move, or of data that must not change), with [checks.CompareCheck]: the
// target is fingerprinted with the stored fingerprint's chunk bounds, and
// every difference is a corruption finding naming the table and the key
// range (A is the stored fingerprint, B the target). load is called for
// every run, so that a file replaced or damaged between runs is noticed;
// its error makes the check not verified. The target must implement
// [checks.Fingerprinter] (the PostgreSQL, SQLite and SQL Server targets
// do).
func CompareFingerprint(load func(ctx context.Context) (*checks.Fingerprint, error), opts ...checks.CompareOption) ExtraCheck {
	return ExtraCheck{
		Name: checks.CheckFingerprint,
		Build: func(ctx context.Context, t checks.Target) (checks.Check, error) {
			live, err := fingerprinter(t)
			if err != nil {
				return nil, err
			}
			if load == nil {
				return nil, fmt.Errorf("%w: no function to load the stored fingerprint", checks.ErrInvalidOption)
			}
			fp, err := load(ctx)
			if err != nil {
				return nil, fmt.Errorf("reading the stored fingerprint: %w", err)
			}
			if fp == nil {
				return nil, fmt.Errorf("reading the stored fingerprint: %w: none was loaded", checks.ErrInvalidFingerprint)
			}
			return &compareGuard{Check: checks.CompareCheck(live, fp, opts...)}, nil
		},
	}
}

// CompareDatabase returns an [ExtraCheck] named [checks.CheckFingerprint]
// that compares the target of each run (A: the original, such as a
// primary) with the database open returns for the run (B: the copy, such
// as a backup restored for the purpose), with [checks.CompareLiveCheck]:
// every difference is a corruption finding, narrowed down by bisection
// when both implement [checks.RangeHasher] (see [checks.WithMinChunkRows]
// and [checks.WithMaxRanges]). When the database open returns implements
// io.Closer it is closed after the run; an error from open makes the
// check not verified. Writes to A between the two fingerprints show as
// differences: compare a copy with a quiet primary, or with a snapshot.
// Put the second database's password in the target's Secrets.
func CompareDatabase(open func(ctx context.Context) (checks.Fingerprinter, error), opts ...checks.CompareOption) ExtraCheck {
	return ExtraCheck{
		Name: checks.CheckFingerprint,
		Build: func(ctx context.Context, t checks.Target) (checks.Check, error) {
			live, err := fingerprinter(t)
			if err != nil {
				return nil, err
			}
			if open == nil {
				return nil, fmt.Errorf("%w: no function to open the database to compare with", checks.ErrInvalidOption)
			}
			other, err := open(ctx)
			if err == nil && other == nil {
				err = errors.New("no database was opened")
			}
			if err != nil {
				return nil, fmt.Errorf("opening the database to compare with: %w", err)
			}
			g := &compareGuard{Check: checks.CompareLiveCheck(live, other, opts...)}
			if c, ok := other.(io.Closer); ok {
				g.closer = c
			}
			return g, nil
		},
	}
}

func fingerprinter(t checks.Target) (checks.Fingerprinter, error) {
	f, ok := t.(checks.Fingerprinter)
	if !ok {
		engine := t.Info().Engine
		if engine == "" {
			engine = "this target"
		}
		return nil, fmt.Errorf("%w: %s cannot take fingerprints", checks.ErrUnsupported, engine)
	}
	return f, nil
}

// compareGuard is a comparison check that cannot pass without comparing:
// a task that compared no table fails with ErrNothingCompared. It closes
// the database it compares with, if any.
type compareGuard struct {
	checks.Check
	closer io.Closer
}

// Plan plans the comparison and guards its tasks.
func (g *compareGuard) Plan(ctx context.Context) ([]checks.Task, error) {
	tasks, err := g.Check.Plan(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]checks.Task, len(tasks))
	for i, t := range tasks {
		run := t.Run
		if run != nil {
			t.Run = func(ctx context.Context) (checks.Result, error) {
				res, err := run(ctx)
				if err == nil && res.Objects == 0 && len(res.Findings) == 0 {
					err = fmt.Errorf("%w: no table on either side (check the fingerprint's table patterns)", ErrNothingCompared)
				}
				return res, err
			}
		}
		out[i] = t
	}
	return out, nil
}

// Statements describes what the comparison runs, for reviews.
func (g *compareGuard) Statements() []string {
	if e, ok := g.Check.(checks.Explainer); ok {
		return e.Statements()
	}
	return nil
}

// Close closes the database compared with.
func (g *compareGuard) Close() error {
	if g.closer == nil {
		return nil
	}
	return g.closer.Close()
}
