package history_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/scheduler/alarm"
	"github.com/dbscrub/dbscrub/scheduler/history"
	"github.com/dbscrub/dbscrub/scheduler/history/storetest"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func(*testing.T) history.Store { return history.NewMemory() })
}

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) history.Store {
		s, err := history.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "dbscrub.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestSQLiteInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) history.Store {
		s, err := history.OpenSQLite(context.Background(), ":memory:")
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestSQLiteSurvivesRestart writes, closes, reopens and reads.
func TestSQLiteSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "dbscrub.db")
	s, err := history.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := storetest.T0
	if _, err := s.RegisterTarget(ctx, "db", map[string]string{"team": "x"}, t0); err != nil {
		t.Fatal(err)
	}
	rep := storetest.Report("heap", storetest.Completed("a"), storetest.Task{Key: "b", Object: "public.b", State: checks.TaskNotCovered, Status: checks.StatusWarning})
	run := &history.Run{Target: "db", Trigger: history.TriggerSchedule, StartedAt: t0, FinishedAt: t0.Add(time.Minute), Deadline: t0.Add(time.Minute),
		Status: rep.Status, Report: rep, Cycles: map[string]time.Time{"heap": t0}}
	if _, err := s.RecordRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveAlarms(ctx, alarm.Record{Alarm: alarm.Alarm{Target: "db", Check: "heap", Kind: alarm.KindStale, State: alarm.StateFiring, FirstSeen: t0, Summary: "stale"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCounter(ctx, "db", "checksum_failures", history.Counter{Value: 2, SeenAt: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = history.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.Version(ctx); err != nil || v != history.SchemaVersion {
		t.Fatalf("schema version %d %v", v, err)
	}
	first, err := s.RegisterTarget(ctx, "db", nil, t0.Add(72*time.Hour))
	if err != nil || !first.Equal(t0) {
		t.Fatalf("first seen after restart %s %v, want %s", first, err, t0)
	}
	got, err := s.Run(ctx, run.ID)
	if err != nil || got.Status != checks.StatusWarning || !got.Deadline.Equal(t0.Add(time.Minute)) || !got.Cycles["heap"].Equal(t0) {
		t.Fatalf("run %+v %v", got, err)
	}
	states, err := s.CheckStates(ctx, "db")
	if err != nil || len(states) != 1 || !states[0].CycleStartedAt.Equal(t0) || !states[0].LastSuccessAt.Equal(t0) || states[0].Coverage.Keys != 2 {
		t.Fatalf("states %+v %v", states, err)
	}
	as, err := s.Alarms(ctx)
	if err != nil || len(as) != 1 || as[0].Summary != "stale" {
		t.Fatalf("alarms %+v %v", as, err)
	}
	if c, ok, err := s.Counter(ctx, "db", "checksum_failures"); !ok || err != nil || c.Value != 2 {
		t.Fatalf("counter %+v %v %v", c, ok, err)
	}
}

func TestSQLiteRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "dbscrub.db")
	s, err := history.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := history.OpenSQLite(ctx, path); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("open = %v, want a refusal of the newer schema", err)
	}
}

// TestSQLiteTwoHandles is a daemon writing while `dbscrub status` reads.
func TestSQLiteTwoHandles(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "dbscrub.db")
	w, err := history.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r, err := history.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range 50 {
			rep := storetest.Report("heap", storetest.Completed("a"))
			run := &history.Run{Target: "db", Trigger: history.TriggerSchedule, StartedAt: storetest.T0.Add(time.Duration(i) * time.Minute), FinishedAt: storetest.T0, Status: rep.Status, Report: rep}
			if _, err := w.RecordRun(ctx, run); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for range 50 {
			if _, err := r.Targets(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	runs, err := r.Runs(ctx, history.RunQuery{Limit: 1000})
	if err != nil || len(runs) != 50 {
		t.Fatalf("%d runs, %v", len(runs), err)
	}
}

func TestOpenSQLiteOptions(t *testing.T) {
	if _, err := history.OpenSQLite(context.Background(), ""); err == nil {
		t.Fatal("empty path accepted")
	}
	if _, err := history.OpenSQLite(context.Background(), "x.db", history.WithBusyTimeout(0)); err == nil {
		t.Fatal("zero busy timeout accepted")
	}
}

func TestMemoryMaxRuns(t *testing.T) {
	m := history.NewMemory(history.WithMaxRuns(4))
	ctx := context.Background()
	for i := range 20 {
		rep := storetest.Report("heap", storetest.Completed("a"))
		if _, err := m.RecordRun(ctx, &history.Run{Target: "db", StartedAt: storetest.T0.Add(time.Duration(i) * time.Minute), Status: rep.Status, Report: rep}); err != nil {
			t.Fatal(err)
		}
	}
	runs, _ := m.Runs(ctx, history.RunQuery{})
	if len(runs) < 4 || len(runs) > 5 || runs[0].ID != 20 {
		t.Fatalf("%d runs kept, newest %d", len(runs), runs[0].ID)
	}
	if cs, _ := m.CheckStates(ctx, "db"); len(cs) != 1 || cs[0].LastRunID != 20 {
		t.Fatalf("states %+v", cs)
	}
}
