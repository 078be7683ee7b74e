package sqlserver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/golang-sql/sqlexp"
	mssql "github.com/microsoft/go-mssqldb"
)

// sqlPool is the real connector: a database/sql pool whose driver is
// go-mssqldb ("sqlserver", "mssql" or "azuresql").
type sqlPool struct {
	db *sql.DB
}

func (p sqlPool) session(ctx context.Context) (session, error) {
	c, err := p.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	return &sqlSession{c: c}, nil
}

// sqlSession runs statements on one *sql.Conn.
type sqlSession struct {
	c *sql.Conn
}

// exec runs query and reads its rows AND its messages in one loop through
// go-mssqldb's message queue (sqlexp.ReturnMessage). The queue must be read
// to the end: go-mssqldb's reader blocks when it is full, and DBCC sends
// its output as messages and error tokens, not only as rows. Server errors
// do not stop the loop; they are collected in resp.errs so that the caller
// can tell corruption (DBCC error numbers) from failures.
//
// A limit of go-mssqldb's design: while the caller is inside rows.Next or
// rows.NextResultSet waiting for the next token, its reader can queue only
// 15 messages ahead; a statement that sent more informational messages
// than that in between two tokens would stall until ctx ends. dbscrub's
// DBCC statements use NO_INFOMSGS and TABLERESULTS, so their messages are
// few and their problems arrive as rows; the task timeout bounds the rest.
//
// Cancelling ctx makes go-mssqldb send a TDS attention: the server stops
// the statement, and exec returns the context's error.
func (s *sqlSession) exec(ctx context.Context, query string, args ...any) (*response, error) {
	resp := &response{}
	retmsg := &sqlexp.ReturnMessage{}
	qargs := make([]any, 0, len(args)+1)
	qargs = append(qargs, retmsg)
	qargs = append(qargs, args...)
	rows, err := s.c.QueryContext(ctx, query, qargs...)
	if err != nil {
		return resp, err
	}
	defer rows.Close()

	var scanErr error
	for active := true; active; {
		switch m := retmsg.Message(ctx).(type) {
		case sqlexp.MsgNotice:
			resp.messages = append(resp.messages, noticeMessage(m.Message))
		case sqlexp.MsgError:
			resp.errs = append(resp.errs, m.Error)
		case sqlexp.MsgNext:
			set, err := readSet(rows)
			if err != nil && scanErr == nil {
				scanErr = err
			}
			resp.sets = append(resp.sets, set)
			if rows.Err() != nil {
				// database/sql closed the rows (a fatal server error, a
				// lost connection, a cancellation): no further message
				// would come, and go-mssqldb has stopped reading.
				active = false
			}
		case sqlexp.MsgNextResultSet:
			// Message returns MsgNextResultSet when ctx is done, too;
			// NextResultSet then reports the cancellation.
			active = rows.NextResultSet()
		case sqlexp.MsgRowsAffected, sqlexp.MsgLastInsertID:
		}
	}
	err = rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if cerr := ctx.Err(); cerr != nil {
		// Keep context.Canceled / DeadlineExceeded in the chain, and the
		// cause (the Runner's "task timeout of 1h") in the message.
		if cause := context.Cause(ctx); cause != nil && cause != cerr {
			cerr = fmt.Errorf("%w (%w)", cerr, cause)
		}
		if err == nil || errors.Is(err, ctx.Err()) {
			err = cerr
		} else {
			err = fmt.Errorf("%w: %w", cerr, err)
		}
	}
	if err == nil {
		err = scanErr
	}
	return resp, err
}

// readSet reads the rows of the current result set.
func readSet(rows *sql.Rows) (resultSet, error) {
	var set resultSet
	var firstErr error
	for rows.Next() {
		if set.columns == nil {
			cols, err := rows.Columns()
			if err != nil {
				return set, err
			}
			set.columns = cols
		}
		vals := make([]any, len(set.columns))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("reading a result row: %w", err)
			}
			continue
		}
		set.rows = append(set.rows, vals)
	}
	if set.columns == nil {
		// An empty result set still has columns.
		if cols, err := rows.Columns(); err == nil {
			set.columns = cols
		}
	}
	return set, firstErr
}

// noticeMessage converts a go-mssqldb informational message.
func noticeMessage(s fmt.Stringer) message {
	var e mssql.Error
	switch v := s.(type) {
	case mssql.Error:
		e = v
	case *mssql.Error:
		e = *v
	default:
		if s == nil {
			return message{}
		}
		return message{Text: s.String()}
	}
	return message{Number: e.Number, Class: e.Class, State: e.State, Text: e.Message}
}

// close returns the connection to the pool, or discards it: sql.Conn.Raw
// returning driver.ErrBadConn makes database/sql close the connection
// instead of pooling it.
func (s *sqlSession) close(discard bool) {
	if discard {
		_ = s.c.Raw(func(any) error { return driver.ErrBadConn })
	}
	_ = s.c.Close()
}
