package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"
)

// Function signatures of the amcheck functions dbscrub calls.
const (
	sigVerifyHeapam       = "verify_heapam(regclass, boolean, boolean, text, bigint, bigint)"
	sigBtIndexCheck       = "bt_index_check(regclass, boolean)"
	sigBtIndexParentCheck = "bt_index_parent_check(regclass, boolean)"
)

// Capabilities is what [Target.Probe] learns about the server and the
// database: what the checks can do and what the role may do.
type Capabilities struct {
	// ServerVersion is the server version, e.g. "15.4".
	ServerVersion string
	// ServerVersionNum is server_version_num, e.g. 150004.
	ServerVersionNum int
	// Database is the current database.
	Database string
	// User is the role dbscrub runs as (current_user).
	User string
	// Superuser reports whether the role is a superuser (rolsuper).
	Superuser bool
	// InRecovery reports whether the server is a standby (or recovering).
	InRecovery bool
	// DataChecksums reports whether the cluster has data checksums.
	DataChecksums bool
	// BlockSize is the server's block size in bytes (usually 8192).
	BlockSize int64
	// PostmasterStart is pg_postmaster_start_time(): when the server was
	// started. It does not change when the server reinitializes after a
	// backend crash.
	PostmasterStart time.Time

	// AmcheckInstalled reports whether the amcheck extension is installed
	// in the database (pg_extension).
	AmcheckInstalled bool
	// AmcheckVersion is the installed amcheck version, e.g. "1.3".
	AmcheckVersion string
	// AmcheckSchema is the schema amcheck's functions live in.
	AmcheckSchema string
	// AmcheckAvailable reports whether the server can install amcheck
	// (pg_available_extensions: the contrib package is present).
	AmcheckAvailable bool
	// AmcheckDefaultVersion is the version CREATE EXTENSION would install.
	AmcheckDefaultVersion string
	// HasVerifyHeapam reports whether the installed amcheck has
	// verify_heapam (amcheck 1.3, PostgreSQL 14 and later).
	HasVerifyHeapam bool
	// CanExecuteVerifyHeapam, CanExecuteBtIndexCheck and
	// CanExecuteBtIndexParentCheck report the role's EXECUTE privilege on
	// each amcheck function (has_function_privilege).
	CanExecuteVerifyHeapam       bool
	CanExecuteBtIndexCheck       bool
	CanExecuteBtIndexParentCheck bool
	// CanExecuteAmcheck reports whether the role may execute every amcheck
	// function the configured checks call: verify_heapam, bt_index_check,
	// and bt_index_parent_check with WithParentCheck.
	CanExecuteAmcheck bool

	incarnation incarnation
	serverAddr  string
	serverPort  int
}

// Probe connects and reports what the server offers and what the role may
// do. It runs read-only queries in a READ ONLY transaction and never
// installs anything (only planning with [WithInstallAmcheck] does). A
// connection failure gives an error wrapping [ErrConnect], one line, without
// the password.
func (t *Target) Probe(ctx context.Context) (*Capabilities, error) {
	c, err := t.probe(ctx)
	if err != nil {
		return nil, err
	}
	t.noteCaps(c)
	return c, nil
}

const probeQuery = `SELECT pg_catalog.current_setting('server_version'),
	pg_catalog.current_setting('server_version_num')::int,
	pg_catalog.current_database(), current_user::text,
	COALESCE((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user), false),
	pg_catalog.pg_is_in_recovery(),
	pg_catalog.current_setting('data_checksums') = 'on',
	pg_catalog.current_setting('block_size')::bigint,
	` + incarnationColumns + `,
	COALESCE(host(pg_catalog.inet_server_addr()), ''), COALESCE(pg_catalog.inet_server_port(), 0),
	e.extversion, n.nspname,
	(SELECT x.default_version FROM pg_catalog.pg_available_extensions x WHERE x.name = 'amcheck'),
	pg_catalog.to_regprocedure(pg_catalog.quote_ident(n.nspname) || '.` + sigVerifyHeapam + `') IS NOT NULL,
	COALESCE(pg_catalog.has_function_privilege(pg_catalog.to_regprocedure(pg_catalog.quote_ident(n.nspname) || '.` + sigVerifyHeapam + `'), 'EXECUTE'), false),
	COALESCE(pg_catalog.has_function_privilege(pg_catalog.to_regprocedure(pg_catalog.quote_ident(n.nspname) || '.` + sigBtIndexCheck + `'), 'EXECUTE'), false),
	COALESCE(pg_catalog.has_function_privilege(pg_catalog.to_regprocedure(pg_catalog.quote_ident(n.nspname) || '.` + sigBtIndexParentCheck + `'), 'EXECUTE'), false)
FROM (SELECT 1) AS one
LEFT JOIN pg_catalog.pg_extension e ON e.extname = 'amcheck'
LEFT JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace`

func (t *Target) probe(ctx context.Context) (*Capabilities, error) {
	s, err := t.begin(ctx, sessionOpts{})
	if err != nil {
		return nil, err
	}
	defer s.close()
	c := &Capabilities{}
	var extVersion, extSchema, defVersion sql.NullString
	dest := []any{&c.ServerVersion, &c.ServerVersionNum, &c.Database, &c.User, &c.Superuser, &c.InRecovery, &c.DataChecksums, &c.BlockSize}
	incDest, incDone := c.incarnation.scan()
	dest = append(dest, incDest...)
	dest = append(dest, &c.serverAddr, &c.serverPort, &extVersion, &extSchema, &defVersion,
		&c.HasVerifyHeapam, &c.CanExecuteVerifyHeapam, &c.CanExecuteBtIndexCheck, &c.CanExecuteBtIndexParentCheck)
	err = s.tx.QueryRowContext(ctx, probeQuery).Scan(dest...)
	if err != nil {
		if isConnLost(err) {
			return nil, t.connectError(err)
		}
		return nil, t.scrub(fmt.Errorf("postgres: probing %s: %s", t.Info().Name, oneLine(err.Error())))
	}
	if v, _, ok := strings.Cut(c.ServerVersion, " "); ok {
		c.ServerVersion = v
	}
	incDone()
	c.PostmasterStart = c.incarnation.start
	c.AmcheckInstalled = extVersion.Valid
	c.AmcheckVersion = extVersion.String
	c.AmcheckSchema = extSchema.String
	c.AmcheckAvailable = defVersion.Valid
	c.AmcheckDefaultVersion = defVersion.String
	c.CanExecuteAmcheck = c.CanExecuteVerifyHeapam && c.CanExecuteBtIndexCheck && (!t.cfg.parentCheck || c.CanExecuteBtIndexParentCheck)
	return c, nil
}

// prepare probes for a run and, when asked to and needed, installs amcheck.
func (t *Target) prepare(ctx context.Context, needAmcheck bool) (*Capabilities, error) {
	if t.isClosed() {
		return nil, t.errClosed()
	}
	c, err := t.Probe(ctx)
	if err != nil {
		return nil, err
	}
	if needAmcheck && t.cfg.installAmcheck && !c.AmcheckInstalled && c.AmcheckAvailable {
		if err := t.installAmcheck(ctx, c); err != nil {
			return nil, err
		}
		if c, err = t.Probe(ctx); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// installAmcheck runs CREATE EXTENSION IF NOT EXISTS amcheck in its own
// read-write transaction: the only write dbscrub ever does.
func (t *Target) installAmcheck(ctx context.Context, c *Capabilities) error {
	t.cfg.logger.Warn("dbscrub: installing the amcheck extension (WithInstallAmcheck): CREATE EXTENSION IF NOT EXISTS amcheck; this is the only write dbscrub performs",
		"database", c.Database, "user", c.User)
	conn, err := t.db.Conn(ctx)
	if err != nil {
		return t.connectError(err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return t.connectError(err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.ExecContext(ctx, "SELECT pg_catalog.set_config('statement_timeout', $1, true), pg_catalog.set_config('lock_timeout', $2, true)",
		ms(t.cfg.statementTimeout), ms(t.cfg.lockTimeout)); err != nil {
		return t.scrub(fmt.Errorf("postgres: installing amcheck: %s", oneLine(err.Error())))
	}
	if _, err := tx.ExecContext(ctx, "CREATE EXTENSION IF NOT EXISTS amcheck"); err != nil {
		return t.scrub(fmt.Errorf("postgres: %w: WithInstallAmcheck could not run CREATE EXTENSION IF NOT EXISTS amcheck in database %q as role %q: %s; a superuser must run it (amcheck is not a trusted extension)",
			ErrAmcheckMissing, c.Database, c.User, strings.TrimPrefix(oneLine(err.Error()), "pq: ")))
	}
	if err := tx.Commit(); err != nil {
		return t.scrub(fmt.Errorf("postgres: installing amcheck: commit: %s", oneLine(err.Error())))
	}
	t.cfg.logger.Warn("dbscrub: installed the amcheck extension", "database", c.Database)
	return nil
}

// amcheckFuncs returns the amcheck functions a check calls.
func amcheckFuncs(check string, parent bool) []string {
	switch check {
	case CheckHeap:
		return []string{sigVerifyHeapam}
	case CheckBtree:
		if parent {
			return []string{sigBtIndexCheck, sigBtIndexParentCheck}
		}
		return []string{sigBtIndexCheck}
	}
	return nil
}

// requireAmcheck returns an error wrapping ErrAmcheckMissing,
// ErrUnsupported or ErrPrivilege when check cannot call the amcheck
// functions it needs; the message says exactly what to run.
func (t *Target) requireAmcheck(c *Capabilities, check string) error {
	parent := t.cfg.parentCheck
	funcs := amcheckFuncs(check, parent)
	if check == CheckHeap && c.ServerVersionNum < 140000 {
		return fmt.Errorf("postgres: %w: the heap check needs verify_heapam, which amcheck has since PostgreSQL 14; %s runs %s",
			ErrUnsupported, t.Info().Name, c.ServerVersion)
	}
	if check == CheckBtree && c.ServerVersionNum < 110000 {
		return fmt.Errorf("postgres: %w: the btree check needs bt_index_check(regclass, boolean), which amcheck has since PostgreSQL 11; %s runs %s",
			ErrUnsupported, t.Info().Name, c.ServerVersion)
	}
	if check == CheckBtree && parent && c.InRecovery {
		return fmt.Errorf("postgres: %w: WithParentCheck: bt_index_parent_check cannot run on a standby (it takes a ShareLock); use bt_index_check (without WithParentCheck) there", ErrUnsupported)
	}
	role := quoteIdent(c.User)
	grants := func(schema string) string {
		all := amcheckFuncs(CheckHeap, false)
		all = append(all, amcheckFuncs(CheckBtree, parent)...)
		var b strings.Builder
		for _, f := range all {
			fmt.Fprintf(&b, " GRANT EXECUTE ON FUNCTION %s%s TO %s;", schema, f, role)
		}
		return b.String()
	}
	if !c.AmcheckInstalled {
		if !c.AmcheckAvailable {
			return fmt.Errorf("postgres: %w: the amcheck extension is not installed in database %q and the server does not offer it (not in pg_available_extensions): install the PostgreSQL contrib package on the server (e.g. postgresql-contrib or postgresql%d-contrib), then as a superuser, connected to database %q, run: CREATE EXTENSION amcheck; a role that is not a superuser also needs:%s (amcheck functions are revoked from PUBLIC since PostgreSQL 14)",
				ErrAmcheckMissing, c.Database, c.ServerVersionNum/10000, c.Database, grants(""))
		}
		return fmt.Errorf("postgres: %w: the %s check needs the amcheck extension, which is not installed in database %q: as a superuser, connected to database %q, run: CREATE EXTENSION amcheck; a role that is not a superuser also needs:%s (amcheck functions are revoked from PUBLIC since PostgreSQL 14); or let dbscrub create it with WithInstallAmcheck (--install-amcheck), as a superuser",
			ErrAmcheckMissing, check, c.Database, c.Database, grants(""))
	}
	schema := quoteIdent(c.AmcheckSchema) + "."
	if check == CheckHeap && !c.HasVerifyHeapam {
		return fmt.Errorf("postgres: %w: amcheck %s in database %q has no verify_heapam (it needs amcheck 1.3, available: %s): as a superuser, connected to database %q, run: ALTER EXTENSION amcheck UPDATE;",
			ErrAmcheckMissing, c.AmcheckVersion, c.Database, c.AmcheckDefaultVersion, c.Database)
	}
	var missing []string
	for _, f := range funcs {
		ok := false
		switch f {
		case sigVerifyHeapam:
			ok = c.CanExecuteVerifyHeapam
		case sigBtIndexCheck:
			ok = c.CanExecuteBtIndexCheck
		case sigBtIndexParentCheck:
			ok = c.CanExecuteBtIndexParentCheck
		}
		if !ok {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		var b strings.Builder
		for _, f := range missing {
			fmt.Fprintf(&b, " GRANT EXECUTE ON FUNCTION %s%s TO %s;", schema, f, role)
		}
		return fmt.Errorf("postgres: %w: role %q may not execute %s in database %q (amcheck functions are revoked from PUBLIC since PostgreSQL 14): as a superuser, connected to database %q, run:%s",
			ErrPrivilege, c.User, strings.Join(missing, " and "), c.Database, c.Database, b.String())
	}
	return nil
}

// reservedWords are PostgreSQL's reserved key words (and a few that are
// reserved in some contexts), which quote_ident quotes.
var reservedWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`all analyse analyze and any array as asc asymmetric authorization binary both case cast check
		collate collation column concurrently constraint create cross current_catalog current_date current_role current_schema
		current_time current_timestamp current_user default deferrable desc distinct do else end except false fetch for foreign
		freeze from full grant group having ilike in initially inner intersect into is isnull join lateral leading left like limit
		localtime localtimestamp natural not notnull null offset on only or order outer overlaps placing primary references
		returning right select session_user similar some symmetric system_user table tablesample then to trailing true union
		unique user using variadic verbose when where window with`) {
		reservedWords[w] = true
	}
}

// quoteIdent quotes an identifier the way quote_ident does: only when it
// needs quoting.
func quoteIdent(s string) string {
	simple := s != "" && !reservedWords[s]
	for i, r := range s {
		if !(r >= 'a' && r <= 'z' || r == '_' || i > 0 && (r >= '0' && r <= '9' || r == '$')) {
			simple = false
			break
		}
	}
	if simple {
		return s
	}
	return pq.QuoteIdentifier(s)
}
