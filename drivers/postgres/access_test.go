package postgres

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/pgtest"
)

const secretPassword = "Sup3r-s3cret pass@word"

// TestConnectErrors checks that connection failures are one clear line
// wrapping ErrConnect, without the password, from Probe, from Plan and in
// the report.
func TestConnectErrors(t *testing.T) {
	c := pgtest.Shared(t)
	ctx := testCtx(t)
	user := fmt.Sprintf("scrub_conn_%d", dbCounter.Add(1))
	if err := c.CreateUser(ctx, user, secretPassword); err != nil {
		t.Fatal(err)
	}
	d := clusterDB(t, c, user+"_db")
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := free.Addr().(*net.TCPAddr).Port
	free.Close()

	tests := []struct {
		name string
		dsn  string
		want string
	}{
		{"wrong password", c.UserDSN(user, "wrong-"+secretPassword, d.name), "password authentication failed"},
		{"unreachable port", fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=3", user, strings.ReplaceAll(secretPassword, " ", "%20"), closedPort, d.name), "connection refused"},
		{"missing database", c.UserDSN(user, secretPassword, "no_such_db"), `database "no_such_db" does not exist`},
		{"key=value dsn", fmt.Sprintf("host=127.0.0.1 port=%d user=%s password='wrong-%s' dbname=%s sslmode=disable", c.Port, user, secretPassword, d.name), "password authentication failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg, err := Open(tt.dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			if strings.Contains(tg.Info().Name, "s3cret") {
				t.Errorf("Info().Name leaks the password: %s", tg.Info().Name)
			}
			_, err = tg.Probe(testCtx(t))
			assertConnectError(t, "Probe", err, tt.want)
			cks, err := tg.Checks()
			if err != nil {
				t.Fatal(err)
			}
			_, err = cks[0].Plan(testCtx(t))
			assertConnectError(t, "Plan", err, tt.want)
			rep := runChecks(t, tg, nil)
			if rep.Status != checks.StatusError || strings.Contains(dump(t, rep), "s3cret") {
				t.Errorf("report: status %s, or it leaks the password:\n%s", rep.Status, dump(t, rep))
			}
		})
	}
}

func assertConnectError(t *testing.T, what string, err error, want string) {
	t.Helper()
	if !errors.Is(err, ErrConnect) {
		t.Fatalf("%s: error %v, want ErrConnect", what, err)
	}
	msg := err.Error()
	if strings.Contains(msg, "s3cret") || strings.Contains(msg, "S3cret") || strings.Contains(msg, "s3cret%20") {
		t.Errorf("%s: error leaks the password: %s", what, msg)
	}
	if strings.ContainsAny(msg, "\n\r") {
		t.Errorf("%s: error is not one line: %q", what, msg)
	}
	if !strings.Contains(msg, want) {
		t.Errorf("%s: error %q lacks %q", what, msg, want)
	}
}

// TestOpenInvalidDSN checks that a malformed DSN is one error line that
// does not show the password.
func TestOpenInvalidDSN(t *testing.T) {
	for _, dsn := range []string{
		"postgres://alice:s3cret@db:notaport/app",
		"postgres://alice:s3cret@db/app?sslmode=bogus",
		"mysql://alice:s3cret@db/app",
		"host=db password=s3cret sslmode=nonsense",
		"host=db password='s3cret' port=x",
	} {
		_, err := Open(dsn)
		if err == nil {
			t.Errorf("Open(%q) succeeded", dsn)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") || strings.ContainsAny(err.Error(), "\n") {
			t.Errorf("Open(%q): error leaks the password or spans lines: %v", dsn, err)
		}
		if !strings.Contains(err.Error(), "invalid DSN") {
			t.Errorf("Open(%q): %v", dsn, err)
		}
	}
	tg, err := Open("postgres://alice:s3cret@db.example.com:6543/app?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	info := tg.Info()
	if info.Engine != "postgresql" || info.Database != "app" || info.Host != "db.example.com" || info.Port != 6543 ||
		info.Name != "postgres://alice:xxxxx@db.example.com:6543/app?sslmode=disable" {
		t.Errorf("Info() = %+v", info)
	}
	if err := tg.Close(); err != nil {
		t.Fatal(err)
	}
	cks, _ := tg.Checks()
	if _, err := cks[0].Plan(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("Plan after Close: %v, want ErrClosed", err)
	}
}

// TestNonSuperuser checks the privilege errors, and that GRANTs fix them.
func TestNonSuperuser(t *testing.T) {
	c := pgtest.Shared(t)
	ctx := testCtx(t)
	user := fmt.Sprintf("scrub_user_%d", dbCounter.Add(1))
	if err := c.CreateUser(ctx, user, secretPassword); err != nil {
		t.Fatal(err)
	}
	d := clusterDB(t, c, user+"_db") // has amcheck (from template1)
	d.exec(t, `CREATE TABLE visible (a int PRIMARY KEY); INSERT INTO visible SELECT generate_series(1, 100);
		CREATE TABLE hidden (a int PRIMARY KEY); INSERT INTO hidden SELECT generate_series(1, 100)`)
	d.exec(t, fmt.Sprintf("GRANT SELECT ON visible TO %s", user))
	dsn := c.UserDSN(user, secretPassword, d.name)

	tg, err := Open(dsn, WithParentCheck())
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	caps, err := tg.Probe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if caps.Superuser || !caps.AmcheckInstalled || caps.CanExecuteAmcheck || caps.CanExecuteVerifyHeapam {
		t.Errorf("capabilities of a plain role: %+v", caps)
	}
	// Crash detection needs a sign of reinitialization every role sees.
	if caps.incarnation.statsReset.IsZero() || caps.PostmasterStart.IsZero() {
		t.Errorf("a plain role sees no server incarnation: %+v", caps.incarnation)
	}
	for check, grants := range map[string][]string{
		CheckHeap:  {"GRANT EXECUTE ON FUNCTION public.verify_heapam(regclass, boolean, boolean, text, bigint, bigint) TO " + user + ";"},
		CheckBtree: {"GRANT EXECUTE ON FUNCTION public.bt_index_check(regclass, boolean) TO " + user + ";", "GRANT EXECUTE ON FUNCTION public.bt_index_parent_check(regclass, boolean) TO " + user + ";"},
	} {
		cks, _ := tg.Checks(check)
		_, err := cks[0].Plan(ctx)
		if !errors.Is(err, ErrPrivilege) {
			t.Fatalf("%s: Plan error %v, want ErrPrivilege", check, err)
		}
		for _, g := range grants {
			if !strings.Contains(err.Error(), g) {
				t.Errorf("%s: error lacks %q: %v", check, g, err)
			}
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error leaks the password", check)
		}
	}

	// After the GRANTs every check runs; tables the role cannot read are
	// skipped by the crosscheck, with the reason.
	d.exec(t, fmt.Sprintf(`GRANT EXECUTE ON FUNCTION verify_heapam(regclass, boolean, boolean, text, bigint, bigint) TO %[1]s;
		GRANT EXECUTE ON FUNCTION bt_index_check(regclass, boolean) TO %[1]s;
		GRANT EXECUTE ON FUNCTION bt_index_parent_check(regclass, boolean) TO %[1]s`, user))
	tg2, err := Open(dsn, WithParentCheck())
	if err != nil {
		t.Fatal(err)
	}
	defer tg2.Close()
	rep := runChecks(t, tg2, nil)
	if rep.Status != checks.StatusHealthy {
		t.Fatalf("after GRANTs: %s (%s):\n%s", rep.Status, rep.Reason, dump(t, rep))
	}
	cross := checkReport(rep, CheckCrosscheck)
	if tr := taskByKey(cross, "public.hidden"); tr == nil || tr.State != checks.TaskSkipped || !strings.Contains(tr.Reason, "no SELECT privilege") {
		t.Errorf("crosscheck of an unreadable table: %+v", tr)
	}
	if tr := taskByKey(cross, "public.visible"); tr == nil || tr.State != checks.TaskCompleted {
		t.Errorf("crosscheck of a readable table: %+v", tr)
	}

	// A role that is not a superuser cannot install amcheck.
	bare, err := c.CreateDatabaseWithoutAmcheck(ctx, user+"_bare")
	if err != nil {
		t.Fatal(err)
	}
	_ = bare
	tg3, err := Open(c.UserDSN(user, secretPassword, user+"_bare"), WithInstallAmcheck())
	if err != nil {
		t.Fatal(err)
	}
	defer tg3.Close()
	cks, _ := tg3.Checks(CheckHeap)
	_, err = cks[0].Plan(ctx)
	if !errors.Is(err, ErrAmcheckMissing) || !strings.Contains(err.Error(), "superuser") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("WithInstallAmcheck as a plain role: %v", err)
	}
}

// TestSettingsAndGuard runs a cluster with every risky setting on and
// checks the warnings, and that verification refuses to run for a role that
// cannot turn zero_damaged_pages off.
func TestSettingsAndGuard(t *testing.T) {
	c := pgtest.Fresh(t, pgtest.WithSetting("fsync", "off"), pgtest.WithSetting("full_page_writes", "off"),
		pgtest.WithSetting("zero_damaged_pages", "on"), pgtest.WithSetting("ignore_checksum_failure", "on"))
	ctx := testCtx(t)
	d := clusterDB(t, c, "risky")
	d.exec(t, "CREATE TABLE t (a int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100)")
	if err := c.CreateUser(ctx, "plain", secretPassword); err != nil {
		t.Fatal(err)
	}
	d.exec(t, `GRANT EXECUTE ON FUNCTION verify_heapam(regclass, boolean, boolean, text, bigint, bigint) TO plain;
		ALTER ROLE plain IN DATABASE risky SET zero_damaged_pages = on`)

	tg := d.open(t)
	rep := runChecks(t, tg, []string{CheckSettings, CheckHeap})
	settings := checkReport(rep, CheckSettings)
	if settings.Status != checks.StatusWarning {
		t.Fatalf("settings: %s (%s)", settings.Status, settings.Reason)
	}
	got := map[string]string{}
	for _, f := range settings.Findings {
		if f.Severity != checks.StatusWarning || f.Remedy == "" || f.Message == "" {
			t.Errorf("finding %+v", f)
		}
		got[f.Object+"/"+f.Code] = f.Message
	}
	for _, want := range []string{"fsync/setting", "full_page_writes/setting", "zero_damaged_pages/setting", "ignore_checksum_failure/setting", "zero_damaged_pages/role_setting"} {
		if _, ok := got[want]; !ok {
			t.Errorf("no finding %s; got %v", want, got)
		}
	}
	if !strings.Contains(got["zero_damaged_pages/role_setting"], "ALTER ROLE plain IN DATABASE risky") {
		t.Errorf("role setting finding: %q", got["zero_damaged_pages/role_setting"])
	}
	// As a superuser, dbscrub turns zero_damaged_pages off for itself.
	if heap := checkReport(rep, CheckHeap); heap.Status != checks.StatusHealthy {
		t.Errorf("heap as a superuser: %s (%s)", heap.Status, heap.Reason)
	}

	plain, err := Open(c.UserDSN("plain", secretPassword, "risky"))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	rep = runChecks(t, plain, []string{CheckHeap, CheckSettings}, checks.WithTaskTimeout(time.Minute))
	heap := checkReport(rep, CheckHeap)
	if heap.Status != checks.StatusError || !strings.Contains(heap.Reason, "zero_damaged_pages is on in this session") {
		t.Errorf("heap as a plain role with zero_damaged_pages on: %s (%s)", heap.Status, heap.Reason)
	}
	if s := checkReport(rep, CheckSettings); s.Status != checks.StatusWarning {
		t.Errorf("settings as a plain role: %s (%s)", s.Status, s.Reason)
	}
}
