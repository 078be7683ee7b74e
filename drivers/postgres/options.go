package postgres

import (
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/dbscrub/dbscrub/checks"
)

// An Option configures a [Target] made by [Open] or [New]. Invalid values
// make Open and New fail with an error wrapping [checks.ErrInvalidOption].
type Option func(*config) error

// Defaults of the options.
const (
	// DefaultStatementTimeout is the default of [WithStatementTimeout].
	DefaultStatementTimeout = 30 * time.Minute
	// DefaultLockTimeout is the default of [WithLockTimeout].
	DefaultLockTimeout = 5 * time.Second
	// DefaultChunkSize is the default of [WithChunkSize]: 256 MiB.
	DefaultChunkSize int64 = 256 << 20
	// DefaultRecoveryWait is the default of [WithRecoveryWait].
	DefaultRecoveryWait = 60 * time.Second
)

// maxTimeout is the largest timeout PostgreSQL accepts (INT_MAX milliseconds).
const maxTimeout = time.Duration(math.MaxInt32) * time.Millisecond

type config struct {
	statementTimeout time.Duration
	lockTimeout      time.Duration
	installAmcheck   bool
	heapAllIndexed   bool
	parentCheck      bool
	includeSchemas   []pattern
	excludeSchemas   []pattern
	includeRelations []pattern
	excludeRelations []pattern
	chunkSize        int64
	recoveryWait     time.Duration
	logger           *slog.Logger
	checksumBaseline *int64
}

func defaultConfig() config {
	return config{
		statementTimeout: DefaultStatementTimeout,
		lockTimeout:      DefaultLockTimeout,
		chunkSize:        DefaultChunkSize,
		recoveryWait:     DefaultRecoveryWait,
		logger:           slog.New(slog.DiscardHandler),
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
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("postgres: %w: %s", checks.ErrInvalidOption, fmt.Sprintf(format, args...))
}

// WithStatementTimeout sets statement_timeout (SET LOCAL, so only inside
// dbscrub's own transactions) for every statement a check runs. A statement
// that runs longer is cancelled by the server and its task fails (status
// error). Zero disables the timeout. The default is 30 minutes; lower
// [WithChunkSize] rather than raising this for huge tables. d must not be
// negative and must be below 24 days (PostgreSQL's limit).
func WithStatementTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 || d > maxTimeout {
			return invalid("statement timeout must be between 0 and %s, got %s", maxTimeout, d)
		}
		c.statementTimeout = d
		return nil
	}
}

// WithLockTimeout sets lock_timeout (SET LOCAL) for every statement a check
// runs. amcheck and the cross-check take an AccessShareLock on each table
// and index they read (a ShareLock with [WithParentCheck]); when another
// session holds a conflicting lock (ALTER TABLE, VACUUM FULL, REINDEX,
// DROP, CLUSTER, TRUNCATE), dbscrub gives up on that object after d instead
// of queueing behind it, and the task fails with a clear error. Keeping this
// short also keeps dbscrub from sitting in the lock queue in front of
// your application's queries. Zero waits forever. The default is 5 seconds.
// d must not be negative and must be below 24 days.
func WithLockTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 || d > maxTimeout {
			return invalid("lock timeout must be between 0 and %s, got %s", maxTimeout, d)
		}
		c.lockTimeout = d
		return nil
	}
}

// WithInstallAmcheck lets dbscrub run CREATE EXTENSION IF NOT EXISTS amcheck
// when a check that needs amcheck (heap, btree) finds it missing. This is
// the only statement that writes that dbscrub ever issues, and only when
// this option is given: it runs in its own read-write transaction, after
// logging a warning, and needs a superuser (amcheck is not a trusted
// extension). By default a missing amcheck is a planning error that tells
// you the exact statements to run.
func WithInstallAmcheck() Option {
	return func(c *config) error {
		c.installAmcheck = true
		return nil
	}
}

// WithHeapAllIndexed makes the btree check call bt_index_check (or
// bt_index_parent_check) with heapallindexed => true: besides the index
// structure, it verifies that every heap tuple that should be in the index
// is there. This reads the whole table for every index, so it costs about
// the table's size per index; it takes no stronger lock.
func WithHeapAllIndexed() Option {
	return func(c *config) error {
		c.heapAllIndexed = true
		return nil
	}
}

// WithParentCheck makes the btree check use bt_index_parent_check instead of
// bt_index_check. It also verifies the relationships between parent and
// child pages (more thorough), but it takes a ShareLock on the table and the
// index while it runs, which BLOCKS WRITES (INSERT, UPDATE, DELETE, VACUUM)
// to that table for the duration of each index's check. It cannot run on a
// hot standby. The role also needs EXECUTE on
// bt_index_parent_check(regclass, boolean).
func WithParentCheck() Option {
	return func(c *config) error {
		c.parentCheck = true
		return nil
	}
}

// WithIncludeSchemas limits the heap, btree and crosscheck checks to
// relations in schemas matching at least one pattern. See [WithIncludeRelations] for
// the pattern syntax. Patterns given in several calls add up.
//
// By default every schema is checked, including pg_catalog,
// information_schema and pg_toast (as pg_amcheck does).
func WithIncludeSchemas(patterns ...string) Option {
	return patternOption("include schema", patterns, func(c *config) *[]pattern { return &c.includeSchemas })
}

// WithExcludeSchemas skips relations in schemas matching any pattern. See
// [WithIncludeRelations] for the pattern syntax. Exclusion wins over
// inclusion.
func WithExcludeSchemas(patterns ...string) Option {
	return patternOption("exclude schema", patterns, func(c *config) *[]pattern { return &c.excludeSchemas })
}

// WithIncludeRelations limits the heap, btree and crosscheck checks to
// relations matching at least one pattern. Patterns given in several calls
// add up.
//
// Pattern syntax (shell-style, like pg_amcheck's, but without quoting):
//   - "*" matches any run of characters, including none and including ".";
//     "?" matches exactly one character; every other character matches
//     itself. Matching is case-sensitive and covers the whole name.
//   - Names are the raw, unquoted names as stored in the catalog (public,
//     MyTable), not quote_ident'ed.
//   - A relation pattern with a "." is matched against "schema.relation"
//     ("public.orders", "sales.*"); one without a "." is matched against the
//     bare relation name in any schema ("orders", "tmp_*").
//   - Schema patterns ([WithIncludeSchemas], [WithExcludeSchemas]) are
//     matched against the schema name.
//
// How patterns apply to each kind of relation:
//   - Tables and materialized views match by their own name.
//   - A TOAST table (and its index) follows the table it belongs to: it is
//     checked when its owning table is, under the owning table's schema and
//     name.
//   - An index is included when the index's own name or its table's name
//     matches an include pattern, and excluded when either matches an
//     exclude pattern; so excluding a table also excludes its indexes.
//
// A relation is checked when its schema passes the schema filters and it
// passes the relation filters; a filter with no include patterns lets
// everything through, and exclusion always wins.
func WithIncludeRelations(patterns ...string) Option {
	return patternOption("include relation", patterns, func(c *config) *[]pattern { return &c.includeRelations })
}

// WithExcludeRelations skips relations matching any pattern. See
// [WithIncludeRelations] for the syntax and how patterns apply to TOAST
// tables and indexes. Exclusion wins over inclusion.
func WithExcludeRelations(patterns ...string) Option {
	return patternOption("exclude relation", patterns, func(c *config) *[]pattern { return &c.excludeRelations })
}

func patternOption(what string, patterns []string, field func(*config) *[]pattern) Option {
	return func(c *config) error {
		if len(patterns) == 0 {
			return invalid("%s: no pattern given", what)
		}
		for _, p := range patterns {
			pt, err := compilePattern(p)
			if err != nil {
				return invalid("%s pattern %q: %v", what, p, err)
			}
			f := field(c)
			*f = append(*f, pt)
		}
		return nil
	}
}

// WithChunkSize sets how big a piece of one table a heap task verifies.
// Tables larger than this are split into block ranges of about this many
// bytes, one task per range, so that several workers (checks.WithJobs)
// verify one big table at once, progress is smooth, and time-boxed runs
// stop between ranges. Small tables are batched instead: relations smaller
// than a sixteenth of the chunk size are verified several at a time (up to
// a quarter of the chunk size and 200 relations per task) in one statement,
// saving a round trip per relation. The same batching applies to small
// indexes in the btree check. The default is 256 MiB; bytes must be at
// least one block (8 kB). Under a rate limit ([checks.WithMaxRate]) use
// [ChunkSizeForRate]: the Runner paces task starts, so chunks of about a
// second's worth of data keep the pace smooth.
func WithChunkSize(bytes int64) Option {
	return func(c *config) error {
		if bytes < 8192 {
			return invalid("chunk size must be at least 8192 bytes (one block), got %d", bytes)
		}
		c.chunkSize = bytes
		return nil
	}
}

// ChunkSizeForRate returns the chunk size ([WithChunkSize]) for a check
// limited to bytesPerSecond ([checks.WithMaxRate]): about one second's
// worth of data, at least 8 MiB and at most [DefaultChunkSize], a whole
// number of MiB. The Runner paces the starts of tasks, and each task then
// runs at full speed; with chunks of a second or less the load stays close
// to the limit instead of coming in bursts. Index checks cannot be split:
// each one runs at full speed whatever the limit (with heapallindexed, that
// includes a scan of the whole table).
func ChunkSizeForRate(bytesPerSecond int64) int64 {
	const mib = 1 << 20
	if bytesPerSecond <= 0 {
		return DefaultChunkSize
	}
	return min(max(bytesPerSecond/mib*mib, 8*mib), DefaultChunkSize)
}

// WithRecoveryWait bounds how long a task whose connection died waits for
// the server to accept connections again (after a crash and restart, say)
// before it decides what happened; see the package documentation on
// crashes. Zero does not wait. The default is 60 seconds. The wait always
// ends early when the run's context is cancelled.
func WithRecoveryWait(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return invalid("recovery wait must not be negative, got %s", d)
		}
		c.recoveryWait = d
		return nil
	}
}

// WithLogger sets the logger dbscrub reports to: the amcheck installation
// (warning), crashes and how they were classified (warning), and each
// statement a task runs (debug). By default nothing is logged. Log records
// never contain a password.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return invalid("nil logger")
		}
		c.logger = l
		return nil
	}
}

// WithChecksumFailuresBaseline tells the checksums check the value of
// pg_stat_database.checksum_failures (see [Target.ChecksumFailures]) seen
// on the last run. The check then reports corruption only when the counter
// went up since; an unchanged counter is healthy (those failures were
// reported when they were counted; the heap and btree checks report the
// damaged pages themselves while they can read them). When the counter is
// lower than the baseline (statistics were reset, e.g. by a crash or
// pg_stat_reset()), any failure counted since the reset is reported.
// Without a baseline, any failure ever counted is reported. n must not be
// negative.
//
// Under a scheduler the baseline is kept for you: the check reads the last
// recorded count from the [checks.Counters] of the run's context (name
// [CounterChecksumFailures]) and records the count it saw. A count
// recorded there takes precedence; this option is the baseline until the
// first one is.
func WithChecksumFailuresBaseline(n int64) Option {
	return func(c *config) error {
		if n < 0 {
			return invalid("checksum failures baseline must not be negative, got %d", n)
		}
		c.checksumBaseline = &n
		return nil
	}
}
