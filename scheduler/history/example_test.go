package history_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/scheduler/history"
	"github.com/dbscrub/dbscrub/scheduler/history/storetest"
)

// The embedded store: one file, created and migrated at open; what a
// daemon writes, `dbscrub status` reads.
func ExampleOpenSQLite() {
	dir, _ := os.MkdirTemp("", "dbscrub")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	store, err := history.OpenSQLite(ctx, filepath.Join(dir, "history.db"))
	if err != nil {
		panic(err)
	}
	defer store.Close()

	rep := storetest.Report("heap", storetest.Completed("public.orders"))
	run := &history.Run{Target: "orders", Trigger: history.TriggerSchedule, StartedAt: storetest.T0, FinishedAt: storetest.T0, Status: rep.Status, Report: rep}
	if _, err := store.RecordRun(ctx, run); err != nil {
		panic(err)
	}

	targets, _ := store.Targets(ctx)
	for _, t := range targets {
		for _, c := range t.Checks {
			fmt.Printf("%s %s: last %s, last known good %s, %d object(s) covered\n",
				t.Name, c.Check, c.LastStatus, c.LastSuccessAt.Format("2006-01-02 15:04"), c.Coverage.Keys)
		}
	}
	fmt.Println(history.Succeeded(rep.Checks[0]), rep.Status == checks.StatusHealthy)
	// Output:
	// orders heap: last healthy, last known good 2025-01-06 01:00, 1 object(s) covered
	// true true
}
