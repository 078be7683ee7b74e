// Command dbscrub runs database integrity checks and exits non-zero when it
// finds corruption or cannot check, so that it can gate a migration or a
// disk move:
//
//	dbscrub check --dsn postgres://scrub@db.example.com/app && run-migrations
//
// and, as a daemon, checks databases on a schedule with metrics, traces and
// alarms:
//
//	dbscrub run --config dbscrub.yaml
//
// Commands:
//
//	dbscrub check        run checks against one database and print a report
//	dbscrub checks       list the checks each engine offers
//	dbscrub fingerprint  write a database's content fingerprint
//	dbscrub compare      compare fingerprints or databases
//	dbscrub run          the daemon (see below); --once runs every target once
//	dbscrub status       each target's last run, coverage and open alarms
//	dbscrub version      print the version
//
// Exit codes of dbscrub check and dbscrub run --once (they follow
// pg_amcheck; run --once exits with the worst code of its targets):
//
//	0  everything planned was verified and nothing is corrupt (warnings,
//	   such as data checksums being off, are printed but do not fail)
//	1  could not verify everything: bad input, unreachable server, failed
//	   authentication, missing extension or privilege, timeout, time budget
//	   ended first, cancelled, nothing matched
//	2  corruption found
//	3  only with --fail-on-warning: verified, no corruption, but warnings
//
// The DSN may also come from the DBSCRUB_DSN environment variable, which
// keeps a password out of the process list. Passwords never appear in
// output, errors or reports.
//
// # dbscrub run
//
// dbscrub run --config FILE reads its targets, plans, alarm sinks and
// telemetry from a YAML file (default $DBSCRUB_CONFIG, else dbscrub.yaml),
// registers every target with the scheduler (package scheduler) and runs
// until SIGINT or SIGTERM. Then it shuts down within --shutdown-timeout
// (30s): running checks are interrupted and recorded as such (status
// error, never healthy), and their alarms delivered. While it runs it
// serves, when http.listen is set (not with --once):
//
//	GET /metrics  Prometheus text format through the OpenTelemetry
//	              Prometheus exporter: dbscrub_last_success_timestamp_seconds
//	              (alert on time() minus it), dbscrub_coverage_age_seconds,
//	              dbscrub_runs_total, dbscrub_findings_total,
//	              dbscrub_bytes_verified_total, dbscrub_run_duration_seconds,
//	              dbscrub_alarms_firing, and Go process metrics
//	GET /healthz  200 while the scheduler runs, 503 once shutdown started
//
// and exports a span per run, check and task over OTLP/HTTP when
// telemetry.otlp is set. Logs go to stderr (--log-format text|json,
// --log-level).
//
// dbscrub run --once runs every target once, now (ignoring schedules and
// maintenance windows, honouring budgets and rolling coverage), records the
// runs and alarms in the history, prints one line per target (--format
// json: the reports) and exits with the worst exit code: for cron users,
// and for tests.
//
// dbscrub status --config FILE (or --history FILE) prints, from the
// history alone (no daemon needs to run), each target's last run with its
// status and reason, each check's last status, last success and coverage
// (objects verified, never verified, the least recently verified), and the
// open alarms (severity, kind, check, since when, summary). --format json
// prints the same as a document with schema_version 1.
//
// # The config file
//
// A commented example is examples/dbscrub.yaml. Every field is validated
// before anything starts, unknown fields are errors, and each problem is
// reported with the file, the line and the field path:
//
//	dbscrub.yaml:14: targets[1].schedule: cron expression "*/5x * * * *": failed to parse int from 5x: ...
//
// Durations are Go durations (90s, 30m, 6h) or whole days (7d). Relative
// file paths (history.path, dsn_file, password_file) are relative to the
// config file's directory.
//
//	history:
//	  path: dbscrub-history.db      # the SQLite history store (default: next to the config)
//	  retention: 90d                # prune runs and resolved alarms older than this
//	limits:
//	  max_concurrent: 4             # runs at once, across targets
//	  max_per_server: 1             # runs at once against one host:port
//	http:
//	  listen: 127.0.0.1:9187        # /metrics and /healthz
//	telemetry:
//	  otlp:                         # traces over OTLP/HTTP
//	    endpoint: http://otel-collector:4318   # or host:port; /v1/traces is added
//	    insecure: true
//	    headers: {Authorization: "Bearer ${OTLP_TOKEN}"}   # ${NAME}: from the environment
//	alarms:
//	  renotify: 12h                 # re-send firing alarms at most this often
//	  sinks:                        # default: [{type: log}]
//	    - {type: log}
//	    - {type: webhook, url: https://hooks.example.com/dbscrub, timeout: 10s, retries: 2}
//	    - {type: alertmanager, url: http://alertmanager:9093}
//	targets:
//	  - name: orders                # stable: history, alarms and metrics are keyed by it
//	    dsn: postgres://scrub@db1:5432/orders   # or dsn_env: VAR, or dsn_file: FILE
//	    password_env: ORDERS_PASSWORD           # or password_file: FILE; put into the DSN
//	    labels: {owner: alice, team: payments, runbook_url: https://wiki/db-corruption}
//	    checks: [heap, btree]       # default: the engine's default checks
//	    schedule: "0 1 * * *"       # cron (CRON_TZ=Area/City allowed), "@every 6h", "@daily"
//	    window: "22:00-02:00"       # maintenance window; may cross midnight
//	    timezone: Europe/Berlin     # of schedule and window
//	    budget: 3h                  # no task starts after it; the rest runs next time
//	    jitter: 10m
//	    sla: 26h                    # stale alarm without success for this long; "off" disables
//	    jobs: 4
//	    task_timeout: 30m
//	    options:                    # dbscrub check's flags, with _ for -
//	      heapallindexed: true      # PostgreSQL: parent_check, install_amcheck, statement_timeout,
//	                                #   lock_timeout, chunk_size, schemas, exclude_schemas,
//	                                #   relations, exclude_relations
//	                                # SQLite: quick
//	                                # SQL Server: physical_only, data_purity, extended_logical_checks,
//	                                #   tablock, maxdop, noindex, lock_timeout
//	      max_rate: 50              # every engine: MB/s across jobs; retries: N
//	    fingerprint:                # also prove the content unchanged (check "fingerprint")
//	      against: orders-before-move.json   # from dbscrub fingerprint -o; read every run
//	      # or against_dsn / against_dsn_env / against_dsn_file (+ against_password_env
//	      #   or against_password_file): a live copy, such as a restored backup
//	      exclude_tables: [audit.*]
//
// Passwords need never be written in the file: password_env and
// password_file put the password into the DSN (a URL naming the user), and
// dsn_env and dsn_file read the whole DSN. A DSN with an inline password
// works but is logged as a warning. Every password is passed to the
// scheduler as a secret, scrubbed from logs, spans, alarms and the history,
// and never logged.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
