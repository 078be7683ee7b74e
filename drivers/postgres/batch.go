package postgres

import (
	"context"

	"github.com/dbscrub/dbscrub/checks"
)

// batcher groups small relations into batch tasks, one statement for many
// relations, so that thousands of tiny tables do not each pay a round trip
// (pg_amcheck does). A batch closes when adding a relation would take it
// past maxBytes or batchMaxRelations; a batch of one becomes a plain task.
type batcher[T any] struct {
	maxBytes int64
	tasks    *[]checks.Task
	one      func(T) checks.Task
	many     func([]T) checks.Task

	items []T
	bytes int64
}

// add puts it (of n bytes) in the current batch, closing the batch first
// when it is full.
func (b *batcher[T]) add(it T, n int64) {
	if len(b.items) > 0 && (b.bytes+n > b.maxBytes || len(b.items) >= batchMaxRelations) {
		b.flush()
	}
	b.items = append(b.items, it)
	b.bytes += n
}

// flush turns the current batch into a task.
func (b *batcher[T]) flush() {
	switch len(b.items) {
	case 0:
	case 1:
		*b.tasks = append(*b.tasks, b.one(b.items[0]))
	default:
		*b.tasks = append(*b.tasks, b.many(b.items))
	}
	b.items, b.bytes = nil, 0
}

// batchItem is a relation a batch task verifies: a heap relation or an
// index.
type batchItem interface {
	relation() relRef
	size() int64
}

func (r heapRel) relation() relRef     { return r.ref }
func (r heapRel) size() int64          { return r.bytes }
func (ix btreeIndex) relation() relRef { return ix.ref }
func (ix btreeIndex) size() int64      { return ix.bytes }

// verifyBatch is the body of a batch task: it resolves the items (those
// dropped since planning are left out), verifies the rest with all in one
// statement inside a savepoint, and when that statement fails for any
// reason but a lost connection or cancellation (one relation dropped
// meanwhile, damaged beyond what the function reports as rows, locked), it
// verifies them one by one with one to tell which. object names the batch
// in errors.
func verifyBatch[T batchItem](ctx context.Context, s *session, f *findings, object string, items []T,
	all func(oids []int64, live []T) error,
	one func(it T, oid int64) (gone bool, err error)) (checks.Result, error) {
	refs := make([]relRef, len(items))
	for i, it := range items {
		refs[i] = it.relation()
	}
	oids, err := s.resolve(ctx, refs)
	if err != nil {
		return checks.Result{}, maybeTaskError(s.t, err, object)
	}
	var liveOIDs []int64
	var live []T
	var res checks.Result
	for i, oid := range oids {
		if oid != 0 {
			liveOIDs = append(liveOIDs, oid)
			live = append(live, items[i])
			res.Objects++
			res.Bytes += items[i].size()
		}
	}
	if len(live) == 0 {
		return checks.Result{}, nil
	}
	err = s.savepoint(ctx, func() error { return all(liveOIDs, live) })
	if err == nil {
		return res, nil
	}
	if isConnLost(err) || ctx.Err() != nil {
		return checks.Result{}, err
	}
	*f = findings{}
	res = checks.Result{}
	var firstErr error
	for i, it := range live {
		gone, err := one(it, liveOIDs[i])
		if err != nil {
			if isConnLost(err) || ctx.Err() != nil {
				return res, err
			}
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if !gone {
			res.Objects++
			res.Bytes += it.size()
		}
	}
	return res, firstErr
}
