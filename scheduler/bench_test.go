package scheduler

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/scheduler/history"
)

// rssMB returns the resident set size of the process (Linux), or -1.
func rssMB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return -1
}

// cpuTime returns the user+system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchTarget(i int) Target {
	ft := &fakeTarget{info: checks.TargetInfo{Engine: "postgresql", Name: fmt.Sprintf("postgres://app@db%d:5432/app%d", i%200, i), Host: fmt.Sprintf("db%d", i%200), Port: 5432},
		checks: []*fakeCheck{newCheck("heap", fakeTask{key: "t", object: "public.t", cost: 8192})}}
	return Target{
		Name:   fmt.Sprintf("db-%05d", i),
		Labels: map[string]string{"team": "t" + strconv.Itoa(i%20), "runbook_url": "https://runbooks.example/db"},
		Target: ft,
		Plan:   Plan{Schedule: Schedule{Cron: fmt.Sprintf("%d %d * * *", i%60, i%24)}, Window: Window{Start: "0 0 * * *", Duration: 24 * time.Hour}, SLA: 26 * time.Hour},
	}
}

const fleet = 10000

// BenchmarkRegister10000 registers 10,000 targets with cron schedules and
// starts the scheduler. ns/op and B/op are per 10,000 registrations;
// heap-MB and rss-MB are measured with the 10,000 targets registered.
func BenchmarkRegister10000(b *testing.B) {
	ctx := context.Background()
	targets := make([]Target, fleet)
	for i := range targets {
		targets[i] = benchTarget(i)
	}
	var heapMB, rss float64
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s, err := New(ctx, WithClock(clockwork.NewFakeClockAt(t0)), WithLocation(time.UTC))
		if err != nil {
			b.Fatal(err)
		}
		for _, tg := range targets {
			if err := s.Register(ctx, tg); err != nil {
				b.Fatal(err)
			}
		}
		s.Start()
		b.StopTimer()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heapMB, rss = float64(ms.HeapInuse)/(1<<20), rssMB()
		if err := s.Shutdown(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*fleet), "ns/target")
	b.ReportMetric(heapMB, "heap-MB")
	b.ReportMetric(rss, "rss-MB")
}

// benchFire registers n targets that all fire at 02:00 (the worst case: a
// fleet sharing one schedule) and measures, per fired job, the wall time
// and the process CPU time from the tick to the last run recorded: gocron,
// the limiter, opening the run, the checks.Runner with one trivial task,
// recording the run in the store, alarms, telemetry (no-op providers).
func benchFire(b *testing.B, n int, store func(b *testing.B) history.Store) {
	ctx := context.Background()
	var done atomic.Int64
	finished := make(chan struct{}, 1)
	var want atomic.Int64
	clk := clockwork.NewFakeClockAt(t0)
	s, err := New(ctx, WithClock(clk), WithLocation(time.UTC), WithStore(store(b)), WithMaxConcurrent(64), WithMaxPerServer(64),
		WithEvaluateEvery(365*24*time.Hour),
		WithOnRun(func(context.Context, *history.Run) {
			if done.Add(1) == want.Load() {
				finished <- struct{}{}
			}
		}))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown(ctx)
	for i := range n {
		tg := benchTarget(i)
		tg.Plan.Schedule = Schedule{Cron: "0 2 * * *"}
		if err := s.Register(ctx, tg); err != nil {
			b.Fatal(err)
		}
	}
	s.Start()
	b.ResetTimer()
	var cpu time.Duration
	for i := range b.N {
		b.StopTimer()
		want.Store(int64(n * (i + 1)))
		_ = s.gs.Jobs()
		if err := clk.BlockUntilContext(ctx, 2); err != nil { // the group's timer and the evaluation job
			b.Fatal(err)
		}
		start := cpuTime()
		b.StartTimer()
		clk.Advance(24 * time.Hour)
		<-finished
		b.StopTimer()
		cpu += cpuTime() - start
		b.StartTimer()
	}
	b.StopTimer()
	runs := float64(b.N * n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/runs, "wall-ns/run")
	b.ReportMetric(float64(cpu.Nanoseconds())/runs, "cpu-ns/run")
	b.ReportMetric(rssMB(), "rss-MB")
}

func BenchmarkFire10000Memory(b *testing.B) {
	benchFire(b, fleet, func(*testing.B) history.Store { return history.NewMemory(history.WithMaxRuns(defaultMemoryRuns)) })
}

func BenchmarkFire1000SQLite(b *testing.B) {
	benchFire(b, 1000, func(b *testing.B) history.Store {
		st, err := history.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return st
	})
}
