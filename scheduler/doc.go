// Package scheduler runs dbscrub's checks on a schedule, keeps their
// history, raises alarms and records OpenTelemetry spans and metrics.
//
// # Targets and plans
//
// A [Target] is a database with a stable name, labels that say who to call
// (owner, team, runbook_url), a server key for the per-server limit, and a
// way to reach it: a [checks.Target] value, or an Open function called for
// each run. Its [Plan] says which checks run, on which [Schedule] (a cron
// expression with its time zone, or an interval), inside which maintenance
// [Window], with which time budget, jitter and SLA.
//
//	s, err := scheduler.New(ctx,
//		scheduler.WithStore(store),              // history.OpenSQLite(ctx, "dbscrub.db")
//		scheduler.WithSinks(alarm.LogSink(logger)),
//		scheduler.WithMaxConcurrent(8),
//		scheduler.WithMaxPerServer(2),
//	)
//	err = s.Register(ctx, scheduler.Target{
//		Name:   "orders",
//		Labels: map[string]string{"team": "payments", "runbook_url": "https://wiki/db-corruption"},
//		Target: pgTarget,
//		Plan: scheduler.Plan{
//			Schedule: scheduler.Schedule{Cron: "CRON_TZ=Europe/Berlin 0 1 * * *"},
//			Window:   scheduler.Window{Start: "0 1 * * *", Duration: 4 * time.Hour},
//			SLA:      26 * time.Hour,
//			Jobs:     4,
//		},
//	})
//	s.Start()
//	defer s.Shutdown(context.Background())
//
// # Runs
//
// Runs are built on github.com/go-co-op/gocron/v2, driven by a clock that
// tests replace with a fake ([WithClock]). Each target runs at most once at
// a time; a global limit ([WithMaxConcurrent]) and a per-server limit
// ([WithMaxPerServer]) bound how many run together, and waiting runs are
// served most urgent first: gates, then manual runs, then scheduled runs
// whose last success is oldest — a target that never succeeded first.
//
// [Scheduler.RunNow] starts a run in the background; [Scheduler.Check]
// runs everything and waits, as a gate before a migration or a disk move.
// [Scheduler.Shutdown] cancels running checks; their unfinished tasks are
// recorded as interrupted (status error), never healthy.
//
// # Rolling coverage
//
// When a window or a budget ends before every task ran, the next run
// starts with the tasks not yet covered (the others are reported as
// deferred, with the time they were verified), so that a database too big
// for one night is verified across several. See rolling.go for the exact
// rules.
//
// # Extra checks and counters
//
// Besides the target's checks selected by name, a plan may run
// [Plan.Extra] checks, built for each run against the run's target:
// [CompareFingerprint] compares the target with a stored fingerprint,
// [CompareDatabase] with another database (a restored backup), each as the
// check "fingerprint" whose differences are corruption findings naming the
// tables and key ranges. They share the runner, history, coverage, alarms,
// telemetry and stale rule of the named checks, and a comparison that
// could not run is not verified, never healthy.
//
// Every run carries the target's [Counters] in its context
// ([checks.CountersFrom]): the last seen value of counters such as
// PostgreSQL's checksum_failures, so that a check reports what changed
// since the previous run. Values set during a run are stored once the run
// is recorded.
//
// # History, alarms, telemetry
//
// Every run is recorded in a history.Store (in memory by default; the
// embedded SQLite store in production), with its report, findings, last
// known good per check and per-object coverage. After each run the alarm
// rules of package alarm are applied (corruption, not_verified, risk), and
// periodically the stale rule: no successful check, or an object not
// verified, within the SLA. Spans and metrics go through package
// telemetry, to the providers given by [WithTracerProvider] and
// [WithMeterProvider] (the globals by default).
//
// A target's Secrets (its DSN password) are scrubbed from every report,
// log line, span and alarm the scheduler produces.
package scheduler
