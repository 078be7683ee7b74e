package postgres

import "github.com/dbscrub/dbscrub/checks"

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
