package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/scheduler/alarm"
	"github.com/dbscrub/dbscrub/scheduler/history"
)

// TestRunOnceFingerprint schedules the two kinds of fingerprint
// comparison on a real SQLite database: against a stored fingerprint
// (dbscrub fingerprint -o) and against a copy. Identical, both are
// healthy; after one row changes, dbscrub run --once exits 2 and the
// output, the history and the alarm name the differing key ranges.
func TestRunOnceFingerprint(t *testing.T) {
	shop := sample(t)
	before := fingerprintFile(t, shop) // chunks of 100 rows
	restored := copyOf(t, shop)
	hist := filepath.Join(t.TempDir(), "h.db")
	cfg := writeConfig(t, fmt.Sprintf(`history: {path: %s}
targets:
  - name: shop
    dsn: %s
    schedule: "@daily"
    fingerprint:
      against: %s
  - name: shop-vs-restore
    dsn: %s
    checks: [integrity]
    schedule: "@daily"
    fingerprint:
      against_dsn: %s
      tables: [orders, customers]
`, hist, shop, before, shop, restored))

	code, stdout, stderr := runCLI(t, "run", "--config", cfg, "--once")
	if code != exitOK {
		t.Fatalf("identical: exit %d, want 0\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !regexp.MustCompile(`(?m)^shop\s+HEALTHY`).MatchString(stdout) || !regexp.MustCompile(`(?m)^shop-vs-restore\s+HEALTHY`).MatchString(stdout) {
		t.Errorf("stdout: %s", stdout)
	}

	execSQL(t, shop, "UPDATE orders SET note = 'changed' WHERE id = 123")
	code, stdout, stderr = runCLI(t, "run", "--config", cfg, "--once", "--format", "json")
	if code != exitCorrupt {
		t.Fatalf("changed: exit %d, want 2\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	var results []onceResult
	if err := json.Unmarshal([]byte(stdout), &results); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	want := map[string]string{
		"shop":            "orders: the rows with id in (100, 200] differ: 100 rows in A, 100 in B (same count, different contents)",
		"shop-vs-restore": "orders: the rows with id in (122, 123] differ: 1 row in A, 1 in B (same count, different contents)",
	}
	for _, r := range results {
		if r.Status != checks.StatusCorrupt || r.Report == nil {
			t.Errorf("%s: %s %s", r.Target, r.Status, r.Reason)
			continue
		}
		var msgs []string
		for _, f := range r.Report.Findings() {
			if f.Check != checks.CheckFingerprint {
				t.Errorf("%s: a finding of check %s: %+v", r.Target, f.Check, f)
			}
			msgs = append(msgs, f.Message)
		}
		if len(msgs) != 1 || !strings.Contains(msgs[0], want[r.Target]) {
			t.Errorf("%s: findings %q, want one containing %q", r.Target, msgs, want[r.Target])
		}
	}
	if len(results) != 2 {
		t.Fatalf("results %+v", results)
	}

	// The history holds the findings and a firing corruption alarm of the
	// fingerprint check; the log sink logged it.
	st := openHistory(t, hist)
	ctx := context.Background()
	fs, err := st.Findings(ctx, history.FindingQuery{Target: "shop", Check: checks.CheckFingerprint})
	if err != nil || len(fs) != 1 || !strings.Contains(fs[0].Message, "id in (100, 200]") {
		t.Errorf("history findings %+v, %v", fs, err)
	}
	states, err := st.CheckStates(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	var checkNames []string
	for _, cs := range states {
		checkNames = append(checkNames, cs.Check+"="+string(cs.LastStatus))
	}
	if got := strings.Join(checkNames, " "); got != "fingerprint=corrupt foreign_keys=healthy integrity=healthy" {
		t.Errorf("check states: %s", got)
	}
	recs, err := st.Alarms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	firing := map[string]bool{}
	for _, r := range recs {
		if r.Kind == alarm.KindCorruption && r.State == alarm.StateFiring && r.Check == checks.CheckFingerprint {
			firing[r.Target] = strings.Contains(r.Description, "id in (")
		}
	}
	if !firing["shop"] || !firing["shop-vs-restore"] {
		t.Errorf("firing fingerprint corruption alarms naming a range: %v", firing)
	}
	if !strings.Contains(stderr, "dbscrub alarm firing") {
		t.Errorf("the log sink did not log the alarm:\n%s", stderr)
	}

	// dbscrub status shows the check like any other.
	code, stdout, _ = runCLI(t, "status", "--config", cfg)
	if code == exitError || !strings.Contains(stdout, "fingerprint") {
		t.Errorf("status: exit %d\n%s", code, stdout)
	}
}

// TestRunOnceFingerprintNotVerified: a database to compare with that is
// not there makes the run not verified (exit 1, not_verified alarm),
// never healthy.
func TestRunOnceFingerprintNotVerified(t *testing.T) {
	hist := filepath.Join(t.TempDir(), "h.db")
	missing := filepath.Join(t.TempDir(), "restored.db")
	cfg := writeConfig(t, fmt.Sprintf(`history: {path: %s}
targets:
  - name: shop
    dsn: %s
    schedule: "@daily"
    fingerprint:
      against_dsn: %s
`, hist, sample(t), missing))
	code, stdout, stderr := runCLI(t, "run", "--config", cfg, "--once")
	if code != exitError {
		t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !regexp.MustCompile(`(?m)^shop\s+ERROR\s+fingerprint: `).MatchString(stdout) {
		t.Errorf("stdout: %s", stdout)
	}
	recs, err := openHistory(t, hist).Alarms(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, r := range recs {
		found = found || (r.Kind == alarm.KindNotVerified && r.Check == checks.CheckFingerprint && r.State == alarm.StateFiring)
	}
	if !found {
		t.Errorf("no firing not_verified alarm of the fingerprint check: %+v", recs)
	}
}
