package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dbscrub/dbscrub/checks"
	sqlite3 "modernc.org/sqlite/lib"
)

// errorKind says what an error from SQLite means for a check.
type errorKind int

const (
	kindOther   errorKind = iota // could not check
	kindCorrupt                  // the engine says the file is damaged
	kindBusy                     // a lock held past the busy timeout: worth one more try
)

// codeError is implemented by modernc.org/sqlite's *Error.
type codeError interface {
	error
	Code() int
}

// classify tells corruption (SQLITE_CORRUPT, SQLITE_NOTADB) from busy
// locks and other errors, and returns SQLite's name for the result code
// when it is known. Errors from other SQLite drivers are recognised by
// SQLite's own messages.
func classify(err error) (errorKind, string) {
	var ce codeError
	if errors.As(err, &ce) {
		code := ce.Code()
		name := codeName(code)
		switch code & 0xff {
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return kindCorrupt, name
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return kindBusy, name
		}
		return kindOther, name
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "database disk image is malformed"):
		return kindCorrupt, "SQLITE_CORRUPT"
	case strings.Contains(msg, "file is not a database"):
		return kindCorrupt, "SQLITE_NOTADB"
	case strings.Contains(msg, "database is locked"):
		return kindBusy, "SQLITE_BUSY"
	case strings.Contains(msg, "database table is locked"):
		return kindBusy, "SQLITE_LOCKED"
	}
	return kindOther, ""
}

func codeName(code int) string {
	switch code {
	case sqlite3.SQLITE_CORRUPT_INDEX:
		return "SQLITE_CORRUPT_INDEX"
	case sqlite3.SQLITE_CORRUPT_SEQUENCE:
		return "SQLITE_CORRUPT_SEQUENCE"
	case sqlite3.SQLITE_CORRUPT_VTAB:
		return "SQLITE_CORRUPT_VTAB"
	case sqlite3.SQLITE_READONLY_ROLLBACK:
		return "SQLITE_READONLY_ROLLBACK"
	case sqlite3.SQLITE_READONLY_CANTINIT:
		return "SQLITE_READONLY_CANTINIT"
	case sqlite3.SQLITE_READONLY_RECOVERY:
		return "SQLITE_READONLY_RECOVERY"
	}
	switch code & 0xff {
	case sqlite3.SQLITE_CORRUPT:
		return "SQLITE_CORRUPT"
	case sqlite3.SQLITE_NOTADB:
		return "SQLITE_NOTADB"
	case sqlite3.SQLITE_BUSY:
		return "SQLITE_BUSY"
	case sqlite3.SQLITE_LOCKED:
		return "SQLITE_LOCKED"
	case sqlite3.SQLITE_CANTOPEN:
		return "SQLITE_CANTOPEN"
	case sqlite3.SQLITE_PERM:
		return "SQLITE_PERM"
	case sqlite3.SQLITE_READONLY:
		return "SQLITE_READONLY"
	case sqlite3.SQLITE_IOERR:
		return "SQLITE_IOERR"
	case sqlite3.SQLITE_INTERRUPT:
		return "SQLITE_INTERRUPT"
	}
	return ""
}

// stmtError wraps an error from running what (a statement, for people) so
// that it says what could not be checked: an interrupted statement wraps
// the context's cause, a busy database is retryable, and a file SQLite
// cannot open gets a hint.
func (t *Target) stmtError(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("sqlite: %s on %s interrupted: %w", what, t.info.Name, context.Cause(ctx))
	}
	kind, name := classify(err)
	switch {
	case kind == kindBusy:
		return checks.Retryable(fmt.Errorf("sqlite: %s on %s: the database stayed locked by another connection past the busy timeout: %w", what, t.info.Name, err))
	case name == "SQLITE_CANTOPEN":
		return fmt.Errorf("sqlite: %s: cannot open %s read-only (is it readable? a database in WAL mode also needs its -shm file, or a writable directory to create it): %w", what, t.info.Name, err)
	case name == "SQLITE_READONLY_ROLLBACK":
		return fmt.Errorf("sqlite: %s on %s: a hot journal (%s-journal) left by an interrupted write must be rolled back before the file can be read, and dbscrub never writes: open the database once with the application or the sqlite3 shell, then check again: %w", what, t.info.Name, t.info.Name, err)
	case name == "SQLITE_READONLY_CANTINIT", name == "SQLITE_READONLY_RECOVERY":
		return fmt.Errorf("sqlite: %s on %s: the database is in WAL mode and its -shm file cannot be set up read-only (make the -shm file or the directory writable, or let the application open the database first): %w", what, t.info.Name, err)
	}
	return fmt.Errorf("sqlite: %s on %s: %w", what, t.info.Name, err)
}
