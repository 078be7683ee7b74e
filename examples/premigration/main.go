// Command premigration is a gate before database migrations on
// PostgreSQL: it verifies the database with dbscrub and runs the
// migrations only when every table and index was verified and nothing is
// corrupt.
//
//	go run ./examples/premigration --dsn postgres://app@db.example.com/app
//
// A migration that rewrites a table reads every row of it; on a corrupt
// page it fails halfway, or worse, copies the damage into the new table,
// and the backups taken after it no longer hold the good rows. So check
// first:
//
//   - heap: verify_heapam on every table (tuple headers, line pointers,
//     TOAST);
//   - btree: bt_index_check with heapallindexed on every index (every row
//     has its index entry);
//   - crosscheck: each table's row count through a sequential scan and
//     through each index, which catches zeroed or truncated heap pages
//     amcheck alone can miss.
//
// checks.Gate returns nil only when every planned task completed and
// nothing is corrupt. Otherwise the program refuses, says why, and exits 2
// (corruption: restore the damaged objects first) or 1 (could not verify:
// unreachable, missing amcheck or privilege, --timeout ended first).
// The migrations here are a placeholder that prints what it would run.
//
// The role needs EXECUTE on the amcheck functions and pg_read_all_data
// for the crosscheck (see the README); --install-amcheck creates the
// extension when it is missing (the only write dbscrub ever makes).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/drivers/postgres"
)

// Exit codes, as dbscrub check's.
const (
	exitOK          = 0
	exitNotVerified = 1
	exitCorrupt     = 2
)

func main() {
	g := gate{out: os.Stdout, migrate: runMigrations}
	flag.StringVar(&g.dsn, "dsn", os.Getenv("DBSCRUB_DSN"), "the PostgreSQL database to migrate: postgres://user@host/db (default $DBSCRUB_DSN)")
	flag.IntVar(&g.jobs, "jobs", 4, "parallel connections for the checks")
	flag.DurationVar(&g.timeout, "timeout", time.Hour, "time budget of the checks; what is not verified by then refuses the migration")
	flag.BoolVar(&g.installAmcheck, "install-amcheck", false, "CREATE EXTENSION amcheck when it is missing")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := g.run(ctx)
	stop()
	os.Exit(code)
}

// gate is the program, configurable in tests.
type gate struct {
	dsn            string
	jobs           int
	timeout        time.Duration
	installAmcheck bool
	out            io.Writer
	// migrate runs the migrations; called only when the gate passed.
	migrate func(ctx context.Context, out io.Writer) error
}

// run checks the database, then migrates it, and returns the exit code.
func (g gate) run(ctx context.Context) int {
	w := g.out
	if g.dsn == "" {
		fmt.Fprintln(w, "premigration: no database given: use --dsn or set DBSCRUB_DSN")
		return exitNotVerified
	}
	opts := []postgres.Option{postgres.WithHeapAllIndexed()}
	if g.installAmcheck {
		opts = append(opts, postgres.WithInstallAmcheck())
	}
	t, err := postgres.Open(g.dsn, opts...)
	if err != nil {
		fmt.Fprintln(w, "premigration:", err) // names the DSN without its password
		return exitNotVerified
	}
	defer t.Close()
	cks, err := t.Checks(postgres.CheckHeap, postgres.CheckBtree, postgres.CheckCrosscheck)
	if err != nil {
		fmt.Fprintln(w, "premigration:", err)
		return exitNotVerified
	}

	fmt.Fprintf(w, "Verifying %s before migrating (heap, btree with heapallindexed, crosscheck)...\n", t.Info().Name)
	rep, err := checks.Gate(ctx, t, checks.WithChecks(cks...), checks.WithJobs(max(g.jobs, 1)), checks.WithBudget(g.timeout))
	if rep == nil { // invalid options
		fmt.Fprintln(w, "premigration:", err)
		return exitNotVerified
	}
	for _, c := range rep.Checks {
		detail := c.Reason
		if c.Status == checks.StatusHealthy {
			detail = fmt.Sprintf("%d objects verified", c.Coverage.ObjectsVerified)
		}
		fmt.Fprintf(w, "  %-11s %-8s %s\n", c.Check, strings.ToUpper(string(c.Status)), detail)
	}

	switch {
	case errors.Is(err, checks.ErrCorrupt):
		fmt.Fprintf(w, "\nREFUSING TO MIGRATE: corruption found (%s).\n", rep.Reason)
		for i, f := range rep.Findings() {
			if i == 10 {
				fmt.Fprintf(w, "  ... and %d more (dbscrub check --format json lists them all)\n", len(rep.Findings())-i)
				break
			}
			where := f.Object
			if loc := f.Location.String(); loc != "" {
				where += " (" + loc + ")"
			}
			fmt.Fprintf(w, "  %s: %s\n", where, f.Message)
		}
		fmt.Fprintln(w, "A migration would read or copy the damaged rows. Restore the damaged objects from a backup taken before the damage, find the cause (disk, memory, power loss), and run this gate again.")
		return exitCorrupt
	case errors.Is(err, checks.ErrNotVerified):
		fmt.Fprintln(w, "\nREFUSING TO MIGRATE: the database could not be verified (the reasons are above).")
		for i, tr := range rep.NotCovered() {
			if i == 10 {
				fmt.Fprintln(w, "  ...")
				break
			}
			fmt.Fprintf(w, "  %s: %s (%s)\n", tr.Object, tr.State, tr.Reason)
		}
		fmt.Fprintln(w, "Fix what stopped the checks (see the reasons above), or give them more time with --timeout, and run this gate again.")
		return exitNotVerified
	case err != nil:
		fmt.Fprintln(w, "\nREFUSING TO MIGRATE:", err)
		return exitNotVerified
	}

	fmt.Fprintf(w, "\nVerified: %d objects, %d tasks in %.1fs, no corruption. Migrating.\n",
		rep.Coverage.ObjectsVerified, rep.Coverage.TasksCompleted, rep.DurationSeconds)
	if err := g.migrate(ctx, w); err != nil {
		fmt.Fprintln(w, "migration failed:", err)
		return exitNotVerified
	}
	return exitOK
}

// runMigrations stands for your migration tool (goose, golang-migrate,
// atlas, ...): it prints what it would do.
func runMigrations(_ context.Context, out io.Writer) error {
	for _, m := range []string{"0007_orders_add_status.sql", "0008_backfill_order_status.sql"} {
		fmt.Fprintf(out, "  would apply migration %s\n", m)
	}
	return nil
}
