package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Results is everything one run of the harness measured; it is written to
// -out as JSON.
type Results struct {
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Options    *options  `json:"options"`
	Machine    Machine   `json:"machine"`
	Databases  []DBInfo  `json:"databases"`
	// Runs are the individual runs of the comparison; warm-up runs have
	// Rep 0 and are not used in the medians.
	Runs           []Run         `json:"runs"`
	Cells          []Cell        `json:"cells"`
	SeqRead        []SeqRead     `json:"seqread"`
	Components     []Component   `json:"breakdown"`
	MaxRate        []MaxRateRun  `json:"max_rate_runs"`
	MaxRateSummary []MaxRateCell `json:"max_rate_summary"`
	Notes          []string      `json:"notes,omitempty"`
}

// Machine describes where the figures were measured.
type Machine struct {
	CPUs            int               `json:"cpus"`
	CPUModel        string            `json:"cpu_model"`
	MemTotalMB      int64             `json:"mem_total_mb"`
	Kernel          string            `json:"kernel"`
	GoVersion       string            `json:"go_version"`
	PostgresVersion string            `json:"postgres_version"`
	DbscrubRevision string            `json:"dbscrub_revision,omitempty"`
	ClusterDir      string            `json:"cluster_dir"`
	Settings        map[string]string `json:"settings"`
}

// DBInfo describes one benchmark database.
type DBInfo struct {
	Name string `json:"name"`
	// PhysBytes is the size of the main fork of every relation both tools
	// verify: tables, TOAST tables, materialized views and btree indexes
	// (catalogs included).
	PhysBytes   int64   `json:"phys_bytes"`
	HeapBytes   int64   `json:"heap_bytes"`
	IndexBytes  int64   `json:"index_bytes"`
	Heaps       int     `json:"heap_relations"`
	Indexes     int     `json:"btree_indexes"`
	Largest     string  `json:"largest_relation"`
	LargestSize int64   `json:"largest_relation_bytes"`
	BuildSecs   float64 `json:"build_seconds,omitempty"`
	Reused      bool    `json:"reused"`
	// AmcheckRelations and AmcheckPages are what pg_amcheck --progress
	// counted, to check both tools cover the same relations.
	AmcheckRelations string `json:"amcheck_relations,omitempty"`
	AmcheckPages     string `json:"amcheck_pages,omitempty"`
	// DbscrubObjects and DbscrubTasks are what a dbscrub report counted
	// (default options).
	DbscrubObjects int64 `json:"dbscrub_objects,omitempty"`
	DbscrubTasks   int   `json:"dbscrub_tasks,omitempty"`
}

// Run is one timed run of one tool.
type Run struct {
	Cache   string `json:"cache"`
	DB      string `json:"db"`
	Variant string `json:"variant"`
	Jobs    int    `json:"jobs"`
	Tool    string `json:"tool"`
	Rep     int    `json:"rep"` // 0: warm-up
	// Attempt counts the tries of this repetition; Noisy runs (too much
	// other load) were repeated and are left out of the medians.
	Attempt int     `json:"attempt"`
	Noisy   bool    `json:"noisy,omitempty"`
	Seconds float64 `json:"seconds"`
	Exit    int     `json:"exit_code"`
	// CPUBusy is the fraction of all CPUs busy during the run (from
	// /proc/stat): the tool's own load plus whatever else ran.
	CPUBusy float64 `json:"cpu_busy"`
	// Load1 is the 1-minute load average when the run started.
	Load1 float64 `json:"load1"`
	// OtherCores is the average number of cores that processes other than
	// the cluster and the tool kept busy during the run (see noise.go).
	OtherCores float64 `json:"other_cores"`
	// ToolCPU is the CPU time of the tool's own process, in seconds.
	ToolCPU float64 `json:"tool_cpu_seconds"`
	// QuietWait is how long the harness waited for a quiet machine first.
	QuietWait float64 `json:"quiet_wait_seconds"`
	// ResidentBefore and ResidentAfter are the fractions of the
	// database's relation files in the page cache (mincore) just before
	// and just after the run.
	ResidentBefore float64 `json:"resident_before"`
	ResidentAfter  float64 `json:"resident_after"`
	// dbscrub only: the report's status, bytes verified and tasks.
	Status        string       `json:"status,omitempty"`
	BytesVerified int64        `json:"bytes_verified,omitempty"`
	TasksPlanned  int          `json:"tasks_planned,omitempty"`
	Tasks         []TaskTiming `json:"tasks,omitempty"`
	Error         string       `json:"error,omitempty"`
}

// TaskTiming is one task of a dbscrub report, for analysis.
type TaskTiming struct {
	Key     string  `json:"key"`
	Cost    int64   `json:"cost_bytes"`
	StartS  float64 `json:"start_s"` // since the first task started
	Seconds float64 `json:"seconds"`
}

// Cell is the comparison of the two tools in one configuration.
type Cell struct {
	Cache         string    `json:"cache"`
	DB            string    `json:"db"`
	Variant       string    `json:"variant"`
	Jobs          int       `json:"jobs"`
	Amcheck       []float64 `json:"pg_amcheck_seconds"`
	Dbscrub       []float64 `json:"dbscrub_seconds"`
	Alt           []float64 `json:"dbscrub_alt_seconds,omitempty"`
	AltMedian     float64   `json:"dbscrub_alt_median,omitempty"`
	AltRatio      float64   `json:"dbscrub_alt_ratio,omitempty"`
	AmcheckMedian float64   `json:"pg_amcheck_median"`
	DbscrubMedian float64   `json:"dbscrub_median"`
	Ratio         float64   `json:"ratio"` // dbscrub / pg_amcheck medians
	Target        float64   `json:"target"`
	Met           *bool     `json:"met,omitempty"`
	PhysBytes     int64     `json:"phys_bytes"`
	AmcheckMBps   float64   `json:"pg_amcheck_mb_per_s"` // PhysBytes / median
	DbscrubMBps   float64   `json:"dbscrub_mb_per_s"`
	DbscrubBytes  int64     `json:"dbscrub_bytes_verified"`
	CPUBusyMedian float64   `json:"cpu_busy_median"`
	OtherMedian   float64   `json:"other_cores_median"`
	OtherMax      float64   `json:"other_cores_max"`
	AmcheckSpread float64   `json:"pg_amcheck_spread"` // (max-min)/median
	DbscrubSpread float64   `json:"dbscrub_spread"`
	FailedRuns    int       `json:"failed_runs"`
	// PairedRatios are dbscrub/pg_amcheck of each repetition (the two runs
	// of a repetition ran back to back, so slow drifts cancel out).
	PairedRatios []float64 `json:"paired_ratios"`
	// Evicted counts the runs after which less than 99% of the files
	// were in the page cache (someone else evicted it during the run);
	// only meaningful for warm runs.
	Evicted      int     `json:"evicted_runs"`
	PairedMedian float64 `json:"paired_ratio_median"`
	PairedP25    float64 `json:"paired_ratio_p25"`
	PairedP75    float64 `json:"paired_ratio_p75"`
}

// SeqRead is one plain sequential read of a database's relation files.
type SeqRead struct {
	DB      string    `json:"db"`
	Cache   string    `json:"cache"`
	Readers int       `json:"readers"`
	Bytes   int64     `json:"bytes"`
	Files   int       `json:"files"`
	Seconds []float64 `json:"seconds"`
	Median  float64   `json:"median_seconds"`
	MBps    float64   `json:"mb_per_s"`
}

// MaxRateRun is one pgbench run, alone or next to a dbscrub check.
type MaxRateRun struct {
	Setting string  `json:"setting"` // "no check", "unthrottled", "25 MB/s"
	MaxRate float64 `json:"max_rate_mbps"`
	Rep     int     `json:"rep"`
	Attempt int     `json:"attempt"`
	Noisy   bool    `json:"noisy,omitempty"`
	TPS     float64 `json:"tps"`
	// PerSecond is pgbench -P 1.
	PerSecond []float64 `json:"tps_per_second"`
	// Checks are the dbscrub runs during the pgbench run (restarted
	// until pgbench ended, the last one interrupted).
	Checks        []LoopCheck `json:"checks,omitempty"`
	BytesVerified int64       `json:"bytes_verified"`
	CheckSeconds  float64     `json:"check_seconds"`
	// OtherCores: as in Run, excluding the cluster, pgbench and dbscrub.
	OtherCores float64 `json:"other_cores"`
	// ResidentBefore/After: as in Run, for the pgbench database.
	ResidentBefore float64 `json:"resident_before"`
	ResidentAfter  float64 `json:"resident_after"`
	Error          string  `json:"error,omitempty"`
}

// LoopCheck is one dbscrub run of the max-rate experiment.
type LoopCheck struct {
	Seconds       float64 `json:"seconds"`
	Exit          int     `json:"exit_code"`
	Status        string  `json:"status"`
	BytesVerified int64   `json:"bytes_verified"`
	Interrupted   bool    `json:"interrupted"`
	CPU           float64 `json:"cpu_seconds"`
}

// MaxRateCell summarizes one max-rate setting.
type MaxRateCell struct {
	Setting      string  `json:"setting"`
	MaxRate      float64 `json:"max_rate_mbps"`
	TPSMedian    float64 `json:"tps_median"`
	TPSRelative  float64 `json:"tps_relative"` // to "no check"
	MinSecondTPS float64 `json:"min_1s_tps_median"`
	P10SecondTPS float64 `json:"p10_1s_tps_median"`
	VerifiedMBps float64 `json:"verified_mb_per_s_median"`
	OtherMedian  float64 `json:"other_cores_median"`
	// QuietTPSMedian is the median TPS of the runs during which other
	// processes used at most quietCores cores (QuietReps of them).
	QuietTPSMedian float64 `json:"quiet_tps_median"`
	QuietReps      int     `json:"quiet_reps"`
	Reps           int     `json:"reps"`
}

func machineInfo() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				m.MemTotalMB = kb / 1024
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// moduleRoot returns the directory of the main module's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the dbscrub module (run from the repository)")
	}
	return filepath.Dir(gomod), nil
}

// buildDbscrub builds the CLI once into dir and returns its path and the
// repository's HEAD commit (the working tree may hold changes on top).
func buildDbscrub(ctx context.Context, dir string) (bin, rev string, err error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", "", err
	}
	bin = filepath.Join(dir, "dbscrub")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/dbscrub")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("go build ./cmd/dbscrub: %w\n%s", err, out)
	}
	// Read-only: which commit the working tree is based on.
	rc := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD")
	rc.Dir = root
	if out, err := rc.Output(); err == nil {
		rev = strings.TrimSpace(string(out)) + " (+ working tree)"
	}
	logf("built %s", bin)
	return bin, rev, nil
}

// cpuSample is a reading of the aggregate line of /proc/stat.
type cpuSample struct{ busy, total uint64 }

func readCPU() cpuSample {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuSample{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return cpuSample{}
	}
	var s cpuSample
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i >= 8 { // guest time is already counted in user
			break
		}
		s.total += n
		if i != 3 && i != 4 { // idle, iowait
			s.busy += n
		}
	}
	return s
}

// busySince returns the fraction of CPU time busy since s.
func busySince(s cpuSample) float64 {
	e := readCPU()
	if e.total <= s.total {
		return 0
	}
	return float64(e.busy-s.busy) / float64(e.total-s.total)
}

func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
