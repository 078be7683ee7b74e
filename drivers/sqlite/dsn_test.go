package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/sqlitetest"
)

func TestParseDSN(t *testing.T) {
	tests := []struct {
		dsn, path, params, err string
	}{
		{dsn: "/var/lib/app.db", path: "/var/lib/app.db"},
		{dsn: "app.db", path: "app.db"},
		{dsn: "data/app.db", path: "data/app.db"},
		{dsn: "odd?name#.db", path: "odd?name#.db"}, // a plain path is literal
		{dsn: "sqlite:///var/lib/app.db", path: "/var/lib/app.db"},
		{dsn: "SQLite:///var/lib/app.db", path: "/var/lib/app.db"},
		{dsn: "sqlite://app.db", path: "app.db"},
		{dsn: "sqlite://data/app.db", path: "data/app.db"},
		{dsn: "sqlite:app.db", path: "app.db"},
		{dsn: "sqlite:///var/lib/my%20app.db", path: "/var/lib/my app.db"},
		{dsn: "file:app.db", path: "app.db"},
		{dsn: "file:app.db?mode=ro", path: "app.db"},
		{dsn: "file:/var/lib/app.db?vfs=unix-none&immutable=1", path: "/var/lib/app.db", params: "immutable=1&vfs=unix-none"},
		{dsn: "file:///var/lib/app.db", path: "/var/lib/app.db"},
		{dsn: "file://localhost/var/lib/app.db", path: "/var/lib/app.db"},
		{dsn: "file:/var/lib/a%3Fb.db#frag", path: "/var/lib/a?b.db"},
		{dsn: "", err: "empty DSN"},
		{dsn: "sqlite://", err: "names no file"},
		{dsn: "file:?mode=ro", err: "names no file"},
		{dsn: "file:app.db?mode=rwc", err: "read-only"},
		{dsn: "file:app.db?mode=rw", err: "read-only"},
		{dsn: "file:app.db?mode=ro&mode=rw", err: "read-only"},
		{dsn: "file:app.db?_pragma=journal_mode(wal)", err: `parameter "_pragma" is not accepted`},
		{dsn: "sqlite:///app.db?bogus=1", err: `parameter "bogus" is not accepted`},
		{dsn: "file://db.example.com/app.db", err: "only local files"},
		{dsn: ":memory:", err: "in-memory"},
		{dsn: "file::memory:?cache=shared", err: "in-memory"},
		{dsn: "sqlite::memory:", err: "in-memory"},
		{dsn: "sqlite:///bad%zzescape.db", err: "bad escape"},
	}
	for _, tt := range tests {
		t.Run(tt.dsn, func(t *testing.T) {
			path, params, err := parseDSN(tt.dsn)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseDSN(%q) = %q, %v; want an error containing %q", tt.dsn, path, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseDSN(%q): %v", tt.dsn, err)
			}
			if path != tt.path || params.Encode() != tt.params {
				t.Errorf("parseDSN(%q) = %q, %q; want %q, %q", tt.dsn, path, params.Encode(), tt.path, tt.params)
			}
		})
	}
}

func TestOpenRejectsBadDSN(t *testing.T) {
	if _, err := Open("file:app.db?mode=rwc"); err == nil || !strings.HasPrefix(err.Error(), "sqlite: ") {
		t.Errorf("Open: %v, want an error", err)
	}
}

func TestFileURI(t *testing.T) {
	uri, err := fileURI("/data/50% off?#.db", nil, config{busyTimeout: DefaultBusyTimeout})
	if err != nil {
		t.Fatal(err)
	}
	want := "file:/data/50%25 off%3F%23.db?_pragma=busy_timeout%285000%29&_pragma=query_only%281%29&mode=ro"
	if filepath.Separator == '/' && uri != want {
		t.Errorf("fileURI = %q\nwant      %q", uri, want)
	}
}

// TestOddPath checks a database whose path needs escaping in a URI, end to
// end: the check must find the file, not a truncated name.
func TestOddPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "50% off #1?")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skip("the file system refuses the name:", err)
	}
	// sqlitetest takes plain paths only, so make the database elsewhere.
	p := filepath.Join(dir, "shop db.sqlite")
	plain := sample(t)
	if err := sqlitetest.BreakForeignKey(plain); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(plain, p); err != nil {
		t.Fatal(err)
	}
	for _, dsn := range []string{p, "sqlite://" + strings.NewReplacer("%", "%25", "#", "%23", "?", "%3F").Replace(p)} {
		rep := run(t, context.Background(), open(t, dsn))
		if rep.Status != checks.StatusCorrupt || !errors.Is(rep.Err(), checks.ErrCorrupt) {
			t.Errorf("%s: status %s (%s), want corrupt (the orphan row)", dsn, rep.Status, rep.Reason)
		}
	}
}
