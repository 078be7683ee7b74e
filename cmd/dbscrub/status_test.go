package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/sqlitetest"
	"github.com/dbscrub/dbscrub/scheduler/alarm"
)

// TestStatus records a healthy and a corrupt run with dbscrub run --once,
// then reads them back with dbscrub status (no daemon running).
func TestStatus(t *testing.T) {
	clean, damaged := sample(t), sample(t)
	if err := sqlitetest.DamageIndex(damaged, sqlitetest.SampleIndex); err != nil {
		t.Fatal(err)
	}
	hist := filepath.Join(t.TempDir(), "h.db")
	cfg := writeConfig(t, fmt.Sprintf(`history: {path: %s}
targets:
  - name: clean
    dsn: %s
    schedule: "@daily"
    labels: {team: web}
  - name: damaged
    dsn: %s
    schedule: "@daily"
  - name: later
    dsn: %s
    schedule: "@daily"
`, hist, clean, damaged, clean))
	// Only two targets ran: "later" was added to the config afterwards.
	first := writeConfig(t, fmt.Sprintf("history: {path: %s}\ntargets:\n  - {name: clean, dsn: %s, schedule: \"@daily\", labels: {team: web}}\n  - {name: damaged, dsn: %s, schedule: \"@daily\"}\n", hist, clean, damaged))
	if code, stdout, stderr := runCLI(t, "run", "--config", first, "--once"); code != exitCorrupt {
		t.Fatalf("run --once: exit %d\n%s%s", code, stdout, stderr)
	}

	code, stdout, stderr := runCLI(t, "status", "--config", cfg)
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	t.Logf("status:\n%s", stdout)
	blocks := strings.Split(stdout, "\n\n")
	if len(blocks) != 3 {
		t.Fatalf("want 3 targets, got:\n%s", stdout)
	}
	for i, want := range [][]string{
		{"clean  (team=web)", "last run  ", "(manual), HEALTHY", "integrity", "foreign_keys", "1 of 1 verified, oldest shop.db", "alarms    none open"},
		{"damaged", "CORRUPT: integrity: ", "integrity     corrupt      never", "alarms    1 open:", "CRITICAL corruption integrity since "},
		{"later", "last run  never", "alarms    none open"},
	} {
		for _, w := range want {
			if !strings.Contains(blocks[i], w) {
				t.Errorf("target %d lacks %q:\n%s", i, w, blocks[i])
			}
		}
	}

	// The same from the history file alone, as JSON.
	code, stdout, _ = runCLI(t, "status", "--history", hist, "--format", "json")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	var rep statusReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if rep.SchemaVersion != 1 || rep.History != hist || len(rep.Targets) != 2 {
		t.Fatalf("report: %+v", rep)
	}
	d := rep.Targets[1]
	if d.Name != "damaged" || d.Configured != nil || d.LastRun == nil || d.LastRun.Status != checks.StatusCorrupt || d.LastRun.Findings == 0 {
		t.Errorf("damaged: %+v", d)
	}
	if len(d.Alarms) != 1 || d.Alarms[0].Kind != alarm.KindCorruption || d.Alarms[0].Severity != alarm.SeverityCritical {
		t.Errorf("alarms: %+v", d.Alarms)
	}
	var integrity bool
	for _, c := range d.Checks {
		if c.Check == "integrity" {
			integrity = true
			if c.LastStatus != checks.StatusCorrupt || !c.LastSuccessAt.IsZero() || c.Coverage.Keys != 1 {
				t.Errorf("integrity: %+v", c)
			}
		}
	}
	if !integrity {
		t.Errorf("no integrity check state: %+v", d.Checks)
	}
	if c := rep.Targets[0]; len(c.Alarms) != 0 || c.Labels["team"] != "web" {
		t.Errorf("clean: %+v", c)
	}
}

func TestStatusErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"status", "--history", filepath.Join(dir, "none.db")}, "no history at"},
		{[]string{"status", "--history", "h.db", "--config", "c.yaml"}, "not both"},
		{[]string{"status", "--format", "xml"}, "--format must be text or json"},
		{[]string{"status", "--config", writeConfig(t, "targets: 3\n")}, ":1: targets: want a list"},
	}
	for _, tt := range tests {
		code, _, stderr := runCLI(t, tt.args...)
		if code != exitError || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tt.args, code, stderr, tt.want)
		}
	}
}
