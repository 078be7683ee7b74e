package postgres

import "errors"

// Sentinel errors. Test for them with errors.Is; the messages of the errors
// wrapping them say what to do.
var (
	// ErrConnect means dbscrub could not connect to the server or open a
	// session: unreachable host or port, failed authentication, a missing
	// database, too many connections, the server starting up or shutting
	// down.
	ErrConnect = errors.New("cannot connect to PostgreSQL")
	// ErrAmcheckMissing means the amcheck extension (or a function a check
	// needs from it) is not installed in the database. The error message
	// gives the statements that fix it.
	ErrAmcheckMissing = errors.New("amcheck extension missing")
	// ErrPrivilege means the role lacks a privilege a check needs (EXECUTE
	// on an amcheck function). The error message gives the GRANT statements
	// that fix it.
	ErrPrivilege = errors.New("insufficient privilege")
	// ErrUnsupported means the server is too old for a check.
	ErrUnsupported = errors.New("unsupported server version")
	// ErrClosed means the Target was closed.
	ErrClosed = errors.New("target closed")
	// ErrServerCrashed means the server process verifying an object died
	// and the server restarted (or did not come back): amcheck may have
	// crashed on a damaged page. A task returning it also returns a
	// corruption finding for the object.
	ErrServerCrashed = errors.New("server crashed")
	// ErrConnectionLost means the connection to the server was lost while a
	// task ran, without a crash of the server.
	ErrConnectionLost = errors.New("connection to the server lost")
)
