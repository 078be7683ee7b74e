package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/sqlitetest"
	"github.com/dbscrub/dbscrub/scheduler/alarm"
	"github.com/dbscrub/dbscrub/scheduler/history"
)

// writeConfig writes a config file into a new temporary directory and
// returns its path.
func writeConfig(t *testing.T, yml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dbscrub.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func sqliteTargetConfig(path string) string {
	return fmt.Sprintf(`targets:
  - name: shop
    dsn: %s
    labels: {team: payments}
    schedule: "@every 1s"
`, path)
}

func openHistory(t *testing.T, path string) *history.SQLite {
	t.Helper()
	st, err := history.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestRunOnceHealthy(t *testing.T) {
	cfg := writeConfig(t, sqliteTargetConfig(sample(t)))
	code, stdout, stderr := runCLI(t, "run", "--config", cfg, "--once")
	if code != exitOK {
		t.Fatalf("exit %d, want 0\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !regexp.MustCompile(`shop\s+HEALTHY\s+\d+ objects`).MatchString(stdout) {
		t.Errorf("stdout: %s", stdout)
	}
	st := openHistory(t, filepath.Join(filepath.Dir(cfg), defaultHistoryFile))
	runs, err := st.Runs(context.Background(), history.RunQuery{Target: "shop"})
	if err != nil || len(runs) != 1 || runs[0].Status != checks.StatusHealthy {
		t.Errorf("history runs: %+v, %v", runs, err)
	}
}

func TestRunOnceDamaged(t *testing.T) {
	clean, damaged := sample(t), sample(t)
	if err := sqlitetest.DamageIndex(damaged, sqlitetest.SampleIndex); err != nil {
		t.Fatal(err)
	}
	hist := filepath.Join(t.TempDir(), "state", "h.db") // the directory is created
	cfg := writeConfig(t, fmt.Sprintf(`history: {path: %s}
targets:
  - name: clean
    dsn: %s
    schedule: "@daily"
  - name: damaged
    dsn: %s
    schedule: "@daily"
    labels: {runbook_url: "https://wiki/db-corruption"}
`, hist, clean, damaged))
	code, stdout, stderr := runCLI(t, "run", "--config", cfg, "--once", "--format", "json")
	if code != exitCorrupt {
		t.Fatalf("exit %d, want 2\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	var results []onceResult
	if err := json.Unmarshal([]byte(stdout), &results); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if len(results) != 2 || results[0].Status != checks.StatusHealthy || results[1].Status != checks.StatusCorrupt || results[1].ExitCode != exitCorrupt {
		t.Errorf("results: %+v", results)
	}
	// The alarm is recorded in the history, and was logged (the default sink).
	st := openHistory(t, hist)
	recs, err := st.Alarms(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, r := range recs {
		if r.Target == "damaged" && r.Kind == alarm.KindCorruption && r.State == alarm.StateFiring {
			found = true
			if r.Labels["runbook_url"] != "https://wiki/db-corruption" {
				t.Errorf("the alarm lacks the target's labels: %+v", r.Labels)
			}
		}
		if r.Target == "clean" {
			t.Errorf("an alarm for the clean target: %+v", r.Alarm)
		}
	}
	if !found {
		t.Errorf("no firing corruption alarm in the history: %+v", recs)
	}
	if !strings.Contains(stderr, "dbscrub alarm firing") {
		t.Errorf("the log sink did not log the alarm:\n%s", stderr)
	}
}

func TestRunConfigError(t *testing.T) {
	cfg := writeConfig(t, "targets:\n  - name: a\n    dsn: x.db\n    schedule: \"*/5x * * * *\"\n")
	code, stdout, stderr := runCLI(t, "run", "--config", cfg, "--once")
	if code != exitError {
		t.Fatalf("exit %d", code)
	}
	if !strings.HasPrefix(stderr, cfg+":4: targets[0].schedule: ") || !strings.Contains(stderr, "nothing was started") || stdout != "" {
		t.Errorf("stderr: %s\nstdout: %s", stderr, stdout)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), defaultHistoryFile)); err == nil {
		t.Error("a history file was created for an invalid config")
	}
	if code, _, stderr := runCLI(t, "run", "--config", filepath.Join(t.TempDir(), "none.yaml")); code != exitError || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing config: exit %d, %s", code, stderr)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunDaemon runs the daemon with a schedule of one second and scrapes
// /metrics and /healthz, then stops it as SIGTERM does.
func TestRunDaemon(t *testing.T) {
	hist := filepath.Join(t.TempDir(), "h.db")
	cfg := writeConfig(t, fmt.Sprintf("history: {path: %s}\nhttp: {listen: \"127.0.0.1:0\"}\n", hist)+sqliteTargetConfig(sample(t)))
	addrs := make(chan string, 1)
	onListening = func(addr string) { addrs <- addr }
	t.Cleanup(func() { onListening = nil })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	exited := make(chan int, 1)
	go func() { exited <- run(ctx, []string{"run", "--config", cfg}, &stdout, &stderr) }()
	var base string
	select {
	case addr := <-addrs:
		base = "http://" + addr
	case code := <-exited:
		t.Fatalf("exited %d before listening:\n%s", code, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("not listening after 10s:\n%s", stderr.String())
	}
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if code, body := get("/healthz"); code != http.StatusOK || !strings.HasPrefix(body, "ok") {
		t.Errorf("/healthz: %d %q", code, body)
	}
	// After the first scheduled run, the last success of each check is a
	// Unix time.
	re := regexp.MustCompile(`(?m)^dbscrub_last_success_timestamp_seconds\{[^}]*dbscrub_check="integrity"[^}]*dbscrub_target="shop"[^}]*\} (\S+)$`)
	deadline := time.Now().Add(15 * time.Second)
	var metrics string
	for {
		_, metrics = get("/metrics")
		if m := re.FindStringSubmatch(metrics); m != nil {
			v, err := strconv.ParseFloat(m[1], 64)
			if err == nil && v > float64(time.Now().Add(-time.Minute).Unix()) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no last success in /metrics after 15s:\n%s\nlog:\n%s", metrics, stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, want := range []string{"dbscrub_runs_total{", "dbscrub_bytes_verified_total{", "dbscrub_run_duration_seconds_bucket{", "go_goroutines "} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	cancel() // SIGINT/SIGTERM
	select {
	case code := <-exited:
		if code != exitOK {
			t.Errorf("exit %d after shutdown:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit 30s after the signal")
	}
	log := stderr.String()
	for _, want := range []string{"serving /metrics and /healthz", "target scheduled", "run finished", "shutting down", "stopped"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("the HTTP server still answers after exit")
	}
}

func TestHealthz(t *testing.T) {
	d := &daemon{cfg: &runConfig{targets: []*targetConfig{{name: "a"}}}}
	get := func() (int, string) {
		rec := httptest.NewRecorder()
		d.healthz(rec, httptest.NewRequest("GET", "/healthz", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get(); code != http.StatusServiceUnavailable {
		t.Errorf("before start: %d %q", code, body)
	}
	d.healthy.Store(true)
	if code, body := get(); code != http.StatusOK || body != "ok: 1 target scheduled\n" {
		t.Errorf("running: %d %q", code, body)
	}
	_ = d.close(time.Second) // shutdown starts
	if code, body := get(); code != http.StatusServiceUnavailable || body != "shutting down\n" {
		t.Errorf("shutting down: %d %q", code, body)
	}
}

// TestRunPasswordNeverLeaks gives a PostgreSQL target's password through
// password_env, makes the run fail (nothing listens on the port), and
// greps stdout, stderr (the log, alarms included), the status output and
// every file of the history for the password.
func TestRunPasswordNeverLeaks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now
	t.Setenv("DBSCRUB_TEST_PASSWORD", secret)
	dir := t.TempDir()
	cfg := writeConfig(t, fmt.Sprintf(`history: {path: %s}
alarms:
  sinks: [{type: log}]
targets:
  - name: orders
    dsn: postgres://scrub@127.0.0.1:%d/orders?sslmode=disable&connect_timeout=5
    password_env: DBSCRUB_TEST_PASSWORD
    schedule: "@daily"
`, filepath.Join(dir, "h.db"), port))
	code, stdout, stderr := runCLI(t, "run", "--config", cfg, "--once", "--log-level", "debug")
	if code != exitError {
		t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "orders") || !strings.Contains(stdout, "ERROR") || !strings.Contains(stderr, "dbscrub alarm firing") {
		t.Errorf("stdout: %s\nstderr: %s", stdout, stderr)
	}
	// runCLI fails the test when stdout or stderr holds the password.
	runCLI(t, "status", "--config", cfg)
	runCLI(t, "status", "--config", cfg, "--format", "json")
	runCLI(t, "run", "--config", cfg, "--once", "--format", "json", "--log-format", "json")

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("the history file %s holds the password", e.Name())
		}
	}
}

func TestRunBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--format", "xml"},
		{"run", "--log-level", "loud"},
		{"run", "--shutdown-timeout", "0s"},
		{"run", "extra"},
	} {
		if code, _, stderr := runCLI(t, args...); code != exitError || !strings.HasPrefix(stderr, "dbscrub run: ") {
			t.Errorf("%v: exit %d, %q", args, code, stderr)
		}
	}
	if code, _, _ := runCLI(t, "run", "-h"); code != exitOK {
		t.Errorf("run -h: exit %d", code)
	}
}

func TestWorse(t *testing.T) {
	for _, tt := range []struct{ a, b, want int }{
		{exitOK, exitWarning, exitWarning},
		{exitWarning, exitError, exitError},
		{exitError, exitCorrupt, exitCorrupt},
		{exitCorrupt, exitOK, exitCorrupt},
		{exitError, exitWarning, exitError},
	} {
		if got := worse(tt.a, tt.b); got != tt.want {
			t.Errorf("worse(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestRunExportsTraces points telemetry.otlp at a receiver and checks that
// the spans of a --once run reach it, with the configured header.
func TestRunExportsTraces(t *testing.T) {
	var mu sync.Mutex
	var posts int
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.ReadAll(r.Body)
		mu.Lock()
		posts++
		auth = r.Header.Get("Authorization")
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	t.Setenv("DBSCRUB_TEST_OTLP_TOKEN", "tok123")
	cfg := writeConfig(t, fmt.Sprintf(`telemetry:
  otlp:
    endpoint: %s
    headers: {Authorization: "Bearer ${DBSCRUB_TEST_OTLP_TOKEN}"}
`, srv.URL)+sqliteTargetConfig(sample(t)))
	if code, stdout, stderr := runCLI(t, "run", "--config", cfg, "--once"); code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if posts == 0 || auth != "Bearer tok123" {
		t.Errorf("%d OTLP requests, Authorization %q", posts, auth)
	}
}
