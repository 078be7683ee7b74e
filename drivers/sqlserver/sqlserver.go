package sqlserver

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
	"github.com/microsoft/go-mssqldb/msdsn"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/redact"
)

// Engine is the OpenTelemetry db.system.name of SQL Server.
const Engine = "microsoft.sql_server"

// defaultAppName is the application name dbscrub's sessions show in
// sys.dm_exec_sessions (program_name), unless the DSN sets one.
const defaultAppName = "dbscrub"

// probeTTL is how long the checks of one Checks call reuse a probe.
const probeTTL = time.Minute

// The names of the checks, as users select them.
const (
	CheckCheckDB       = "checkdb"
	CheckCheckTable    = "checktable"
	CheckCheckAlloc    = "checkalloc"
	CheckCheckCatalog  = "checkcatalog"
	CheckSuspectPages  = "suspect_pages"
	CheckLastKnownGood = "last_known_good"
	CheckPageVerify    = "page_verify"
	CheckBackups       = "backups"
)

// catalog lists the checks in the order Checks returns them.
var catalog = []checks.CheckInfo{
	{Name: CheckCheckDB, Default: true, Description: "DBCC CHECKDB WITH NO_INFOMSGS, ALL_ERRORMSGS, TABLERESULTS: allocation, structure and logical consistency of every object, each error a finding"},
	{Name: CheckCheckTable, Description: "DBCC CHECKTABLE on each table and indexed view, one task each, largest first: spreads a huge database over several time-boxed runs"},
	{Name: CheckCheckAlloc, Description: "DBCC CHECKALLOC: allocation and page-usage consistency (with checktable and checkcatalog, covers what checkdb covers)"},
	{Name: CheckCheckCatalog, Description: "DBCC CHECKCATALOG: consistency of the system catalog"},
	{Name: CheckSuspectPages, Default: true, Description: "pages SQL Server recorded in msdb.dbo.suspect_pages after 823/824 errors (event types 1, 2, 3 are corruption; 4, 5, 7 repaired history)"},
	{Name: CheckLastKnownGood, Default: true, Description: "warns when the last clean DBCC CHECKDB (LastGoodCheckDbTime) is too old or never happened"},
	{Name: CheckPageVerify, Default: true, Description: "warns when the database's PAGE_VERIFY option is not CHECKSUM"},
	{Name: CheckBackups, Default: true, Description: "latest full backup in msdb.dbo.backupset: too old or missing, or without backup checksums (warnings); taken from a damaged database (corruption)"},
}

// Catalog describes the checks the SQL Server driver offers, in the order
// [Target.Checks] returns them, for listings such as `dbscrub checks`. The
// defaults are checkdb, suspect_pages, last_known_good, page_verify and
// backups.
func Catalog() []checks.CheckInfo {
	return append([]checks.CheckInfo(nil), catalog...)
}

// Target is one SQL Server database that checks run against. It implements
// [checks.Target], and [checks.Fingerprinter] and [checks.RangeHasher] (see
// [Target.Fingerprint]). Make one with [Open] (dbscrub owns the connection pool)
// or [New] (you lend it yours). A Target is safe for concurrent use.
//
// Every task runs on its own connection, which first runs
//
//	SET LOCK_TIMEOUT <ms>; SET DEADLOCK_PRIORITY LOW;
//	SET ANSI_NULLS, ANSI_PADDING, ANSI_WARNINGS, ARITHABORT, CONCAT_NULL_YIELDS_NULL, QUOTED_IDENTIFIER ON;
//	SET NUMERIC_ROUNDABORT OFF;
//
// (the SET options DBCC needs to check indexed views and indexes on
// computed columns). go-mssqldb resets the session (sp_reset_connection)
// before a pooled connection is used again, and a connection that saw an
// error or a cancellation is closed rather than pooled, so nothing leaks
// into a borrowed pool. Cancelling the context sends a TDS attention: the
// server stops the statement. dbscrub never runs a REPAIR option, DBCC
// WRITEPAGE or any statement that writes.
type Target struct {
	cfg      config
	db       connector                 // sessions in the target database
	master   func() (connector, error) // sessions in master, to see a database that cannot be opened; nil for New
	closers  []func() error
	secrets  []string
	database string // the database the DSN names; "" = the login's default

	mu     sync.Mutex
	info   checks.TargetInfo
	closed bool
	own    bool
}

// Open returns a Target for the database named by dsn, with connection
// pools of its own that [Target.Close] closes. dsn is a sqlserver:// URL
// (sqlserver://user:password@host:1433?database=Sales, or
// sqlserver://user:password@host/INSTANCE?database=Sales) or an ADO string
// (server=host;user id=...;password=...;database=Sales), as go-mssqldb
// accepts them. Open only parses and validates: nothing connects until a
// check plans or [Target.Probe] runs. A malformed dsn gives a one-line error
// that shows the DSN without its password.
//
// Unless the DSN sets "app name", sessions show program_name dbscrub. For
// Microsoft Entra ID authentication (fedauth=...), open a pool with the
// "azuresql" driver (import github.com/microsoft/go-mssqldb/azuread) and
// pass it to [New].
//
// When the database cannot be opened (SUSPECT, RECOVERY_PENDING, OFFLINE,
// a non-readable availability-group secondary), a Target made by Open
// looks it up from master to report why, and runs the checks that only
// read msdb from there.
func Open(dsn string, opts ...Option) (*Target, error) {
	cfg := defaultConfig()
	if err := cfg.apply(opts); err != nil {
		return nil, err
	}
	p, shown, secrets, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	pool := sql.OpenDB(mssql.NewConnectorConfig(p))
	// Tasks take a connection each and give it back; keep a few idle so
	// that a run with several workers does not log in for every task.
	pool.SetMaxIdleConns(8)
	pool.SetConnMaxIdleTime(time.Minute)

	port := int(p.Port)
	if port == 0 && p.Instance == "" {
		port = 1433
	}
	t := &Target{
		cfg:      cfg,
		db:       sqlPool{db: pool},
		secrets:  secrets,
		database: p.Database,
		own:      true,
		info: checks.TargetInfo{
			Engine:   Engine,
			Name:     shown,
			Database: p.Database,
			Host:     p.Host,
			Port:     port,
		},
	}
	t.closers = append(t.closers, pool.Close)
	if p.Database != "" && !strings.EqualFold(p.Database, "master") {
		var once sync.Once
		var masterPool *sql.DB
		t.master = func() (connector, error) {
			t.mu.Lock()
			defer t.mu.Unlock()
			if t.closed {
				return nil, ErrClosed
			}
			once.Do(func() {
				mp := p
				mp.Database = "master"
				mp.ReadOnlyIntent = false
				masterPool = sql.OpenDB(mssql.NewConnectorConfig(mp))
				masterPool.SetMaxIdleConns(2)
				masterPool.SetConnMaxIdleTime(time.Minute)
				t.closers = append(t.closers, masterPool.Close)
			})
			return sqlPool{db: masterPool}, nil
		}
	}
	return t, nil
}

// parseDSN parses and validates dsn without connecting. It returns the
// go-mssqldb configuration (with the application name set to dbscrub
// unless the DSN sets one), the DSN to show (without its password) and the
// secrets to scrub from messages.
func parseDSN(dsn string) (p msdsn.Config, shown string, secrets []string, err error) {
	secrets = dsnSecrets(dsn)
	shown = redact.Scrub(redact.DSN(dsn), secrets...)
	if strings.TrimSpace(dsn) == "" {
		return p, shown, secrets, dsnError("sqlserver: empty DSN (want sqlserver://user:password@host:1433?database=name)")
	}
	if i := strings.Index(dsn, "://"); i >= 0 {
		if !strings.EqualFold(dsn[:i], "sqlserver") {
			return p, shown, secrets, dsnError(fmt.Sprintf("sqlserver: invalid DSN %s: unsupported scheme %q (want sqlserver://user:password@host:1433?database=name or an ADO string server=...;database=...)",
				shown, dsn[:i]))
		}
		dsn = "sqlserver" + dsn[i:] // go-mssqldb only knows the lower-case scheme
	}
	p, err = msdsn.Parse(dsn)
	if p.Password != "" {
		secrets = append(secrets, p.Password)
	}
	if err != nil {
		msg := redact.Scrub(strings.ReplaceAll(err.Error(), dsn, shown), secrets...)
		return p, shown, secrets, dsnError(fmt.Sprintf("sqlserver: invalid DSN %s: %s", shown, oneLine(msg)))
	}
	if _, ok := p.Parameters["fedauth"]; ok {
		return p, shown, secrets, dsnError(fmt.Sprintf("sqlserver: DSN %s uses fedauth (Microsoft Entra ID): open a pool with sql.Open(\"azuresql\", dsn) (import _ \"github.com/microsoft/go-mssqldb/azuread\") and pass it to sqlserver.New",
			shown))
	}
	if _, ok := p.Parameters[msdsn.AppName]; !ok {
		p.AppName = defaultAppName
	}
	return p, shown, secrets, nil
}

// dsnError is a malformed DSN: one line, without the password, matching
// checks.ErrInvalidOption.
type dsnError string

func (e dsnError) Error() string { return string(e) }
func (e dsnError) Unwrap() error { return checks.ErrInvalidOption }

// New returns a Target that runs its checks on db, a pool you own whose
// driver is go-mssqldb: sql.Open("sqlserver", dsn), sql.OpenDB(connector),
// or sql.Open("azuresql", dsn) for Microsoft Entra ID. The database is the
// one the pool's connections open. [Target.Close] does not close db.
//
// Info reports the server and database once a check has planned or
// [Target.Probe] has run (the pool does not say before); [WithName] names
// the target from the start.
func New(db *sql.DB, opts ...Option) (*Target, error) {
	if db == nil {
		return nil, invalid("nil *sql.DB")
	}
	cfg := defaultConfig()
	if err := cfg.apply(opts); err != nil {
		return nil, err
	}
	name := cfg.name
	if name == "" {
		name = "sqlserver (*sql.DB)"
	}
	return &Target{
		cfg:  cfg,
		db:   sqlPool{db: db},
		info: checks.TargetInfo{Engine: Engine, Name: name},
	}, nil
}

// Close releases the Target. For a Target made by [Open] it closes the
// connection pools; for one made by [New] it leaves the caller's pool
// open. Checks planned after Close fail with [ErrClosed].
func (t *Target) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	var first error
	for _, c := range t.closers {
		if err := c(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (t *Target) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// Info describes the target: Engine "microsoft.sql_server", Name (the DSN
// without its password, or the [WithName] name), Database, Host and Port,
// and ServerVersion once probed.
func (t *Target) Info() checks.TargetInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.info
}

// noteCaps records what a probe learnt in Info.
func (t *Target) noteCaps(c *Capabilities) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.info.ServerVersion = c.ProductVersion
	if c.Database != "" {
		t.info.Database = c.Database
	}
	if !t.own && t.cfg.name == "" {
		t.info.Name = "sqlserver://" + c.ServerName + "?database=" + url.QueryEscape(c.Database)
	}
}

// Checks returns the named checks (checkdb, checktable, checkalloc,
// checkcatalog, suspect_pages, last_known_good, page_verify, backups), or
// the default checks when no name is given (checkdb, suspect_pages,
// last_known_good, page_verify, backups), in catalog order. An unknown name
// gives an error wrapping [checks.ErrUnknownCheck] that lists the valid
// names.
//
// The checks returned by one call share one capability probe (for a
// minute): the first check to plan connects and probes, the others reuse
// the result.
func (t *Target) Checks(names ...string) ([]checks.Check, error) {
	want := map[string]bool{}
	if len(names) == 0 {
		for _, c := range catalog {
			if c.Default {
				want[c.Name] = true
			}
		}
	}
	for _, n := range names {
		known := false
		for _, c := range catalog {
			known = known || c.Name == n
		}
		if !known {
			valid := make([]string, 0, len(catalog))
			for _, c := range catalog {
				valid = append(valid, c.Name)
			}
			sort.Strings(valid)
			return nil, fmt.Errorf("sqlserver: %w %q: valid checks are %s", checks.ErrUnknownCheck, n, strings.Join(valid, ", "))
		}
		want[n] = true
	}
	r := &run{t: t}
	var out []checks.Check
	for _, c := range catalog {
		if want[c.Name] {
			out = append(out, &check{r: r, name: c.Name})
		}
	}
	return out, nil
}

// Probe connects and returns what the server and the database are: version,
// edition, Azure SQL Database or Managed Instance, permissions,
// availability-group role and database state. It always asks the server
// (the checks share a cached probe instead).
func (t *Target) Probe(ctx context.Context) (*Capabilities, error) {
	return t.probe(ctx)
}

// run is the state the checks of one Checks call share.
type run struct {
	t    *Target
	mu   sync.Mutex
	caps *Capabilities
	at   time.Time
}

// capabilities returns a probe at most probeTTL old. Failures are not
// cached.
func (r *run) capabilities(ctx context.Context) (*Capabilities, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.caps != nil && time.Since(r.at) < probeTTL {
		return r.caps, nil
	}
	caps, err := r.t.probe(ctx)
	if err != nil {
		return nil, err
	}
	r.caps, r.at = caps, time.Now()
	return caps, nil
}

// pool returns the connector the tasks of caps run on: master when the
// database itself cannot be opened.
func (t *Target) pool(caps *Capabilities) (connector, error) {
	if caps.ViaMaster && t.master != nil {
		return t.master()
	}
	return t.db, nil
}

// dsnSecrets returns the passwords dsn may hold, to scrub from messages.
func dsnSecrets(dsn string) []string {
	var out []string
	if p := redact.Password(dsn); p != "" {
		out = append(out, p)
	}
	// An unparsable URL: take what lies between "user:" and the last "@"
	// of the authority.
	if i := strings.Index(dsn, "://"); i >= 0 {
		rest := dsn[i+3:]
		if end := strings.IndexAny(rest, "/?#"); end >= 0 {
			rest = rest[:end]
		}
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if _, pw, ok := strings.Cut(rest[:at], ":"); ok && pw != "" {
				out = append(out, pw)
				if u, err := url.PathUnescape(pw); err == nil && u != pw {
					out = append(out, u)
				}
			}
		}
	}
	return out
}

var _ checks.Target = (*Target)(nil)
