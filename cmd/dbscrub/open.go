package main

import (
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/drivers/postgres"
	"github.com/dbscrub/dbscrub/drivers/sqlite"
	"github.com/dbscrub/dbscrub/drivers/sqlserver"
	"github.com/dbscrub/dbscrub/internal/redact"
)

// engine is one driver the CLI can open, chosen by DSN scheme.
type engine struct {
	title   string
	schemes []string
	catalog func() []checks.CheckInfo
	open    func(f *checkFlags) (checks.Target, io.Closer, error)
	// flags lists the engine-specific flags it accepts.
	flags []string
}

var engines = []engine{
	{
		title:   "PostgreSQL",
		schemes: []string{"postgres://", "postgresql://"},
		catalog: postgres.Catalog,
		open:    openPostgres,
		flags:   []string{"heapallindexed", "parent-check", "install-amcheck", "statement-timeout", "lock-timeout", "chunk-size", "schema", "exclude-schema", "relation", "exclude-relation"},
	},
	{
		title:   "SQLite",
		schemes: []string{"sqlite://", "file:", "a file path"},
		catalog: sqlite.Catalog,
		open:    openSQLite,
		flags:   []string{"quick"},
	},
	{
		title:   "SQL Server",
		schemes: []string{"sqlserver://"},
		catalog: sqlserver.Catalog,
		open:    openSQLServer,
		flags:   []string{"lock-timeout", "physical-only", "data-purity", "extended-logical-checks", "tablock", "maxdop", "noindex"},
	},
}

// engineSpecific lists every flag that only some engines accept.
var engineSpecific = func() map[string]bool {
	m := map[string]bool{}
	for _, e := range engines {
		for _, f := range e.flags {
			m[f] = true
		}
	}
	return m
}()

// pick chooses the engine for a DSN.
func pick(dsn string) (*engine, error) {
	lower := strings.ToLower(dsn)
	switch {
	case strings.HasPrefix(lower, "postgres://"), strings.HasPrefix(lower, "postgresql://"):
		return &engines[0], nil
	case strings.HasPrefix(lower, "sqlite://"), strings.HasPrefix(lower, "file:"), !strings.Contains(lower, "://") && !strings.Contains(lower, "="):
		return &engines[1], nil
	case strings.HasPrefix(lower, "sqlserver://"):
		return &engines[2], nil
	}
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		return nil, fmt.Errorf("unknown DSN scheme %q: dbscrub knows postgres://, postgresql://, sqlserver://, sqlite:// and file paths", u.Scheme+"://")
	}
	return nil, fmt.Errorf("cannot tell the engine of DSN %q: use a URL such as postgres://user@host/db or sqlite:///path/to.db", redact.DSN(dsn))
}

// openTarget opens the target of f.dsn with the engine-specific flags.
func openTarget(f *checkFlags) (checks.Target, io.Closer, error) {
	e, err := pick(f.dsn)
	if err != nil {
		return nil, nil, err
	}
	accepted := map[string]bool{}
	for _, name := range e.flags {
		accepted[name] = true
	}
	for name := range f.set {
		if engineSpecific[name] && !accepted[name] {
			return nil, nil, fmt.Errorf("--%s does not apply to %s", name, e.title)
		}
	}
	return e.open(f)
}

func openPostgres(f *checkFlags) (checks.Target, io.Closer, error) {
	var opts []postgres.Option
	if f.heapAllIndexed {
		opts = append(opts, postgres.WithHeapAllIndexed())
	}
	if f.parentCheck {
		opts = append(opts, postgres.WithParentCheck())
	}
	if f.installAmcheck {
		opts = append(opts, postgres.WithInstallAmcheck())
	}
	if f.statementTimeout > 0 {
		opts = append(opts, postgres.WithStatementTimeout(f.statementTimeout))
	}
	if f.lockTimeout > 0 {
		opts = append(opts, postgres.WithLockTimeout(f.lockTimeout))
	}
	switch {
	case f.chunkSize > 0:
		opts = append(opts, postgres.WithChunkSize(f.chunkSize))
	case f.maxRate > 0:
		// Smooth pacing: chunks of about a second's worth of data.
		opts = append(opts, postgres.WithChunkSize(postgres.ChunkSizeForRate(int64(f.maxRate*1e6))))
	}
	if len(f.includeSchemas) > 0 {
		opts = append(opts, postgres.WithIncludeSchemas(f.includeSchemas...))
	}
	if len(f.excludeSchemas) > 0 {
		opts = append(opts, postgres.WithExcludeSchemas(f.excludeSchemas...))
	}
	if len(f.includeRelations) > 0 {
		opts = append(opts, postgres.WithIncludeRelations(f.includeRelations...))
	}
	if len(f.excludeRelations) > 0 {
		opts = append(opts, postgres.WithExcludeRelations(f.excludeRelations...))
	}
	t, err := postgres.Open(f.dsn, opts...)
	if err != nil {
		return nil, nil, err
	}
	return t, t, nil
}

func openSQLite(f *checkFlags) (checks.Target, io.Closer, error) {
	var opts []sqlite.Option
	if f.quick {
		opts = append(opts, sqlite.WithQuickCheck())
	}
	t, err := sqlite.Open(f.dsn, opts...)
	if err != nil {
		return nil, nil, err
	}
	return t, t, nil
}

func openSQLServer(f *checkFlags) (checks.Target, io.Closer, error) {
	var opts []sqlserver.Option
	if f.lockTimeout > 0 {
		opts = append(opts, sqlserver.WithLockTimeout(f.lockTimeout))
	}
	if f.physicalOnly {
		opts = append(opts, sqlserver.WithPhysicalOnly())
	}
	if f.dataPurity {
		opts = append(opts, sqlserver.WithDataPurity())
	}
	if f.extendedLogical {
		opts = append(opts, sqlserver.WithExtendedLogicalChecks())
	}
	if f.tabLock {
		opts = append(opts, sqlserver.WithTabLock())
	}
	if f.set["maxdop"] {
		opts = append(opts, sqlserver.WithMaxDOP(f.maxDOP))
	}
	if f.noIndex {
		opts = append(opts, sqlserver.WithNoIndex())
	}
	t, err := sqlserver.Open(f.dsn, opts...)
	if err != nil {
		return nil, nil, err
	}
	return t, t, nil
}
