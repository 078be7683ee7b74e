package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/scheduler/alarm"
	"github.com/dbscrub/dbscrub/scheduler/history"
)

// fpTarget is a fakeTarget that can fingerprint itself: it returns fp, or
// err (the database went away).
type fpTarget struct {
	fakeTarget
	mu    sync.Mutex
	fp    *checks.Fingerprint
	err   error
	calls int
}

func (f *fpTarget) Fingerprint(context.Context, ...checks.FingerprintOption) (*checks.Fingerprint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	return f.fp, nil
}

func (f *fpTarget) set(fp *checks.Fingerprint, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fp, f.err = fp, err
}

// closingFP is a second database to compare with, counting its closes.
type closingFP struct {
	fpTarget
	closed atomic.Int32
}

func (c *closingFP) Close() error { c.closed.Add(1); return nil }

func key(v string) checks.Key { return checks.Key{json.RawMessage(v)} }

// testFingerprint is public.orders (id 1..250 in chunks up to 100, 200
// and the rest) with the given chunk hashes.
func testFingerprint(source string, hashes ...uint64) *checks.Fingerprint {
	tf := checks.TableFingerprint{Name: "public.orders", Columns: []checks.Column{{Name: "id", Type: "integer"}, {Name: "note", Type: "text"}},
		PrimaryKey: []string{"id"}, Keyed: true,
		Chunks: []checks.ChunkFingerprint{
			{Upper: key("100"), Rows: 100, Hash: checks.Digest{hashes[0], hashes[0]}},
			{Lower: key("100"), Upper: key("200"), Rows: 100, Hash: checks.Digest{hashes[1], hashes[1]}},
			{Lower: key("200"), Rows: 50, Hash: checks.Digest{hashes[2], hashes[2]}},
		}}
	tf.SumChunks()
	return &checks.Fingerprint{SchemaVersion: checks.FingerprintSchemaVersion, Engine: "postgresql", Source: source,
		Algorithm: "test/v1", TakenAt: t0, Tables: []checks.TableFingerprint{tf}}
}

var pgInfo = checks.TargetInfo{Engine: "postgresql", Name: "postgres://scrub@db1:5432/orders", Host: "db1", Port: 5432, Database: "orders"}

func checkReport(r *history.Run, name string) *checks.CheckReport {
	for _, cr := range r.Report.Checks {
		if cr.Check == name {
			return cr
		}
	}
	return nil
}

// TestFingerprintCompareStored schedules a comparison with a stored
// fingerprint next to a named check: equal is healthy and covered, a
// changed range is corrupt with an alarm naming the table and the range,
// and it resolves once the data is equal again.
func TestFingerprintCompareStored(t *testing.T) {
	h := newHarness(t)
	stored := testFingerprint("before.json", 1, 2, 3)
	live := &fpTarget{fakeTarget: fakeTarget{info: pgInfo, checks: []*fakeCheck{newCheck("heap", tasksOf(1)...)}}, fp: testFingerprint("postgres://scrub@db1:5432/orders", 1, 2, 3)}
	loads := 0
	h.register(Target{Name: "db", Labels: labels, Target: live, Plan: Plan{
		Checks:   []string{"heap"},
		Schedule: Schedule{Every: 24 * time.Hour},
		Extra: []ExtraCheck{CompareFingerprint(func(context.Context) (*checks.Fingerprint, error) {
			loads++
			return stored, nil
		})},
	}})

	r := h.runNow("db")
	cr := checkReport(r, checks.CheckFingerprint)
	if r.Status != checks.StatusHealthy || cr == nil || cr.Status != checks.StatusHealthy || cr.Coverage.ObjectsVerified != 1 || cr.Coverage.TasksCompleted != 1 {
		t.Fatalf("equal data: run %s, fingerprint check %+v", r.Status, cr)
	}
	if checkReport(r, "heap") == nil || loads != 1 || live.calls != 1 {
		t.Fatalf("heap ran: %v, loads %d, fingerprints %d", checkReport(r, "heap") != nil, loads, live.calls)
	}
	ctx := context.Background()
	cov, err := h.store.Coverage(ctx, "db", checks.CheckFingerprint)
	if err != nil || len(cov) != 1 || cov[0].Key != checks.CheckFingerprint || !cov[0].LastVerifiedAt.Equal(r.StartedAt) {
		t.Fatalf("coverage %+v, %v", cov, err)
	}
	states, err := h.store.CheckStates(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, cs := range states {
		if cs.Check == checks.CheckFingerprint {
			found = cs.LastSuccessAt.Equal(r.StartedAt)
		}
	}
	if !found {
		t.Fatalf("no last success of the fingerprint check in %+v", states)
	}
	h.noNotification()

	// A row of (100, 200] changed.
	live.set(testFingerprint("postgres://scrub@db1:5432/orders", 1, 7, 3), nil)
	h.clk.Advance(time.Hour)
	r = h.runNow("db")
	cr = checkReport(r, checks.CheckFingerprint)
	if r.Status != checks.StatusCorrupt || cr.Status != checks.StatusCorrupt || len(cr.Findings) != 1 {
		t.Fatalf("changed data: run %s, check %+v", r.Status, cr)
	}
	f := cr.Findings[0]
	if f.Object != "public.orders" || f.Task != checks.CheckFingerprint || !strings.Contains(f.Message, "id in (100, 200]") || !strings.Contains(f.Message, "same count, different contents") {
		t.Fatalf("finding %+v", f)
	}
	a := one(t, h.notification())
	if a.Kind != alarm.KindCorruption || a.Check != checks.CheckFingerprint || a.State != alarm.StateFiring || a.Labels["team"] != "payments" ||
		!strings.Contains(a.Summary, "public.orders") || !strings.Contains(a.Description, "id in (100, 200]") {
		t.Fatalf("alarm %+v", a)
	}
	fs, err := h.store.Findings(ctx, history.FindingQuery{Target: "db"})
	if err != nil || len(fs) != 1 || fs[0].Check != checks.CheckFingerprint {
		t.Fatalf("stored findings %+v, %v", fs, err)
	}

	// Equal again: resolved.
	live.set(testFingerprint("postgres://scrub@db1:5432/orders", 1, 2, 3), nil)
	h.clk.Advance(time.Hour)
	if r := h.runNow("db"); r.Status != checks.StatusHealthy {
		t.Fatalf("run %s", r.Status)
	}
	if a := one(t, h.notification()); a.Kind != alarm.KindCorruption || a.State != alarm.StateResolved {
		t.Fatalf("alarm %+v", a)
	}
	if loads != 3 {
		t.Fatalf("the stored fingerprint was loaded %d times, want once per run", loads)
	}
}

// TestFingerprintCompareNotVerified: a comparison that could not run is
// not verified, with an alarm, never healthy.
func TestFingerprintCompareNotVerified(t *testing.T) {
	stored := testFingerprint("before.json", 1, 2, 3)
	tests := []struct {
		name   string
		live   func(*fpTarget)
		load   func(context.Context) (*checks.Fingerprint, error)
		reason string
	}{
		{"live database unreachable", func(f *fpTarget) { f.set(nil, errors.New("dial tcp 10.0.0.1:5432: connect: connection refused")) },
			nil, "connection refused"},
		{"stored file unreadable", nil,
			func(context.Context) (*checks.Fingerprint, error) {
				return nil, errors.New("open /var/lib/dbscrub/before.json: permission denied")
			}, "reading the stored fingerprint: open /var/lib/dbscrub/before.json: permission denied"},
		{"nothing compared", func(f *fpTarget) {
			empty := *stored
			empty.Tables = nil
			f.set(&empty, nil)
		}, func(context.Context) (*checks.Fingerprint, error) {
			empty := *stored
			empty.Tables = nil
			return &empty, nil
		}, "nothing was compared"},
		{"other engine", func(f *fpTarget) { f.info.Engine = "sqlite" }, nil, "not comparable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			live := &fpTarget{fakeTarget: fakeTarget{info: pgInfo}, fp: testFingerprint("live", 1, 2, 3)}
			if tt.live != nil {
				tt.live(live)
			}
			load := tt.load
			if load == nil {
				load = func(context.Context) (*checks.Fingerprint, error) { return stored, nil }
			}
			h.register(Target{Name: "db", Target: live, Plan: Plan{Checks: []string{}, Schedule: Schedule{Every: 24 * time.Hour}, Extra: []ExtraCheck{CompareFingerprint(load)}}})
			r := h.runNow("db")
			cr := checkReport(r, checks.CheckFingerprint)
			if r.Status != checks.StatusError || cr == nil || cr.Status != checks.StatusError || !strings.Contains(cr.Reason, tt.reason) {
				t.Fatalf("run %s, check %+v; want error with %q", r.Status, cr, tt.reason)
			}
			if err := r.Report.Err(); !errors.Is(err, checks.ErrNotVerified) {
				t.Fatalf("verdict %v", err)
			}
			a := one(t, h.notification())
			if a.Kind != alarm.KindNotVerified || a.Check != checks.CheckFingerprint || !strings.Contains(a.Summary, tt.reason) {
				t.Fatalf("alarm %+v", a)
			}
		})
	}
}

// TestFingerprintCompareDatabase compares the target with a second
// database opened for each run and closed after it.
func TestFingerprintCompareDatabase(t *testing.T) {
	h := newHarness(t)
	primary := &fpTarget{fakeTarget: fakeTarget{info: pgInfo}, fp: testFingerprint("postgres://scrub@db1:5432/orders", 1, 2, 3)}
	var opened []*closingFP
	var openErr error
	restored := func(hashes ...uint64) *closingFP {
		return &closingFP{fpTarget: fpTarget{fakeTarget: fakeTarget{info: checks.TargetInfo{Engine: "postgresql", Name: "postgres://scrub@restore1:5432/orders"}},
			fp: testFingerprint("postgres://scrub@restore1:5432/orders", hashes...)}}
	}
	next := restored(1, 2, 3)
	h.register(Target{Name: "db", Open: func(context.Context) (checks.Target, error) { return primary, nil }, Plan: Plan{
		Schedule: Schedule{Every: 24 * time.Hour},
		Extra: []ExtraCheck{CompareDatabase(func(context.Context) (checks.Fingerprinter, error) {
			if openErr != nil {
				return nil, openErr
			}
			opened = append(opened, next)
			return next, nil
		})},
	}})
	if r := h.runNow("db"); r.Status != checks.StatusHealthy {
		t.Fatalf("identical copy: %s %s", r.Status, r.Reason)
	}
	next = restored(1, 2, 4) // rows past 200 lost or changed in the copy
	r := h.runNow("db")
	cr := checkReport(r, checks.CheckFingerprint)
	if r.Status != checks.StatusCorrupt || len(cr.Findings) != 1 || !strings.Contains(cr.Findings[0].Message, "id in (200, +inf)") {
		t.Fatalf("differing copy: %s %+v", r.Status, cr)
	}
	if a := one(t, h.notification()); a.Kind != alarm.KindCorruption || a.Check != checks.CheckFingerprint {
		t.Fatalf("alarm %+v", a)
	}
	for i, db := range opened {
		if db.closed.Load() != 1 {
			t.Errorf("database %d closed %d times, want once", i, db.closed.Load())
		}
	}
	openErr = errors.New("restore1:5432: the database system is starting up")
	r = h.runNow("db")
	if cr := checkReport(r, checks.CheckFingerprint); r.Status != checks.StatusError || cr.PlanError == "" || !strings.Contains(cr.Reason, "opening the database to compare with") {
		t.Fatalf("copy unreachable: %s %+v", r.Status, cr)
	}
}

// TestExtraCheckValidation rejects extra checks that cannot be told apart
// or built, at Register; a name clash with a check the target offers
// fails the run, not verified.
func TestExtraCheckValidation(t *testing.T) {
	h := newHarness(t)
	build := func(context.Context, checks.Target) (checks.Check, error) { return newCheck("x", tasksOf(1)...), nil }
	for _, x := range [][]ExtraCheck{
		{{Name: "", Build: build}},
		{{Name: "x"}},
		{{Name: "x", Build: build}, {Name: "x", Build: build}},
		{{Name: "heap", Build: build}},
	} {
		err := h.s.Register(context.Background(), Target{Name: "db", Target: &fakeTarget{}, Plan: Plan{Checks: []string{"heap"}, Schedule: Schedule{Every: time.Hour}, Extra: x}})
		if !errors.Is(err, checks.ErrInvalidOption) {
			t.Errorf("extra %+v: Register = %v", x, err)
		}
	}
	h.register(Target{Name: "clash", Target: &fakeTarget{checks: []*fakeCheck{newCheck("heap", tasksOf(1)...)}}, Plan: Plan{Schedule: Schedule{Every: time.Hour},
		Extra: []ExtraCheck{{Name: "heap", Build: build}}}})
	if r := h.runNow("clash"); r.Status != checks.StatusError || !strings.Contains(r.Reason, "has the name of one of the target's checks") {
		t.Fatalf("clash: %s %s", r.Status, r.Reason)
	}
	h.register(Target{Name: "misnamed", Target: &fakeTarget{}, Plan: Plan{Schedule: Schedule{Every: time.Hour},
		Extra: []ExtraCheck{{Name: "y", Build: build}}}})
	r := h.runNow("misnamed")
	if cr := checkReport(r, "y"); r.Status != checks.StatusError || cr == nil || !strings.Contains(cr.Reason, `returned a check named "x"`) {
		t.Fatalf("misnamed: %s %+v", r.Status, r.Report.Checks)
	}
}

// TestFingerprintStale: the extra check is expected like a named one, so
// a comparison that never succeeds raises a stale alarm of its own.
func TestFingerprintStale(t *testing.T) {
	h := newHarness(t)
	live := &fpTarget{fakeTarget: fakeTarget{info: pgInfo, checks: []*fakeCheck{newCheck("heap", tasksOf(1)...)}}, err: errors.New("connection refused")}
	h.register(Target{Name: "db", Target: live, Plan: Plan{Checks: []string{"heap"}, Schedule: Schedule{Every: 24 * time.Hour}, SLA: 2 * time.Hour,
		Extra: []ExtraCheck{CompareFingerprint(func(context.Context) (*checks.Fingerprint, error) { return testFingerprint("f", 1, 2, 3), nil })}}})
	h.runNow("db")
	if a := one(t, h.notification()); a.Kind != alarm.KindNotVerified {
		t.Fatalf("alarm %+v", a)
	}
	h.clk.Advance(2*time.Hour + time.Second)
	h.runNow("db") // heap succeeds again; the comparison still cannot run
	h.s.EvaluateAlarms()
	var stale []alarm.Alarm
	for _, a := range h.s.Alarms().Firing() {
		if a.Kind == alarm.KindStale {
			stale = append(stale, a)
		}
	}
	if len(stale) != 1 || stale[0].Check != checks.CheckFingerprint || !strings.Contains(stale[0].Summary, "No successful fingerprint check of db") {
		t.Fatalf("stale alarms %+v", stale)
	}
}
