package sqlite

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
)

// treeSizes estimates the bytes of each table's b-tree, for task costs.
//
// Counting a table's pages exactly means reading all of them (the dbstat
// table does), which costs as much as checking the table. Instead, a few
// root-to-leaf descents through sqlite_dbpage at evenly spread positions
// multiply the fan-outs they meet: b-trees are balanced, so this is close
// to the leaf count for a few dozen page reads per table. When pages cannot
// be read (no sqlite_dbpage in another driver's build, an odd page), the
// file size is shared out evenly instead. Costs only order tasks and
// measure progress; a poor estimate is never an error.
func (t *Target) treeSizes(ctx context.Context, tables []table, fileSize int64) []int64 {
	out := make([]int64, len(tables))
	var pageSize, pageCount int64
	if t.db.QueryRowContext(ctx, "PRAGMA main.page_size").Scan(&pageSize) != nil ||
		t.db.QueryRowContext(ctx, "PRAGMA main.page_count").Scan(&pageCount) != nil || pageSize <= 0 {
		pageSize, pageCount = 0, 0
	}
	if total := pageSize * pageCount; total > fileSize {
		fileSize = total
	}
	share := max(fileSize/int64(len(tables)), 1)
	read := func(pgno int64) ([]byte, error) {
		var data []byte
		err := t.db.QueryRowContext(ctx, "SELECT data FROM sqlite_dbpage('main') WHERE pgno = ?", pgno).Scan(&data)
		return data, err
	}
	for i, tb := range tables {
		pages, err := estimatePages(read, tb.root, pageCount)
		if err != nil || pageSize == 0 {
			out[i] = share
			continue
		}
		out[i] = int64(math.Ceil(pages)) * pageSize
	}
	return out
}

const (
	descents = 8  // root-to-leaf paths sampled per b-tree
	maxDepth = 32 // far beyond any real b-tree; stops loops in damaged files
)

var errPage = errors.New("not a b-tree page")

// estimatePages estimates the pages (interior and leaf, not overflow) of
// the b-tree rooted at root by following descents paths to a leaf, each
// taking the child at an evenly spread position, and averaging the product
// of the fan-outs met on the way. read returns a page's bytes.
func estimatePages(read func(pgno int64) ([]byte, error), root, pageCount int64) (float64, error) {
	cache := map[int64][]int64{} // page → children; nil for a leaf
	node := func(pgno int64) ([]int64, error) {
		if c, ok := cache[pgno]; ok {
			return c, nil
		}
		data, err := read(pgno)
		if err != nil {
			return nil, err
		}
		c, err := children(data, pgno, pageCount)
		if err != nil {
			return nil, err
		}
		cache[pgno] = c
		return c, nil
	}
	var total float64
	for k := range descents {
		pg, width := root, 1.0 // width: pages estimated at this level
		for depth := 0; ; depth++ {
			if depth == maxDepth {
				return 0, errPage
			}
			kids, err := node(pg)
			if err != nil {
				return 0, err
			}
			total += width
			if kids == nil {
				break
			}
			width *= float64(len(kids))
			pg = kids[(2*k+1)*len(kids)/(2*descents)]
		}
	}
	return total / descents, nil
}

// children parses a b-tree page and returns its child page numbers, or nil
// for a leaf page. Page 1 starts after the 100-byte file header.
func children(data []byte, pgno, pageCount int64) ([]int64, error) {
	off := 0
	if pgno == 1 {
		off = 100
	}
	if len(data) < off+12 {
		return nil, errPage
	}
	switch data[off] {
	case 10, 13: // index leaf, table leaf
		return nil, nil
	case 2, 5: // index interior, table interior
	default:
		return nil, errPage
	}
	n := int(binary.BigEndian.Uint16(data[off+3:]))
	ptrs := off + 12
	if ptrs+2*n > len(data) {
		return nil, errPage
	}
	valid := func(c int64) bool { return c >= 1 && (pageCount == 0 || c <= pageCount) }
	kids := make([]int64, 0, n+1)
	for i := range n {
		cell := int(binary.BigEndian.Uint16(data[ptrs+2*i:]))
		if cell < ptrs || cell+4 > len(data) {
			return nil, errPage
		}
		c := int64(binary.BigEndian.Uint32(data[cell:]))
		if !valid(c) {
			return nil, errPage
		}
		kids = append(kids, c)
	}
	right := int64(binary.BigEndian.Uint32(data[off+8:]))
	if !valid(right) {
		return nil, errPage
	}
	return append(kids, right), nil
}
