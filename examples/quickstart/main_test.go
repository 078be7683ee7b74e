package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// TestQuickstart runs the demo as `go run ./examples/quickstart` does and
// checks that it caught the damage, said so, and cleaned up.
func TestQuickstart(t *testing.T) {
	var out bytes.Buffer
	tmp := t.TempDir()
	code := run(context.Background(), demo{out: &out, tempDir: tmp, damage: damagePage})
	t.Logf("output:\n%s", out.String())
	if code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	for _, want := range []string{
		"dbscrub: HEALTHY",
		"dbscrub: CORRUPT",
		"orders, page ",                      // the finding names the table and the page
		"btreeInitPage() returns error code", // SQLite's own words
		"errors.Is(err, checks.ErrCorrupt): true",
		"OK: the damaged copy was caught.",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output does not contain %q", want)
		}
	}
	if lines := strings.Count(out.String(), "\n"); lines > 25 {
		t.Errorf("%d lines of output; the quickstart should stay short", lines)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("the demo left %v behind", entries)
	}
}

// TestQuickstartFailsWhenNotCaught checks the exit code is not 0 when the
// copy checks clean (here: it is not damaged at all).
func TestQuickstartFailsWhenNotCaught(t *testing.T) {
	var out bytes.Buffer
	noDamage := func(context.Context, string) (string, error) { return "left it alone", nil }
	code := run(context.Background(), demo{out: &out, tempDir: t.TempDir(), damage: noDamage})
	if code == 0 {
		t.Fatalf("exit code 0 for an undamaged copy\n%s", out.String())
	}
	if !strings.Contains(out.String(), "did not catch") {
		t.Errorf("the output does not say the damage was not caught:\n%s", out.String())
	}
}
