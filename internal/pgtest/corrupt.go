package pgtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// ErrNoChecksums is returned (wrapped) by CorruptChecksum on a cluster
// without data checksums.
var ErrNoChecksums = errors.New("cluster has no data checksums")

// Every injector works the same way: it resolves the relation's file with
// pg_relation_filepath, runs CHECKPOINT, stops the server (fast), edits the
// file and starts the server again, so the damage is on disk and no shared
// buffer hides it. Injectors that damage page structure also rewrite the page
// checksum (when the cluster has checksums), so the page passes verification
// and the structural damage is what amcheck sees. Injectors restart the
// cluster: use them on a cluster dedicated to the test (see Fresh).

// CorruptHeapTupleHeader damages the header of the first tuple in block 0 of
// table: t_hoff (offset of the tuple data) is increased by one, so it no
// longer matches the tuple's attributes (and is not MAXALIGNed). verify_heapam
// reports e.g. "tuple data should begin at byte 24, but actually begins at
// byte 25 (2 attributes, no nulls)".
func (c *Cluster) CorruptHeapTupleHeader(ctx context.Context, db, table string) error {
	return c.offline(ctx, "corrupt tuple header of", db, table, "heap", func(f relFile) error {
		return f.modifyPage(0, true, func(p page) error {
			_, it, err := p.firstNormalItem()
			if err != nil {
				return err
			}
			p[it.off+tupHoff]++
			return nil
		})
	})
}

// CorruptLinePointer makes the first normal line pointer in block 0 of table
// point past the end of the page (lp_off = 8192). verify_heapam reports "line
// pointer to page offset 8192 with length N ends beyond maximum page offset
// 8192".
func (c *Cluster) CorruptLinePointer(ctx context.Context, db, table string) error {
	return c.offline(ctx, "corrupt line pointer of", db, table, "heap", func(f relFile) error {
		return f.modifyPage(0, true, func(p page) error {
			n, it, err := p.firstNormalItem()
			if err != nil {
				return err
			}
			it.off = PageSize
			p.setItem(n, it)
			return nil
		})
	})
}

// CorruptBtreeLeaf swaps the line pointers of the first and the last data
// item (with different keys) on the first suitable leaf page of the btree
// index, so the keys on that page are out of order. bt_index_check reports
// "item order invariant violated for index ...". The index needs a leaf page
// with at least two distinct keys.
func (c *Cluster) CorruptBtreeLeaf(ctx context.Context, db, index string) error {
	return c.offline(ctx, "corrupt btree leaf of", db, index, "btree", func(f relFile) error {
		n, err := f.nblocks()
		if err != nil {
			return err
		}
		for blk := int64(1); blk < n; blk++ { // block 0 is the metapage
			p, err := f.readBlock(blk)
			if err != nil {
				return err
			}
			if p.isNew() {
				continue
			}
			if err := p.validate(); err != nil {
				return fmt.Errorf("block %d: %w", blk, err)
			}
			a, b, ok := btreeSwapCandidates(p)
			if !ok {
				continue
			}
			if err := f.checkChecksum(p, blk); err != nil {
				return err
			}
			ia, ib := p.item(a), p.item(b)
			p.setItem(a, ib)
			p.setItem(b, ia)
			return f.writePage(p, blk, true)
		}
		return fmt.Errorf("no live leaf page with two distinct keys among %d blocks", n)
	})
}

// btreeSwapCandidates returns two data items on a live btree leaf page whose
// keys differ.
func btreeSwapCandidates(p page) (a, b int, ok bool) {
	sp := p.special()
	if sp != PageSize-btOpaqueSize {
		return 0, 0, false
	}
	next := p.u32(sp + 4)
	flags := p.u16(sp + 12)
	if flags&btpLeaf == 0 || flags&(btpDeleted|btpHalfDead|btpMeta) != 0 {
		return 0, 0, false
	}
	first := 2 // item 1 is the high key ...
	if next == 0 {
		first = 1 // ... except on the rightmost page
	}
	var items []int
	for n := first; n <= p.numItems(); n++ {
		it := p.item(n)
		if it.flags == lpNormal && it.length >= 8 && it.off >= pageHeaderSize && it.off+it.length <= sp {
			items = append(items, n)
		}
	}
	if len(items) < 2 {
		return 0, 0, false
	}
	a = items[0]
	ka := indexKey(p, p.item(a))
	for i := len(items) - 1; i > 0; i-- {
		if !bytes.Equal(ka, indexKey(p, p.item(items[i]))) {
			return a, items[i], true
		}
	}
	return 0, 0, false
}

// indexKey returns the key bytes of an index tuple (IndexTupleData), without
// the heap TID and without a posting list.
func indexKey(p page, it itemID) []byte {
	t := p[it.off : it.off+it.length]
	info := uint16(t[6]) | uint16(t[7])<<8
	end := min(int(info&indexSizeMask), len(t))
	posid := uint16(t[4]) | uint16(t[5])<<8
	if info&indexAltTID != 0 && posid&btIsPosting != 0 {
		// Posting-list tuple: t_tid's block number holds the list offset.
		postOff := int(uint32(t[0])|uint32(t[1])<<8)<<16 | int(uint32(t[2])|uint32(t[3])<<8)
		if postOff >= 8 && postOff <= end {
			end = postOff
		}
	}
	if end < 8 {
		return nil
	}
	return t[8:end]
}

// CorruptChecksum flips a byte in the data of the first tuple in block 0 of
// table without fixing the page checksum. Reading the page then fails with
// "page verification failed, calculated checksum X but expected Y" / "invalid
// page in block 0 of relation ...", and pg_stat_database.checksum_failures
// grows. The cluster must have data checksums (ErrNoChecksums otherwise).
func (c *Cluster) CorruptChecksum(ctx context.Context, db, table string) error {
	return c.offline(ctx, "corrupt checksum of", db, table, "heap", func(f relFile) error {
		if !f.checksums {
			return ErrNoChecksums
		}
		return f.modifyPage(0, false, func(p page) error {
			_, it, err := p.firstNormalItem()
			if err != nil {
				return err
			}
			// Flip bytes from the end of the tuple until the stored checksum
			// no longer matches (one flip virtually always suffices).
			for i := it.off + it.length - 1; i >= it.off; i-- {
				p[i] ^= 0xFF
				if pageChecksum(p, 0) != p.checksum() {
					return nil
				}
			}
			return errors.New("could not produce a checksum mismatch")
		})
	})
}

// CorruptToast damages the TOAST data of table (which must hold at least one
// value stored out of line): the chunk_seq of the first chunk in block 0 of
// its TOAST relation is changed, so the chunk no longer fits its value.
// verify_heapam(table, check_toast => true) reports e.g. "toast value N index
// scan returned chunk 1000 when expecting chunk 0".
func (c *Cluster) CorruptToast(ctx context.Context, db, table string) error {
	toast, err := c.QueryString(ctx, db,
		"SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = $1::regclass AND reltoastrelid <> 0", table)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("pgtest: corrupt toast of %q: table has no TOAST relation", table)
	}
	if err != nil {
		return fmt.Errorf("pgtest: corrupt toast of %q: %w", table, err)
	}
	return c.offline(ctx, "corrupt toast chunk of", db, toast, "heap", func(f relFile) error {
		n, err := f.nblocks()
		if err != nil {
			return err
		}
		if n == 0 {
			return errors.New("TOAST relation is empty: no value of the table is stored out of line")
		}
		return f.modifyPage(0, true, func(p page) error {
			_, it, err := p.firstNormalItem()
			if err != nil {
				return err
			}
			// pg_toast tuple: chunk_id oid, chunk_seq int4, chunk_data bytea.
			seqOff := it.off + int(p[it.off+tupHoff]) + 4
			if seqOff+4 > it.off+it.length {
				return fmt.Errorf("toast tuple too short (%d bytes)", it.length)
			}
			p.putU32(seqOff, p.u32(seqOff)+1000)
			return nil
		})
	})
}

// RemoveRelationFile deletes the main fork of relation (every segment:
// path, path.1, ...), as after a failed copy. Reading the relation then fails
// with `could not open file "base/...": No such file or directory`.
func (c *Cluster) RemoveRelationFile(ctx context.Context, db, relation string) error {
	return c.offline(ctx, "remove file of", db, relation, "", func(f relFile) error {
		for seg := int64(0); ; seg++ {
			err := os.Remove(f.segPath(seg))
			if errors.Is(err, fs.ErrNotExist) && seg > 0 {
				return nil
			}
			if err != nil {
				return err
			}
		}
	})
}

// ZeroHeapPage overwrites block of table with 8 kB of zeros, like a torn
// write or a bad disk. PostgreSQL (and amcheck in PG15) treat an all-zero
// page as a valid empty page, so the damage shows only as missing rows.
func (c *Cluster) ZeroHeapPage(ctx context.Context, db, table string, block int64) error {
	return c.offline(ctx, fmt.Sprintf("zero block %d of", block), db, table, "heap", func(f relFile) error {
		n, err := f.nblocks()
		if err != nil {
			return err
		}
		if block < 0 || block >= n {
			return fmt.Errorf("block %d out of range: relation has %d blocks", block, n)
		}
		return f.writeBlock(block, make([]byte, PageSize))
	})
}

// TruncateHeap truncates table's main fork to its first keepBlocks blocks,
// which must be fewer than it has. Sequential scans then silently miss rows;
// index scans that reach a removed block fail ("could not read block ...").
func (c *Cluster) TruncateHeap(ctx context.Context, db, table string, keepBlocks int64) error {
	return c.offline(ctx, "truncate heap of", db, table, "heap", func(f relFile) error {
		n, err := f.nblocks()
		if err != nil {
			return err
		}
		if keepBlocks < 0 || keepBlocks >= n {
			return fmt.Errorf("cannot keep %d blocks: relation has %d blocks", keepBlocks, n)
		}
		return f.truncate(keepBlocks, n)
	})
}

// offline runs fn on relation's file while the server is stopped. wantAM,
// if not empty, is the access method the relation must use ("heap",
// "btree").
func (c *Cluster) offline(ctx context.Context, op, db, relation, wantAM string, fn func(relFile) error) error {
	wrap := func(err error) error { return fmt.Errorf("pgtest: %s %q: %w", op, relation, err) }
	f, err := c.prepare(ctx, db, relation, wantAM)
	if err != nil {
		return wrap(err)
	}
	if err := c.Stop(); err != nil {
		return wrap(err)
	}
	ferr := fn(f)
	if ferr != nil {
		ferr = wrap(fmt.Errorf("%s: %w", f.path, ferr))
	}
	if err := c.Start(); err != nil {
		return errors.Join(ferr, wrap(fmt.Errorf("restart: %w", err)))
	}
	return ferr
}

// prepare checks relation, resolves its file and flushes it to disk.
func (c *Cluster) prepare(ctx context.Context, db, relation, wantAM string) (relFile, error) {
	var kind, am string
	err := c.queryRow(ctx, db,
		`SELECT c.relkind::text, coalesce(a.amname::text, '') FROM pg_class c
		 LEFT JOIN pg_am a ON a.oid = c.relam WHERE c.oid = $1::regclass`,
		[]any{relation}, &kind, &am)
	if err != nil {
		return relFile{}, err
	}
	if wantAM != "" && am != wantAM {
		return relFile{}, fmt.Errorf("relation (relkind %q) uses access method %q, want %q", kind, am, wantAM)
	}
	path, err := c.RelationPath(ctx, db, relation)
	if err != nil {
		return relFile{}, err
	}
	blockSize, err := c.QueryInt(ctx, db, "SELECT current_setting('block_size')::int")
	if err != nil {
		return relFile{}, err
	}
	if blockSize != PageSize {
		return relFile{}, fmt.Errorf("block size %d not supported (want %d)", blockSize, PageSize)
	}
	segBlocks, err := c.QueryInt(ctx, db, "SELECT setting::bigint FROM pg_settings WHERE name = 'segment_size'")
	if err != nil {
		return relFile{}, err
	}
	checksums, err := c.QueryString(ctx, db, "SHOW data_checksums")
	if err != nil {
		return relFile{}, err
	}
	if err := c.Checkpoint(ctx, db); err != nil {
		return relFile{}, err
	}
	return relFile{path: path, segBlocks: segBlocks, checksums: checksums == "on"}, nil
}

// relFile is the main fork of a relation on disk, possibly split into
// segments of segBlocks blocks (path, path.1, path.2, ...).
type relFile struct {
	path      string
	segBlocks int64
	checksums bool
}

func (f relFile) segPath(seg int64) string {
	if seg == 0 {
		return f.path
	}
	return fmt.Sprintf("%s.%d", f.path, seg)
}

// nblocks returns the number of blocks in the fork.
func (f relFile) nblocks() (int64, error) {
	var total int64
	for seg := int64(0); ; seg++ {
		fi, err := os.Stat(f.segPath(seg))
		if errors.Is(err, fs.ErrNotExist) && seg > 0 {
			return total, nil
		}
		if err != nil {
			return 0, err
		}
		total += fi.Size() / PageSize
		if fi.Size() < f.segBlocks*PageSize {
			return total, nil
		}
	}
}

func (f relFile) locate(block int64) (string, int64) {
	return f.segPath(block / f.segBlocks), block % f.segBlocks * PageSize
}

func (f relFile) readBlock(block int64) (page, error) {
	path, off := f.locate(block)
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	p := make(page, PageSize)
	if _, err := fh.ReadAt(p, off); err != nil {
		return nil, fmt.Errorf("read block %d: %w", block, err)
	}
	return p, nil
}

// writeBlock overwrites an existing block; the file keeps its owner.
func (f relFile) writeBlock(block int64, p []byte) error {
	path, off := f.locate(block)
	fh, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, werr := fh.WriteAt(p, off)
	if werr == nil {
		werr = fh.Sync()
	}
	if err := errors.Join(werr, fh.Close()); err != nil {
		return fmt.Errorf("write block %d: %w", block, err)
	}
	return nil
}

// checkChecksum verifies the stored checksum of a clean page, proving the
// page is undamaged and the checksum code agrees with the server.
func (f relFile) checkChecksum(p page, block int64) error {
	if !f.checksums {
		return nil
	}
	if got, want := pageChecksum(p, uint32(block)), p.checksum(); got != want {
		return fmt.Errorf("block %d: stored checksum %d but computed %d before any change (page already damaged?)", block, want, got)
	}
	return nil
}

// writePage writes p as block, first recomputing its checksum if fix is set
// and the cluster has checksums.
func (f relFile) writePage(p page, block int64, fix bool) error {
	if fix && f.checksums {
		p.setChecksum(uint32(block))
	}
	return f.writeBlock(block, p)
}

// modifyPage reads block, checks it, lets edit change it and writes it back,
// recomputing the checksum if fixChecksum is set.
func (f relFile) modifyPage(block int64, fixChecksum bool, edit func(page) error) error {
	n, err := f.nblocks()
	if err != nil {
		return err
	}
	if block >= n {
		return fmt.Errorf("block %d does not exist: relation has %d blocks", block, n)
	}
	p, err := f.readBlock(block)
	if err != nil {
		return err
	}
	if err := p.validate(); err != nil {
		return fmt.Errorf("block %d: %w", block, err)
	}
	if err := f.checkChecksum(p, block); err != nil {
		return err
	}
	if err := edit(p); err != nil {
		return fmt.Errorf("block %d: %w", block, err)
	}
	return f.writePage(p, block, fixChecksum)
}

// truncate cuts the fork (n blocks) down to keep blocks, removing whole
// segments past the new end.
func (f relFile) truncate(keep, n int64) error {
	for seg := int64(0); seg*f.segBlocks < n || seg == 0; seg++ {
		start := seg * f.segBlocks
		switch {
		case keep >= start+f.segBlocks:
			continue // segment stays whole
		case keep > start || seg == 0:
			if err := os.Truncate(f.segPath(seg), (keep-start)*PageSize); err != nil {
				return err
			}
		default:
			if err := os.Remove(f.segPath(seg)); err != nil {
				return err
			}
		}
	}
	return nil
}
