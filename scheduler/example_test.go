package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/scheduler"
	"github.com/dbscrub/dbscrub/scheduler/alarm"
)

// exampleTarget stands for a driver's target (drivers/postgres, ...).
type exampleTarget struct{ corrupt bool }

func (t exampleTarget) Info() checks.TargetInfo {
	return checks.TargetInfo{Engine: "postgresql", Name: "postgres://app@db1:5432/orders", Database: "orders", Host: "db1", Port: 5432}
}

func (t exampleTarget) Checks(...string) ([]checks.Check, error) {
	return []checks.Check{exampleCheck(t)}, nil
}

type exampleCheck struct{ corrupt bool }

func (exampleCheck) Name() string { return "heap" }

func (c exampleCheck) Plan(context.Context) ([]checks.Task, error) {
	return []checks.Task{{Key: "public.orders", Object: "public.orders", Cost: 8192, Run: func(context.Context) (checks.Result, error) {
		res := checks.Result{Objects: 1, Bytes: 8192}
		if c.corrupt {
			res.Findings = []checks.Finding{{Object: "public.orders", Message: "invalid page header in block 0", Location: checks.Location{Page: checks.Int(0)}}}
		}
		return res, nil
	}}}, nil
}

// A scheduler with a target checked every night, and a gate before a
// migration.
func Example() {
	ctx := context.Background()
	var alarms []alarm.Alarm // a real program passes alarm.LogSink, alarm.NewWebhook, alarm.NewAlertmanager
	collect := alarm.FuncSink("collect", func(_ context.Context, as []alarm.Alarm) error {
		alarms = append(alarms, as...)
		return nil
	})
	s, err := scheduler.New(ctx, scheduler.WithSinks(collect), scheduler.WithMaxPerServer(2))
	if err != nil {
		panic(err)
	}
	err = s.Register(ctx, scheduler.Target{
		Name:   "orders",
		Labels: map[string]string{"team": "payments", "runbook_url": "https://runbooks.example/db-corruption"},
		Target: exampleTarget{corrupt: true},
		Plan: scheduler.Plan{
			Schedule: scheduler.Schedule{Cron: "CRON_TZ=Europe/Berlin 0 1 * * *"},
			Window:   scheduler.Window{Start: "CRON_TZ=Europe/Berlin 0 1 * * *", Duration: 4 * time.Hour},
			SLA:      26 * time.Hour,
		},
	})
	if err != nil {
		panic(err)
	}
	s.Start()

	rep, err := s.Check(ctx, "orders") // before the migration
	fmt.Println(rep.Status, errors.Is(err, checks.ErrCorrupt))

	_ = s.Shutdown(ctx) // delivers the alarms still due
	for _, a := range alarms {
		fmt.Printf("%s %s alarm for %s (team %s): %s\n", a.State, a.Kind, a.Target, a.Labels["team"], a.Summary)
	}
	// Output:
	// corrupt true
	// firing corruption alarm for orders (team payments): Corruption found in orders (check heap): 1 finding in public.orders
}

func ExampleParseSchedule() {
	for _, s := range []string{"@every 6h", "30 2 * * *", "CRON_TZ=America/New_York 0 2 * * 1-5"} {
		sch, err := scheduler.ParseSchedule(s)
		fmt.Println(sch, err)
	}
	// Output:
	// @every 6h0m0s <nil>
	// 30 2 * * * <nil>
	// CRON_TZ=America/New_York 0 2 * * 1-5 <nil>
}

func ExampleParseWindow() {
	w, err := scheduler.ParseWindow("22:30-04:00", time.UTC)
	fmt.Println(w, err)
	// Output:
	// CRON_TZ=UTC 30 22 * * * for 5h30m0s <nil>
}

// Compare a database every night with the fingerprint taken before it
// moved to a new disk (dbscrub fingerprint -o). Any difference raises a
// corruption alarm naming the table and the key range; a file that cannot
// be read raises not_verified.
func ExampleCompareFingerprint() {
	ctx := context.Background()
	s, err := scheduler.New(ctx)
	if err != nil {
		panic(err)
	}
	load := func(context.Context) (*checks.Fingerprint, error) {
		f, err := os.Open("/var/lib/dbscrub/orders-before-move.json")
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return checks.ReadFingerprint(f)
	}
	err = s.Register(ctx, scheduler.Target{
		Name:   "orders",
		Target: exampleTarget{}, // a driver's target that can fingerprint: postgres.Open(dsn), sqlite.Open(path)
		Plan: scheduler.Plan{
			Checks:   []string{"heap", "btree"},
			Schedule: scheduler.Schedule{Cron: "0 2 * * *"},
			Extra: []scheduler.ExtraCheck{
				scheduler.CompareFingerprint(load, checks.WithFingerprintOptions(checks.WithTables("public.*"))),
			},
		},
	})
	if err != nil {
		panic(err)
	}
	s.Start()
	defer s.Shutdown(ctx)
}
