package main

// These tests are tiny and need no database: the benchmark itself is run
// by hand (see BENCHMARKS.md), never by go test.

import (
	"os"
	"slices"
	"testing"
)

func TestMedianPercentile(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median odd = %v", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median even = %v", got)
	}
	if got := median(nil); got != 0 {
		t.Errorf("median nil = %v", got)
	}
	xs := []float64{10, 1, 9, 2, 8, 3, 7, 4, 6, 5}
	if got := percentile(xs, 10); got != 1 {
		t.Errorf("p10 = %v", got)
	}
	if got := percentile(xs, 50); got != 5 {
		t.Errorf("p50 = %v", got)
	}
	if !slices.Equal(xs, []float64{10, 1, 9, 2, 8, 3, 7, 4, 6, 5}) {
		t.Error("percentile sorted its input")
	}
}

func TestSplit(t *testing.T) {
	files := []segFile{{"a", 1000}, {"b", 10}, {"c", 333}}
	for n := 1; n <= 4; n++ {
		parts := split(files, n)
		var sizes []int64
		covered := map[string]int64{}
		for _, p := range parts {
			var s int64
			for _, pc := range p {
				if pc.off != covered[pc.path] {
					t.Fatalf("n=%d: %s read from %d, want %d (gap or overlap)", n, pc.path, pc.off, covered[pc.path])
				}
				covered[pc.path] += pc.len
				s += pc.len
			}
			sizes = append(sizes, s)
		}
		for _, f := range files {
			if covered[f.path] != f.size {
				t.Errorf("n=%d: %s covered %d of %d bytes", n, f.path, covered[f.path], f.size)
			}
		}
		if d := slices.Max(sizes) - slices.Min(sizes); d > 1 {
			t.Errorf("n=%d: uneven split %v", n, sizes)
		}
	}
}

func TestParsePgbench(t *testing.T) {
	stdout := "transaction type: <builtin: select only>\nscaling factor: 100\nnumber of failed transactions: 0 (0.000%)\nlatency average = 0.105 ms\ntps = 18930.482519 (without initial connection time)\n"
	stderr := "progress: 1.0 s, 18843.9 tps, lat 0.105 ms stddev 0.021, 0 failed\nprogress: 2.0 s, 19012.0 tps, lat 0.104 ms stddev 0.020, 0 failed\n"
	tps, per, err := parsePgbench(stdout, stderr)
	if err != nil {
		t.Fatal(err)
	}
	if tps != 18930.482519 || !slices.Equal(per, []float64{18843.9, 19012.0}) {
		t.Errorf("got %v %v", tps, per)
	}
	if _, _, err := parsePgbench("", "connection refused"); err == nil {
		t.Error("want an error without a tps line")
	}
}

func TestTarget(t *testing.T) {
	if target(dbSkewed, 2) != 0.65 || target(dbSkewed, 1) != 1 || target(dbPgbench, 2) != 1 {
		t.Error("targets changed: update BENCHMARKS.md too")
	}
}

func TestProcStat(t *testing.T) {
	f := procStat(os.Getpid())
	if f == nil {
		t.Skip("no /proc")
	}
	if f.ppid != os.Getppid() {
		t.Errorf("ppid = %d, want %d", f.ppid, os.Getppid())
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-jobs", "1,2,4", "-max-rates", "50, 200", "-dbs", "skewed"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.Jobs, []int{1, 2, 4}) || !slices.Equal(o.MaxRates, []float64{50, 200}) || !slices.Equal(o.DBs, []string{dbSkewed}) {
		t.Errorf("got %+v", o)
	}
	for _, bad := range [][]string{{"-dbs", "nope"}, {"-jobs", "0"}, {"-max-rates", "-1"}, {"-cache", "lukewarm"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%v: want an error", bad)
		}
	}
}

func TestRunOrder(t *testing.T) {
	two := []string{"a", "b"}
	if got := runOrder(two, 1); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("rep 1: %v", got)
	}
	if got := runOrder(two, 2); !slices.Equal(got, []string{"b", "a"}) {
		t.Errorf("rep 2: %v", got)
	}
	three := []string{"a", "b", "c"}
	first := map[string]int{}
	for rep := 1; rep <= 6; rep++ {
		o := runOrder(three, rep)
		if len(o) != 3 {
			t.Fatalf("rep %d: %v", rep, o)
		}
		first[o[0]]++
	}
	for _, tool := range three {
		if first[tool] != 2 {
			t.Errorf("over 6 reps %s ran first %d times, want 2 (%v)", tool, first[tool], first)
		}
	}
}
