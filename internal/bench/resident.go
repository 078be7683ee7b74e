package main

import (
	"context"
	"os"
	"syscall"
)

// Other processes on a shared machine can evict the page cache (memory
// pressure, or a test dropping caches). So "warm" is not assumed: before
// every warm run the harness reads the database's relation files once, and
// it records which fraction of them was resident in the page cache
// (mincore) before and after each run.

// dbFiles returns the segment files of the relations both tools verify.
func dbFiles(ctx context.Context, c *cluster, db string) ([]segFile, error) {
	rels, err := relationFiles(ctx, c, db)
	if err != nil {
		return nil, err
	}
	files, _, err := segmentFiles(c.DataDir, rels)
	return files, err
}

// prewarm reads every file once, so that it is in the page cache.
func prewarm(files []segFile) error {
	_, err := readFiles(files, 1)
	return err
}

// resident returns the fraction of the files' bytes that are in the page
// cache; -1 when it cannot be told.
func resident(files []segFile) float64 {
	page := int64(os.Getpagesize())
	var in, total int64
	for _, f := range files {
		if f.size == 0 {
			continue
		}
		n, err := residentPages(f.path, f.size, page)
		if err != nil {
			return -1
		}
		in += n
		total += (f.size + page - 1) / page
	}
	if total == 0 {
		return -1
	}
	return float64(in) / float64(total)
}

func residentPages(path string, size, page int64) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size = min(size, fi.Size())
	if size == 0 {
		return 0, nil
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return 0, err
	}
	defer syscall.Munmap(m)
	vec := make([]byte, (size+page-1)/page)
	if err := mincore(m, vec); err != nil {
		return 0, err
	}
	var n int64
	for _, v := range vec {
		n += int64(v & 1)
	}
	return n, nil
}
