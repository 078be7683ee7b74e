package sqlserver

import (
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/dbscrub/dbscrub/checks"
)

// An Option configures a [Target] made by [Open] or [New]. Invalid values,
// and options that cannot be combined, make Open and New fail with an error
// wrapping [checks.ErrInvalidOption].
type Option func(*config) error

// Defaults of the options.
const (
	// DefaultLockTimeout is the default of [WithLockTimeout].
	DefaultLockTimeout = 5 * time.Second
	// DefaultLastGoodMaxAge is the default of [WithLastGoodMaxAge]: a week,
	// the usual interval of a full DBCC CHECKDB.
	DefaultLastGoodMaxAge = 7 * 24 * time.Hour
	// DefaultBackupMaxAge is the default of [WithBackupMaxAge]: eight days,
	// which fits the common weekly full backup (plus differential and log
	// backups) with a day of slack. Shops that take a full backup every day
	// should set 26 hours.
	DefaultBackupMaxAge = 8 * 24 * time.Hour
)

// maxLockTimeout is the largest SET LOCK_TIMEOUT value (INT_MAX ms).
const maxLockTimeout = time.Duration(math.MaxInt32) * time.Millisecond

// maxMaxDOP is the largest MAXDOP SQL Server accepts.
const maxMaxDOP = 32767

type config struct {
	lockTimeout     time.Duration
	physicalOnly    bool
	dataPurity      bool
	extendedLogical bool
	tabLock         bool
	noIndex         bool
	maxDOP          int
	maxDOPSet       bool
	lastGoodMaxAge  time.Duration
	backupMaxAge    time.Duration
	logger          *slog.Logger
	name            string
}

func defaultConfig() config {
	return config{
		lockTimeout:    DefaultLockTimeout,
		lastGoodMaxAge: DefaultLastGoodMaxAge,
		backupMaxAge:   DefaultBackupMaxAge,
		logger:         slog.New(slog.DiscardHandler),
	}
}

func (c *config) apply(opts []Option) error {
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(c); err != nil {
			return err
		}
	}
	// Combinations DBCC refuses (or that make no sense), as Ola
	// Hallengren's DatabaseIntegrityCheck refuses them.
	if c.physicalOnly && c.dataPurity {
		return invalid("WithPhysicalOnly and WithDataPurity cannot be combined (DBCC accepts PHYSICAL_ONLY or DATA_PURITY, not both)")
	}
	if c.physicalOnly && c.extendedLogical {
		return invalid("WithPhysicalOnly and WithExtendedLogicalChecks cannot be combined (PHYSICAL_ONLY skips the logical checks)")
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("sqlserver: %w: %s", checks.ErrInvalidOption, fmt.Sprintf(format, args...))
}

// WithLockTimeout sets SET LOCK_TIMEOUT at the start of every task's
// session: a statement that waits longer than d for a lock fails with error
// 1222 and its task is reported as an error (and retried once by the
// Runner), instead of queueing behind, and in front of, your application.
// DBCC CHECKDB and CHECKTABLE normally read an internal database snapshot
// and take few locks; the timeout matters with [WithTabLock] and for the
// catalog queries. Zero means "do not wait at all". The default is 5
// seconds; d must not be negative and is rounded to milliseconds.
func WithLockTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 || d > maxLockTimeout {
			return invalid("lock timeout must be between 0 and %s, got %s", maxLockTimeout, d)
		}
		c.lockTimeout = d
		return nil
	}
}

// WithPhysicalOnly adds PHYSICAL_ONLY to DBCC CHECKDB and DBCC CHECKTABLE:
// only page and record headers, checksums, torn pages and allocation
// consistency are checked. Much faster on big databases and what Microsoft
// recommends for frequent runs, but it skips the logical checks, the
// data-purity checks and FILESTREAM, so run a full check periodically.
// It cannot be combined with [WithDataPurity] or [WithExtendedLogicalChecks].
func WithPhysicalOnly() Option {
	return func(c *config) error {
		c.physicalOnly = true
		return nil
	}
}

// WithDataPurity adds DATA_PURITY to DBCC CHECKDB and DBCC CHECKTABLE:
// column values are checked against their data types (error 2570). This
// is on by default for databases created on SQL Server 2005 or later; use it
// once on databases upgraded from SQL Server 2000.
func WithDataPurity() Option {
	return func(c *config) error {
		c.dataPurity = true
		return nil
	}
}

// WithExtendedLogicalChecks adds EXTENDED_LOGICAL_CHECKS to DBCC CHECKDB
// and DBCC CHECKTABLE: logical checks of indexed views, XML and spatial
// indexes, and (SQL Server 2016 and later) persisted computed columns, UDT
// columns and filtered indexes. It can take much longer.
func WithExtendedLogicalChecks() Option {
	return func(c *config) error {
		c.extendedLogical = true
		return nil
	}
}

// WithTabLock adds TABLOCK to DBCC CHECKDB, CHECKTABLE and CHECKALLOC: DBCC
// takes locks instead of reading an internal database snapshot, including
// a short exclusive database lock for the allocation checks and shared
// table locks for the table checks. It BLOCKS WRITERS while each table is
// checked, and with it CHECKDB skips CHECKCATALOG and the Service Broker
// checks. Opt-in only: use it where snapshots cannot be created (for
// example, files on a volume without sparse-file support).
func WithTabLock() Option {
	return func(c *config) error {
		c.tabLock = true
		return nil
	}
}

// WithMaxDOP adds MAXDOP = n to DBCC CHECKDB and DBCC CHECKTABLE (SQL
// Server 2014 SP2 and later), overriding the server's max degree of
// parallelism for the check. 0 lets SQL Server choose. n must be between 0
// and 32767.
func WithMaxDOP(n int) Option {
	return func(c *config) error {
		if n < 0 || n > maxMaxDOP {
			return invalid("MAXDOP must be between 0 and %d, got %d", maxMaxDOP, n)
		}
		c.maxDOP, c.maxDOPSet = n, true
		return nil
	}
}

// WithNoIndex runs DBCC CHECKDB and DBCC CHECKTABLE with NOINDEX: the
// intensive checks of nonclustered indexes of user tables are skipped
// (system tables' indexes are always checked). Faster; damage confined to a
// nonclustered index goes unnoticed.
func WithNoIndex() Option {
	return func(c *config) error {
		c.noIndex = true
		return nil
	}
}

// WithLastGoodMaxAge sets how old the last clean DBCC CHECKDB
// (LastGoodCheckDbTime) may be before the last_known_good check warns. The
// default is 7 days; d must be positive.
func WithLastGoodMaxAge(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("last known good max age must be positive, got %s", d)
		}
		c.lastGoodMaxAge = d
		return nil
	}
}

// WithBackupMaxAge sets how old the latest full backup recorded in
// msdb.dbo.backupset may be before the backups check warns. The default is
// 8 days (weekly full backups); use 26 hours where a full backup runs
// every night. d must be positive.
func WithBackupMaxAge(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("backup max age must be positive, got %s", d)
		}
		c.backupMaxAge = d
		return nil
	}
}

// WithLogger sets the logger for the statements dbscrub runs (debug), the
// informational messages the server sends (debug) and problems that do not
// fail a task, such as object names that could not be resolved (warn). By
// default nothing is logged.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return invalid("nil logger")
		}
		c.logger = l
		return nil
	}
}

// WithName sets the display name reports use for the target (Info().Name).
// Useful with [New], whose pool does not say where it points. It must not
// hold a password.
func WithName(name string) Option {
	return func(c *config) error {
		if strings.TrimSpace(name) == "" {
			return invalid("empty name")
		}
		c.name = name
		return nil
	}
}
