// Command bench times a full dbscrub heap+btree check against pg_amcheck
// on the same throwaway PostgreSQL cluster, measures a plain sequential read
// of the same relation files, and measures what dbscrub --max-rate does to a
// concurrent pgbench load. See BENCHMARKS.md at the repository root for the
// method, the commands and the results.
//
// It is a program, not a test: `go test ./...` never builds 3 GB of data.
//
//	go run ./internal/bench -dir /work/bench-cluster -scale 100 -reps 5 -out /tmp/bench.json
//
// The cluster is created with internal/pgtest (initdb, a random port on
// 127.0.0.1, the server run as the postgres OS user when we are root). By
// default it lives in a temporary directory and is removed at the end; with
// -dir its data directory is kept in DIR/data and reused by later runs, so
// the databases need not be rebuilt.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Database names in the cluster.
const (
	dbPgbench = "pgbench"
	dbSkewed  = "skewed"
)

// Tool names.
const (
	toolAmcheck = "pg_amcheck"
	toolDbscrub = "dbscrub"
	// toolAlt is dbscrub with -alt-args added: a what-if variant timed in
	// the same alternation as the other two.
	toolAlt = "dbscrub-alt"
)

// Variants of the check options.
const (
	variantDefault        = "default"
	variantHeapAllIndexed = "heapallindexed"
)

// Cache states.
const (
	cacheWarm = "warm"
	cacheCold = "cold"
)

type options struct {
	Scale         int           `json:"scale"`
	SkewMB        int           `json:"skew_mb"`
	SmallTables   int           `json:"small_tables"`
	Reps          int           `json:"reps"`
	Jobs          []int         `json:"jobs"`
	Variants      []string      `json:"variants"`
	DBs           []string      `json:"dbs"`
	Caches        []string      `json:"caches"`
	Tools         []string      `json:"tools"`
	Dir           string        `json:"dir,omitempty"`
	DbscrubBin    string        `json:"dbscrub_bin,omitempty"`
	DbscrubArgs   []string      `json:"dbscrub_extra_args,omitempty"`
	AltArgs       []string      `json:"dbscrub_alt_args,omitempty"`
	Out           string        `json:"out"`
	MD            string        `json:"md,omitempty"`
	SeqRead       bool          `json:"seqread"`
	SeqReadReps   int           `json:"seqread_reps"`
	Compare       bool          `json:"compare"`
	Breakdown     bool          `json:"breakdown"`
	MaxRates      []float64     `json:"max_rates_mbps"`
	MaxRateReps   int           `json:"max_rate_reps"`
	MaxRateJobs   int           `json:"max_rate_jobs"`
	PgbenchT      int           `json:"pgbench_seconds"`
	PgbenchC      int           `json:"pgbench_clients"`
	PgbenchMode   string        `json:"pgbench_mode"`
	SharedBuffers string        `json:"shared_buffers"`
	Rebuild       bool          `json:"rebuild"`
	Serve         bool          `json:"-"`
	Report        string        `json:"-"`
	Quiet         float64       `json:"quiet_threshold"`
	MaxOther      float64       `json:"max_other_cores"`
	Attempts      int           `json:"attempts"`
	QuietWait     time.Duration `json:"quiet_max_wait_ns"`
	Verbose       bool          `json:"-"`
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&o.Scale, "scale", 100, "pgbench scale factor of the pgbench database (pgbench -i -s SCALE)")
	fs.IntVar(&o.SkewMB, "skew-mb", 1536, "size in MiB of the one big table of the skewed database")
	fs.IntVar(&o.SmallTables, "small-tables", 300, "number of small tables (each with a primary key index) in the skewed database")
	fs.IntVar(&o.Reps, "reps", 5, "timed repetitions of each tool per configuration")
	jobs := fs.String("jobs", "1,2", "comma-separated --jobs values")
	variants := fs.String("variants", "default,heapallindexed", "comma-separated option variants: default, heapallindexed")
	dbs := fs.String("dbs", "pgbench,skewed", "comma-separated databases: pgbench, skewed")
	caches := fs.String("cache", "warm", "comma-separated cache states: warm (one untimed run of each tool first), cold (server restart and drop_caches before every run; needs root)")
	tools := fs.String("tools", "pg_amcheck,dbscrub", "comma-separated tools to time: pg_amcheck, dbscrub")
	fs.StringVar(&o.Dir, "dir", "", "keep the cluster's data directory in DIR/data and reuse it on later runs (default: a temporary cluster, removed at the end)")
	fs.StringVar(&o.DbscrubBin, "dbscrub", "", "dbscrub binary to time (default: go build ./cmd/dbscrub into a temporary directory)")
	extra := fs.String("dbscrub-args", "", "extra arguments for every dbscrub check run, space-separated (e.g. \"--chunk-size 67108864\")")
	alt := fs.String("alt-args", "", "also time dbscrub with these extra arguments (tool \"dbscrub-alt\"), in the same alternation, for what-if comparisons")
	fs.StringVar(&o.Out, "out", "bench.json", "write the raw results here (JSON)")
	fs.StringVar(&o.MD, "md", "", "also write the summary tables (markdown) here")
	fs.BoolVar(&o.SeqRead, "seqread", true, "measure a plain sequential read of the relation files (cold needs root)")
	fs.IntVar(&o.SeqReadReps, "seqread-reps", 3, "repetitions of each sequential read")
	fs.BoolVar(&o.Compare, "compare", true, "run the dbscrub vs pg_amcheck comparison")
	fs.BoolVar(&o.Breakdown, "breakdown", true, "time the pieces of a check one by one (the largest table's heap, its index, the rest) to bound what any scheduler can reach")
	maxRates := fs.String("max-rates", "50,200,800", "--max-rate values (MB/s) for the pgbench experiment; empty: skip the experiment (a run without a check and an unthrottled check are always included)")
	fs.IntVar(&o.MaxRateReps, "max-rate-reps", 3, "repetitions of each max-rate setting")
	fs.IntVar(&o.MaxRateJobs, "max-rate-jobs", 2, "--jobs of the dbscrub check running next to pgbench")
	fs.IntVar(&o.PgbenchT, "pgbench-seconds", 30, "duration of each pgbench run (pgbench -T)")
	fs.IntVar(&o.PgbenchC, "pgbench-clients", 2, "pgbench clients and threads (pgbench -c N -j N)")
	fs.StringVar(&o.PgbenchMode, "pgbench-mode", "select", "pgbench load: select (built-in select-only, -S) or tpcb (built-in TPC-B-like)")
	fs.StringVar(&o.SharedBuffers, "shared-buffers", "256MB", "shared_buffers of the cluster")
	fs.BoolVar(&o.Rebuild, "rebuild", false, "drop and rebuild the databases even when a kept cluster has them")
	fs.BoolVar(&o.Verbose, "v", false, "log every command")
	fs.Float64Var(&o.Quiet, "quiet", 0.15, "before each measured run, wait until at most this fraction of all CPUs was busy over 0.5 s (other people's load); 0: do not wait")
	fs.DurationVar(&o.QuietWait, "quiet-wait", 30*time.Second, "longest wait for a quiet machine before a run")
	fs.Float64Var(&o.MaxOther, "max-other", 0.25, "repeat a measured run during which other processes kept more than this many cores busy (0: never)")
	fs.IntVar(&o.Attempts, "attempts", 3, "most tries of one measured run under -max-other (the last one counts whatever the noise)")
	fs.StringVar(&o.Report, "report", "", "measure nothing: read the results JSON FILE of an earlier run, summarize it again and print the tables")
	fs.BoolVar(&o.Serve, "serve", false, "build the databases, print the connection URLs and keep the server running until interrupted (for manual investigation)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if o.Jobs, err = parseInts(*jobs); err != nil {
		return nil, fmt.Errorf("-jobs: %w", err)
	}
	if o.MaxRates, err = parseFloats(*maxRates); err != nil {
		return nil, fmt.Errorf("-max-rates: %w", err)
	}
	o.Variants = splitList(*variants)
	o.DBs = splitList(*dbs)
	o.Caches = splitList(*caches)
	o.Tools = splitList(*tools)
	o.DbscrubArgs = strings.Fields(*extra)
	o.AltArgs = strings.Fields(*alt)
	for _, c := range []struct {
		name    string
		got     []string
		allowed []string
	}{
		{"-variants", o.Variants, []string{variantDefault, variantHeapAllIndexed}},
		{"-dbs", o.DBs, []string{dbPgbench, dbSkewed}},
		{"-cache", o.Caches, []string{cacheWarm, cacheCold}},
		{"-tools", o.Tools, []string{toolAmcheck, toolDbscrub}},
	} {
		for _, g := range c.got {
			if !slices.Contains(c.allowed, g) {
				return nil, fmt.Errorf("%s: unknown value %q (want %s)", c.name, g, strings.Join(c.allowed, ", "))
			}
		}
	}
	switch {
	case o.Scale < 1:
		return nil, errors.New("-scale must be at least 1")
	case o.SkewMB < 1:
		return nil, errors.New("-skew-mb must be at least 1")
	case o.SmallTables < 0:
		return nil, errors.New("-small-tables must not be negative")
	case o.Reps < 1:
		return nil, errors.New("-reps must be at least 1")
	case o.PgbenchMode != "select" && o.PgbenchMode != "tpcb":
		return nil, errors.New("-pgbench-mode must be select or tpcb")
	case o.PgbenchT < 1 || o.PgbenchC < 1 || o.MaxRateJobs < 1 || o.MaxRateReps < 1 || o.SeqReadReps < 1 || o.Attempts < 1:
		return nil, errors.New("-pgbench-seconds, -pgbench-clients, -max-rate-jobs, -max-rate-reps, -seqread-reps and -attempts must be positive")
	}
	for _, j := range o.Jobs {
		if j < 1 {
			return nil, fmt.Errorf("-jobs: %d is not a positive number", j)
		}
	}
	for _, r := range o.MaxRates {
		if r <= 0 {
			return nil, fmt.Errorf("-max-rates: %g is not positive (the unthrottled check is always included)", r)
		}
	}
	return o, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, p := range splitList(s) {
		v, err := strconv.Atoi(p)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, p := range splitList(s) {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if o.Report != "" {
		if err := reReport(o.Report); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// logf prints a progress line with a timestamp to stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, o *options) (err error) {
	res := &Results{StartedAt: time.Now().UTC(), Options: o}
	res.Machine = machineInfo()

	var tmp string
	if len(o.AltArgs) > 0 && slices.Contains(o.Tools, toolDbscrub) {
		o.Tools = append(o.Tools, toolAlt)
	}
	if slices.Contains(o.Tools, toolDbscrub) && o.DbscrubBin == "" && (o.Compare || o.Breakdown || len(o.MaxRates) > 0) {
		tmp, err = os.MkdirTemp("", "dbscrub-bench-bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		bin, rev, berr := buildDbscrub(ctx, tmp)
		if berr != nil {
			logf("dbscrub does not build; timing pg_amcheck only: %v", berr)
			res.Notes = append(res.Notes, "dbscrub did not build: "+firstLine(berr.Error()))
			o.Tools = slices.DeleteFunc(o.Tools, func(s string) bool { return s == toolDbscrub || s == toolAlt })
		} else {
			o.DbscrubBin = bin
			res.Machine.DbscrubRevision = rev
		}
	}

	c, err := openCluster(o)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := c.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	res.Machine.PostgresVersion, _ = c.QueryString(ctx, "postgres", "SELECT version()")
	res.Machine.ClusterDir = c.Dir
	res.Machine.Settings = c.settings
	logf("cluster on port %d in %s", c.Port, c.DataDir)

	if err := buildDatabases(ctx, c, o, res); err != nil {
		return err
	}
	save := func() error {
		res.FinishedAt = time.Now().UTC()
		return writeJSON(o.Out, res)
	}
	if err := save(); err != nil {
		return err
	}
	if o.Serve {
		for _, db := range o.DBs {
			logf("serving %s", c.DSN(db))
		}
		logf("bin dir %s; interrupt to stop", c.BinDir)
		<-ctx.Done()
		return nil
	}

	if o.Compare {
		if err := compare(ctx, c, o, res, save); err != nil {
			return err
		}
	}
	if o.Breakdown {
		if err := breakdown(ctx, c, o, res); err != nil {
			return err
		}
		if err := save(); err != nil {
			return err
		}
	}
	if o.SeqRead {
		if err := seqReads(ctx, c, o, res); err != nil {
			return err
		}
		if err := save(); err != nil {
			return err
		}
	}
	if len(o.MaxRates) > 0 && slices.Contains(o.DBs, dbPgbench) {
		if !slices.Contains(o.Tools, toolDbscrub) {
			logf("max-rate experiment skipped: no dbscrub binary")
			res.Notes = append(res.Notes, "max-rate experiment skipped: no dbscrub binary")
		} else if err := maxRateExperiment(ctx, c, o, res, save); err != nil {
			return err
		}
	}
	summarize(res)
	if err := save(); err != nil {
		return err
	}
	md := markdown(res)
	fmt.Print(md)
	if o.MD != "" {
		if err := os.WriteFile(o.MD, []byte(md), 0o644); err != nil {
			return err
		}
	}
	logf("raw results in %s", o.Out)
	return nil
}

// reReport prints the tables of an earlier run's results file.
func reReport(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var res Results
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if res.Options == nil {
		return fmt.Errorf("%s: not a results file of internal/bench", path)
	}
	summarize(&res)
	fmt.Print(markdown(&res))
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
