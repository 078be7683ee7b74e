package sqlserver_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/drivers/sqlserver"
)

// Check a database before a risky change: run the default checks (DBCC
// CHECKDB, suspect pages, last known good, page verify, backups) and stop
// on corruption or when something could not be verified.
func Example() {
	tg, err := sqlserver.Open("sqlserver://dbscrub:secret@sql1.example.com:1433?database=Sales",
		sqlserver.WithPhysicalOnly(), sqlserver.WithMaxDOP(2))
	if err != nil {
		log.Fatal(err)
	}
	defer tg.Close()

	rep, err := checks.Gate(context.Background(), tg, checks.WithTaskTimeout(4*time.Hour))
	switch {
	case errors.Is(err, checks.ErrCorrupt):
		for _, f := range rep.Findings() {
			fmt.Printf("%s %s %s [%s]: %s\n  remedy: %s\n", f.Severity, f.Code, f.Object, f.Location, f.Message, f.Remedy)
		}
		log.Fatal("corruption found")
	case err != nil:
		log.Fatal(err) // not verified: unreachable, permission, timeout ...
	}
	fmt.Println(rep.Status)
}

// Spread DBCC CHECKTABLE over nights: one task per table, largest first,
// stopped after two hours; the tasks not covered are listed in the report
// (their keys let the next run start with them).
func ExampleTarget_Checks_checktable() {
	tg, err := sqlserver.Open("sqlserver://dbscrub:secret@sql1.example.com?database=Warehouse")
	if err != nil {
		log.Fatal(err)
	}
	defer tg.Close()
	cks, err := tg.Checks("checktable", "checkalloc", "checkcatalog")
	if err != nil {
		log.Fatal(err)
	}
	r, err := checks.NewRunner(checks.WithJobs(2), checks.WithBudget(2*time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	rep := r.Run(context.Background(), tg, cks...)
	for _, tr := range rep.NotCovered() {
		fmt.Println("next time:", tr.Key)
	}
}

// Check through a pool you already have, such as one opened with the
// "azuresql" driver for Microsoft Entra ID authentication (import
// _ "github.com/microsoft/go-mssqldb/azuread").
func ExampleNew() {
	db, err := sql.Open("sqlserver", "sqlserver://dbscrub:secret@sql1.example.com?database=Sales")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	tg, err := sqlserver.New(db, sqlserver.WithName("sales-prod"))
	if err != nil {
		log.Fatal(err)
	}
	caps, err := tg.Probe(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(caps.Deployment(), caps.ProductVersion, caps.State, caps.ReplicaRole)
}

// Review what dbscrub will run before granting it access.
func ExampleTarget_Statements() {
	tg, err := sqlserver.Open("sqlserver://dbscrub@sql1.example.com?database=Sales", sqlserver.WithMaxDOP(2))
	if err != nil {
		log.Fatal(err)
	}
	defer tg.Close()
	for _, s := range tg.Statements("checkdb")[:1] {
		fmt.Println(s)
	}
	// Output:
	// SET LOCK_TIMEOUT 5000; SET DEADLOCK_PRIORITY LOW; SET ANSI_NULLS, ANSI_PADDING, ANSI_WARNINGS, ARITHABORT, CONCAT_NULL_YIELDS_NULL, QUOTED_IDENTIFIER ON; SET NUMERIC_ROUNDABORT OFF;
	// DBCC CHECKDB (@p1) WITH NO_INFOMSGS, ALL_ERRORMSGS, TABLERESULTS, MAXDOP = 2;
	// -- @p1 = database name
}

// Prove that a restored copy holds every row of the original: fingerprint
// both (each in one SNAPSHOT transaction where the database allows it) and
// compare; differences are narrowed down to single rows. To keep a
// fingerprint for later, write it with Fingerprint and checks.Fingerprint.Write.
func ExampleTarget_Fingerprint() {
	orig, err := sqlserver.Open("sqlserver://dbscrub:secret@sql1.example.com?database=Sales")
	if err != nil {
		log.Fatal(err)
	}
	defer orig.Close()
	restored, err := sqlserver.Open("sqlserver://dbscrub:secret@sql2.example.com?database=Sales")
	if err != nil {
		log.Fatal(err)
	}
	defer restored.Close()

	d, err := checks.CompareSources(context.Background(), checks.LiveSource(orig), checks.LiveSource(restored),
		checks.WithFingerprintOptions(checks.WithExcludeTables("tmp_*")))
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range d.Findings(checks.CheckFingerprint) {
		fmt.Println(f.Message) // e.g. dbo.Orders: the rows with OrderID in (41, 42] differ ...
	}
	fmt.Println("identical:", d.Identical)
}
