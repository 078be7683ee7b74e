package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestQuickstart runs the demo as `go run ./examples/quickstart` does (with
// a shorter schedule) and checks the story happened in order: healthy,
// damaged, corrupt with the alarm firing, restored, healthy with the alarm
// resolved; and that it cleaned up.
func TestQuickstart(t *testing.T) {
	var out bytes.Buffer
	tmp := t.TempDir()
	start := time.Now()
	code := run(context.Background(), demo{out: &out, tempDir: tmp, every: time.Second, damage: damagePage})
	t.Logf("output (%.1fs):\n%s", time.Since(start).Seconds(), out.String())
	if code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	s := out.String()
	// In this order.
	last := 0
	for _, want := range []string{
		"1. Created shop.db",
		"run 1: HEALTHY",
		"spans:   dbscrub.run (healthy",
		"metrics: dbscrub.last_success.timestamp{foreign_keys=",
		"2. Damaged shop.db: zeroed page ",
		": CORRUPT",
		"orders, page ",                      // the finding names the table and the page
		"btreeInitPage() returns error code", // SQLite's own words
		"dbscrub.check integrity (corrupt, status Error)",
		"dbscrub.runs{corrupt=1",
		">>> ALARM FIRING: critical corruption (integrity)",
		"3. Restored shop.db from the backup copy.",
		": HEALTHY",
		">>> ALARM RESOLVED: corruption (integrity)",
		"OK: the corruption alarm fired",
	} {
		i := strings.Index(s[last:], want)
		if i < 0 {
			t.Errorf("the output lacks %q after position %d", want, last)
			continue
		}
		last += i + len(want)
	}
	if lines := strings.Count(s, "\n"); lines > 45 {
		t.Errorf("%d lines of output; the quickstart should stay readable", lines)
	}
	if strings.Contains(s, `"SpanContext"`) || strings.Contains(s, `"ScopeMetrics"`) {
		t.Error("raw exporter JSON in the output")
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("the demo left %v behind", entries)
	}
}

// TestQuickstartFailsWhenNotCaught checks the exit code is not 0 when the
// database checks clean after the "damage" (here: it is not damaged).
func TestQuickstartFailsWhenNotCaught(t *testing.T) {
	var out bytes.Buffer
	noDamage := func(context.Context, string) (string, error) { return "left it alone", nil }
	code := run(context.Background(), demo{out: &out, tempDir: t.TempDir(), every: 500 * time.Millisecond, damage: noDamage})
	if code == 0 {
		t.Fatalf("exit code 0 for an undamaged database\n%s", out.String())
	}
	if !strings.Contains(out.String(), "FAIL: dbscrub did not catch") {
		t.Errorf("the output does not say the damage was not caught:\n%s", out.String())
	}
}
