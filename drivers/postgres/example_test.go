package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/drivers/postgres"
)

// Verify a database before a risky maintenance step, and stop if it is not
// sound. The role needs EXECUTE on the amcheck functions (see Target).
func Example() {
	ctx := context.Background()
	target, err := postgres.Open("postgres://dbscrub@db.example.com/app?sslmode=verify-full",
		postgres.WithLockTimeout(2*time.Second), // never queue behind DDL for long
		postgres.WithExcludeSchemas("archive"),  // not worth the I/O tonight
		postgres.WithChunkSize(128<<20),         // 128 MiB per heap task
		postgres.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil))),
	)
	if err != nil {
		log.Fatal(err) // a malformed DSN; the message never shows the password
	}
	defer target.Close()

	report, err := checks.Gate(ctx, target, checks.WithJobs(4), checks.WithBudget(2*time.Hour))
	switch {
	case errors.Is(err, checks.ErrCorrupt):
		for _, f := range report.Findings() {
			fmt.Printf("%s %s %s: %s\n  fix: %s\n", f.Severity, f.Object, f.Location, f.Message, f.Remedy)
		}
		os.Exit(2)
	case err != nil:
		log.Fatal(err) // could not verify everything: unreachable, privileges, budget
	}
	fmt.Println("sound:", report.Coverage.ObjectsVerified, "objects,", report.Coverage.BytesVerified, "bytes verified")
}

// Run selected checks on a pool the application already has. The pool is
// borrowed: dbscrub sets its timeouts with SET LOCAL inside its own
// transactions and leaves no session state behind.
func ExampleNew() {
	ctx := context.Background()
	var pool = mustOpenPool() // *sql.DB from sql.Open("postgres", ...) or pgx's stdlib
	target, err := postgres.New(pool, postgres.WithHeapAllIndexed())
	if err != nil {
		log.Fatal(err)
	}
	cks, err := target.Checks("btree", "crosscheck")
	if err != nil {
		log.Fatal(err)
	}
	runner, err := checks.NewRunner(checks.WithJobs(2))
	if err != nil {
		log.Fatal(err)
	}
	report := runner.Run(ctx, target, cks...)
	fmt.Println(report.Status, report.Reason)
}

// List the checks the driver offers, as `dbscrub checks` does.
func ExampleCatalog() {
	for _, c := range postgres.Catalog() {
		fmt.Println(c.Name, c.Default)
	}
	// Output:
	// heap true
	// btree true
	// crosscheck false
	// checksums true
	// settings true
}

// Persist the checksum failure counter between runs, so that only new
// failures alarm.
func ExampleWithChecksumFailuresBaseline() {
	ctx := context.Background()
	var last int64 = loadCounter() // from the previous run; 0 the first time
	target, err := postgres.Open(os.Getenv("DATABASE_URL"), postgres.WithChecksumFailuresBaseline(last))
	if err != nil {
		log.Fatal(err)
	}
	defer target.Close()
	cks, _ := target.Checks("checksums")
	runner, _ := checks.NewRunner()
	report := runner.Run(ctx, target, cks...)
	if now, err := target.ChecksumFailures(ctx); err == nil {
		saveCounter(now.Count)
	}
	fmt.Println(report.Status)
}
