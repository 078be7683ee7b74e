package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc/stat and
// /proc/PID/stat times (100 on every mainstream Linux).
const clockTicks = 100

// Other people's processes share the machine. To tell how much of it a
// measurement had, the harness compares the CPU time the whole machine used
// during a run (/proc/stat) with what our own processes used: the cluster
// (the postmaster, its children, and the children it reaped) and the
// measured client programs. The rest is "other" load, reported in cores.

// sample is a reading of the machine's and the cluster's CPU time.
type sample struct {
	at      time.Time
	cpu     cpuSample
	cluster uint64 // ticks
}

func (c *cluster) sample() sample {
	return sample{at: time.Now(), cpu: readCPU(), cluster: c.clusterTicks()}
}

// otherCores returns how many cores, on average, processes other than the
// cluster and the measured clients (which used ownCPU) kept busy since s.
func (c *cluster) otherCores(s sample, ownCPU time.Duration) float64 {
	// Let the backends of the finished client exit and be reaped, so
	// their CPU time is counted as the cluster's.
	time.Sleep(50 * time.Millisecond)
	e := c.sample()
	wall := e.at.Sub(s.at).Seconds()
	if wall <= 0 {
		return 0
	}
	busy := float64(e.cpu.busy-s.cpu.busy) / clockTicks
	ours := float64(e.cluster-s.cluster)/clockTicks + ownCPU.Seconds()
	return max(0, busy-ours) / wall
}

// clusterTicks returns the CPU time of the postmaster, its live children
// and the children it has reaped.
func (c *cluster) clusterTicks() uint64 {
	b, err := os.ReadFile(filepath.Join(c.DataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pm, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return 0
	}
	var total uint64
	if f := procStat(pm); f != nil {
		total += f.utime + f.stime + f.cutime + f.cstime
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == pm {
			continue
		}
		if f := procStat(pid); f != nil && f.ppid == pm {
			total += f.utime + f.stime
		}
	}
	return total
}

type procFields struct {
	ppid                         int
	utime, stime, cutime, cstime uint64
}

// procStat reads /proc/PID/stat; nil when the process is gone.
func procStat(pid int) *procFields {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command may contain spaces
	if i < 0 {
		return nil
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): ppid is field 4, utime..cstime 14..17.
	if len(f) < 15 {
		return nil
	}
	p := &procFields{}
	p.ppid, _ = strconv.Atoi(f[1])
	p.utime, _ = strconv.ParseUint(f[11], 10, 64)
	p.stime, _ = strconv.ParseUint(f[12], 10, 64)
	cu, _ := strconv.ParseInt(f[13], 10, 64)
	cs, _ := strconv.ParseInt(f[14], 10, 64)
	p.cutime, p.cstime = uint64(max(cu, 0)), uint64(max(cs, 0))
	return p
}

// waitQuiet waits until the machine is nearly idle (at most threshold of
// all CPUs busy over half a second) or maxWait has passed, and returns how
// long it waited. threshold <= 0 disables waiting.
func waitQuiet(ctx context.Context, threshold float64, maxWait time.Duration) time.Duration {
	if threshold <= 0 {
		return 0
	}
	start := time.Now()
	for {
		s := readCPU()
		select {
		case <-ctx.Done():
			return time.Since(start)
		case <-time.After(500 * time.Millisecond):
		}
		if busySince(s) <= threshold || time.Since(start) >= maxWait {
			return time.Since(start)
		}
	}
}
