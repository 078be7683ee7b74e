package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// median returns the median of xs (0 for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// percentile returns the p-th percentile (0..100, nearest rank) of xs.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func minOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return slices.Min(xs)
}

// spread is (max-min)/median.
func spread(xs []float64) float64 {
	m := median(xs)
	if m == 0 {
		return 0
	}
	return (slices.Max(xs) - slices.Min(xs)) / m
}

// target is the wall-time ratio dbscrub/pg_amcheck a configuration must
// stay under: never slower (1.0), and on the skewed database at --jobs 2 at
// most 0.65.
func target(db string, jobs int) float64 {
	if db == dbSkewed && jobs == 2 {
		return 0.65
	}
	return 1.0
}

// quietCores is the most other load (in cores) a pgbench run may have seen
// to count as quiet.
const quietCores = 0.15

// summarize computes the comparison cells and the max-rate summary.
func summarize(res *Results) {
	type key struct {
		cache, db, variant string
		jobs               int
	}
	var order []key
	cells := map[key]*Cell{}
	busy := map[key][]float64{}
	other := map[key][]float64{}
	for _, r := range res.Runs {
		if r.Rep == 0 || r.Noisy {
			continue
		}
		k := key{r.Cache, r.DB, r.Variant, r.Jobs}
		cl, ok := cells[k]
		if !ok {
			cl = &Cell{Cache: r.Cache, DB: r.DB, Variant: r.Variant, Jobs: r.Jobs, Target: target(r.DB, r.Jobs)}
			cells[k] = cl
			order = append(order, k)
		}
		if r.Error != "" {
			cl.FailedRuns++
			continue
		}
		if r.Cache == cacheWarm && r.ResidentAfter >= 0 && r.ResidentAfter < 0.99 {
			cl.Evicted++
		}
		busy[k] = append(busy[k], r.CPUBusy)
		other[k] = append(other[k], r.OtherCores)
		switch r.Tool {
		case toolAmcheck:
			cl.Amcheck = append(cl.Amcheck, r.Seconds)
		case toolDbscrub:
			cl.Dbscrub = append(cl.Dbscrub, r.Seconds)
			cl.DbscrubBytes = r.BytesVerified
		case toolAlt:
			cl.Alt = append(cl.Alt, r.Seconds)
		}
	}
	// Pair the two tools' runs of each repetition.
	type repKey struct {
		k   key
		rep int
	}
	pairs := map[repKey][2]float64{}
	for _, r := range res.Runs {
		if r.Rep == 0 || r.Error != "" || r.Noisy {
			continue
		}
		rk := repKey{key{r.Cache, r.DB, r.Variant, r.Jobs}, r.Rep}
		p := pairs[rk]
		switch r.Tool {
		case toolAmcheck:
			p[0] = r.Seconds
		case toolDbscrub:
			p[1] = r.Seconds
		}
		pairs[rk] = p
	}
	res.Cells = res.Cells[:0]
	for _, k := range order {
		cl := cells[k]
		for rep := 1; ; rep++ {
			p, ok := pairs[repKey{k, rep}]
			if !ok {
				break
			}
			if p[0] > 0 && p[1] > 0 {
				cl.PairedRatios = append(cl.PairedRatios, p[1]/p[0])
			}
		}
		cl.PairedMedian = median(cl.PairedRatios)
		cl.PairedP25 = percentile(cl.PairedRatios, 25)
		cl.PairedP75 = percentile(cl.PairedRatios, 75)
		for _, d := range res.Databases {
			if d.Name == cl.DB {
				cl.PhysBytes = d.PhysBytes
			}
		}
		cl.AmcheckMedian, cl.DbscrubMedian = median(cl.Amcheck), median(cl.Dbscrub)
		if len(cl.Alt) > 0 && cl.AmcheckMedian > 0 {
			cl.AltMedian = median(cl.Alt)
			cl.AltRatio = cl.AltMedian / cl.AmcheckMedian
		}
		cl.CPUBusyMedian = median(busy[k])
		cl.OtherMedian = median(other[k])
		if len(other[k]) > 0 {
			cl.OtherMax = slices.Max(other[k])
		}
		if cl.AmcheckMedian > 0 {
			cl.AmcheckMBps = float64(cl.PhysBytes) / 1e6 / cl.AmcheckMedian
			cl.AmcheckSpread = spread(cl.Amcheck)
		}
		if cl.DbscrubMedian > 0 {
			cl.DbscrubMBps = float64(cl.PhysBytes) / 1e6 / cl.DbscrubMedian
			cl.DbscrubSpread = spread(cl.Dbscrub)
		}
		if cl.AmcheckMedian > 0 && cl.DbscrubMedian > 0 {
			cl.Ratio = cl.DbscrubMedian / cl.AmcheckMedian
			if cl.FailedRuns == 0 {
				met := cl.Ratio <= cl.Target
				cl.Met = &met
			}
		}
		res.Cells = append(res.Cells, *cl)
	}

	res.MaxRateSummary = res.MaxRateSummary[:0]
	if len(res.MaxRate) == 0 {
		return
	}
	var names []string
	by := map[string][]MaxRateRun{}
	for _, r := range res.MaxRate {
		if r.Noisy {
			continue
		}
		if _, ok := by[r.Setting]; !ok {
			names = append(names, r.Setting)
		}
		by[r.Setting] = append(by[r.Setting], r)
	}
	// Order: no check, unthrottled, then by rate.
	sort.SliceStable(names, func(i, j int) bool {
		ri, rj := by[names[i]][0], by[names[j]][0]
		rank := func(r MaxRateRun) float64 {
			switch r.Setting {
			case "no check":
				return -2
			case "unthrottled":
				return -1
			}
			return r.MaxRate
		}
		return rank(ri) < rank(rj)
	})
	var base float64
	for _, n := range names {
		var tps, mins, p10s, rates, others, quiet []float64
		for _, r := range by[n] {
			if r.Error != "" {
				continue
			}
			tps = append(tps, r.TPS)
			steady := r.PerSecond
			if len(steady) > 1 {
				steady = steady[1:] // pgbench's first second includes its own start-up
			}
			mins = append(mins, minOf(steady))
			p10s = append(p10s, percentile(steady, 10))
			rates = append(rates, float64(r.BytesVerified)/1e6/float64(res.Options.PgbenchT))
			others = append(others, r.OtherCores)
			if r.OtherCores <= quietCores {
				quiet = append(quiet, r.TPS)
			}
		}
		cell := MaxRateCell{Setting: n, MaxRate: by[n][0].MaxRate, TPSMedian: median(tps), MinSecondTPS: median(mins),
			P10SecondTPS: median(p10s), VerifiedMBps: median(rates), OtherMedian: median(others),
			QuietTPSMedian: median(quiet), QuietReps: len(quiet), Reps: len(tps)}
		if n == "no check" {
			base = cell.TPSMedian
		}
		if base > 0 {
			cell.TPSRelative = cell.TPSMedian / base
		}
		res.MaxRateSummary = append(res.MaxRateSummary, cell)
	}
}

func yesNo(b *bool) string {
	switch {
	case b == nil:
		return "n/a"
	case *b:
		return "**yes**"
	default:
		return "**NO**"
	}
}

func secs(xs []float64) string {
	if len(xs) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f (%.2f–%.2f)", median(xs), slices.Min(xs), slices.Max(xs))
}

// markdown renders the summary tables.
func markdown(res *Results) string {
	var b strings.Builder
	o := res.Options
	m := res.Machine
	fmt.Fprintf(&b, "## Results %s\n\n", res.StartedAt.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "Machine: %d CPUs (%s), %d MB RAM, Linux %s; %s; %s; dbscrub %s.\n",
		m.CPUs, m.CPUModel, m.MemTotalMB, m.Kernel, firstField(m.PostgresVersion, 2), m.GoVersion, m.DbscrubRevision)
	var keys []string
	for k := range m.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var kv []string
	for _, k := range keys {
		kv = append(kv, k+"="+m.Settings[k])
	}
	fmt.Fprintf(&b, "Cluster settings: %s.\n\n", strings.Join(kv, ", "))

	b.WriteString("### Databases\n\n| database | verified bytes (main forks) | heap relations | btree indexes | largest relation |\n|---|---:|---:|---:|---|\n")
	for _, d := range res.Databases {
		fmt.Fprintf(&b, "| %s | %s (heap %s, index %s) | %d | %d | %s %s |\n", d.Name, mb(d.PhysBytes), mb(d.HeapBytes), mb(d.IndexBytes), d.Heaps, d.Indexes, d.Largest, mb(d.LargestSize))
	}
	b.WriteString("\n")
	for _, d := range res.Databases {
		if d.AmcheckRelations != "" || d.DbscrubTasks > 0 {
			fmt.Fprintf(&b, "- %s: pg_amcheck --progress counted %s relations and %s pages; dbscrub verified %d objects in %d tasks.\n",
				d.Name, d.AmcheckRelations, d.AmcheckPages, d.DbscrubObjects, d.DbscrubTasks)
		}
	}
	b.WriteString("\n")

	if len(res.Cells) > 0 {
		fmt.Fprintf(&b, "### Wall time, dbscrub vs pg_amcheck (%d reps each, seconds: median (min–max))\n\n", o.Reps)
		b.WriteString("| cache | database | options | jobs | pg_amcheck | dbscrub | ratio of medians | paired ratio median [p25–p75] | target | met | other load, cores (median / max) |\n|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|\n")
		for _, c := range res.Cells {
			ratio := "–"
			if c.Ratio > 0 {
				ratio = fmt.Sprintf("%.2f", c.Ratio)
			}
			met := yesNo(c.Met)
			if c.FailedRuns > 0 {
				met = fmt.Sprintf("%d failed runs", c.FailedRuns)
			}
			paired := "–"
			if len(c.PairedRatios) > 0 {
				paired = fmt.Sprintf("%.2f [%.2f–%.2f]", c.PairedMedian, c.PairedP25, c.PairedP75)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %s | %s | %s | %s | ≤ %.2f | %s | %.2f / %.2f |\n",
				c.Cache, c.DB, c.Variant, c.Jobs, secs(c.Amcheck), secs(c.Dbscrub), ratio, paired, c.Target, met, c.OtherMedian, c.OtherMax)
		}
		b.WriteString("\n")

		if len(o.AltArgs) > 0 {
			fmt.Fprintf(&b, "What-if, timed in the same alternation: dbscrub with `%s` (dbscrub-alt):\n\n", strings.Join(o.AltArgs, " "))
			b.WriteString("| cache | database | options | jobs | pg_amcheck | dbscrub | dbscrub-alt | ratio | ratio with alt |\n|---|---|---|---:|---:|---:|---:|---:|---:|\n")
			for _, c := range res.Cells {
				fmt.Fprintf(&b, "| %s | %s | %s | %d | %s | %s | %s | %.2f | %.2f |\n", c.Cache, c.DB, c.Variant, c.Jobs, secs(c.Amcheck), secs(c.Dbscrub), secs(c.Alt), c.Ratio, c.AltRatio)
			}
			b.WriteString("\n")
		}
		b.WriteString("### Throughput (verified bytes of main forks / median wall time)\n\n")
		b.WriteString("| cache | database | options | jobs | pg_amcheck MB/s | dbscrub MB/s | dbscrub bytes_verified |\n|---|---|---|---:|---:|---:|---:|\n")
		for _, c := range res.Cells {
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %.0f | %.0f | %s |\n", c.Cache, c.DB, c.Variant, c.Jobs, c.AmcheckMBps, c.DbscrubMBps, mb(c.DbscrubBytes))
		}
		b.WriteString("\n")
	}
	if len(res.Components) > 0 {
		fmt.Fprintf(&b, "### Where the time goes (warm cache, quiet machine, %d reps, medians)\n\n", o.Reps)
		b.WriteString("| database | piece | seconds |\n|---|---|---:|\n")
		for _, c := range res.Components {
			fmt.Fprintf(&b, "| %s | %s | %.3f |\n", c.DB, c.What, c.Median)
		}
		b.WriteString("\n")
		if bs := bounds(res); len(bs) > 0 {
			b.WriteString("Best reachable wall time at --jobs 2 = max(longest unsplittable piece, total work / two-connection speed-up):\n\n")
			b.WriteString("| database | options | total work (s) | longest unsplittable (s) | 2-connection speed-up | best at --jobs 2 (s) | pg_amcheck --jobs 2, warm (s) | best reachable ratio | target |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
			for _, bd := range bs {
				am := 0.0
				for _, c := range res.Cells {
					if c.Cache == cacheWarm && c.DB == bd.DB && c.Variant == bd.Variant && c.Jobs == 2 {
						am = c.AmcheckMedian
					}
				}
				ratio := "–"
				if am > 0 {
					ratio = fmt.Sprintf("%.2f", bd.Best/am)
				}
				fmt.Fprintf(&b, "| %s | %s | %.3f | %.3f | %.2f× | %.3f | %.3f | %s | ≤ %.2f |\n", bd.DB, bd.Variant, bd.Work, bd.Critical, bd.Eff, bd.Best, am, ratio, target(bd.DB, 2))
			}
			b.WriteString("\n")
		}
	}
	if len(res.SeqRead) > 0 {
		fmt.Fprintf(&b, "### Plain sequential read of the same files (%d reps, median)\n\n", o.SeqReadReps)
		b.WriteString("| database | cache | readers | bytes | seconds | MB/s |\n|---|---|---:|---:|---:|---:|\n")
		for _, s := range res.SeqRead {
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %.2f | %.0f |\n", s.DB, s.Cache, s.Readers, mb(s.Bytes), s.Median, s.MBps)
		}
		b.WriteString("\n")
	}
	if len(res.MaxRateSummary) > 0 {
		mode := "select-only (-S)"
		if o.PgbenchMode == "tpcb" {
			mode = "TPC-B-like"
		}
		fmt.Fprintf(&b, "### pgbench %s, -c %d -j %d -T %d, next to dbscrub --jobs %d (%d reps, medians)\n\n", mode, o.PgbenchC, o.PgbenchC, o.PgbenchT, o.MaxRateJobs, o.MaxRateReps)
		fmt.Fprintf(&b, "| check beside pgbench | TPS | vs no check | worst 1-s TPS (after the 1st s) | p10 1-s TPS | check verified MB/s | other load, cores | TPS of quiet runs (others ≤ %.2f cores) |\n|---|---:|---:|---:|---:|---:|---:|---:|\n", quietCores)
		for _, c := range res.MaxRateSummary {
			q := "–"
			if c.QuietReps > 0 {
				q = fmt.Sprintf("%.0f (%d of %d runs)", c.QuietTPSMedian, c.QuietReps, c.Reps)
			}
			fmt.Fprintf(&b, "| %s | %.0f | %.0f%% | %.0f | %.0f | %.0f | %.2f | %s |\n", c.Setting, c.TPSMedian, 100*c.TPSRelative, c.MinSecondTPS, c.P10SecondTPS, c.VerifiedMBps, c.OtherMedian, q)
		}
		b.WriteString("\n")
	}
	for _, c := range res.Cells {
		if c.Evicted > 0 {
			fmt.Fprintf(&b, "- %s %s %s --jobs %d: in %d runs part of the page cache was evicted by another process during the run.\n", c.Cache, c.DB, c.Variant, c.Jobs, c.Evicted)
		}
	}
	if len(res.Notes) > 0 {
		b.WriteString("Notes:\n\n")
		for _, n := range res.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// firstField returns the first n space-separated words of s.
func firstField(s string, n int) string {
	f := strings.Fields(s)
	if len(f) > n {
		f = f[:n]
	}
	return strings.Join(f, " ")
}
