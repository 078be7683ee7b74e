package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dbscrub/dbscrub/checks"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigGood(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mssql.dsn"), []byte("sqlserver://scrub@sql1:1433?database=Sales\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mssql.pw"), []byte("file-"+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const yml = `# every section
history:
  path: state/history.db
  retention: 90d
limits:
  max_concurrent: 8
  max_per_server: 2
http:
  listen: "127.0.0.1:9187"
telemetry:
  otlp:
    endpoint: http://otel-collector:4318
    insecure: true
    headers:
      Authorization: "Bearer ${OTLP_TOKEN}"
alarms:
  renotify: 4h
  sinks:
    - type: log
    - type: webhook
      url: https://hooks.example/dbscrub
      timeout: 5s
      retries: 2
    - type: webhook
      url: https://hooks2.example/dbscrub?sig=a$b
    - type: alertmanager
      url: http://alertmanager:9093
targets:
  - name: orders
    dsn: postgres://scrub@db1.example:5432/orders?sslmode=require
    password_env: ORDERS_PASSWORD
    labels: {owner: alice, team: payments, runbook_url: "https://wiki/db-corruption"}
    checks: [heap, btree, crosscheck]
    schedule: "0 1 * * *"
    window: "22:00-02:00"
    timezone: Europe/Berlin
    budget: 3h
    jitter: 10m
    sla: 26h
    jobs: 4
    task_timeout: 30m
    options:
      heapallindexed: true
      exclude_schemas: [audit, tmp_*]
      lock_timeout: 10s
      max_rate: 50
      retries: 1
  - name: shop
    dsn: /var/lib/shop/shop.db
    checks: integrity
    schedule: "@every 6h"
    sla: off
    options: {quick: true}
  - name: sales
    dsn_file: mssql.dsn
    password_file: mssql.pw
    schedule: "CRON_TZ=America/New_York 30 2 * * 0"
    options: {physical_only: true, maxdop: 2}
  - name: legacy
    dsn_env: LEGACY_DSN
    schedule: "@daily"
`
	path := filepath.Join(dir, "dbscrub.yaml")
	cfg, err := parseConfig(path, []byte(yml), loadOptions{getenv: env(map[string]string{
		"ORDERS_PASSWORD": secret,
		"OTLP_TOKEN":      "tok",
		"LEGACY_DSN":      "postgres://legacy:inline-" + secret + "@db2/legacy",
	})})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.historyPath != filepath.Join(dir, "state/history.db") || cfg.retention != 90*24*time.Hour {
		t.Errorf("history: %q %s", cfg.historyPath, cfg.retention)
	}
	if cfg.maxConcurrent != 8 || cfg.maxPerServer != 2 || cfg.listen != "127.0.0.1:9187" {
		t.Errorf("limits/http: %+v", cfg)
	}
	if cfg.otlp == nil || cfg.otlp.endpoint != "http://otel-collector:4318" || !cfg.otlp.insecure || cfg.otlp.headers["Authorization"] != "Bearer tok" {
		t.Errorf("otlp: %+v", cfg.otlp)
	}
	if cfg.renotify != 4*time.Hour || len(cfg.sinks) != 4 {
		t.Fatalf("alarms: %s %+v", cfg.renotify, cfg.sinks)
	}
	var names []string
	for _, s := range cfg.sinks {
		names = append(names, s.name)
	}
	if !slices.Equal(names, []string{"log", "webhook", "webhook-2", "alertmanager"}) {
		t.Errorf("sink names %v", names)
	}
	if cfg.sinks[2].url != "https://hooks2.example/dbscrub?sig=a$b" {
		t.Errorf("a lone $ was expanded: %q", cfg.sinks[2].url)
	}
	if s := cfg.sinks[1]; s.timeout != 5*time.Second || s.retries != 2 || cfg.sinks[2].retries != -1 {
		t.Errorf("webhook: %+v", s)
	}
	if _, err := buildSinks(cfg, nil); err != nil {
		t.Errorf("building the sinks: %v", err)
	}
	if len(cfg.targets) != 4 {
		t.Fatalf("%d targets", len(cfg.targets))
	}

	orders := cfg.targets[0]
	if orders.name != "orders" || orders.engine != "PostgreSQL" || orders.labels["runbook_url"] != "https://wiki/db-corruption" {
		t.Errorf("orders: %+v", orders)
	}
	if orders.flags.dsn != "postgres://scrub:"+secret+"@db1.example:5432/orders?sslmode=require" || !slices.Contains(orders.secrets, secret) {
		t.Errorf("the password was not injected: %v", orders.secrets)
	}
	p := orders.plan()
	if !slices.Equal(p.Checks, []string{"heap", "btree", "crosscheck"}) || p.Budget != 3*time.Hour || p.Jitter != 10*time.Minute ||
		p.SLA != 26*time.Hour || p.Jobs != 4 || p.TaskTimeout != 30*time.Minute || len(p.Options) != 2 {
		t.Errorf("orders plan: %+v", p)
	}
	if p.Schedule.Cron != "0 1 * * *" || p.Schedule.Location == nil || p.Schedule.Location.String() != "Europe/Berlin" {
		t.Errorf("schedule: %+v", p.Schedule)
	}
	if p.Window.Start != "0 22 * * *" || p.Window.Duration != 4*time.Hour || p.Window.Location.String() != "Europe/Berlin" {
		t.Errorf("window: %+v", p.Window)
	}
	f := orders.flags
	if !f.heapAllIndexed || !slices.Equal(f.excludeSchemas, []string{"audit", "tmp_*"}) || f.lockTimeout != 10*time.Second || !f.set["heapallindexed"] {
		t.Errorf("orders options: %+v", f)
	}
	if f.maxRate != 50 {
		t.Errorf("orders: max_rate %g not passed to the engine (its heap chunks follow the rate)", f.maxRate)
	}

	shop := cfg.targets[1]
	if shop.engine != "SQLite" || !shop.flags.quick || shop.sla != -1 || shop.schedule.Every != 6*time.Hour || !slices.Equal(shop.checks, []string{"integrity"}) {
		t.Errorf("shop: %+v", shop)
	}
	sales := cfg.targets[2]
	if sales.engine != "SQL Server" || !sales.flags.physicalOnly || sales.flags.maxDOP != 2 || !strings.Contains(sales.flags.dsn, ":file-"+secret+"@") {
		t.Errorf("sales: %+v", sales)
	}
	if !strings.HasPrefix(sales.schedule.Cron, "CRON_TZ=America/New_York") {
		t.Errorf("sales schedule %+v", sales.schedule)
	}
	legacy := cfg.targets[3]
	if !slices.Contains(legacy.secrets, "inline-"+secret) {
		t.Errorf("the password of a DSN from the environment is not a secret: %v", legacy.secrets)
	}
	// A password in the environment is not inline: no warning.
	if len(cfg.warnings) != 0 {
		t.Errorf("warnings: %v", cfg.warnings)
	}
}

func TestConfigInlinePasswordWarns(t *testing.T) {
	yml := "targets:\n  - name: a\n    schedule: \"@daily\"\n    dsn: postgres://u:" + secret + "@h/db\n"
	cfg, err := parseConfig("dbscrub.yaml", []byte(yml), loadOptions{getenv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.warnings) != 1 || !strings.HasPrefix(cfg.warnings[0], "dbscrub.yaml:4: targets[0].dsn: ") || !strings.Contains(cfg.warnings[0], "password_env") {
		t.Errorf("warnings: %q", cfg.warnings)
	}
	if strings.Contains(strings.Join(cfg.warnings, ""), secret) {
		t.Error("the warning shows the password")
	}
	if !slices.Contains(cfg.targets[0].secrets, secret) {
		t.Error("the inline password is not a secret")
	}
}

func TestConfigErrors(t *testing.T) {
	const target = "targets:\n  - name: a\n    dsn: x.db\n    schedule: \"@daily\"\n"
	tests := []struct {
		name string
		yml  string
		want string // the error must contain it
	}{
		{"yaml syntax", "targets:\n  - name: a\n    dsn: \"x\n", "dbscrub.yaml:3: found unexpected end of stream"},
		{"yaml tab", "targets:\n  - name: a\n\tdsn: x\n", "dbscrub.yaml:2: found a tab character"},
		{"empty file", "", "dbscrub.yaml:1: the config is empty"},
		{"no targets", "history:\n  path: h.db\n", "dbscrub.yaml:1: targets: missing"},
		{"targets not a list", "targets:\n  name: a\n", `dbscrub.yaml:2: targets: want a list of targets`},
		{"unknown top-level field", "histroy:\n  path: x\n" + target, `dbscrub.yaml:1: histroy: unknown field "histroy" (known: history, limits`},
		{"unknown target field", target + "    shedule: x\n", `dbscrub.yaml:5: targets[0].shedule: unknown field "shedule"`},
		{"field given twice", target + "    schedule: \"@hourly\"\n", "dbscrub.yaml:5: targets[0].schedule: given twice"},
		{"bad cron", target + "  - name: b\n    dsn: y.db\n    schedule: \"*/5x * * * *\"\n", `dbscrub.yaml:7: targets[1].schedule: cron expression "*/5x * * * *": failed to parse int from 5x`},
		{"bad interval", "targets:\n  - name: a\n    dsn: x.db\n    schedule: \"@every soon\"\n", `dbscrub.yaml:4: targets[0].schedule: schedule "@every soon": bad interval`},
		{"empty schedule", "targets:\n  - name: a\n    dsn: x.db\n    schedule: \"\"\n", `dbscrub.yaml:4: targets[0] (a): missing schedule`},
		{"missing schedule", "targets:\n  - name: a\n    dsn: x.db\n", `dbscrub.yaml:2: targets[0] (a): missing schedule`},
		{"bad window", target + "    window: 22-02\n", `dbscrub.yaml:5: targets[0].window: window "22-02": want HH:MM-HH:MM`},
		{"bad time zone", target + "    timezone: Mars/Olympus\n", `dbscrub.yaml:5: targets[0].timezone: unknown time zone "Mars/Olympus"`},
		{"bad duration", target + "    budget: 3 hours\n", `dbscrub.yaml:5: targets[0].budget: want a duration such as 90s, 30m, 6h or 7d, got "3 hours"`},
		{"negative duration", target + "    task_timeout: -1m\n", `dbscrub.yaml:5: targets[0].task_timeout: must be positive`},
		{"zero jobs", target + "    jobs: 0\n", "dbscrub.yaml:5: targets[0].jobs: must be at least 1, got 0"},
		{"jobs not a number", target + "    jobs: many\n", `dbscrub.yaml:5: targets[0].jobs: want a whole number, got "many"`},
		{"missing name", "targets:\n  - dsn: x.db\n    schedule: \"@daily\"\n", "dbscrub.yaml:2: targets[0]: missing name"},
		{"duplicate name", target + "  - name: a\n    dsn: y.db\n    schedule: \"@daily\"\n", `dbscrub.yaml:5: targets[1].name: target name "a" is also the name of targets[0]`},
		{"missing dsn", "targets:\n  - name: a\n    schedule: \"@daily\"\n", "dbscrub.yaml:2: targets[0] (a): missing DSN: set one of dsn, dsn_env"},
		{"two dsns", target + "    dsn_env: X\n", "dbscrub.yaml:5: targets[0].dsn_env: set only one of dsn, dsn_env and dsn_file"},
		{"dsn_env unset", "targets:\n  - name: a\n    dsn_env: NOT_SET_ANYWHERE\n    schedule: \"@daily\"\n", "dbscrub.yaml:3: targets[0].dsn_env: environment variable NOT_SET_ANYWHERE is not set"},
		{"dsn_file missing", "targets:\n  - name: a\n    dsn_file: /nonexistent/dsn\n    schedule: \"@daily\"\n", "dbscrub.yaml:3: targets[0].dsn_file: the file /nonexistent/dsn does not exist"},
		{"password_env unset", "targets:\n  - name: a\n    dsn: postgres://u@h/db\n    password_env: NOT_SET_ANYWHERE\n    schedule: \"@daily\"\n", "dbscrub.yaml:4: targets[0].password_env: environment variable NOT_SET_ANYWHERE is not set"},
		{"password for sqlite", target + "    password_env: PW\n", "dbscrub.yaml:5: targets[0].password_env: an SQLite database has no password"},
		{"password twice", "targets:\n  - name: a\n    dsn: postgres://u:" + secret + "@h/db\n    password_env: PW\n    schedule: \"@daily\"\n", "dbscrub.yaml:4: targets[0].password_env: the DSN postgres://u:xxxxx@h/db already has a password"},
		{"password without user", "targets:\n  - name: a\n    dsn: postgres://h/db\n    password_env: PW\n    schedule: \"@daily\"\n", "dbscrub.yaml:4: targets[0].password_env: the DSN postgres://h/db names no user"},
		{"unknown scheme", "targets:\n  - name: a\n    dsn: mongodb://u:" + secret + "@h/db\n    schedule: \"@daily\"\n", `dbscrub.yaml:3: targets[0].dsn: unknown DSN scheme "mongodb://"`},
		{"bad postgres dsn", "targets:\n  - name: a\n    dsn: postgres://u:" + secret + "@h:port/db\n    schedule: \"@daily\"\n", "dbscrub.yaml:3: targets[0].dsn: postgres: invalid DSN"},
		{"unknown check", target + "    checks: [integrity, heap]\n", `dbscrub.yaml:5: targets[0].checks: sqlite: unknown check "heap"`},
		{"option of another engine", target + "    options:\n      heapallindexed: true\n", "dbscrub.yaml:6: targets[0].options.heapallindexed: does not apply to SQLite (it is an option of PostgreSQL)"},
		{"unknown option", target + "    options:\n      quik: true\n", `dbscrub.yaml:6: targets[0].options.quik: unknown field "quik"`},
		{"bad bool", target + "    options:\n      quick: yes\n", `dbscrub.yaml:6: targets[0].options.quick: want true or false, got "yes"`},
		{"labels not a map", target + "    labels: [a, b]\n", "dbscrub.yaml:5: targets[0].labels: want a mapping"},
		{"unknown sink type", "alarms:\n  sinks:\n    - type: pager\n" + target, `dbscrub.yaml:3: alarms.sinks[0].type: unknown sink type "pager" (known: log, webhook, alertmanager)`},
		{"sink without type", "alarms:\n  sinks:\n    - url: http://x\n" + target, "dbscrub.yaml:3: alarms.sinks[0]: missing type"},
		{"webhook without url", "alarms:\n  sinks:\n    - type: webhook\n" + target, "dbscrub.yaml:3: alarms.sinks[0]: a webhook sink needs url"},
		{"webhook bad url", "alarms:\n  sinks:\n    - type: webhook\n      url: ftp://x\n" + target, "dbscrub.yaml:4: alarms.sinks[0].url: want an http:// or https:// URL"},
		{"log sink with url", "alarms:\n  sinks:\n    - type: log\n      url: http://x\n" + target, "dbscrub.yaml:4: alarms.sinks[0].url: does not apply to a log sink"},
		{"bad renotify", "alarms:\n  renotify: often\n" + target, "dbscrub.yaml:2: alarms.renotify: want a duration"},
		{"bad listen", "http:\n  listen: 9187\n" + target, `dbscrub.yaml:2: http.listen: want host:port such as 127.0.0.1:9187, got "9187"`},
		{"otlp without endpoint", "telemetry:\n  otlp:\n    insecure: true\n" + target, "dbscrub.yaml:3: telemetry.otlp: missing endpoint"},
		{"otlp header env unset", "telemetry:\n  otlp:\n    endpoint: localhost:4318\n    headers: {X-Token: \"${NOT_SET_ANYWHERE}\"}\n" + target, "dbscrub.yaml:4: telemetry.otlp.headers.X-Token: environment variable NOT_SET_ANYWHERE is not set"},
		{"max_concurrent zero", "limits:\n  max_concurrent: 0\n" + target, "dbscrub.yaml:2: limits.max_concurrent: must be at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig("dbscrub.yaml", []byte(tt.yml), loadOptions{getenv: env(map[string]string{"PW": "pw-" + secret, "X": "x"})})
			if err == nil {
				t.Fatalf("no error for:\n%s", tt.yml)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error\n%s\ndoes not contain\n%s", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows the password: %s", err)
			}
			var ce configErrors
			if !errors.As(err, &ce) {
				t.Errorf("not a configErrors: %T", err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "dbscrub.yaml:") {
					t.Errorf("an error line does not start with file:line: %q", line)
				}
			}
		})
	}
}

// TestConfigEveryError checks that all problems are reported, in line
// order, not only the first.
func TestConfigEveryError(t *testing.T) {
	yml := `targets:
  - name: a
    dsn: x.db
    schedule: "@every never"
    jobs: -1
  - name: b
    schedule: "@daily"
    options: {physical_only: true}
`
	_, err := parseConfig("dbscrub.yaml", []byte(yml), loadOptions{getenv: env(nil)})
	var ce configErrors
	if !errors.As(err, &ce) || len(ce) != 3 {
		t.Fatalf("want 3 problems, got %v", err)
	}
	for i, want := range []string{"dbscrub.yaml:4: targets[0].schedule", "dbscrub.yaml:5: targets[0].jobs", "dbscrub.yaml:6: targets[1] (b): missing DSN"} {
		if !strings.HasPrefix(ce[i].Error(), want) {
			t.Errorf("problem %d: %q, want it to start with %q", i, ce[i], want)
		}
	}
}

// TestConfigHistoryOnly reads the config as dbscrub status does: without
// the passwords.
func TestConfigHistoryOnly(t *testing.T) {
	yml := "history: {path: /var/lib/dbscrub/h.db}\ntargets:\n  - name: a\n    dsn: postgres://u@h/db\n    password_env: NOT_SET_ANYWHERE\n    schedule: \"@daily\"\n"
	cfg, err := parseConfig("dbscrub.yaml", []byte(yml), loadOptions{historyOnly: true, getenv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.historyPath != "/var/lib/dbscrub/h.db" || len(cfg.targets) != 1 || cfg.targets[0].name != "a" {
		t.Errorf("%+v", cfg)
	}
}

// TestExampleConfig checks the documented example file is valid.
func TestExampleConfig(t *testing.T) {
	path := filepath.Join("..", "..", "examples", "dbscrub.yaml")
	cfg, err := loadConfig(path, loadOptions{getenv: env(map[string]string{
		"ORDERS_PASSWORD": "pw", "ANALYTICS_DSN": "postgres://scrub:pw@analytics.internal/warehouse",
		"WEBHOOK_TOKEN": "token", "OTLP_TOKEN": "token",
	})})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.targets) == 0 {
		t.Error("no targets")
	}
}

// fingerprintFile fingerprints the SQLite database at db into a file of a
// new temporary directory (chunks of 100 rows) and returns its path.
func fingerprintFile(t *testing.T, db string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "before.json")
	if code, _, stderr := runCLI(t, "fingerprint", "--dsn", db, "-o", path, "--chunk-rows", "100"); code != exitOK {
		t.Fatalf("dbscrub fingerprint: exit %d: %s", code, stderr)
	}
	return path
}

func TestConfigFingerprint(t *testing.T) {
	shop := sample(t)
	fp := fingerprintFile(t, shop)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "restore.pw"), []byte("restore-"+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(fp, filepath.Join(dir, "rel.json")); err != nil {
		t.Fatal(err)
	}
	yml := `targets:
  - name: shop
    dsn: ` + shop + `
    schedule: "@daily"
    fingerprint:
      against: rel.json # relative to the config file
      tables: [orders, customers]
  - name: orders
    dsn: postgres://scrub@db1/orders
    schedule: "@daily"
    fingerprint:
      against_dsn: postgres://scrub@restore1/orders
      against_password_file: restore.pw
      exclude_tables: [public.audit_*]
      chunk_rows: 1000
      jobs: 2
      min_chunk_rows: 10
      max_ranges: 50
  - name: copy
    dsn: ` + shop + `
    schedule: "@daily"
    fingerprint:
      against_dsn_env: COPY_DSN
  - name: plain
    dsn: ` + shop + `
    schedule: "@daily"
`
	cfg, err := parseConfig(filepath.Join(dir, "dbscrub.yaml"), []byte(yml), loadOptions{getenv: env(map[string]string{"COPY_DSN": shop})})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.targets) != 4 || len(cfg.warnings) != 0 {
		t.Fatalf("%d targets, warnings %v", len(cfg.targets), cfg.warnings)
	}
	s := cfg.targets[0]
	if s.fingerprint == nil || s.fingerprint.stored != filepath.Join(dir, "rel.json") || s.fingerprint.dsn != "" {
		t.Fatalf("shop fingerprint: %+v", s.fingerprint)
	}
	o := cfg.targets[1]
	if o.fingerprint == nil || o.fingerprint.dsn != "postgres://scrub:restore-"+secret+"@restore1/orders" || !slices.Contains(o.secrets, "restore-"+secret) {
		t.Fatalf("orders fingerprint: dsn set %v, secrets %d", o.fingerprint != nil && o.fingerprint.dsn != "", len(o.secrets))
	}
	if c := cfg.targets[2]; c.fingerprint == nil || c.fingerprint.dsn != shop {
		t.Fatalf("copy fingerprint: %+v", c.fingerprint)
	}
	for i, want := range []int{1, 1, 1, 0} {
		p := cfg.targets[i].plan()
		if len(p.Extra) != want || (want == 1 && p.Extra[0].Name != checks.CheckFingerprint) {
			t.Errorf("%s: extra checks %+v", cfg.targets[i].name, p.Extra)
		}
	}
}

func TestConfigFingerprintErrors(t *testing.T) {
	dir := t.TempDir()
	fp := fingerprintFile(t, sample(t))
	garbage := filepath.Join(dir, "garbage.json")
	if err := os.WriteFile(garbage, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	const target = "targets:\n  - name: a\n    dsn: x.db\n    schedule: \"@daily\"\n    fingerprint:\n"
	const pg = "targets:\n  - name: a\n    dsn: postgres://u@h/db\n    schedule: \"@daily\"\n    fingerprint:\n"
	tests := []struct {
		name string
		yml  string
		want string
	}{
		{"empty block", target, "dbscrub.yaml:5: targets[0].fingerprint: empty: set against"},
		{"neither", target + "      tables: [orders]\n", "dbscrub.yaml:6: targets[0].fingerprint: missing against: set against (a fingerprint file written by dbscrub fingerprint -o) or one of against_dsn"},
		{"both", target + "      against: " + fp + "\n      against_dsn: y.db\n", "dbscrub.yaml:7: targets[0].fingerprint.against_dsn: set only one of against (a fingerprint file) and against_dsn"},
		{"missing file", target + "      against: /nonexistent/before.json\n", "dbscrub.yaml:6: targets[0].fingerprint.against: the file /nonexistent/before.json does not exist"},
		{"not a fingerprint", target + "      against: " + garbage + "\n", "dbscrub.yaml:6: targets[0].fingerprint.against: " + garbage + ": invalid fingerprint: no schema_version"},
		{"file of another engine", pg + "      against: " + fp + "\n", "dbscrub.yaml:6: targets[0].fingerprint.against: " + fp + " is a fingerprint of a sqlite database and the target is PostgreSQL"},
		{"tables match nothing", target + "      against: " + fp + "\n      tables: [nosuch_*]\n", "dbscrub.yaml:7: targets[0].fingerprint.tables: no table of " + fp + " matches"},
		{"live-only key with a file", target + "      against: " + fp + "\n      min_chunk_rows: 5\n", "dbscrub.yaml:7: targets[0].fingerprint.min_chunk_rows: applies only to a comparison with a database (against_dsn)"},
		{"unknown engine", target + "      against_dsn: mongodb://u:" + secret + "@h/db\n", `dbscrub.yaml:6: targets[0].fingerprint.against_dsn: unknown DSN scheme "mongodb://"`},
		{"other engine", target + "      against_dsn: postgres://u@h/db\n", "dbscrub.yaml:6: targets[0].fingerprint.against_dsn: names a PostgreSQL database and the target is SQLite"},
		{"two dsns", pg + "      against_dsn: postgres://u@h2/db\n      against_dsn_env: X\n", "dbscrub.yaml:7: targets[0].fingerprint.against_dsn_env: set only one of against_dsn, against_dsn_env and against_dsn_file"},
		{"dsn env unset", pg + "      against_dsn_env: NOT_SET_ANYWHERE\n", "dbscrub.yaml:6: targets[0].fingerprint.against_dsn_env: environment variable NOT_SET_ANYWHERE is not set"},
		{"password env unset", pg + "      against_dsn: postgres://u@h2/db\n      against_password_env: NOT_SET_ANYWHERE\n", "dbscrub.yaml:7: targets[0].fingerprint.against_password_env: environment variable NOT_SET_ANYWHERE is not set"},
		{"password twice", pg + "      against_dsn: postgres://u:" + secret + "@h2/db\n      against_password_env: PW\n", "dbscrub.yaml:7: targets[0].fingerprint.against_password_env: the DSN postgres://u:xxxxx@h2/db already has a password"},
		{"jobs on SQL Server", "targets:\n  - name: a\n    dsn: sqlserver://u@h?database=d\n    schedule: \"@daily\"\n    fingerprint:\n      against_dsn: sqlserver://u@h2?database=d\n      jobs: 2\n", "dbscrub.yaml:7: targets[0].fingerprint.jobs: does not apply to SQL Server"},
		{"jobs on SQLite", target + "      against_dsn: y.db\n      jobs: 2\n", "dbscrub.yaml:7: targets[0].fingerprint.jobs: does not apply to SQLite"},
		{"bad chunk rows", pg + "      against_dsn: postgres://u@h2/db\n      chunk_rows: 0\n", "dbscrub.yaml:7: targets[0].fingerprint.chunk_rows: must be at least 1"},
		{"unknown field", target + "      agains: " + fp + "\n", `dbscrub.yaml:6: targets[0].fingerprint.agains: unknown field "agains"`},
		{"fingerprint as a check", "targets:\n  - name: a\n    dsn: x.db\n    schedule: \"@daily\"\n    checks: [integrity, fingerprint]\n", "dbscrub.yaml:5: targets[0].checks: sqlite: unknown check \"fingerprint\""},
		{"fingerprint as a check: the hint", "targets:\n  - name: a\n    dsn: x.db\n    schedule: \"@daily\"\n    checks: [fingerprint]\n", "give it a fingerprint: block instead"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig("dbscrub.yaml", []byte(tt.yml), loadOptions{getenv: env(map[string]string{"PW": "pw-" + secret, "X": "x"})})
			if err == nil {
				t.Fatalf("no error for:\n%s", tt.yml)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error\n%s\ndoes not contain\n%s", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows the password: %s", err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "dbscrub.yaml:") {
					t.Errorf("an error line does not start with file:line: %q", line)
				}
			}
		})
	}
	// An inline password of the database compared with warns and is a secret.
	yml := pg + "      against_dsn: postgres://u:" + secret + "@h2/db\n"
	cfg, err := parseConfig("dbscrub.yaml", []byte(yml), loadOptions{getenv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.warnings) != 1 || !strings.HasPrefix(cfg.warnings[0], "dbscrub.yaml:6: targets[0].fingerprint.against_dsn: ") || strings.Contains(cfg.warnings[0], secret) {
		t.Errorf("warnings %q", cfg.warnings)
	}
	if !slices.Contains(cfg.targets[0].secrets, secret) {
		t.Error("the inline password of against_dsn is not a secret")
	}
}

// TestExampleConfigFingerprint uncomments the fingerprint block of the
// example file, with a real fingerprint file, and checks that it is valid
// as documented.
func TestExampleConfigFingerprint(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "dbscrub.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tf := checks.TableFingerprint{Name: "public.orders", Columns: []checks.Column{{Name: "id", Type: "integer"}}, PrimaryKey: []string{"id"}, Keyed: true,
		Chunks: []checks.ChunkFingerprint{{Rows: 3, Hash: checks.Digest{1, 2}}}}
	tf.SumChunks()
	fp := &checks.Fingerprint{SchemaVersion: checks.FingerprintSchemaVersion, Engine: "postgresql", Source: "postgres://scrub@db1/orders",
		Algorithm: "postgresql/v1", Tables: []checks.TableFingerprint{tf}}
	var buf strings.Builder
	if err := fp.Write(&buf); err != nil {
		t.Fatal(err)
	}
	stored := filepath.Join(dir, "orders-before-move.json")
	if err := os.WriteFile(stored, []byte(buf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	var out []string
	in := false
	for _, line := range strings.Split(string(example), "\n") {
		switch {
		case line == "    # fingerprint:":
			in = true
			line = "    fingerprint:"
		case in && strings.HasPrefix(line, "    #   ") && !strings.HasPrefix(line, "    #   #"):
			line = "      " + strings.TrimPrefix(line, "    #   ")
			line = strings.Replace(line, "/var/lib/dbscrub/orders-before-move.json", stored, 1)
		case in && strings.HasPrefix(line, "    #   #"):
		default:
			in = false
		}
		out = append(out, line)
	}
	yml := strings.Join(out, "\n")
	if !strings.Contains(yml, "      against: "+stored) {
		t.Fatalf("no fingerprint block found in the example:\n%s", yml)
	}
	cfg, err := parseConfig(filepath.Join(dir, "dbscrub.yaml"), []byte(yml), loadOptions{getenv: env(map[string]string{
		"ORDERS_PASSWORD": "pw", "ANALYTICS_DSN": "postgres://scrub:pw@analytics.internal/warehouse",
		"WEBHOOK_TOKEN": "token", "OTLP_TOKEN": "token",
	})})
	if err != nil {
		t.Fatal(err)
	}
	if f := cfg.targets[0].fingerprint; f == nil || f.stored != stored {
		t.Fatalf("orders fingerprint: %+v", f)
	}
}
