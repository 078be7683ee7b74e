package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"
)

// Engine is the OpenTelemetry db.system.name of SQLite targets.
const Engine = "sqlite"

// The check names, for [Target.Checks].
const (
	// CheckIntegrity runs PRAGMA integrity_check (or quick_check, with
	// [WithQuickCheck]) over the whole file as one task.
	//
	// Its findings carry the Code "integrity_check" (under quick_check too)
	// with SQLite's line as the Message; SQLite's result code name
	// ("SQLITE_CORRUPT", "SQLITE_NOTADB") when SQLite cannot read the file or
	// stops part way; "max_errors" (a warning) when the check hit the limit
	// of [WithMaxErrors]; and "empty_file" (a warning) for a zero-byte file.
	CheckIntegrity = "integrity"
	// CheckForeignKeys runs PRAGMA foreign_key_check, one task per table
	// that declares a foreign key.
	//
	// An orphan row (one whose foreign key matches no parent row) is
	// reported as corrupt, not as a warning. SQLite enforces foreign keys
	// only on connections that turn PRAGMA foreign_keys on, so orphans
	// usually come from an application connection that forgot to, rather
	// than from disk damage; but either way the database breaks a
	// constraint its own schema declares, the engine's check says so, and
	// queries that trust the constraint (joins, cascades) silently lose or
	// mangle data. A table whose foreign key cannot be checked at all
	// ("foreign key mismatch": the parent columns are not a PRIMARY KEY or
	// UNIQUE) is an error for that table's task.
	//
	// Its findings carry the Code "foreign_key_check", and the Message
	// "row rowid N of T references a missing row in P (foreign key #K)",
	// K being the id in PRAGMA foreign_key_list(T); the Remedy names the
	// columns.
	CheckForeignKeys = "foreign_keys"
)

// Catalog describes the checks an SQLite target offers, in the order they
// run by default.
func Catalog() []checks.CheckInfo {
	return []checks.CheckInfo{
		{Name: CheckIntegrity, Description: "PRAGMA integrity_check: every b-tree page, the freelist, page accounting, index contents, NOT NULL and CHECK constraints", Default: true},
		{Name: CheckForeignKeys, Description: "PRAGMA foreign_key_check: rows whose foreign key references a missing parent row", Default: true},
	}
}

// A Target is one SQLite database file that checks run against. It
// implements [checks.Target]. Make one with [Open] or [New]; it is safe for
// concurrent use.
type Target struct {
	db    *sql.DB
	owned bool   // Open made db: Close closes it
	path  string // the file, for stat; "" when in memory
	info  checks.TargetInfo
	cfg   config
}

// Open returns a target for the SQLite database named by dsn, which is one
// of
//
//	/var/lib/app/app.db              a plain path, taken literally
//	sqlite:///var/lib/app/app.db     an absolute path
//	sqlite://app.db                  a path relative to the working directory
//	file:app.db?vfs=unix-none        an SQLite URI
//
// A DSN with a query (?...) may carry the SQLite URI parameters cache,
// immutable, nolock, psow and vfs, and mode=ro; other parameters, and any
// other mode, are rejected, because dbscrub opens every database read-only
// (mode=ro, PRAGMA query_only) with the busy timeout of [WithBusyTimeout].
// immutable=1 tells SQLite the file cannot change (read-only media, a
// snapshot) and skips locking; on a database that is being written it can
// report damage that is not there.
//
// Open only validates the DSN and the options; it does not touch the file,
// which must exist when a check runs. A missing file is then an error
// ("database file does not exist"), never a new empty database. Close the
// target when done.
func Open(dsn string, opts ...Option) (*Target, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	path, params, err := parseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	uri, err := fileURI(path, params, cfg)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		return nil, fmt.Errorf("sqlite: opening %s: %w", path, err)
	}
	// Let go of the file between scheduled runs.
	db.SetConnMaxIdleTime(time.Minute)
	return &Target{
		db:    db,
		owned: true,
		path:  path,
		cfg:   cfg,
		info: checks.TargetInfo{
			Engine:        Engine,
			Name:          path,
			Database:      filepath.Base(path),
			ServerVersion: sqlite3.SQLITE_VERSION,
		},
	}, nil
}

// New returns a target for the main database of db, a pool the caller
// already has, made with modernc.org/sqlite (driver name "sqlite") or
// another SQLite driver. It asks the pool for the database's file name and
// SQLite version, so it fails when the pool cannot be reached or is not
// SQLite.
//
// The checks run only read-only statements, on connections of the pool;
// dbscrub does not set mode=ro, query_only or a busy timeout on them (the
// pool's settings are the caller's), so [WithBusyTimeout] is rejected.
// [Target.Close] leaves the pool open.
func New(db *sql.DB, opts ...Option) (*Target, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: sqlite: nil *sql.DB", checks.ErrInvalidOption)
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if cfg.busyTimeoutSet {
		return nil, fmt.Errorf("%w: sqlite: WithBusyTimeout applies to Open only; set the busy timeout in your pool's DSN (modernc.org/sqlite: _pragma=busy_timeout(5000))", checks.ErrInvalidOption)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var file, version string
	if err := db.QueryRowContext(ctx, "SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&file); err != nil {
		return nil, fmt.Errorf("sqlite: reading the pool's database file name (is it an SQLite pool?): %w", err)
	}
	if err := db.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&version); err != nil {
		return nil, fmt.Errorf("sqlite: reading the SQLite version: %w", err)
	}
	info := checks.TargetInfo{Engine: Engine, Name: file, Database: filepath.Base(file), ServerVersion: version}
	if file == "" {
		info.Name, info.Database = ":memory:", ":memory:"
	}
	return &Target{db: db, path: file, cfg: cfg, info: info}, nil
}

// Close closes the connections [Open] opened. For a target made by [New]
// it does nothing: the pool belongs to the caller.
func (t *Target) Close() error {
	if !t.owned {
		return nil
	}
	if err := t.db.Close(); err != nil {
		return fmt.Errorf("sqlite: closing %s: %w", t.info.Name, err)
	}
	return nil
}

// Info describes the target: Engine "sqlite", Name the file path as given
// to [Open] (or the pool's file for [New]), Database the file's base name,
// ServerVersion the SQLite library version.
func (t *Target) Info() checks.TargetInfo { return t.info }

// Checks returns the named checks ([CheckIntegrity], [CheckForeignKeys]),
// or both when no name is given. A name given twice is returned once. An
// unknown name gives an error wrapping [checks.ErrUnknownCheck] that lists
// the valid names.
func (t *Target) Checks(names ...string) ([]checks.Check, error) {
	if len(names) == 0 {
		for _, ci := range Catalog() {
			if ci.Default {
				names = append(names, ci.Name)
			}
		}
	}
	var out []checks.Check
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		switch n {
		case CheckIntegrity:
			out = append(out, &integrityCheck{t: t})
		case CheckForeignKeys:
			out = append(out, &foreignKeyCheck{t: t})
		default:
			var valid []string
			for _, ci := range Catalog() {
				valid = append(valid, ci.Name)
			}
			return nil, fmt.Errorf("sqlite: %w %q (valid: %s)", checks.ErrUnknownCheck, n, strings.Join(valid, ", "))
		}
	}
	return out, nil
}

// fileSize checks that the database file exists before a check opens it,
// so that a typo gives "database file does not exist" rather than
// SQLite's "unable to open database file", and returns its size. For an
// in-memory database it returns 0.
func (t *Target) fileSize() (int64, error) {
	if t.path == "" {
		return 0, nil
	}
	st, err := os.Stat(t.path)
	var pe *fs.PathError
	switch {
	case errors.Is(err, fs.ErrNotExist) && errors.As(err, &pe):
		return 0, fmt.Errorf("sqlite: database file does not exist: %s: %w", t.path, pe.Err)
	case err != nil:
		return 0, fmt.Errorf("sqlite: %w", err)
	case st.IsDir():
		return 0, fmt.Errorf("sqlite: %s is a directory, not a database file", t.path)
	}
	return st.Size(), nil
}

// unreadable is the finding for an object SQLite cannot read at all, or
// stopped reading, because it is damaged. what says what happened.
func (t *Target) unreadable(object, what string, err error, code string) checks.Finding {
	msg := fmt.Sprintf("%s: %v", what, err)
	if t.path != "" {
		if d := diagnoseHeader(t.path); d != "" {
			msg += "; " + d
		}
	}
	return checks.Finding{
		Severity: checks.StatusCorrupt,
		Object:   object,
		Code:     code,
		Message:  msg,
		Remedy:   remedyRestore,
	}
}

const remedyRestore = "Stop writing to the file and keep a copy of it; restore from a backup, or salvage what is readable with the sqlite3 shell's .recover command on the copy."

// quoteLiteral returns s as an SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
