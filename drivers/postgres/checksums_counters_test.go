package postgres

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/pgtest"
)

// memCounters is an in-memory checks.Counters, as a scheduler provides.
type memCounters struct {
	mu     sync.Mutex
	m      map[string]checks.Counter
	err    error // returned by Last when set
	writes int
}

func newMemCounters() *memCounters { return &memCounters{m: map[string]checks.Counter{}} }

func (c *memCounters) Last(_ context.Context, name string) (checks.Counter, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return checks.Counter{}, false, c.err
	}
	v, ok := c.m[name]
	return v, ok, nil
}

func (c *memCounters) Set(_ context.Context, name string, value int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[name] = checks.Counter{Value: value, SeenAt: time.Now()}
	c.writes++
	return nil
}

func (c *memCounters) value(t *testing.T) int64 {
	t.Helper()
	v, ok, err := c.Last(context.Background(), CounterChecksumFailures)
	if !ok || err != nil {
		t.Fatalf("no %s counter recorded (%v)", CounterChecksumFailures, err)
	}
	return v.Value
}

// TestChecksumFinding judges counts against baselines without a server.
func TestChecksumFinding(t *testing.T) {
	seen := time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)
	cf := func(n int64) ChecksumFailures {
		return ChecksumFailures{Enabled: true, Count: n, Database: n, LastFailure: seen.Add(time.Hour)}
	}
	from := func(n int64) baseline { return baseline{set: true, value: n, seenAt: seen} }
	tests := []struct {
		name      string
		cf        ChecksumFailures
		base      baseline
		scheduled bool
		want      string // "" : no finding
	}{
		{"none counted, first run", cf(0), baseline{}, true, ""},
		{"counted, first run", cf(3), baseline{}, true, "PostgreSQL counted 3 data page checksum failures (this database: 3, shared catalogs: 0); last failure at 2026-11-20T04:00:00Z; the count of 3 is recorded: later runs report only failures counted after it"},
		{"counted, without counters", cf(1), baseline{}, false, "PostgreSQL counted 1 data page checksum failure (this database: 1, shared catalogs: 0)"},
		{"same count", cf(3), from(3), true, ""},
		{"went up", cf(5), from(3), true, "the data page checksum failure count went up from 3 (at 2026-11-20T03:00:00Z) to 5"},
		{"went up from an option", cf(5), baseline{set: true, value: 4}, false, "went up from 4 to 5"},
		{"reset, new failures", cf(2), from(5), true, "PostgreSQL counted 2 data page checksum failures since its statistics were reset (the count was 5 before)"},
		{"reset, none since", cf(0), from(5), true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, ok := checksumFinding("app", tt.cf, tt.base, tt.scheduled)
			if tt.want == "" {
				if ok {
					t.Fatalf("unexpected finding %+v", f)
				}
				return
			}
			if !ok || f.Severity != checks.StatusCorrupt || f.Code != "checksum_failures" || f.Object != "app" || !strings.Contains(f.Message, tt.want) {
				t.Fatalf("finding %+v (%v), want a corruption finding containing %q", f, ok, tt.want)
			}
			if !tt.scheduled && strings.Contains(f.Message, "recorded") {
				t.Errorf("says the count is recorded without counters: %s", f.Message)
			}
		})
	}
}

// TestChecksumBaselineSource: the run's counters win over the option,
// which is the baseline until a count is recorded; a counter store that
// cannot be read is an error, not a silent first run.
func TestChecksumBaselineSource(t *testing.T) {
	ctx := context.Background()
	opt := int64(4)
	c := newMemCounters()
	if b, err := checksumBaseline(ctx, nil, nil, false); err != nil || b.set {
		t.Fatalf("no option, no counters: %+v %v", b, err)
	}
	if b, err := checksumBaseline(ctx, &opt, c, true); err != nil || !b.set || b.value != 4 || !b.seenAt.IsZero() {
		t.Fatalf("option until a count is recorded: %+v %v", b, err)
	}
	_ = c.Set(ctx, CounterChecksumFailures, 7)
	if b, err := checksumBaseline(ctx, &opt, c, true); err != nil || b.value != 7 || b.seenAt.IsZero() {
		t.Fatalf("recorded count: %+v %v", b, err)
	}
	c.err = errors.New("history: database is locked")
	if _, err := checksumBaseline(ctx, &opt, c, true); err == nil || !errors.Is(err, c.err) {
		t.Fatalf("unreadable counters: %v", err)
	}
}

// TestChecksumFailuresScheduled runs the checksums check as a scheduler
// does, with counters in the context, on a cluster whose table has a page
// that fails its checksum: the first run reports the failures, the next
// one (same count) does not, a new failure is reported again, and after
// the statistics are reset the failures counted since are reported.
func TestChecksumFailuresScheduled(t *testing.T) {
	c := pgtest.Fresh(t)
	d := clusterDB(t, c, "cksched")
	d.exec(t, `CREATE TABLE t (a int PRIMARY KEY, b text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 500) g`)
	d.db.Close()
	if err := c.CorruptChecksum(testCtx(t), d.name, "t"); err != nil {
		t.Fatal(err)
	}
	d.reopen(t)
	tg := d.open(t)
	readDamaged := func() {
		t.Helper()
		if _, err := d.db.ExecContext(testCtx(t), "SELECT count(*) FROM t"); err == nil {
			t.Fatal("reading the damaged page did not fail")
		}
	}
	count := func() int64 {
		t.Helper()
		cf, err := tg.ChecksumFailures(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		return cf.Count
	}
	ctrs := newMemCounters()
	run := func() *checks.Report {
		t.Helper()
		cks, err := tg.Checks(CheckChecksums)
		if err != nil {
			t.Fatal(err)
		}
		r, err := checks.NewRunner()
		if err != nil {
			t.Fatal(err)
		}
		return r.Run(checks.WithCounters(testCtx(t), ctrs), tg, cks...)
	}
	wantCorrupt := func(rep *checks.Report, msg string) {
		t.Helper()
		fs := findingsFor(rep, CheckChecksums, d.name)
		if rep.Status != checks.StatusCorrupt || len(fs) != 1 || fs[0].Code != "checksum_failures" || !strings.Contains(fs[0].Message, msg) {
			t.Fatalf("want one checksum_failures finding saying %q:\n%s", msg, dump(t, rep))
		}
	}

	readDamaged()
	first := count()
	if first < 1 {
		t.Fatalf("no checksum failure counted after reading the damaged page")
	}
	wantCorrupt(run(), "PostgreSQL counted")
	if got := ctrs.value(t); got != first {
		t.Fatalf("recorded %d, want the count %d", got, first)
	}

	// The same count on the next run: reported already, not again.
	if rep := run(); rep.Status != checks.StatusHealthy {
		t.Fatalf("unchanged count: status %s, want healthy:\n%s", rep.Status, dump(t, rep))
	}

	// A new failure: corruption again.
	readDamaged()
	readDamaged()
	second := count()
	if second <= first {
		t.Fatalf("the count did not go up: %d then %d", first, second)
	}
	wantCorrupt(run(), "went up from")
	if got := ctrs.value(t); got != second {
		t.Fatalf("recorded %d, want %d", got, second)
	}

	// The statistics are reset: a count below the baseline reports the
	// failures counted since the reset.
	d.exec(t, "SELECT pg_stat_reset()")
	if rep := run(); rep.Status != checks.StatusHealthy || ctrs.value(t) != 0 {
		t.Fatalf("reset, nothing since: status %s, counter %d:\n%s", rep.Status, ctrs.value(t), dump(t, rep))
	}
	_ = ctrs.Set(context.Background(), CounterChecksumFailures, second) // as if the reset happened just after the last run
	readDamaged()
	if n := count(); n < 1 || n >= second {
		t.Fatalf("after the reset: count %d, want between 1 and %d", n, second-1)
	}
	wantCorrupt(run(), "since its statistics were reset")

	// Without counters (dbscrub check), every run reports every failure.
	rep := runChecks(t, tg, []string{CheckChecksums})
	if fs := findingsFor(rep, CheckChecksums, d.name); rep.Status != checks.StatusCorrupt || len(fs) != 1 || strings.Contains(fs[0].Message, "recorded") {
		t.Fatalf("without counters:\n%s", dump(t, rep))
	}
}
