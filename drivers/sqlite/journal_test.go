package sqlite

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dbscrub/dbscrub/checks"
)

// TestHotJournal checks a copy taken in the middle of a write transaction:
// its hot journal must be rolled back before the file can be read, which a
// read-only check cannot do. That is an error that says what to do, not
// corruption, and the files stay as they are.
func TestHotJournal(t *testing.T) {
	p := sample(t)
	// A tiny cache makes the transaction spill changed pages into the file.
	w, err := sql.Open("sqlite", p+"?_pragma=cache_size(10)")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	conn, err := w.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, s := range []string{"BEGIN", "UPDATE orders SET note = note || 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'"} {
		if _, err := conn.ExecContext(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	for _, suf := range []string{"", "-journal"} {
		b, err := os.ReadFile(p + suf)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "hot.db"+suf), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hot := filepath.Join(dir, "hot.db")
	before := snapshot(t, hot)
	rep := run(t, context.Background(), open(t, hot))
	if rep.Status != checks.StatusError || !strings.Contains(rep.Reason, "hot journal") {
		t.Fatalf("status %s (%s), want error: hot journal", rep.Status, rep.Reason)
	}
	if after := snapshot(t, hot); after != before {
		t.Errorf("the check changed the files:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
