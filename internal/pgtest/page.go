package pgtest

import (
	"encoding/binary"
	"fmt"
)

// PostgreSQL on-disk page layout (src/include/storage/bufpage.h, itemid.h,
// access/htup_details.h, access/nbtree.h). Only the default 8 kB block size
// is supported.
const (
	// PageSize is the PostgreSQL block size (BLCKSZ) the injectors support.
	PageSize = 8192

	pageHeaderSize = 24 // SizeOfPageHeaderData
	itemIDSize     = 4  // sizeof(ItemIdData)
	layoutVersion  = 4  // PG_PAGE_LAYOUT_VERSION

	offChecksum    = 8
	offLower       = 12
	offUpper       = 14
	offSpecial     = 16
	offSizeVersion = 18

	lpNormal = 1 // lp_flags of a line pointer to a tuple

	// Heap tuple header: offset of t_hoff and the header size.
	tupHoff    = 22
	tupMinSize = 23 // SizeofHeapTupleHeader

	// btree special space (BTPageOpaqueData) and flags.
	btOpaqueSize  = 16
	btpLeaf       = 1 << 0
	btpDeleted    = 1 << 2
	btpMeta       = 1 << 3
	btpHalfDead   = 1 << 4
	indexSizeMask = 0x1FFF // t_info: tuple size
	indexAltTID   = 0x2000 // t_info: INDEX_ALT_TID_MASK
	btIsPosting   = 0x2000 // t_tid.ip_posid flag for posting-list tuples
)

// page is one PostgreSQL page.
type page []byte

func (p page) u16(off int) uint16       { return binary.LittleEndian.Uint16(p[off:]) }
func (p page) putU16(off int, v uint16) { binary.LittleEndian.PutUint16(p[off:], v) }
func (p page) u32(off int) uint32       { return binary.LittleEndian.Uint32(p[off:]) }
func (p page) putU32(off int, v uint32) { binary.LittleEndian.PutUint32(p[off:], v) }

func (p page) checksum() uint16 { return p.u16(offChecksum) }
func (p page) lower() int       { return int(p.u16(offLower)) }
func (p page) upper() int       { return int(p.u16(offUpper)) }
func (p page) special() int     { return int(p.u16(offSpecial)) }

// isNew reports whether the page is uninitialized (PageIsNew: pd_upper == 0),
// e.g. all zeros.
func (p page) isNew() bool { return p.upper() == 0 }

// validate checks the page header for sanity, like PageIsVerified does
// before trusting the page.
func (p page) validate() error {
	if len(p) != PageSize {
		return fmt.Errorf("page is %d bytes, want %d", len(p), PageSize)
	}
	if p.isNew() {
		return fmt.Errorf("page is new (uninitialized)")
	}
	if sv := p.u16(offSizeVersion); int(sv&0xFF00) != PageSize || sv&0xFF != layoutVersion {
		return fmt.Errorf("unexpected pd_pagesize_version 0x%04x", sv)
	}
	lo, up, sp := p.lower(), p.upper(), p.special()
	if lo < pageHeaderSize || lo > up || up > sp || sp > PageSize {
		return fmt.Errorf("corrupt page header: pd_lower=%d pd_upper=%d pd_special=%d", lo, up, sp)
	}
	return nil
}

// numItems is the number of line pointers (PageGetMaxOffsetNumber).
func (p page) numItems() int { return (p.lower() - pageHeaderSize) / itemIDSize }

// itemID is a decoded line pointer (ItemIdData).
type itemID struct {
	off, flags, length int
}

// item returns line pointer n (an OffsetNumber, 1-based).
func (p page) item(n int) itemID {
	w := p.u32(pageHeaderSize + (n-1)*itemIDSize)
	return itemID{off: int(w & 0x7FFF), flags: int(w >> 15 & 0x3), length: int(w >> 17)}
}

// setItem overwrites line pointer n (1-based).
func (p page) setItem(n int, it itemID) {
	w := uint32(it.off)&0x7FFF | uint32(it.flags&0x3)<<15 | uint32(it.length&0x7FFF)<<17
	p.putU32(pageHeaderSize+(n-1)*itemIDSize, w)
}

// firstNormalItem returns the first LP_NORMAL line pointer whose storage lies
// within the page.
func (p page) firstNormalItem() (int, itemID, error) {
	for n := 1; n <= p.numItems(); n++ {
		it := p.item(n)
		if it.flags == lpNormal && it.length >= tupMinSize && it.off >= pageHeaderSize && it.off+it.length <= PageSize {
			return n, it, nil
		}
	}
	return 0, itemID{}, fmt.Errorf("no normal tuple among %d line pointers", p.numItems())
}

// checksumBaseOffsets seeds the parallel FNV-1a hashes
// (src/include/storage/checksum_impl.h).
var checksumBaseOffsets = [nSums]uint32{
	0x5B1F36E9, 0xB8525960, 0x02AB50AA, 0x1DE66D2A,
	0x79FF467A, 0x9BB9F8A3, 0x217E7CD2, 0x83E13D2C,
	0xF8D4474F, 0xE39EB970, 0x42C6AE16, 0x993216FA,
	0x7B093B5D, 0x98DAFF3C, 0xF718902A, 0x0B1C9CDB,
	0xE58F764B, 0x187636BC, 0x5D7B3BB1, 0xE73DE7DE,
	0x92BEC979, 0xCCA6C0B2, 0x304A0979, 0x85AA43D4,
	0x783125BB, 0x6CA8EAA2, 0xE407EAC6, 0x4B5CFC3E,
	0x9FBF8C76, 0x15CA20BE, 0xF2CA9FD3, 0x959BD756,
}

const (
	nSums    = 32       // N_SUMS
	fnvPrime = 16777619 // FNV_PRIME
)

// PageChecksum computes PostgreSQL's data page checksum (pg_checksum_page)
// of an 8 kB page for block number blkno (counted from the start of the
// relation fork, across segments). The stored pd_checksum is ignored, as in
// PostgreSQL, where it counts as zero.
func PageChecksum(p []byte, blkno uint32) (uint16, error) {
	if len(p) != PageSize {
		return 0, fmt.Errorf("pgtest: page checksum of a %d-byte page: want %d bytes", len(p), PageSize)
	}
	return pageChecksum(p, blkno), nil
}

// pageChecksum implements pg_checksum_page; len(p) must be PageSize.
func pageChecksum(p []byte, blkno uint32) uint16 {
	sums := checksumBaseOffsets
	comp := func(sum *uint32, v uint32) {
		tmp := *sum ^ v
		*sum = tmp*fnvPrime ^ tmp>>17
	}
	for i := 0; i < PageSize/(4*nSums); i++ {
		row := p[i*4*nSums:]
		for j := 0; j < nSums; j++ {
			v := binary.LittleEndian.Uint32(row[j*4:])
			if i == 0 && j == offChecksum/4 {
				v &^= 0xFFFF // pd_checksum counts as zero (little-endian low half)
			}
			comp(&sums[j], v)
		}
	}
	for i := 0; i < 2; i++ {
		for j := range sums {
			comp(&sums[j], 0)
		}
	}
	var sum uint32
	for _, s := range sums {
		sum ^= s
	}
	sum ^= blkno
	return uint16(sum%65535 + 1)
}

// setChecksum recomputes and stores pd_checksum for block blkno.
func (p page) setChecksum(blkno uint32) {
	p.putU16(offChecksum, pageChecksum(p, blkno))
}
