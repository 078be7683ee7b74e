package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/redact"
)

// Exit codes.
const (
	exitOK      = 0
	exitError   = 1
	exitCorrupt = 2
	exitWarning = 3
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `dbscrub scrubs databases: it runs each engine's own integrity checks.

Usage:
  dbscrub check --dsn DSN [flags]   run checks; exit 0 sound, 1 could not check, 2 corrupt
  dbscrub check --explain --dsn DSN print the statements the checks would run, without connecting
  dbscrub checks                    list the checks each engine offers
  dbscrub fingerprint --dsn DSN     write the content fingerprint (row counts, row hashes) as JSON; -o FILE
  dbscrub compare A B               compare fingerprint files or DSNs; exit 0 identical, 2 different, 1 could not
  dbscrub run --config FILE         the daemon: check targets on their schedules, serve /metrics and /healthz, raise alarms
  dbscrub run --config FILE --once  run every target once and exit with the worst exit code
  dbscrub status --config FILE      each target's last run, last success per check, coverage and open alarms
  dbscrub version                   print the version

Run "dbscrub check -h", "dbscrub run -h" or "dbscrub status -h" for their flags.
`

// run is main without os.Exit, for tests.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError
	}
	switch args[0] {
	case "check":
		return cmdCheck(ctx, args[1:], stdout, stderr, isTerminal(stderr))
	case "checks":
		return cmdChecks(stdout)
	case "fingerprint":
		return cmdFingerprint(ctx, args[1:], stdout, stderr)
	case "compare":
		return cmdCompare(ctx, args[1:], stdout, stderr)
	case "run":
		return cmdRun(ctx, args[1:], stdout, stderr)
	case "status":
		return cmdStatus(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "dbscrub", version)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "dbscrub: unknown command %q\n\n%s", args[0], usage)
		return exitError
	}
}

func cmdChecks(stdout io.Writer) int {
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, e := range engines {
		fmt.Fprintf(w, "%s (%s)\n", e.title, strings.Join(e.schemes, ", "))
		for _, c := range e.catalog() {
			def := ""
			if c.Default {
				def = "default"
			}
			fmt.Fprintf(w, "  %s\t%s\t%s\n", c.Name, def, c.Description)
		}
		fmt.Fprintln(w)
	}
	w.Flush()
	return exitOK
}

// checkFlags are the flags of dbscrub check.
type checkFlags struct {
	dsn              string
	checks           string
	format           string
	jobs             int
	timeout          time.Duration
	taskTimeout      time.Duration
	maxRate          float64
	failOnWarning    bool
	noProgress       bool
	heapAllIndexed   bool
	parentCheck      bool
	installAmcheck   bool
	statementTimeout time.Duration
	lockTimeout      time.Duration
	chunkSize        int64
	includeSchemas   listFlag
	excludeSchemas   listFlag
	includeRelations listFlag
	excludeRelations listFlag
	quick            bool
	physicalOnly     bool
	dataPurity       bool
	extendedLogical  bool
	tabLock          bool
	maxDOP           int
	noIndex          bool
	explain          bool

	set map[string]bool // flags given on the command line
}

// listFlag is a repeatable, comma-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

func parseCheckFlags(args []string, stderr io.Writer) (*checkFlags, error) {
	f := &checkFlags{}
	fs := flag.NewFlagSet("dbscrub check", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are printed once, by the caller
	fs.StringVar(&f.dsn, "dsn", "", "database to check: postgres://..., sqlite://PATH or a file path (default $DBSCRUB_DSN)")
	fs.StringVar(&f.checks, "checks", "", "comma-separated checks to run (default: the engine's default checks; see dbscrub checks)")
	fs.StringVar(&f.format, "format", "text", "output format: text or json (the report schema)")
	fs.IntVar(&f.jobs, "jobs", 1, "number of parallel connections")
	fs.DurationVar(&f.timeout, "timeout", 0, "total time budget; tasks not started by then are not covered and the exit code is 1 (default: none)")
	fs.DurationVar(&f.taskTimeout, "task-timeout", 0, "time limit of one task (default: none)")
	fs.Float64Var(&f.maxRate, "max-rate", 0, "limit on the data verified per second across all jobs, in MB/s (default: none)")
	fs.BoolVar(&f.failOnWarning, "fail-on-warning", false, "exit 3 when there are warnings but no corruption")
	fs.BoolVar(&f.noProgress, "no-progress", false, "never show a progress bar")
	fs.BoolVar(&f.heapAllIndexed, "heapallindexed", false, "PostgreSQL btree: also verify that every heap tuple has an index entry (slower)")
	fs.BoolVar(&f.parentCheck, "parent-check", false, "PostgreSQL btree: use bt_index_parent_check (stronger, but BLOCKS WRITES to each table while it runs)")
	fs.BoolVar(&f.installAmcheck, "install-amcheck", false, "PostgreSQL: CREATE EXTENSION amcheck when it is missing (the only write dbscrub ever makes)")
	fs.DurationVar(&f.statementTimeout, "statement-timeout", 0, "PostgreSQL statement_timeout of each check statement (default 30m)")
	fs.DurationVar(&f.lockTimeout, "lock-timeout", 0, "lock wait limit (PostgreSQL lock_timeout, SQL Server LOCK_TIMEOUT; default 5s)")
	fs.Int64Var(&f.chunkSize, "chunk-size", 0, "PostgreSQL heap: split relations into block ranges of this many bytes (default 256 MiB)")
	fs.Var(&f.includeSchemas, "schema", "PostgreSQL: only check schemas matching these patterns (repeatable, comma-separated, * and ? wildcards)")
	fs.Var(&f.excludeSchemas, "exclude-schema", "PostgreSQL: skip schemas matching these patterns")
	fs.Var(&f.includeRelations, "relation", "PostgreSQL: only check relations matching these patterns (name or schema.name)")
	fs.Var(&f.excludeRelations, "exclude-relation", "PostgreSQL: skip relations matching these patterns")
	fs.BoolVar(&f.quick, "quick", false, "SQLite: use PRAGMA quick_check instead of integrity_check (faster, skips index contents)")
	fs.BoolVar(&f.physicalOnly, "physical-only", false, "SQL Server: DBCC ... WITH PHYSICAL_ONLY (page and allocation structure only; much faster)")
	fs.BoolVar(&f.dataPurity, "data-purity", false, "SQL Server: DBCC ... WITH DATA_PURITY (column values in range)")
	fs.BoolVar(&f.extendedLogical, "extended-logical-checks", false, "SQL Server: DBCC ... WITH EXTENDED_LOGICAL_CHECKS (indexed views, XML and spatial indexes)")
	fs.BoolVar(&f.tabLock, "tablock", false, "SQL Server: DBCC ... WITH TABLOCK (no snapshot; BLOCKS WRITERS while it runs)")
	fs.IntVar(&f.maxDOP, "maxdop", 0, "SQL Server: DBCC ... WITH MAXDOP = N")
	fs.BoolVar(&f.noIndex, "noindex", false, "SQL Server: DBCC ... NOINDEX (skip nonclustered indexes)")
	fs.BoolVar(&f.explain, "explain", false, "print the statements each selected check runs, without connecting or running anything")
	fs.Usage = func() {}
	printUsage := func() {
		fs.SetOutput(stderr)
		fmt.Fprintf(stderr, "Usage: dbscrub check --dsn DSN [flags]\n\nExit codes: 0 sound, 1 could not verify everything, 2 corruption found, 3 warnings (with --fail-on-warning).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage()
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags go before arguments; the DSN is given with --dsn)", redact.DSN(fs.Arg(0)))
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	if f.dsn == "" {
		f.dsn = os.Getenv("DBSCRUB_DSN")
	}
	switch {
	case f.dsn == "":
		return nil, errors.New("no database given: use --dsn or set DBSCRUB_DSN")
	case f.format != "text" && f.format != "json":
		return nil, fmt.Errorf("--format must be text or json, got %q", f.format)
	case f.jobs < 1:
		return nil, fmt.Errorf("--jobs must be at least 1, got %d", f.jobs)
	case f.set["timeout"] && f.timeout <= 0:
		return nil, fmt.Errorf("--timeout must be positive, got %s", f.timeout)
	case f.set["task-timeout"] && f.taskTimeout <= 0:
		return nil, fmt.Errorf("--task-timeout must be positive, got %s", f.taskTimeout)
	case f.set["max-rate"] && f.maxRate <= 0:
		return nil, fmt.Errorf("--max-rate must be positive, got %g", f.maxRate)
	case f.set["statement-timeout"] && f.statementTimeout <= 0:
		return nil, fmt.Errorf("--statement-timeout must be positive, got %s", f.statementTimeout)
	case f.set["lock-timeout"] && f.lockTimeout <= 0:
		return nil, fmt.Errorf("--lock-timeout must be positive, got %s", f.lockTimeout)
	case f.set["chunk-size"] && f.chunkSize <= 0:
		return nil, fmt.Errorf("--chunk-size must be positive, got %d", f.chunkSize)
	case f.set["maxdop"] && f.maxDOP < 0:
		return nil, fmt.Errorf("--maxdop must not be negative, got %d", f.maxDOP)
	}
	return f, nil
}

func (f *checkFlags) checkNames() []string {
	var names []string
	for _, n := range strings.Split(f.checks, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	return names
}

func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer, tty bool) int {
	f, err := parseCheckFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "dbscrub check:", redact.Scrub(err.Error(), redact.Password(os.Getenv("DBSCRUB_DSN")), dsnArg(args)))
		return exitError
	}
	password := redact.Password(f.dsn)
	fail := func(err error) int {
		fmt.Fprintln(stderr, "dbscrub:", redact.Scrub(err.Error(), password))
		return exitError
	}

	tgt, closer, err := openTarget(f)
	if err != nil {
		return fail(err)
	}
	defer closer.Close()
	cks, err := tgt.Checks(f.checkNames()...)
	if err != nil {
		return fail(err)
	}
	if f.explain {
		writeExplain(stdout, tgt.Info(), cks)
		return exitOK
	}

	opts := []checks.Option{checks.WithJobs(f.jobs), checks.WithChecks(cks...)}
	if f.timeout > 0 {
		opts = append(opts, checks.WithBudget(f.timeout))
	}
	if f.taskTimeout > 0 {
		opts = append(opts, checks.WithTaskTimeout(f.taskTimeout))
	}
	if f.maxRate > 0 {
		opts = append(opts, checks.WithMaxRate(int64(f.maxRate*1e6)))
	}
	var bar *progressBar
	if tty && !f.noProgress {
		bar = newProgressBar(stderr, time.Now)
		opts = append(opts, checks.WithProgress(bar.update))
	}
	rep, err := checks.Gate(ctx, tgt, opts...)
	if bar != nil {
		bar.finish()
	}
	if rep == nil {
		return fail(err)
	}

	switch f.format {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fail(err)
		}
	default:
		writeText(stdout, rep)
	}
	return exitCode(rep, err, f.failOnWarning)
}

// dsnArg finds the password of a --dsn argument, to scrub it from flag
// errors when parsing failed.
func dsnArg(args []string) string {
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "--dsn=") || strings.HasPrefix(a, "-dsn="):
			return redact.Password(a[strings.Index(a, "=")+1:])
		case (a == "--dsn" || a == "-dsn") && i+1 < len(args):
			return redact.Password(args[i+1])
		}
	}
	return ""
}

// exitCode maps a gate result to the documented exit codes.
func exitCode(rep *checks.Report, gateErr error, failOnWarning bool) int {
	switch {
	case errors.Is(gateErr, checks.ErrCorrupt):
		return exitCorrupt
	case gateErr != nil:
		return exitError
	case rep.Status == checks.StatusWarning && failOnWarning:
		return exitWarning
	}
	return exitOK
}
