package postgres

import (
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/pgtest"
)

// TestCrashDuringVerification crashes the backend that runs verify_heapam
// on one table (SIGSEGV, as amcheck would on a garbage page) while another
// task runs on another table, and checks that the crashed object gets a
// crash finding and a non-retryable error, the victim is retried and
// completes, and the run carries on.
func TestCrashDuringVerification(t *testing.T) {
	c := pgtest.Fresh(t)
	d := clusterDB(t, c, "crash")
	d.exec(t, `CREATE TABLE crash_me AS SELECT g AS a, md5(g::text) AS b FROM generate_series(1, 2000) g;
		CREATE TABLE victim AS SELECT g AS a, md5(g::text) AS b FROM generate_series(1, 2000) g;
		CREATE TABLE bystander AS SELECT g AS a FROM generate_series(1, 100) g;
		ANALYZE`)
	if err := c.CreateUser(testCtx(t), "plain", secretPassword); err != nil {
		t.Fatal(err)
	}
	d.exec(t, "GRANT EXECUTE ON FUNCTION verify_heapam(regclass, boolean, boolean, text, bigint, bigint) TO plain")
	// A superuser sees the checkpointer restart; a plain role relies on the
	// statistics reset.
	for _, role := range []struct{ name, dsn string }{{"superuser", d.dsn}, {"plain role", c.UserDSN("plain", secretPassword, "crash")}} {
		t.Run(role.name, func(t *testing.T) { crashDuringVerification(t, d, role.dsn) })
	}
}

func crashDuringVerification(t *testing.T, d *testDB, dsn string) {
	d.reopen(t)

	// Hold ACCESS EXCLUSIVE locks on both tables so that the two heap tasks
	// sit inside verify_heapam, waiting, when the backend is killed.
	ctx := testCtx(t)
	locker, err := d.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close()
	if _, err := locker.ExecContext(ctx, "BEGIN; LOCK TABLE crash_me, victim IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}

	tg, err := Open(dsn, WithLockTimeout(2*time.Minute), WithRecoveryWait(30*time.Second), WithChunkSize(1<<20),
		WithIncludeSchemas("public"))
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	killed := make(chan int, 1)
	go func() {
		defer close(killed)
		mon, err := sql.Open("postgres", d.dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer mon.Close()
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			var crashPID, victimPID sql.NullInt64
			err := mon.QueryRowContext(ctx, `SELECT
				(SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
				 WHERE NOT l.granted AND l.relation = 'crash_me'::regclass AND a.application_name = 'dbscrub' AND a.query LIKE '%verify_heapam%'),
				(SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
				 WHERE NOT l.granted AND l.relation = 'victim'::regclass AND a.application_name = 'dbscrub' AND a.query LIKE '%verify_heapam%')`).Scan(&crashPID, &victimPID)
			if err == nil && crashPID.Valid && victimPID.Valid {
				if err := syscall.Kill(int(crashPID.Int64), syscall.SIGSEGV); err != nil {
					t.Errorf("kill -SEGV %d: %v", crashPID.Int64, err)
					return
				}
				killed <- int(crashPID.Int64)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Error("the two heap tasks never waited on their locks together")
	}()

	rep := runChecks(t, tg, []string{CheckHeap})
	pid := <-killed
	if pid == 0 {
		t.Fatal(dump(t, rep))
	}
	heap := checkReport(rep, CheckHeap)
	crashed := taskByKey(heap, "public.crash_me")
	victim := taskByKey(heap, "public.victim")
	if crashed == nil || victim == nil {
		t.Fatalf("tasks missing:\n%s", dump(t, rep))
	}
	if crashed.State != checks.TaskFailed || crashed.Attempts != 1 || !strings.Contains(crashed.Reason, "server crashed") {
		t.Errorf("crashed task: state %s, attempts %d, reason %q; want failed after 1 attempt with a crash reason", crashed.State, crashed.Attempts, crashed.Reason)
	}
	fs := findingsFor(rep, CheckHeap, "public.crash_me")
	if len(fs) != 1 || fs[0].Severity != checks.StatusCorrupt || !strings.Contains(fs[0].Message, "crashed while verifying public.crash_me") ||
		!strings.Contains(fs[0].Message, "pid "+strconv.Itoa(pid)) {
		t.Errorf("want one crash finding for public.crash_me naming pid %d, got %+v", pid, fs)
	}
	if victim.State != checks.TaskCompleted || victim.Attempts != 2 {
		t.Errorf("victim task: state %s, attempts %d, reason %q; want completed on the second attempt", victim.State, victim.Attempts, victim.Reason)
	}
	if len(findingsFor(rep, CheckHeap, "public.victim")) != 0 {
		t.Errorf("victim has findings")
	}
	for _, tr := range heap.Tasks {
		if tr.Key != "public.crash_me" && tr.State != checks.TaskCompleted {
			t.Errorf("task %s: %s (%s)", tr.Key, tr.State, tr.Reason)
		}
	}
	if rep.Status != checks.StatusCorrupt || !errors.Is(rep.Err(), checks.ErrCorrupt) {
		t.Errorf("report status %s, want corrupt", rep.Status)
	}
	if t.Failed() || testing.Verbose() {
		t.Log(dump(t, rep))
	}
}

// TestServerRestartDuringVerification stops the server (fast shutdown,
// which terminates every session) while a task waits inside verify_heapam,
// then starts it again: the task is retried and completes. Then it stops
// the server for good: the task fails saying the server did not come back.
func TestServerRestartDuringVerification(t *testing.T) {
	c := pgtest.Fresh(t)
	d := clusterDB(t, c, "restart")
	d.exec(t, "CREATE TABLE waiting AS SELECT g AS a FROM generate_series(1, 1000) g; ANALYZE")
	ctx := testCtx(t)

	lockAndWait := func(t *testing.T, tg *Target, during func()) *checks.Report {
		t.Helper()
		pool, err := sql.Open("postgres", d.dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		locker, err := pool.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer locker.Close()
		if _, err := locker.ExecContext(ctx, "BEGIN; LOCK TABLE waiting IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
		reps := make(chan *checks.Report, 1)
		go func() { reps <- runChecks(t, tg, []string{CheckHeap}) }()
		deadline := time.Now().Add(30 * time.Second)
		for {
			var n int
			_ = pool.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbscrub' AND query LIKE '%verify_heapam%' AND wait_event_type = 'Lock'`).Scan(&n)
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("verify_heapam never waited for its lock")
			}
			time.Sleep(20 * time.Millisecond)
		}
		during()
		return <-reps
	}

	t.Run("restarted", func(t *testing.T) {
		tg := d.open(t, WithLockTimeout(time.Minute), WithRecoveryWait(30*time.Second), WithIncludeRelations("public.waiting"))
		rep := lockAndWait(t, tg, func() {
			if err := c.Restart(); err != nil {
				t.Fatal(err)
			}
		})
		tr := taskByKey(checkReport(rep, CheckHeap), "public.waiting")
		if tr == nil || tr.State != checks.TaskCompleted || tr.Attempts != 2 || rep.Status != checks.StatusHealthy {
			t.Errorf("after a restart: %+v, report %s (%s); want completed on the second attempt", tr, rep.Status, rep.Reason)
		}
	})

	t.Run("stopped for good", func(t *testing.T) {
		d.reopen(t)
		tg := d.open(t, WithLockTimeout(time.Minute), WithRecoveryWait(2*time.Second), WithIncludeRelations("public.waiting"))
		rep := lockAndWait(t, tg, func() {
			if err := c.Stop(); err != nil {
				t.Fatal(err)
			}
		})
		tr := taskByKey(checkReport(rep, CheckHeap), "public.waiting")
		if tr == nil || tr.State != checks.TaskFailed || !strings.Contains(tr.Reason, "did not accept connections again within 2s") {
			t.Errorf("server stopped for good: %+v", tr)
		}
		if rep.Status != checks.StatusError || len(rep.Findings()) != 0 {
			t.Errorf("report %s (%s), %d findings; want error and no finding", rep.Status, rep.Reason, len(rep.Findings()))
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	})
}
