// Package conformance is the test suite every dbscrub driver must pass, in
// the spirit of database/sql's driver tests and river's riverdrivertest: a
// driver supplies a [Harness] (how to open a target, make a clean database,
// damage one, point at a server that is not there) and [Run] holds it to the
// same contract as every other engine:
//
//   - a clean database is healthy with zero findings;
//   - each kind of damage is corrupt, with a finding naming the damaged
//     object;
//   - an unreachable server, a wrong password and a missing extension are
//     errors with a clear reason that never contains the password;
//   - cancellation is honoured within a second, and the report says the run
//     was interrupted, never healthy;
//   - the database is unchanged by a check.
package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dbscrub/dbscrub/checks"
)

// Harness is what a driver gives the suite. Functions that do not apply to
// an engine are left nil, and the suite says so in the test log.
type Harness struct {
	// Open opens a target for dsn with the driver's default options.
	Open func(t testing.TB, dsn string) checks.Target
	// Clean returns the DSN of a new database with a few tables, indexes and
	// rows, and no damage.
	Clean func(t testing.TB) string
	// Corruptions are the kinds of damage the driver must detect.
	Corruptions []Corruption
	// Unreachable returns a DSN for a server that does not listen.
	Unreachable func(t testing.TB) string
	// WrongPassword returns a DSN with a wrong password, and that password.
	WrongPassword func(t testing.TB) (dsn, password string)
	// MissingExtension returns the DSN of a database that lacks what the
	// default checks need (PostgreSQL's amcheck), and a phrase the reason
	// must contain (the remedy).
	MissingExtension func(t testing.TB) (dsn, remedy string)
	// Slow returns the DSN of a database whose default check takes several
	// seconds, for the cancellation test.
	Slow func(t testing.TB) string
	// Busy reports whether the server still runs a dbscrub statement on the
	// database of dsn (to prove cancellation reached the server). Nil for
	// embedded engines.
	Busy func(t testing.TB, dsn string) bool
	// AllChecks names every check the engine offers; the read-only test
	// runs them all.
	AllChecks []string
	// Snapshot returns a fingerprint of everything a check could change
	// (content, catalog, files), to prove a check changed nothing.
	Snapshot func(t testing.TB, dsn string) string
}

// Corruption is one kind of damage.
type Corruption struct {
	// Name names the damage ("heap tuple header").
	Name string
	// Checks selects the checks to run (nil: the defaults).
	Checks []string
	// Make returns the DSN of a new database with this damage and the name
	// of the damaged object a finding must name (a substring of
	// Finding.Object).
	Make func(t testing.TB) (dsn, object string)
}

// Run runs the whole suite against h.
func Run(t *testing.T, h Harness) {
	t.Run("CleanIsHealthy", func(t *testing.T) { cleanIsHealthy(t, h) })
	t.Run("Corruption", func(t *testing.T) {
		if len(h.Corruptions) == 0 {
			t.Fatal("a driver must detect at least one kind of damage")
		}
		for _, c := range h.Corruptions {
			t.Run(strings.ReplaceAll(c.Name, " ", "_"), func(t *testing.T) { detects(t, h, c) })
		}
	})
	t.Run("Unreachable", func(t *testing.T) {
		if h.Unreachable == nil {
			t.Skip("not applicable to this engine (no server)")
		}
		cannotCheck(t, h, h.Unreachable(t), "", "")
	})
	t.Run("WrongPassword", func(t *testing.T) {
		if h.WrongPassword == nil {
			t.Skip("not applicable to this engine (no authentication)")
		}
		dsn, pw := h.WrongPassword(t)
		cannotCheck(t, h, dsn, pw, "")
	})
	t.Run("MissingExtension", func(t *testing.T) {
		if h.MissingExtension == nil {
			t.Skip("not applicable to this engine (no extension needed)")
		}
		dsn, remedy := h.MissingExtension(t)
		cannotCheck(t, h, dsn, "", remedy)
	})
	t.Run("Cancellation", func(t *testing.T) { cancellation(t, h) })
	t.Run("ReadOnly", func(t *testing.T) { readOnly(t, h) })
}

func gate(t testing.TB, h Harness, ctx context.Context, dsn string, names []string) *checks.Report {
	t.Helper()
	tgt := h.Open(t, dsn)
	cks, err := tgt.Checks(names...)
	if err != nil {
		t.Fatalf("Checks(%v): %v", names, err)
	}
	rep, _ := checks.Gate(ctx, tgt, checks.WithChecks(cks...), checks.WithJobs(2))
	if rep == nil {
		t.Fatal("Gate returned no report")
	}
	return rep
}

func cleanIsHealthy(t *testing.T, h Harness) {
	dsn := h.Clean(t)
	rep := gate(t, h, context.Background(), dsn, nil)
	if rep.Status != checks.StatusHealthy {
		t.Fatalf("clean database: status %s (%s), want healthy\n%s", rep.Status, rep.Reason, dump(rep))
	}
	if n := len(rep.Findings()); n != 0 {
		t.Errorf("clean database: %d findings, want 0\n%s", n, dump(rep))
	}
	if err := rep.Err(); err != nil {
		t.Errorf("clean database: Err() = %v", err)
	}
	if !rep.Coverage.Complete() || rep.Coverage.TasksCompleted == 0 {
		t.Errorf("clean database: coverage %+v, want every task completed", rep.Coverage)
	}
}

func detects(t *testing.T, h Harness, c Corruption) {
	dsn, object := c.Make(t)
	rep := gate(t, h, context.Background(), dsn, c.Checks)
	if rep.Status != checks.StatusCorrupt {
		t.Fatalf("%s: status %s (%s), want corrupt\n%s", c.Name, rep.Status, rep.Reason, dump(rep))
	}
	if !errors.Is(rep.Err(), checks.ErrCorrupt) {
		t.Errorf("%s: Err() = %v, want ErrCorrupt", c.Name, rep.Err())
	}
	for _, f := range rep.Findings() {
		if f.Severity == checks.StatusCorrupt && strings.Contains(f.Object, object) {
			if f.Message == "" {
				t.Errorf("%s: finding without a message: %+v", c.Name, f)
			}
			return
		}
	}
	t.Errorf("%s: no corruption finding names %q\n%s", c.Name, object, dump(rep))
}

func cannotCheck(t *testing.T, h Harness, dsn, password, remedy string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep := gate(t, h, ctx, dsn, nil)
	if rep.Status != checks.StatusError {
		t.Fatalf("status %s (%s), want error\n%s", rep.Status, rep.Reason, dump(rep))
	}
	if rep.Reason == "" {
		t.Error("an error status must say why")
	}
	if !errors.Is(rep.Err(), checks.ErrNotVerified) {
		t.Errorf("Err() = %v, want ErrNotVerified", rep.Err())
	}
	if remedy != "" && !strings.Contains(rep.Reason, remedy) {
		t.Errorf("reason %q does not give the remedy %q", rep.Reason, remedy)
	}
	if password != "" {
		if strings.Contains(dump(rep), password) || strings.Contains(rep.Err().Error(), password) {
			t.Errorf("the password leaked into the report: %s", dump(rep))
		}
	}
	t.Logf("reason: %s", rep.Reason)
}

func cancellation(t *testing.T, h Harness) {
	if h.Slow == nil {
		t.Fatal("a driver must provide a slow database to test cancellation")
	}
	dsn := h.Slow(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *checks.Report, 1)
	go func() { done <- gate(t, h, ctx, dsn, nil) }()

	// Let the run get going, then cancel.
	time.Sleep(700 * time.Millisecond)
	cancelled := time.Now()
	cancel()
	var rep *checks.Report
	select {
	case rep = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the run did not return within 5s of cancellation")
	}
	if took := time.Since(cancelled); took > time.Second {
		t.Errorf("the run returned %s after cancellation, want within 1s", took)
	}
	if rep.Status == checks.StatusHealthy {
		t.Fatalf("a cancelled run must not be healthy (did the slow database finish in under 700ms?)\n%s", dump(rep))
	}
	if !errors.Is(rep.Err(), checks.ErrNotVerified) {
		t.Errorf("Err() = %v, want ErrNotVerified", rep.Err())
	}
	if h.Busy != nil {
		deadline := time.Now().Add(time.Second)
		for h.Busy(t, dsn) {
			if time.Now().After(deadline) {
				t.Fatal("the server still runs the check 1s after cancellation")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func readOnly(t *testing.T, h Harness) {
	if h.Snapshot == nil {
		t.Fatal("a driver must provide Snapshot to prove checks are read-only")
	}
	dsn := h.Clean(t)
	before := h.Snapshot(t, dsn)
	rep := gate(t, h, context.Background(), dsn, h.AllChecks)
	if rep.Status == checks.StatusError {
		t.Fatalf("check failed: %s", rep.Reason)
	}
	if after := h.Snapshot(t, dsn); after != before {
		t.Errorf("the database changed during a check:\nbefore: %s\nafter:  %s", before, after)
	}
}

func dump(rep *checks.Report) string {
	b, _ := json.MarshalIndent(rep, "", "  ")
	if len(b) > 6000 {
		b = append(b[:6000], "\n..."...)
	}
	return string(b)
}
