package sqlserver

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/redact"
)

// Sentinel errors. Test for them with errors.Is; the messages of the errors
// wrapping them say what to do.
var (
	// ErrConnect means dbscrub could not connect to the server: unreachable
	// host or port, TLS, failed login.
	ErrConnect = errors.New("cannot connect to SQL Server")
	// ErrDatabaseUnavailable means the database cannot be opened: it does
	// not exist, the login has no user in it, or it is SUSPECT, OFFLINE,
	// RESTORING or a non-readable availability-group secondary (the error,
	// or the check's skip reason, says which).
	ErrDatabaseUnavailable = errors.New("database unavailable")
	// ErrPrivilege means the login lacks a permission a check needs. The
	// error message gives the grant that fixes it.
	ErrPrivilege = errors.New("insufficient permission")
	// ErrLockTimeout means a statement waited longer than the lock timeout
	// ([WithLockTimeout]) for a lock (error 1222). It is retryable.
	ErrLockTimeout = errors.New("lock timeout")
	// ErrConnectionLost means the connection broke while a task ran: the
	// server ended the session (fatal error), restarted, or the network
	// failed.
	ErrConnectionLost = errors.New("connection to the server lost")
	// ErrUnsupported means the server or an option is not supported (Azure
	// Synapse, EXTENDED_LOGICAL_CHECKS before SQL Server 2016 ...).
	ErrUnsupported = errors.New("unsupported")
	// ErrClosed means the Target was closed.
	ErrClosed = errors.New("target closed")
)

// permissionRemedy says, per check, what to grant.
var permissionRemedy = map[string]string{
	CheckCheckDB:       "DBCC CHECKDB needs membership in the db_owner database role or the sysadmin server role: in the database, ALTER ROLE db_owner ADD MEMBER [user]",
	CheckCheckTable:    "DBCC CHECKTABLE needs membership in db_owner (or sysadmin, or db_ddladmin, or ownership of the table): in the database, ALTER ROLE db_owner ADD MEMBER [user]",
	CheckCheckAlloc:    "DBCC CHECKALLOC needs membership in db_owner or sysadmin: in the database, ALTER ROLE db_owner ADD MEMBER [user]",
	CheckCheckCatalog:  "DBCC CHECKCATALOG needs membership in db_owner or sysadmin: in the database, ALTER ROLE db_owner ADD MEMBER [user]",
	CheckSuspectPages:  "reading msdb.dbo.suspect_pages needs a user in msdb with SELECT on it: USE msdb; CREATE USER [user] FOR LOGIN [login]; GRANT SELECT ON dbo.suspect_pages TO [user]",
	CheckBackups:       "reading msdb.dbo.backupset needs a user in msdb with SELECT on it: USE msdb; CREATE USER [user] FOR LOGIN [login]; GRANT SELECT ON dbo.backupset TO [user]",
	CheckLastKnownGood: "DATABASEPROPERTYEX needs only CONNECT to the database: check that the login has a user in it",
	CheckPageVerify:    "sys.databases shows the current database to every user: check that the login has a user in the database",
	checkFingerprint:   "a fingerprint needs SELECT on every table it reads: in the database, ALTER ROLE db_datareader ADD MEMBER [user] (or GRANT SELECT ON SCHEMA::[dbo] TO [user]), or leave the tables out (--exclude-table)",
	"probe":            "the probe needs CONNECT to the database; VIEW SERVER STATE (SQL Server 2022: VIEW SERVER PERFORMANCE STATE) lets it see the availability-group role: GRANT VIEW SERVER STATE TO [login]",
}

// describe formats a SQL Server error for people.
func describe(e mssql.Error) string {
	return fmt.Sprintf("Msg %d, Level %d, State %d: %s", e.Number, e.Class, e.State, strings.TrimRight(oneLine(e.Message), ". "))
}

// failure turns what stopped a statement into a task error: errs are the
// server errors that are not findings, err what the exchange returned.
// what names the statement ("DBCC CHECKDB"). hasFindings forbids marking
// the error retryable: a retry would drop the findings of this attempt.
func (t *Target) failure(check, what string, errs []mssql.Error, err error, hasFindings bool) error {
	retry := func(e error) error {
		if hasFindings {
			return e
		}
		return checks.Retryable(e)
	}
	switch {
	case errors.Is(err, context.Canceled):
		return t.scrub(fmt.Errorf("%s was cancelled (the server was told to stop it): %w", what, err))
	case errors.Is(err, context.DeadlineExceeded):
		return t.scrub(fmt.Errorf("%s ran out of time (the server was told to stop it): %w", what, err))
	}
	for _, e := range errs {
		if permissionErrors[e.Number] {
			return t.scrub(fmt.Errorf("%s: %w: %s. Remedy: %s", what, ErrPrivilege, describe(e), permissionRemedy[check]))
		}
	}
	for _, e := range errs {
		switch {
		case e.Number == 1222:
			return t.scrub(retry(fmt.Errorf("%s: %w: %s: another session held a lock longer than the lock timeout of %s; try again later or raise it with WithLockTimeout",
				what, ErrLockTimeout, describe(e), t.cfg.lockTimeout)))
		case e.Number == 1934:
			return t.scrub(fmt.Errorf("%s: %s: the session's SET options do not allow checking indexed views or computed-column indexes", what, describe(e)))
		case unavailableErrors[e.Number]:
			return t.scrub(fmt.Errorf("%s: %w: %s", what, ErrDatabaseUnavailable, describe(e)))
		case retryableErrors[e.Number]:
			return t.scrub(retry(fmt.Errorf("%s: %s", what, describe(e))))
		}
	}
	if len(errs) > 0 {
		msg := describe(errs[0])
		if len(errs) > 1 {
			msg += fmt.Sprintf(" (and %d more errors; first shown)", len(errs)-1)
		}
		if c := classify(errs[0].Number, int(errs[0].Class), false); c == classNotVerified && dbccErrors[errs[0].Number] == classNotVerified {
			msg += ". DBCC did not finish: see the errors before it; check tempdb free space and run the check again; if it repeats, treat the database as damaged"
		}
		if err != nil {
			return t.scrub(fmt.Errorf("%s: %s: %w", what, msg, connLost(err)))
		}
		return t.scrub(fmt.Errorf("%s: %s", what, msg))
	}
	if err != nil {
		if lost := connLost(err); errors.Is(lost, ErrConnectionLost) {
			return t.scrub(retry(fmt.Errorf("%s: %w", what, lost)))
		}
		return t.scrub(fmt.Errorf("%s: %w", what, err))
	}
	return nil
}

// connLost marks err as a lost connection when it is one.
func connLost(err error) error {
	var ne net.Error
	var me mssql.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &ne):
		return fmt.Errorf("%w: %w", ErrConnectionLost, err)
	case errors.As(err, &me) && me.Class >= 20:
		return fmt.Errorf("%w: the server ended the session after a fatal error: %w", ErrConnectionLost, err)
	}
	return err
}

// connectFailure turns a failure to get a session into an error.
func (t *Target) connectFailure(what string, err error) error {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return t.scrub(fmt.Errorf("%s: connecting was interrupted: %w", what, err))
	}
	for _, e := range serverErrors(nil, err) {
		if unavailableErrors[e.Number] {
			return t.scrub(fmt.Errorf("%s: %w: %s", what, ErrDatabaseUnavailable, describe(e)))
		}
	}
	where := t.Info().Host
	if p := t.Info().Port; p != 0 && where != "" {
		where = fmt.Sprintf("%s:%d", where, p)
	}
	if where != "" {
		where = " at " + where
	}
	return t.scrub(fmt.Errorf("%s: %w%s: %s", what, ErrConnect, where, oneLine(err.Error())))
}

// isUnavailable reports whether err says the database cannot be opened.
func isUnavailable(err error) bool {
	if errors.Is(err, ErrDatabaseUnavailable) {
		return true
	}
	for _, e := range serverErrors(nil, err) {
		if unavailableErrors[e.Number] {
			return true
		}
	}
	return false
}

// scrub removes the target's secrets from err and makes its message one
// line (server errors may span several). errors.Is and errors.As still see
// the original chain.
func (t *Target) scrub(err error) error {
	if err == nil {
		return nil
	}
	err = redact.Error(err, t.secrets...)
	if msg := err.Error(); strings.ContainsAny(msg, "\r\n") {
		return &lineError{msg: oneLine(msg), err: err}
	}
	return err
}

// lineError is an error whose message was collapsed to one line.
type lineError struct {
	msg string
	err error
}

func (e *lineError) Error() string { return e.msg }
func (e *lineError) Unwrap() error { return e.err }

// oneLine collapses a message to a single line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(strings.NewReplacer("\r", " ", "\n", " ").Replace(s)), " ")
}
