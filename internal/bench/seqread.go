package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// seqReads measures a plain sequential read of every file the checks read
// (the main fork of each table, TOAST table, materialized view and btree
// index, all segments), with one reader and with two (the files split
// between them), cold (page cache dropped) and warm.
func seqReads(ctx context.Context, c *cluster, o *options, res *Results) error {
	coldOK := dropCaches() == nil
	if !coldOK {
		res.Notes = append(res.Notes, "cold sequential reads skipped: cannot drop the page cache (not root?)")
	}
	for _, db := range o.DBs {
		rels, err := relationFiles(ctx, c, db)
		if err != nil {
			return err
		}
		files, total, err := segmentFiles(c.DataDir, rels)
		if err != nil {
			return err
		}
		for _, readers := range []int{1, 2} {
			for _, cache := range []string{cacheCold, cacheWarm} {
				if cache == cacheCold && !coldOK {
					continue
				}
				sr := SeqRead{DB: db, Cache: cache, Readers: readers, Bytes: total, Files: len(files)}
				for rep := 0; rep < o.SeqReadReps; rep++ {
					if err := ctx.Err(); err != nil {
						return err
					}
					if cache == cacheCold {
						if err := dropCaches(); err != nil {
							return err
						}
					} else if rep == 0 {
						if _, err := readFiles(files, readers); err != nil { // warm up
							return err
						}
					}
					d, err := readFiles(files, readers)
					if err != nil {
						return err
					}
					sr.Seconds = append(sr.Seconds, d.Seconds())
				}
				sr.Median = median(sr.Seconds)
				sr.MBps = float64(total) / 1e6 / sr.Median
				res.SeqRead = append(res.SeqRead, sr)
				logf("sequential read %s, %s, %d reader(s): %s in %.2f s = %.0f MB/s", db, cache, readers, mb(total), sr.Median, sr.MBps)
			}
		}
	}
	return nil
}

type segFile struct {
	path string
	size int64
}

// segmentFiles lists the 1 GB segment files of the relations.
func segmentFiles(dataDir string, rels []relFile) ([]segFile, int64, error) {
	var out []segFile
	var total int64
	for _, r := range rels {
		if r.size == 0 || r.path == "" {
			continue
		}
		base := r.path
		if !filepath.IsAbs(base) {
			base = filepath.Join(dataDir, base)
		}
		for seg := 0; ; seg++ {
			p := base
			if seg > 0 {
				p = fmt.Sprintf("%s.%d", base, seg)
			}
			fi, err := os.Stat(p)
			if errors.Is(err, os.ErrNotExist) && seg > 0 {
				break
			}
			if err != nil {
				return nil, 0, err
			}
			out = append(out, segFile{p, fi.Size()})
			total += fi.Size()
		}
	}
	return out, total, nil
}

// piece is a byte range of one file.
type piece struct {
	path     string
	off, len int64
}

// split cuts the concatenation of files into n contiguous byte ranges of
// (nearly) equal size, so that n readers share even one big file.
func split(files []segFile, n int) [][]piece {
	var total int64
	for _, f := range files {
		total += f.size
	}
	bound := func(k int) int64 { return int64(k) * total / int64(n) } // reader k reads [bound(k), bound(k+1))
	parts := make([][]piece, n)
	k := 0
	var pos int64 // position in the concatenation
	for _, f := range files {
		for off := int64(0); off < f.size; {
			for k < n-1 && pos >= bound(k+1) {
				k++
			}
			l := f.size - off
			if k < n-1 {
				l = min(l, bound(k+1)-pos)
			}
			parts[k] = append(parts[k], piece{f.path, off, l})
			off += l
			pos += l
		}
	}
	return parts
}

// readFiles reads every file once, split between n readers, and returns
// the wall time.
func readFiles(files []segFile, n int) (time.Duration, error) {
	parts := split(files, n)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<20)
			for _, p := range parts[i] {
				if err := readPiece(p, buf); err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

func readPiece(p piece, buf []byte) error {
	f, err := os.Open(p.path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := io.NewSectionReader(f, p.off, p.len)
	for {
		_, err := r.Read(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
