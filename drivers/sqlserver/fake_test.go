package sqlserver

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/dbscrub/dbscrub/checks"
)

// fakeServer is the test double of the seam: it answers each statement
// with a recorded response, chosen by the first rule whose match string
// the statement contains, and records every statement.
type fakeServer struct {
	name string

	mu         sync.Mutex
	rules      []*rule
	calls      []call
	connectErr error
	sessions   int
	discarded  int
	returned   int
}

type rule struct {
	match string
	resp  *response
	err   error
	fn    func(ctx context.Context, args []any) (*response, error)
}

type call struct {
	server string
	query  string
	args   []any
}

func newFake(name string) *fakeServer { return &fakeServer{name: name} }

// on answers statements containing match with resp and err.
func (f *fakeServer) on(match string, resp *response, err error) *fakeServer {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, &rule{match: match, resp: resp, err: err})
	return f
}

// onFunc answers statements containing match by calling fn.
func (f *fakeServer) onFunc(match string, fn func(ctx context.Context, args []any) (*response, error)) *fakeServer {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, &rule{match: match, fn: fn})
	return f
}

func (f *fakeServer) session(ctx context.Context) (session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.connectErr != nil {
		return nil, f.connectErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.sessions++
	return &fakeSession{f: f}, nil
}

func (f *fakeServer) statements() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, c.query)
	}
	return out
}

// callsMatching returns the calls whose statement contains s.
func (f *fakeServer) callsMatching(s string) []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []call
	for _, c := range f.calls {
		if strings.Contains(c.query, s) {
			out = append(out, c)
		}
	}
	return out
}

type fakeSession struct {
	f      *fakeServer
	closed bool
}

func (s *fakeSession) exec(ctx context.Context, query string, args ...any) (*response, error) {
	f := s.f
	f.mu.Lock()
	f.calls = append(f.calls, call{server: f.name, query: query, args: args})
	var r *rule
	for _, x := range f.rules {
		if strings.Contains(query, x.match) {
			r = x
			break
		}
	}
	f.mu.Unlock()
	if s.closed {
		return &response{}, fmt.Errorf("fake: session used after close")
	}
	if err := ctx.Err(); err != nil {
		return &response{}, err
	}
	switch {
	case r == nil && strings.HasPrefix(query, "SET LOCK_TIMEOUT"):
		return &response{}, nil
	case r == nil:
		return &response{}, fmt.Errorf("fake %s: no response recorded for statement %q", f.name, firstLine(query))
	case r.fn != nil:
		resp, err := r.fn(ctx, args)
		if resp == nil {
			resp = &response{}
		}
		return resp, err
	}
	cp := *r.resp
	return &cp, r.err
}

func (s *fakeSession) close(discard bool) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	s.closed = true
	if discard {
		s.f.discarded++
	} else {
		s.f.returned++
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// set builds a result set.
func set(cols []string, rows ...[]any) resultSet {
	return resultSet{columns: cols, rows: rows}
}

// resp builds a response of result sets.
func resp(sets ...resultSet) *response { return &response{sets: sets} }

// tableResultsColumns are DBCC CHECKDB WITH TABLERESULTS' columns on SQL
// Server 2016 and later.
var tableResultsColumns = []string{"Error", "Level", "State", "MessageText", "RepairLevel", "Status", "DbId", "DbFragId",
	"ObjectId", "IndexId", "PartitionId", "AllocUnitId", "RidDbId", "RidPruId", "File", "Page", "Slot",
	"RefDbId", "RefPruId", "RefFile", "RefPage", "RefSlot", "Allocation"}

// tr is one TABLERESULTS row.
type tr struct {
	err, level           int64
	msg, repair          string
	object, index        int64
	file, page, slot     int64
	refFile, refPage     int64
	partition, allocUnit int64
}

func (r tr) values() []any {
	var repair any
	if r.repair != "" {
		repair = r.repair
	}
	return []any{r.err, r.level, int64(1), r.msg, repair, int64(0), int64(5), int64(1),
		r.object, r.index, r.partition, r.allocUnit, int64(0), int64(0), r.file, r.page, r.slot,
		int64(0), int64(0), r.refFile, r.refPage, int64(0), int64(1)}
}

// tableResults builds a TABLERESULTS result set (no rows: a clean check).
func tableResults(rows ...tr) resultSet {
	s := resultSet{columns: tableResultsColumns}
	for _, r := range rows {
		s.rows = append(s.rows, r.values())
	}
	return s
}

// probeOpts are the probe's answers.
type probeOpts struct {
	version       string
	engineEdition int64
	database      string
	databaseID    int64
	state         string
	pageVerify    string
	readOnly      bool
	dataBytes     int64
	ag            string // availability group name; "" = none
	role          string
	allow         string
	agDenied      bool
}

func defaultProbe() probeOpts {
	return probeOpts{version: "16.0.4135.4", engineEdition: 3, database: "Sales", databaseID: 5, state: "ONLINE", pageVerify: "CHECKSUM", dataBytes: 10 << 30}
}

// install records the probe's responses on f.
func (p probeOpts) install(f *fakeServer) {
	cols := []string{"server_name", "product_version", "product_level", "edition", "engine_edition", "database_name", "database_id",
		"state_desc", "user_access_desc", "is_read_only", "page_verify_option_desc", "compatibility_level", "is_snapshot",
		"is_sysadmin", "is_db_owner", "view_server_state", "data_bytes"}
	f.on("SERVERPROPERTY('ServerName')", resp(set(cols, []any{
		"SQL1", p.version, "RTM", "Enterprise Edition (64-bit)", p.engineEdition, p.database, p.databaseID,
		p.state, "MULTI_USER", p.readOnly, p.pageVerify, int64(160), int64(0),
		int64(0), int64(1), int64(1), p.dataBytes})), nil)
	agCols := []string{"ag_name", "role_desc", "secondary_role_allow_connections_desc"}
	var agRows [][]any
	if p.ag != "" {
		agRows = append(agRows, []any{p.ag, p.role, p.allow})
	}
	if p.agDenied {
		f.on("sys.dm_hadr_availability_replica_states", &response{errs: []error{
			mssql.Error{Number: 300, Class: 14, State: 1, Message: "VIEW SERVER STATE permission was denied on object 'server', database 'master'."},
		}}, nil)
		var rows [][]any
		if p.ag != "" {
			rows = append(rows, []any{p.ag, nil, p.allow})
		}
		f.on("CAST(NULL AS nvarchar(60)) AS role_desc", resp(set(agCols, rows...)), nil)
		return
	}
	f.on("sys.dm_hadr_availability_replica_states", resp(set(agCols, agRows...)), nil)
}

// fakeTarget returns a Target over fake servers: db for the database,
// master (optional) for the fallback.
func fakeTarget(t *testing.T, db, master *fakeServer, opts ...Option) *Target {
	t.Helper()
	cfg := defaultConfig()
	if err := cfg.apply(opts); err != nil {
		t.Fatal(err)
	}
	tg := &Target{
		cfg:      cfg,
		db:       db,
		database: "Sales",
		own:      true,
		secrets:  []string{"s3cret"},
		info:     checks.TargetInfo{Engine: Engine, Name: "sqlserver://sa:xxxxx@sql1:1433?database=Sales", Database: "Sales", Host: "sql1", Port: 1433},
	}
	if master != nil {
		tg.master = func() (connector, error) { return master, nil }
	}
	return tg
}

// runChecks runs the named checks of tg and returns the report.
func runChecks(t *testing.T, ctx context.Context, tg *Target, opts []checks.Option, names ...string) *checks.Report {
	t.Helper()
	cks, err := tg.Checks(names...)
	if err != nil {
		t.Fatal(err)
	}
	r, err := checks.NewRunner(append([]checks.Option{checks.WithRetries(0)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r.Run(ctx, tg, cks...)
}

// checkReport returns the report of one check.
func checkReport(t *testing.T, rep *checks.Report, name string) *checks.CheckReport {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Check == name {
			return c
		}
	}
	t.Fatalf("no report for check %s", name)
	return nil
}

// mustStatus fails unless the check has the status.
func mustStatus(t *testing.T, rep *checks.Report, name string, want checks.Status) *checks.CheckReport {
	t.Helper()
	c := checkReport(t, rep, name)
	if c.Status != want {
		t.Errorf("check %s: status %s (%s), want %s", name, c.Status, c.Reason, want)
	}
	return c
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
