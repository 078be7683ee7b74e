package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// report is the part of dbscrub's JSON report the harness reads.
type report struct {
	Status          string   `json:"status"`
	Reason          string   `json:"reason"`
	DurationSeconds float64  `json:"duration_seconds"`
	Coverage        coverage `json:"coverage"`
	Checks          []struct {
		Check  string `json:"check"`
		Status string `json:"status"`
		Tasks  []struct {
			Key             string    `json:"key"`
			State           string    `json:"state"`
			CostBytes       int64     `json:"cost_bytes"`
			BytesVerified   int64     `json:"bytes_verified"`
			StartedAt       time.Time `json:"started_at"`
			DurationSeconds float64   `json:"duration_seconds"`
		} `json:"tasks"`
	} `json:"checks"`
}

type coverage struct {
	TasksPlanned    int   `json:"tasks_planned"`
	TasksCompleted  int   `json:"tasks_completed"`
	ObjectsVerified int64 `json:"objects_verified"`
	BytesPlanned    int64 `json:"bytes_planned"`
	BytesVerified   int64 `json:"bytes_verified"`
}

// taskTimings flattens a report's tasks, start times relative to the
// first task's start.
func (r *report) taskTimings() []TaskTiming {
	var out []TaskTiming
	var first time.Time
	for _, ck := range r.Checks {
		for _, t := range ck.Tasks {
			if !t.StartedAt.IsZero() && (first.IsZero() || t.StartedAt.Before(first)) {
				first = t.StartedAt
			}
		}
	}
	for _, ck := range r.Checks {
		for _, t := range ck.Tasks {
			tt := TaskTiming{Key: ck.Check + ":" + t.Key, Cost: t.CostBytes, Seconds: t.DurationSeconds}
			if !t.StartedAt.IsZero() {
				tt.StartS = t.StartedAt.Sub(first).Seconds()
			}
			out = append(out, tt)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StartS < out[j].StartS })
	return out
}

// toolResult is the outcome of one run of a tool.
type toolResult struct {
	seconds        float64
	cpu            time.Duration // user+system time of the tool's process
	exit           int
	stdout, stderr []byte
	rep            *report
	err            error
}

// timed runs cmd and measures its wall time, from fork to exit.
func timed(cmd *exec.Cmd, verbose bool) toolResult {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if verbose {
		logf("  $ %s", strings.Join(cmd.Args, " "))
	}
	start := time.Now()
	err := cmd.Run()
	r := toolResult{seconds: time.Since(start).Seconds(), stdout: stdout.Bytes(), stderr: stderr.Bytes()}
	if cmd.ProcessState != nil {
		r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.exit = ee.ExitCode()
	case err != nil:
		r.exit = -1
		r.err = err
	}
	return r
}

// amcheckArgs are pg_amcheck's arguments for one database: heap (with
// TOAST pointer checks, pg_amcheck's default) and btree (bt_index_check)
// on every relation, TOAST tables and their indexes included.
func amcheckArgs(c *cluster, db string, jobs int, heapAllIndexed bool) []string {
	args := append(c.connArgs(), "-d", db, "--jobs", strconv.Itoa(jobs))
	if heapAllIndexed {
		args = append(args, "--heapallindexed")
	}
	return args
}

// dbscrubArgs are dbscrub's arguments for the same work: the heap check
// (verify_heapam with check_toast on every table, TOAST table and
// materialized view) and the btree check (bt_index_check on every btree
// index).
func dbscrubArgs(c *cluster, o *options, db string, jobs int, heapAllIndexed bool) []string {
	args := []string{"check", "--dsn", c.DSN(db), "--checks", "heap,btree", "--jobs", strconv.Itoa(jobs), "--format", "json", "--no-progress"}
	if heapAllIndexed {
		args = append(args, "--heapallindexed")
	}
	return append(args, o.DbscrubArgs...)
}

func runAmcheck(ctx context.Context, c *cluster, o *options, db string, jobs int, heapAllIndexed bool) toolResult {
	cmd := c.client("pg_amcheck", amcheckArgs(c, db, jobs, heapAllIndexed)...)
	r := timed(cmd, o.Verbose)
	if r.err == nil && r.exit != 0 {
		r.err = fmt.Errorf("pg_amcheck exited with %d: %s", r.exit, firstLine(string(r.stderr)+" "+string(r.stdout)))
	}
	return r
}

func runDbscrub(ctx context.Context, c *cluster, o *options, db string, jobs int, heapAllIndexed bool, extra ...string) toolResult {
	cmd := exec.Command(o.DbscrubBin, append(dbscrubArgs(c, o, db, jobs, heapAllIndexed), extra...)...)
	cmd.Env = pgEnv()
	r := timed(cmd, o.Verbose)
	if len(r.stdout) > 0 {
		var rep report
		if err := json.Unmarshal(r.stdout, &rep); err == nil {
			r.rep = &rep
		}
	}
	switch {
	case r.err != nil:
	case r.exit != 0:
		r.err = fmt.Errorf("dbscrub exited with %d: %s", r.exit, firstLine(string(r.stderr)))
		if r.rep != nil {
			r.err = fmt.Errorf("dbscrub exited with %d: %s: %s", r.exit, r.rep.Status, r.rep.Reason)
		}
	case r.rep == nil:
		r.err = errors.New("dbscrub printed no JSON report")
	case r.rep.Status != "healthy":
		r.err = fmt.Errorf("dbscrub status %s: %s", r.rep.Status, r.rep.Reason)
	}
	return r
}

func runTool(ctx context.Context, c *cluster, o *options, tool, db string, jobs int, heapAllIndexed bool) toolResult {
	switch tool {
	case toolAmcheck:
		return runAmcheck(ctx, c, o, db, jobs, heapAllIndexed)
	case toolAlt:
		return runDbscrub(ctx, c, o, db, jobs, heapAllIndexed, o.AltArgs...)
	}
	return runDbscrub(ctx, c, o, db, jobs, heapAllIndexed)
}

// compare times both tools, alternating (ABBA) so that drift in the
// machine's load hits both alike.
func compare(ctx context.Context, c *cluster, o *options, res *Results, save func() error) error {
	for i := range res.Databases {
		probeCoverage(ctx, c, o, &res.Databases[i])
		d := res.Databases[i]
		logf("coverage %s: pg_amcheck %s relations, %s pages; dbscrub %d objects in %d tasks",
			d.Name, d.AmcheckRelations, d.AmcheckPages, d.DbscrubObjects, d.DbscrubTasks)
	}
	for _, cache := range o.Caches {
		if cache == cacheCold {
			if err := dropCaches(); err != nil {
				logf("cold cache runs skipped: %v", err)
				res.Notes = append(res.Notes, "cold cache runs skipped: "+err.Error())
				continue
			}
		}
		for _, db := range o.DBs {
			files, err := dbFiles(ctx, c, db)
			if err != nil {
				return err
			}
			for _, variant := range o.Variants {
				hai := variant == variantHeapAllIndexed
				for _, jobs := range o.Jobs {
					if err := ctx.Err(); err != nil {
						return err
					}
					one := func(tool string, rep int) error {
						for attempt := 1; ; attempt++ {
							if cache == cacheCold {
								if err := c.restartAndDropCaches(); err != nil {
									return err
								}
							}
							waited := waitQuiet(ctx, o.Quiet, o.QuietWait)
							if cache == cacheWarm {
								// Right before the run: idle page cache is
								// reclaimed within seconds on this VM.
								if err := prewarm(files); err != nil {
									return err
								}
							}
							before := resident(files)
							l := load1()
							cpu := readCPU()
							smp := c.sample()
							r := runTool(ctx, c, o, tool, db, jobs, hai)
							run := Run{Cache: cache, DB: db, Variant: variant, Jobs: jobs, Tool: tool, Rep: rep, Attempt: attempt,
								Seconds: r.seconds, Exit: r.exit, CPUBusy: busySince(cpu), Load1: l,
								OtherCores: c.otherCores(smp, r.cpu), ToolCPU: r.cpu.Seconds(), QuietWait: waited.Seconds(),
								ResidentBefore: before, ResidentAfter: resident(files)}
							if r.rep != nil {
								run.Status = r.rep.Status
								run.BytesVerified = r.rep.Coverage.BytesVerified
								run.TasksPlanned = r.rep.Coverage.TasksPlanned
								if rep == 1 {
									run.Tasks = r.rep.taskTimings()
								}
							}
							if r.err != nil {
								run.Error = r.err.Error()
								logf("  %s rep %d: %v", tool, rep, r.err)
							}
							// A run during which other processes took more
							// than -max-other cores is repeated (and left
							// out of the medians), up to -attempts times.
							run.Noisy = rep > 0 && o.MaxOther > 0 && run.OtherCores > o.MaxOther && attempt < o.Attempts
							res.Runs = append(res.Runs, run)
							what := "warm-up"
							if rep > 0 {
								what = fmt.Sprintf("rep %d", rep)
							}
							note := ""
							if run.Noisy {
								note = "  (noisy: repeated)"
							}
							logf("  %-10s %-7s %6.2f s  cpu %3.0f%%  others %.2f cores  waited %.1f s  cached %.0f%%→%.0f%%%s",
								tool, what, r.seconds, 100*run.CPUBusy, run.OtherCores, run.QuietWait, 100*before, 100*run.ResidentAfter, note)
							if err := ctx.Err(); err != nil || !run.Noisy {
								return err
							}
						}
					}
					logf("%s cache, %s, %s, --jobs %d", cache, db, variant, jobs)
					if cache == cacheWarm {
						for _, tool := range o.Tools {
							if err := one(tool, 0); err != nil {
								return err
							}
						}
					}
					for rep := 1; rep <= o.Reps; rep++ {
						order := runOrder(o.Tools, rep)
						for _, tool := range order {
							if err := one(tool, rep); err != nil {
								return err
							}
						}
					}
					summarize(res)
					if err := save(); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// runOrder is the order of the tools in repetition rep: ABBA for two tools;
// for more, a rotation, reversed every other repetition, so each tool runs
// in each position equally often.
func runOrder(tools []string, rep int) []string {
	n := len(tools)
	order := make([]string, 0, n)
	shift := 0
	if n > 2 {
		shift = ((rep - 1) / 2) % n
	}
	for i := range n {
		order = append(order, tools[(i+shift)%n])
	}
	if rep%2 == 0 {
		slices.Reverse(order)
	}
	return order
}
