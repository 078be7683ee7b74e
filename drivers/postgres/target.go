package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lib/pq"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/redact"
)

// Engine is the OpenTelemetry db.system.name of PostgreSQL.
const Engine = "postgresql"

// defaultApplicationName is the application_name dbscrub's sessions show in
// pg_stat_activity and the server log.
const defaultApplicationName = "dbscrub"

// defaultConnectTimeout bounds connecting when the DSN does not say
// (connect_timeout).
const defaultConnectTimeout = 30 * time.Second

// The names of the checks, as users select them.
const (
	CheckHeap       = "heap"
	CheckBtree      = "btree"
	CheckCrosscheck = "crosscheck"
	CheckChecksums  = "checksums"
	CheckSettings   = "settings"
)

// catalog lists the checks in the order Checks returns them.
var catalog = []checks.CheckInfo{
	{Name: CheckHeap, Default: true, Description: "amcheck verify_heapam on every table, TOAST table and materialized view (tuple headers, line pointers, TOAST pointers, transaction ids)"},
	{Name: CheckBtree, Default: true, Description: "amcheck bt_index_check on every valid btree index (page structure and key order; optionally heapallindexed or bt_index_parent_check)"},
	{Name: CheckCrosscheck, Default: false, Description: "counts each table's rows with a sequential scan and through each btree index (index-only scan), in one snapshot, to find zeroed or truncated heap pages amcheck cannot see (opt-in: costs about twice the btree check)"},
	{Name: CheckChecksums, Default: true, Description: "warns when data checksums are off; reports checksum failures counted in pg_stat_database"},
	{Name: CheckSettings, Default: true, Description: "warns about settings that hide or risk corruption: zero_damaged_pages, ignore_checksum_failure, fsync, full_page_writes"},
}

// Catalog describes the checks the PostgreSQL driver offers, in the order
// [Target.Checks] runs them, for listings such as `dbscrub checks`.
func Catalog() []checks.CheckInfo {
	return append([]checks.CheckInfo(nil), catalog...)
}

// Target is one PostgreSQL database that checks run against. It implements
// [checks.Target]. Make one with [Open] (dbscrub owns the connection pool)
// or [New] (you lend it yours). A Target is safe for concurrent use.
//
// # Privileges
//
// The heap and btree checks need the amcheck extension in the database
// (CREATE EXTENSION amcheck, run once by a superuser) and EXECUTE on
// verify_heapam(regclass, boolean, boolean, text, bigint, bigint) and
// bt_index_check(regclass, boolean) (bt_index_parent_check(regclass, boolean)
// with [WithParentCheck]); since PostgreSQL 14 these are revoked from PUBLIC,
// so a role that is not a superuser needs explicit GRANTs. They need no
// SELECT privilege on the tables. The crosscheck check reads tables, so it
// needs SELECT on each table (or pg_read_all_data); tables the role cannot
// read are skipped with that reason. The checksums and settings checks need
// no special privilege.
//
// # Sessions
//
// Every task runs on its own connection from the pool, in a READ ONLY
// transaction (REPEATABLE READ READ ONLY for crosscheck) with SET LOCAL
// statement_timeout, lock_timeout, idle_in_transaction_session_timeout and
// application_name = 'dbscrub' (own pools set application_name in the
// startup packet instead, unless the DSN sets one), and is rolled back
// afterwards, so no setting outlives the task and nothing leaks into a
// borrowed pool. For a superuser, zero_damaged_pages and
// ignore_checksum_failure are also set off locally (they would hide damage);
// for other roles a session where either is on refuses to verify. dbscrub
// never writes, except CREATE EXTENSION amcheck with [WithInstallAmcheck].
// Cancelling the context cancels the running statement on the server.
type Target struct {
	db       *sql.DB
	own      bool // Open made db; Close closes it
	isPQ     bool // db uses lib/pq: notices (crash messages) can be captured
	cfg      config
	secrets  []string // passwords to scrub from every message
	mu       sync.Mutex
	info     checks.TargetInfo
	closed   bool
	setAppNm bool // SET LOCAL application_name in each transaction
	incs     incarnations
}

// Open returns a Target for the database named by dsn, with a connection
// pool of its own that [Target.Close] closes. dsn is a postgres:// or
// postgresql:// URL or a key=value connection string, as for libpq and
// lib/pq (environment variables such as PGPASSWORD and PGSSLMODE apply;
// note that lib/pq's default sslmode is require). Open only parses and
// validates, like sql.Open: nothing connects until a check plans or
// [Target.Probe] runs. A malformed dsn gives an error that names the DSN
// without its password.
//
// Unless the DSN sets application_name, sessions show application_name
// dbscrub; unless it sets connect_timeout, connecting gives up after 30
// seconds.
func Open(dsn string, opts ...Option) (*Target, error) {
	cfg := defaultConfig()
	if err := cfg.apply(opts); err != nil {
		return nil, err
	}
	secrets := dsnSecrets(dsn)
	shown := redact.DSN(dsn)
	if i := strings.Index(dsn, "://"); i >= 0 {
		if scheme := dsn[:i]; scheme != "postgres" && scheme != "postgresql" {
			return nil, fmt.Errorf("postgres: invalid DSN %s: unsupported scheme %q (want postgres:// or postgresql://)", shown, scheme)
		}
	}
	pcfg, err := pq.NewConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: invalid DSN %s: %s", shown, scrubDSNError(err, dsn, shown, secrets))
	}
	if pcfg.Password != "" {
		secrets = append(secrets, pcfg.Password)
	}
	if pcfg.ApplicationName == "" {
		pcfg.ApplicationName = defaultApplicationName
	}
	if pcfg.ConnectTimeout == 0 && !strings.Contains(dsn, "connect_timeout") && os.Getenv("PGCONNECT_TIMEOUT") == "" {
		pcfg.ConnectTimeout = defaultConnectTimeout
	}
	conn, err := pq.NewConnectorConfig(pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: invalid DSN %s: %s", shown, scrubDSNError(err, dsn, shown, secrets))
	}
	db := sql.OpenDB(conn)
	// Tasks take a connection each and give it back; keep a few idle so
	// that a run with several workers does not reconnect for every task.
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(time.Minute)

	database := pcfg.Database
	if database == "" {
		database = pcfg.User // the server's default
	}
	t := &Target{
		db:      db,
		own:     true,
		isPQ:    true,
		cfg:     cfg,
		secrets: secrets,
		info: checks.TargetInfo{
			Engine:   Engine,
			Name:     redact.Scrub(shown, secrets...),
			Database: database,
			Host:     pcfg.Host,
			Port:     int(pcfg.Port),
		},
	}
	return t, nil
}

// New returns a Target that runs its checks on db, a pool you own: lib/pq
// (sql.Open("postgres", ...)) or pgx's stdlib (sql.Open("pgx", ...)) both
// work. [Target.Close] does not close db. Every task takes its own
// connection from db and leaves no session state behind: settings are SET
// LOCAL inside a transaction that is always rolled back.
//
// Info reports the database, host and port once a check has planned or
// [Target.Probe] has run (the pool does not say before). With lib/pq,
// dbscrub tells a task killed because another backend crashed (retried)
// from the backend that crashed (a finding) by the server's notice; other
// drivers do not pass that notice on, so there dbscrub relies on the
// server's restart alone (see the package documentation).
func New(db *sql.DB, opts ...Option) (*Target, error) {
	if db == nil {
		return nil, invalid("nil *sql.DB")
	}
	cfg := defaultConfig()
	if err := cfg.apply(opts); err != nil {
		return nil, err
	}
	_, isPQ := db.Driver().(*pq.Driver)
	return &Target{
		db:       db,
		isPQ:     isPQ,
		cfg:      cfg,
		setAppNm: true,
		info:     checks.TargetInfo{Engine: Engine, Name: "postgresql (*sql.DB)"},
	}, nil
}

// Close releases the Target. For a Target made by [Open] it closes the
// connection pool; for one made by [New] it leaves the caller's pool open.
// Checks planned after Close fail with [ErrClosed].
func (t *Target) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	if t.own {
		return t.db.Close()
	}
	return nil
}

func (t *Target) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// Info describes the target: Engine "postgresql", Name the DSN without its
// password, Database, Host and Port, and ServerVersion once probed.
func (t *Target) Info() checks.TargetInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.info
}

func (t *Target) noteCaps(c *Capabilities) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.info.ServerVersion = c.ServerVersion
	if c.Database != "" {
		t.info.Database = c.Database
	}
	if !t.own {
		if c.serverAddr != "" && t.info.Host == "" {
			t.info.Host = c.serverAddr
			t.info.Port = c.serverPort
		}
		name := "postgresql"
		if t.info.Host != "" {
			name += fmt.Sprintf("://%s:%d", t.info.Host, t.info.Port)
		} else {
			name += "://"
		}
		t.info.Name = name + "/" + t.info.Database
	}
}

// Checks returns the named checks (heap, btree, crosscheck, checksums,
// settings), or the default checks (see [Catalog]) when no name is given,
// in catalog order. An unknown name gives an error wrapping
// [checks.ErrUnknownCheck] that lists the valid names.
//
// The checks returned by one call share one capability probe: the first
// check to plan connects and probes the server, the others reuse the
// result, so one run probes once.
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
			if c.Name == n {
				known = true
			}
		}
		if !known {
			valid := make([]string, 0, len(catalog))
			for _, c := range catalog {
				valid = append(valid, c.Name)
			}
			sort.Strings(valid)
			return nil, fmt.Errorf("postgres: %w %q: valid checks are %s", checks.ErrUnknownCheck, n, strings.Join(valid, ", "))
		}
		want[n] = true
	}
	r := &run{t: t, needAmcheck: want[CheckHeap] || want[CheckBtree]}
	var out []checks.Check
	for _, c := range catalog {
		if !want[c.Name] {
			continue
		}
		switch c.Name {
		case CheckHeap:
			r.heap = &heapCheck{r: r}
			out = append(out, r.heap)
		case CheckBtree:
			r.btreeCk = &btreeCheck{r: r}
			out = append(out, r.btreeCk)
		case CheckCrosscheck:
			out = append(out, &crossCheck{r: r})
		case CheckChecksums:
			out = append(out, &checksumsCheck{r: r})
		case CheckSettings:
			out = append(out, &settingsCheck{r: r})
		}
	}
	return out, nil
}

// run is the state the checks of one Checks call share.
type run struct {
	t           *Target
	needAmcheck bool
	heap        *heapCheck  // the run's heap check, if any
	btreeCk     *btreeCheck // the run's btree check, if any

	once sync.Once
	caps *Capabilities
	err  error

	heapRels listing[heapRel]
	indexes  listing[btreeIndex]
}

// capabilities probes the server once per run (installing amcheck first
// when asked to and needed). When the run has both the heap and the btree
// check, it then starts both catalog listings at once (see listing).
func (r *run) capabilities(ctx context.Context) (*Capabilities, error) {
	r.once.Do(func() {
		r.caps, r.err = r.t.prepare(ctx, r.needAmcheck)
		if r.err == nil && r.heap != nil && r.btreeCk != nil {
			r.heapRels.start(ctx, r.heap.relations)
			r.indexes.start(ctx, r.btreeCk.indexes)
		}
	})
	return r.caps, r.err
}

// blockSize is the server's block size, once probed (8192 before).
func (r *run) blockSize() int64 {
	if r.caps != nil && r.caps.BlockSize > 0 {
		return r.caps.BlockSize
	}
	return 8192
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
			}
		}
	}
	return out
}

// scrubDSNError turns a DSN parse error into one line without secrets.
func scrubDSNError(err error, dsn, shown string, secrets []string) string {
	msg := err.Error()
	msg = strings.ReplaceAll(msg, dsn, shown)
	msg = redact.Scrub(msg, secrets...)
	msg = strings.TrimPrefix(msg, "pq: ")
	return oneLine(msg)
}

// oneLine collapses a message to a single line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(strings.NewReplacer("\r", " ", "\n", " ").Replace(s)), " ")
}

// scrub removes the target's secrets from err.
func (t *Target) scrub(err error) error {
	return redact.Error(err, t.secrets...)
}

// errClosed is returned by plans of a closed target.
func (t *Target) errClosed() error {
	return fmt.Errorf("postgres: %s: %w", t.Info().Name, ErrClosed)
}

var _ checks.Target = (*Target)(nil)
