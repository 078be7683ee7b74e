package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/sqlitetest"
)

// TestChecks runs the default or named checks against clean and damaged
// databases and says what the report must hold.
func TestChecks(t *testing.T) {
	type want struct {
		status  checks.Status
		object  string // a finding with this severity must name it...
		page    bool   // ...and a page
		message string // ...and say this
		code    string // ...with this code
		none    bool   // no findings at all
	}
	tests := []struct {
		name   string
		make   func(t testing.TB) string
		opts   []Option
		checks []string
		want   want
	}{{
		name: "clean",
		make: sample,
		want: want{status: checks.StatusHealthy, none: true},
	}, {
		name: "clean quick_check",
		make: sample,
		opts: []Option{WithQuickCheck()},
		want: want{status: checks.StatusHealthy, none: true},
	}, {
		name: "damaged table page",
		make: func(t testing.TB) string {
			p := sample(t)
			if err := sqlitetest.DamagePage(p, rootPage(t, p, sqlitetest.SampleCustomers)+9); err != nil {
				t.Fatal(err)
			}
			return p
		},
		checks: []string{CheckIntegrity},
		want:   want{status: checks.StatusCorrupt, object: sqlitetest.SampleCustomers, page: true, message: "out of order", code: "integrity_check"},
	}, {
		name: "damaged table page quick_check",
		make: func(t testing.TB) string {
			p := sample(t)
			if err := sqlitetest.DamagePage(p, rootPage(t, p, sqlitetest.SampleCustomers)+9); err != nil {
				t.Fatal(err)
			}
			return p
		},
		opts:   []Option{WithQuickCheck()},
		checks: []string{CheckIntegrity},
		want:   want{status: checks.StatusCorrupt, object: sqlitetest.SampleCustomers, page: true, code: "integrity_check"},
	}, {
		name: "damaged index page",
		make: func(t testing.TB) string {
			p := sample(t)
			if err := sqlitetest.DamagePage(p, rootPage(t, p, sqlitetest.SampleIndex)); err != nil {
				t.Fatal(err)
			}
			return p
		},
		checks: []string{CheckIntegrity},
		want:   want{status: checks.StatusCorrupt, object: sqlitetest.SampleIndex, page: true, message: "Fragmentation"},
	}, {
		name: "damaged index entry",
		make: func(t testing.TB) string {
			p := sample(t)
			if err := sqlitetest.DamageIndex(p, sqlitetest.SampleIndex); err != nil {
				t.Fatal(err)
			}
			return p
		},
		want: want{status: checks.StatusCorrupt, object: sqlitetest.SampleIndex, message: "missing from index " + sqlitetest.SampleIndex},
	}, {
		name: "orphan row",
		make: func(t testing.TB) string {
			p := sample(t)
			if err := sqlitetest.BreakForeignKey(p); err != nil {
				t.Fatal(err)
			}
			return p
		},
		checks: []string{CheckForeignKeys},
		want:   want{status: checks.StatusCorrupt, object: sqlitetest.SampleOrders, message: "of orders references a missing row in customers (foreign key #0)", code: "foreign_key_check"},
	}, {
		name: "random bytes",
		make: func(t testing.TB) string {
			b := make([]byte, 8192)
			r := rand.New(rand.NewPCG(1, 2))
			for i := range b {
				b[i] = byte(r.UintN(256))
			}
			return writeFile(t, "random.db", b)
		},
		want: want{status: checks.StatusCorrupt, object: "random.db", message: `file is not a database (26); the file does not start with the SQLite header "SQLite format 3"`, code: "SQLITE_NOTADB"},
	}, {
		name: "truncated header",
		make: func(t testing.TB) string {
			b, err := os.ReadFile(sample(t))
			if err != nil {
				t.Fatal(err)
			}
			return writeFile(t, "truncated.db", b[:50])
		},
		want: want{status: checks.StatusCorrupt, object: "truncated.db", message: "the file is only 50 bytes long, shorter than the 100-byte SQLite header"},
	}, {
		name: "overwritten header",
		make: func(t testing.TB) string {
			p := sample(t)
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte("this is no longer a database header"), 0); err != nil {
				t.Fatal(err)
			}
			return p
		},
		want: want{status: checks.StatusCorrupt, object: "sample.db", message: "file is not a database"},
	}, {
		name: "truncated file",
		make: func(t testing.TB) string {
			b, err := os.ReadFile(sample(t))
			if err != nil {
				t.Fatal(err)
			}
			return writeFile(t, "half.db", b[:len(b)/2])
		},
		checks: []string{CheckIntegrity},
		want:   want{status: checks.StatusCorrupt, object: "half.db", message: "bytes): it was truncated", code: "SQLITE_CORRUPT"},
	}, {
		name: "empty file",
		make: func(t testing.TB) string { return writeFile(t, "empty.db", nil) },
		want: want{status: checks.StatusWarning, object: "empty.db", message: "empty", code: "empty_file"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.make(t)
			before := snapshot(t, path)
			tg := open(t, path, tt.opts...)
			rep := run(t, context.Background(), tg, tt.checks...)
			if rep.Status != tt.want.status {
				t.Fatalf("status %s (%s), want %s\n%s", rep.Status, rep.Reason, tt.want.status, dump(rep))
			}
			switch tt.want.status {
			case checks.StatusHealthy, checks.StatusWarning:
				if err := rep.Err(); err != nil {
					t.Errorf("Err() = %v, want nil", err)
				}
			case checks.StatusCorrupt:
				if err := rep.Err(); !errors.Is(err, checks.ErrCorrupt) {
					t.Errorf("Err() = %v, want ErrCorrupt", err)
				}
			}
			if !rep.Coverage.Complete() {
				t.Errorf("coverage %+v: every task should complete", rep.Coverage)
			}
			fs := rep.Findings()
			if tt.want.none && len(fs) > 0 {
				t.Errorf("%d findings, want none\n%s", len(fs), dump(rep))
			}
			if tt.want.object != "" || tt.want.message != "" {
				if !hasFinding(fs, tt.want.status, tt.want.object, tt.want.page, tt.want.message, tt.want.code) {
					t.Errorf("no %s finding naming object %q (page: %v) with message %q and code %q\n%s", tt.want.status, tt.want.object, tt.want.page, tt.want.message, tt.want.code, dump(rep))
				}
			}
			if after := snapshot(t, path); after != before {
				t.Errorf("the check changed the database's directory:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

func hasFinding(fs []checks.Finding, sev checks.Status, object string, page bool, message, code string) bool {
	for _, f := range fs {
		if f.Severity == sev &&
			(object == "" || f.Object == object) &&
			(!page || f.Location.Page != nil) &&
			strings.Contains(f.Message, message) &&
			(code == "" || f.Code == code) {
			return true
		}
	}
	return false
}

func writeFile(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDamagedPageLocation checks that a b-tree page named in "Tree R page P
// cell C" comes back as the table of root R, page P and offset C.
func TestDamagedPageLocation(t *testing.T) {
	p := sample(t)
	page := rootPage(t, p, sqlitetest.SampleCustomers) + 9
	if err := sqlitetest.DamagePage(p, page); err != nil {
		t.Fatal(err)
	}
	rep := run(t, context.Background(), open(t, p), CheckIntegrity)
	var tree int
	for _, f := range rep.Findings() {
		if !strings.HasPrefix(f.Message, "Tree ") {
			continue
		}
		tree++
		if f.Object != sqlitetest.SampleCustomers || f.Location.Page == nil || *f.Location.Page != int64(page) || f.Location.Offset == nil {
			t.Errorf("finding %+v (%s): want object %s, page %d and a cell offset", f, f.Location, sqlitetest.SampleCustomers, page)
		}
		if f.Remedy == "" {
			t.Errorf("finding without a remedy: %+v", f)
		}
	}
	if tree == 0 {
		t.Fatalf("no \"Tree ...\" finding\n%s", dump(rep))
	}
}

func TestMissingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "typo.db")
	for _, dsn := range []string{path, "sqlite://" + path, "file:" + path + "?mode=ro"} {
		t.Run(dsn, func(t *testing.T) {
			tg := open(t, dsn)
			rep := run(t, context.Background(), tg)
			if rep.Status != checks.StatusError {
				t.Fatalf("status %s (%s), want error\n%s", rep.Status, rep.Reason, dump(rep))
			}
			if !strings.Contains(rep.Reason, "database file does not exist") {
				t.Errorf("reason %q does not say the file does not exist", rep.Reason)
			}
			if err := rep.Err(); !errors.Is(err, checks.ErrNotVerified) {
				t.Errorf("Err() = %v, want ErrNotVerified", err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("the check created %v", entries)
			}
			// Even past the stat, SQLite itself must not create the file.
			if _, err := tg.db.Exec("SELECT 1 FROM sqlite_schema"); err == nil {
				t.Error("opening a missing file read-only succeeded")
			}
			if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the database file was created: %v", err)
			}
		})
	}
}

func TestDirectoryIsNotADatabase(t *testing.T) {
	rep := run(t, context.Background(), open(t, t.TempDir()), CheckIntegrity)
	if rep.Status != checks.StatusError || !strings.Contains(rep.Reason, "is a directory") {
		t.Fatalf("status %s (%s), want error: is a directory", rep.Status, rep.Reason)
	}
}

func TestUnreadableFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every file")
	}
	p := sample(t)
	if err := os.Chmod(p, 0); err != nil {
		t.Fatal(err)
	}
	rep := run(t, context.Background(), open(t, p), CheckIntegrity)
	if rep.Status != checks.StatusError {
		t.Fatalf("status %s (%s), want error", rep.Status, rep.Reason)
	}
	t.Log(rep.Reason)
}

func TestMaxErrors(t *testing.T) {
	t.Run("integrity", func(t *testing.T) {
		p := sample(t)
		if err := sqlitetest.DamagePage(p, rootPage(t, p, sqlitetest.SampleIndex)); err != nil {
			t.Fatal(err)
		}
		for _, quick := range []bool{false, true} {
			opts := []Option{WithMaxErrors(3)}
			if quick {
				opts = append(opts, WithQuickCheck())
			}
			rep := run(t, context.Background(), open(t, p, opts...), CheckIntegrity)
			var corrupt, capped int
			for _, f := range rep.Findings() {
				switch {
				case f.Code == "max_errors":
					capped++
					if want := "and possibly more:"; !strings.Contains(f.Message, want) || !strings.Contains(f.Message, "stopped after 3 errors") {
						t.Errorf("cap finding %q", f.Message)
					}
				case f.Severity == checks.StatusCorrupt:
					corrupt++
				}
			}
			if quick {
				// quick_check finds less here; it must stay under the cap.
				if corrupt == 0 || corrupt > 3 {
					t.Errorf("quick_check: %d corrupt findings, want 1..3\n%s", corrupt, dump(rep))
				}
				continue
			}
			if corrupt != 3 || capped != 1 {
				t.Errorf("%d corrupt findings and %d cap findings, want 3 and 1\n%s", corrupt, capped, dump(rep))
			}
		}
	})
	t.Run("foreign_keys", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "orphans.db")
		exec(t, p,
			"CREATE TABLE parent(id INTEGER PRIMARY KEY)",
			"CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id))",
			"INSERT INTO child VALUES (1, 10), (2, 20), (3, 30), (4, 40)",
		)
		rep := run(t, context.Background(), open(t, p, WithMaxErrors(2)), CheckForeignKeys)
		fs := rep.Findings()
		if len(fs) != 3 || fs[2].Code != "max_errors" || !strings.Contains(fs[2].Message, "and more: foreign_key_check stopped after 2 orphan rows in child") {
			t.Fatalf("want 2 orphans and a cap finding\n%s", dump(rep))
		}
		if rep.Status != checks.StatusCorrupt {
			t.Errorf("status %s, want corrupt", rep.Status)
		}
	})
}

func TestQuickCheckStatement(t *testing.T) {
	p := sample(t)
	for _, tt := range []struct {
		opts []Option
		want string
	}{
		{nil, "PRAGMA main.integrity_check(100)"},
		{[]Option{WithQuickCheck()}, "PRAGMA main.quick_check(100)"},
		{[]Option{WithQuickCheck(), WithMaxErrors(7)}, "PRAGMA main.quick_check(7)"},
	} {
		cks, err := open(t, p, tt.opts...).Checks(CheckIntegrity)
		if err != nil {
			t.Fatal(err)
		}
		tasks, err := cks[0].Plan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(tasks) != 1 || tasks[0].Statement != tt.want {
			t.Errorf("tasks %+v, want one running %q", tasks, tt.want)
		}
		st, _ := os.Stat(p)
		if tasks[0].Cost != st.Size() {
			t.Errorf("cost %d, want the file size %d", tasks[0].Cost, st.Size())
		}
	}
}

// TestQuickCheckMissesIndexContents documents the trade-off of
// WithQuickCheck: an index entry pointing at the wrong row is caught by
// integrity_check only.
func TestQuickCheckMissesIndexContents(t *testing.T) {
	p := sample(t)
	if err := sqlitetest.DamageIndex(p, sqlitetest.SampleIndex); err != nil {
		t.Fatal(err)
	}
	full := run(t, context.Background(), open(t, p), CheckIntegrity)
	if full.Status != checks.StatusCorrupt {
		t.Fatalf("integrity_check: status %s, want corrupt", full.Status)
	}
	quick := run(t, context.Background(), open(t, p, WithQuickCheck()), CheckIntegrity)
	t.Logf("quick_check on a damaged index entry: %s (%s)", quick.Status, quick.Reason)
}

func TestUnknownCheck(t *testing.T) {
	tg := open(t, sample(t))
	_, err := tg.Checks(CheckIntegrity, "heap")
	if !errors.Is(err, checks.ErrUnknownCheck) {
		t.Fatalf("err = %v, want ErrUnknownCheck", err)
	}
	for _, want := range []string{`"heap"`, "integrity", "foreign_keys"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	// Gate with an unknown check name never reports healthy.
	cks, err := tg.Checks()
	if err != nil || len(cks) != 2 || cks[0].Name() != CheckIntegrity || cks[1].Name() != CheckForeignKeys {
		t.Fatalf("default checks %v, %v", cks, err)
	}
	cks, err = tg.Checks(CheckForeignKeys, CheckForeignKeys)
	if err != nil || len(cks) != 1 {
		t.Errorf("a repeated name: %d checks, %v; want 1", len(cks), err)
	}
}

func TestCatalog(t *testing.T) {
	tg := open(t, sample(t))
	for _, ci := range Catalog() {
		if ci.Description == "" || !ci.Default {
			t.Errorf("%+v: want a description, and default", ci)
		}
		cks, err := tg.Checks(ci.Name)
		if err != nil || len(cks) != 1 || cks[0].Name() != ci.Name {
			t.Errorf("Checks(%q) = %v, %v", ci.Name, cks, err)
		}
	}
}

// TestUnchanged runs every check, several times and in parallel, and
// compares the bytes and modification times of the files before and after.
func TestUnchanged(t *testing.T) {
	for _, damaged := range []bool{false, true} {
		p := sample(t)
		if damaged {
			if err := sqlitetest.DamagePage(p, rootPage(t, p, sqlitetest.SampleOrders)); err != nil {
				t.Fatal(err)
			}
		}
		before := snapshot(t, p)
		time.Sleep(10 * time.Millisecond) // so that a write would show in the mtime
		tg := open(t, p)
		for range 2 {
			run(t, context.Background(), tg, CheckIntegrity, CheckForeignKeys)
		}
		if err := tg.Close(); err != nil {
			t.Fatal(err)
		}
		if after := snapshot(t, p); after != before {
			t.Errorf("damaged=%v: the database changed:\nbefore:\n%s\nafter:\n%s", damaged, before, after)
		}
	}
}

// TestWAL checks a database in WAL mode while a writer holds uncheckpointed
// changes: the check sees them (the orphan row lives only in the WAL) and
// writes neither the database nor the WAL.
func TestWAL(t *testing.T) {
	p := filepath.Join(t.TempDir(), "wal.db")
	w, err := sql.Open("sqlite", p+"?_pragma=journal_mode(wal)&_pragma=wal_autocheckpoint(0)&_pragma=foreign_keys(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.SetMaxOpenConns(1)
	for _, s := range []string{
		"CREATE TABLE parent(id INTEGER PRIMARY KEY)",
		"CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id))",
		"CREATE INDEX child_parent ON child(parent_id)",
		"INSERT INTO parent VALUES (1), (2)",
		"INSERT INTO child VALUES (1, 1), (2, 2), (3, 99)",
	} {
		if _, err := w.Exec(s); err != nil {
			t.Fatal(s, err)
		}
	}
	var mode string
	if err := w.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode %q, %v", mode, err)
	}
	if st, err := os.Stat(p + "-wal"); err != nil || st.Size() == 0 {
		t.Fatalf("want a non-empty WAL: %v", err)
	}
	// Readers take read marks in the -shm file, SQLite's shared-memory
	// index of the WAL, which holds no data; the database and the WAL must
	// not change.
	snap := func() string { return fileSum(t, p) + "\n" + fileSum(t, p+"-wal") }
	before := snap()
	rep := run(t, context.Background(), open(t, p))
	if rep.Status != checks.StatusCorrupt || !hasFinding(rep.Findings(), checks.StatusCorrupt, "child", false, "row rowid 3 of child references a missing row in parent", "") {
		t.Fatalf("want the orphan row from the WAL\n%s", dump(rep))
	}
	if rep.Checks[0].Status != checks.StatusHealthy {
		t.Errorf("integrity: %s (%s), want healthy", rep.Checks[0].Status, rep.Checks[0].Reason)
	}
	if after := snap(); after != before {
		t.Errorf("the check changed the files:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestBusy holds an exclusive lock (rollback journal mode) so that a
// check cannot read: an error that says the database is locked, not a
// healthy report and not corruption.
func TestBusy(t *testing.T) {
	p := sample(t)
	w, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	conn, err := w.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(context.Background(), "ROLLBACK") //nolint:errcheck

	start := time.Now()
	rep := run(t, context.Background(), open(t, p, WithBusyTimeout(100*time.Millisecond)))
	if rep.Status != checks.StatusError || !strings.Contains(rep.Reason, "locked") {
		t.Fatalf("status %s (%s), want error: locked\n%s", rep.Status, rep.Reason, dump(rep))
	}
	if !errors.Is(rep.Err(), checks.ErrNotVerified) {
		t.Errorf("Err() = %v, want ErrNotVerified", rep.Err())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s with a 100ms busy timeout", d)
	}
	t.Log(rep.Reason)
}

// TestCancel cancels an integrity check of a large database while it runs:
// the task must return within a second with an error that wraps the
// context's cause, never a result.
func TestCancel(t *testing.T) {
	p := slowDB(t)
	cks, err := open(t, p).Checks(CheckIntegrity)
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := cks[0].Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	type out struct {
		res checks.Result
		err error
	}
	done := make(chan out, 1)
	start := time.Now()
	go func() {
		res, err := tasks[0].Run(ctx)
		done <- out{res, err}
	}()
	time.Sleep(300 * time.Millisecond)
	cancel()
	cancelled := time.Now()
	select {
	case o := <-done:
		if took := time.Since(cancelled); took > time.Second {
			t.Errorf("returned %s after cancellation, want within 1s", took)
		}
		if o.err == nil {
			t.Fatalf("a cancelled check returned no error (it ran %s: is the slow database too small?)", time.Since(start))
		}
		if !errors.Is(o.err, context.Canceled) {
			t.Errorf("err = %v, want it to wrap context.Canceled", o.err)
		}
		if len(o.res.Findings) != 0 {
			t.Errorf("findings from a cancelled check: %+v", o.res.Findings)
		}
		t.Logf("after %s: %v", time.Since(start).Round(time.Millisecond), o.err)
	case <-time.After(5 * time.Second):
		t.Fatal("the check did not return within 5s of cancellation")
	}

	// Through the Runner, the report says the run was interrupted.
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	rep := run(t, ctx, open(t, p), CheckIntegrity)
	if rep.Status != checks.StatusError || !strings.Contains(rep.Reason, "interrupted") {
		t.Errorf("status %s (%s), want error: interrupted", rep.Status, rep.Reason)
	}
}

// TestForeignKeyTasks checks that each table is its own task: a table whose
// foreign key cannot be checked ("foreign key mismatch") fails alone, and
// the others are still checked.
func TestForeignKeyTasks(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fk.db")
	exec(t, p,
		"CREATE TABLE p(id INTEGER PRIMARY KEY, k TEXT)",
		"CREATE TABLE to_missing_table(id INTEGER PRIMARY KEY, x INTEGER REFERENCES nosuch(id))",
		"CREATE TABLE mismatch(id INTEGER PRIMARY KEY, k TEXT REFERENCES p(k))",
		"CREATE TABLE without_rowid(a, b, PRIMARY KEY (a, b), FOREIGN KEY (b) REFERENCES p(id)) WITHOUT ROWID",
		"CREATE TABLE fine(id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p(id))",
		"INSERT INTO p VALUES (1, 'one')",
		"INSERT INTO to_missing_table VALUES (1, 5)",
		"INSERT INTO mismatch VALUES (1, 'x')",
		"INSERT INTO without_rowid VALUES (1, 7)",
		"INSERT INTO fine VALUES (1, 1)",
	)
	rep := run(t, context.Background(), open(t, p), CheckForeignKeys)
	cr := rep.Checks[0]
	if cr.Status != checks.StatusCorrupt || cr.Coverage.TasksPlanned != 4 || cr.Coverage.TasksCompleted != 3 || cr.Coverage.TasksFailed != 1 {
		t.Fatalf("status %s, coverage %+v; want corrupt, 3 of 4 tasks completed\n%s", cr.Status, cr.Coverage, dump(rep))
	}
	for _, tr := range cr.Tasks {
		if tr.Key == "mismatch" && (tr.State != checks.TaskFailed || !strings.Contains(tr.Reason, "foreign key mismatch") || !strings.Contains(tr.Reason, "fix the schema")) {
			t.Errorf("task mismatch: %+v", tr)
		}
	}
	fs := rep.Findings()
	if !hasFinding(fs, checks.StatusCorrupt, "to_missing_table", false, "row rowid 1 of to_missing_table references a missing row in nosuch (foreign key #0)", "foreign_key_check") {
		t.Errorf("no orphan in to_missing_table\n%s", dump(rep))
	}
	if !hasFinding(fs, checks.StatusCorrupt, "without_rowid", false, "a row of without_rowid (a WITHOUT ROWID table) references a missing row in p", "") {
		t.Errorf("no orphan in without_rowid\n%s", dump(rep))
	}
	for _, f := range fs {
		if f.Object == "to_missing_table" && !strings.Contains(f.Remedy, "to_missing_table(x) → nosuch(id)") {
			t.Errorf("remedy %q does not name the foreign key", f.Remedy)
		}
	}
	if !errors.Is(rep.Err(), checks.ErrCorrupt) {
		t.Errorf("Err() = %v, want ErrCorrupt", rep.Err())
	}
}

func TestNoForeignKeys(t *testing.T) {
	p := filepath.Join(t.TempDir(), "plain.db")
	exec(t, p, "CREATE TABLE t(x)", "INSERT INTO t VALUES (1)")
	rep := run(t, context.Background(), open(t, p))
	if rep.Status != checks.StatusHealthy || rep.Checks[1].Status != checks.StatusSkipped || !strings.Contains(rep.Checks[1].Reason, "declares a foreign key") {
		t.Fatalf("want healthy with foreign_keys skipped\n%s", dump(rep))
	}
}

func TestNew(t *testing.T) {
	p := sample(t)
	db, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tg, err := New(db, WithQuickCheck())
	if err != nil {
		t.Fatal(err)
	}
	if info := tg.Info(); info.Engine != "sqlite" || info.Name != p || info.Database != "sample.db" || info.ServerVersion == "" {
		t.Errorf("Info() = %+v", info)
	}
	rep := run(t, context.Background(), tg)
	if rep.Status != checks.StatusHealthy {
		t.Fatalf("status %s (%s)", rep.Status, rep.Reason)
	}
	if err := tg.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(); err != nil {
		t.Errorf("Close closed the caller's pool: %v", err)
	}

	if _, err := New(nil); !errors.Is(err, checks.ErrInvalidOption) {
		t.Errorf("New(nil): %v, want ErrInvalidOption", err)
	}
	if _, err := New(db, WithBusyTimeout(time.Second)); !errors.Is(err, checks.ErrInvalidOption) {
		t.Errorf("New with WithBusyTimeout: %v, want ErrInvalidOption", err)
	}
}

func TestNewInMemory(t *testing.T) {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // one connection: one in-memory database
	for _, s := range []string{
		"CREATE TABLE a(id INTEGER PRIMARY KEY)",
		"CREATE TABLE b(id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a(id))",
		"INSERT INTO b VALUES (1, 42)",
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	tg, err := New(db)
	if err != nil {
		t.Fatal(err)
	}
	if tg.Info().Name != ":memory:" {
		t.Errorf("Info() = %+v", tg.Info())
	}
	r, _ := checks.NewRunner() // one job: the pool has one connection
	rep := r.Run(context.Background(), tg)
	if rep.Status != checks.StatusCorrupt || !hasFinding(rep.Findings(), checks.StatusCorrupt, "b", false, "row rowid 1 of b references a missing row in a", "") {
		t.Fatalf("want the orphan in b\n%s", dump(rep))
	}
}

func TestInfo(t *testing.T) {
	tg := open(t, "sqlite:///var/lib/app/app.db")
	info := tg.Info()
	if info.Engine != "sqlite" || info.Name != "/var/lib/app/app.db" || info.Database != "app.db" || info.ServerVersion == "" {
		t.Errorf("Info() = %+v", info)
	}
}

func TestOptions(t *testing.T) {
	for _, tt := range []struct {
		name string
		opt  Option
		ok   bool
	}{
		{"max errors 1", WithMaxErrors(1), true},
		{"max errors 0", WithMaxErrors(0), false},
		{"max errors negative", WithMaxErrors(-5), false},
		{"busy timeout 0", WithBusyTimeout(0), true},
		{"busy timeout negative", WithBusyTimeout(-time.Second), false},
		{"busy timeout huge", WithBusyTimeout(1000 * time.Hour), false},
		{"quick", WithQuickCheck(), true},
		{"nil", nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tg, err := Open("app.db", tt.opt)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				tg.Close()
				return
			}
			if !errors.Is(err, checks.ErrInvalidOption) {
				t.Errorf("err = %v, want ErrInvalidOption", err)
			}
		})
	}
	if got := (config{busyTimeout: 1500 * time.Microsecond}).busyTimeoutMillis(); got != 2 {
		t.Errorf("1.5ms rounds to %dms, want 2", got)
	}
}
