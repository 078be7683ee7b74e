package postgres

import (
	"math"
	"testing"
	"time"
)

func TestDensity(t *testing.T) {
	for _, tc := range []struct {
		name      string
		relpages  int64
		reltuples float64
		want      float64
	}{
		{"statistics", 100, 6100, 61},
		{"never analyzed", 100, -1, 7},
		{"empty pg_class entry", 0, 0, 7},
		{"NaN", 10, math.NaN(), 7},
		{"empty table", 10, 0, 0},
	} {
		if got := density(tc.relpages, tc.reltuples, 7); got != tc.want {
			t.Errorf("%s: density(%d, %g) = %g, want %g", tc.name, tc.relpages, tc.reltuples, got, tc.want)
		}
	}
}

// TestEstimatesOrderTheIndexFirst checks the model on the figures of
// pgbench -s 100 (BENCHMARKS.md): the primary key (225 MB) must outrank a
// 256 MiB chunk of pgbench_accounts, because it takes about four times as
// long, and with heapallindexed it must outrank the whole table's heap.
func TestEstimatesOrderTheIndexFirst(t *testing.T) {
	const (
		tablePages = 163935
		tableRows  = 10_000_000
		indexPages = 27422
		chunkPages = (256 << 20) / 8192
	)
	rowsPerPage := float64(tableRows) / tablePages
	chunk := heapEstimate(chunkPages, rowsPerPage)
	whole := heapEstimate(tablePages, rowsPerPage)
	pkey := btreeEstimate(indexPages, tableRows/float64(indexPages), false, tablePages, tableRows)
	pkeyAll := btreeEstimate(indexPages, tableRows/float64(indexPages), true, tablePages, tableRows)
	for _, c := range []struct {
		name     string
		got, lo  time.Duration
		hi       time.Duration
		measured string
	}{
		{"heap chunk", chunk, 60 * time.Millisecond, 120 * time.Millisecond, "0.09 s"},
		{"whole heap", whole, 350 * time.Millisecond, 500 * time.Millisecond, "0.43 s"},
		{"primary key", pkey, 300 * time.Millisecond, 500 * time.Millisecond, "0.39 s"},
		{"primary key, heapallindexed", pkeyAll, 3 * time.Second, 6 * time.Second, "3.2-6.2 s"},
	} {
		if c.got < c.lo || c.got > c.hi {
			t.Errorf("%s: estimate %s, want %s-%s (measured %s)", c.name, c.got, c.lo, c.hi, c.measured)
		}
	}
	if pkey <= 3*chunk {
		t.Errorf("primary key %s should take well over three heap chunks (%s each)", pkey, chunk)
	}
	if pkeyAll <= whole {
		t.Errorf("heapallindexed primary key %s should outrank the whole heap %s", pkeyAll, whole)
	}
	if heapEstimate(-5, 10) != estPerRelation || btreeEstimate(-1, 10, true, -1, -1) != estPerRelation {
		t.Error("negative sizes must not give negative estimates")
	}
}

func TestChunkSizeForRate(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		rate, want int64
	}{
		{0, DefaultChunkSize},
		{-1, DefaultChunkSize},
		{1e6, 8 * mib},              // 1 MB/s: the 8 MiB floor
		{50e6, 47 * mib},            // 50 MB/s: one second, whole MiB
		{200e6, 190 * mib},          // 200 MB/s
		{800e6, DefaultChunkSize},   // capped at the default
		{1 << 40, DefaultChunkSize}, // huge
	} {
		if got := ChunkSizeForRate(tc.rate); got != tc.want {
			t.Errorf("ChunkSizeForRate(%d) = %d, want %d", tc.rate, got, tc.want)
		}
	}
}
