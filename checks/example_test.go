package checks_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/dbscrub/dbscrub/checks"
)

// memTarget is a toy engine: one check that verifies two "tables" and finds
// a damaged page in one of them. Real targets come from the drivers
// (drivers/postgres, drivers/sqlite, drivers/sqlserver).
type memTarget struct{}

func (memTarget) Info() checks.TargetInfo {
	return checks.TargetInfo{Engine: "toy", Name: "toy://inventory", Database: "inventory"}
}

func (memTarget) Checks(names ...string) ([]checks.Check, error) {
	return []checks.Check{pageCheck{}}, nil
}

type pageCheck struct{}

func (pageCheck) Name() string { return "pages" }

func (pageCheck) Plan(ctx context.Context) ([]checks.Task, error) {
	verify := func(table string, bad bool) checks.Task {
		return checks.Task{
			Key: "pages:" + table, Object: table, Cost: 8192,
			Run: func(ctx context.Context) (checks.Result, error) {
				res := checks.Result{Objects: 1, Bytes: 8192}
				if bad {
					res.Findings = append(res.Findings, checks.Finding{
						Severity: checks.StatusCorrupt,
						Location: checks.Location{Page: checks.Int(0), Offset: checks.Int(3)},
						Message:  "line pointer points past the end of the page",
						Remedy:   "restore the table from a backup",
					})
				}
				return res, nil
			},
		}
	}
	return []checks.Task{verify("public.orders", true), verify("public.items", false)}, nil
}

// Gate is the one call a migration tool needs: nil means "verified and
// sound", ErrCorrupt and ErrNotVerified say why not.
func ExampleGate() {
	rep, err := checks.Gate(context.Background(), memTarget{}, checks.WithJobs(2))
	switch {
	case errors.Is(err, checks.ErrCorrupt):
		fmt.Println("refusing to migrate:", rep.Status)
		for _, f := range rep.Findings() {
			fmt.Printf("  %s (%s): %s\n", f.Object, f.Location, f.Message)
		}
	case errors.Is(err, checks.ErrNotVerified):
		fmt.Println("could not verify:", err)
	case err == nil:
		fmt.Println("verified, go ahead")
	}
	// Output:
	// refusing to migrate: corrupt
	//   public.orders (page 0, offset 3): line pointer points past the end of the page
}

func ExampleRunner() {
	r, err := checks.NewRunner(checks.WithJobs(4), checks.WithProgress(func(p checks.Progress) {
		// drive a progress bar: p.BytesDone of p.BytesTotal
	}))
	if err != nil {
		fmt.Println(err)
		return
	}
	rep := r.Run(context.Background(), memTarget{})
	fmt.Println(rep.Status, rep.Reason)
	fmt.Printf("%d of %d tasks, %d bytes verified\n", rep.Coverage.TasksCompleted, rep.Coverage.TasksPlanned, rep.Coverage.BytesVerified)
	// Output:
	// corrupt pages: 1 corruption finding in 1 object
	// 2 of 2 tasks, 16384 bytes verified
}
