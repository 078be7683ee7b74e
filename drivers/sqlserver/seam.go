package sqlserver

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
)

// The seam between "run this statement" and "rows, messages, errors".
// Every check goes through it; the real implementation (mssqlseam.go) is a
// thin loop over go-mssqldb's message queue, and the tests use a fake that
// replays recorded responses.

// A connector hands out sessions: one database connection each.
type connector interface {
	// session opens (or takes from a pool) one connection. Login failures
	// surface here.
	session(ctx context.Context) (session, error)
}

// A session is one connection a task owns for its lifetime.
type session interface {
	// exec runs query (with @p1, @p2, ... placeholders for args; a query
	// without args is sent as a plain batch, so SET statements in it last
	// for the session) and returns everything the server sent: every result
	// set, every informational message and every error token, drained to
	// the end. err is what stopped the exchange early or what the driver
	// returned at the end: a cancelled context, a lost connection, a fatal
	// server error. Server errors also appear in resp.errs in the order the
	// server sent them; resp is never nil.
	exec(ctx context.Context, query string, args ...any) (resp *response, err error)
	// close gives the connection back; discard closes it instead (after an
	// error or a cancellation its state is not trusted).
	close(discard bool)
}

// response is everything the server sent for one statement.
type response struct {
	sets     []resultSet
	messages []message
	errs     []error
}

// resultSet is one result set: column names and rows of driver values
// (int64, float64, bool, string, []byte, time.Time or nil).
type resultSet struct {
	columns []string
	rows    [][]any
}

// message is an informational message (severity 10 or less): PRINT,
// RAISERROR WITH severity <= 10, DBCC's informational output.
type message struct {
	Number int32
	Class  uint8
	State  uint8
	Text   string
}

// serverErrors returns the SQL Server errors in resp and err, each once,
// in the order they were sent.
func serverErrors(resp *response, err error) []mssql.Error {
	var out []mssql.Error
	seen := map[string]bool{}
	add := func(e mssql.Error) {
		k := strconv.Itoa(int(e.Number)) + "/" + strconv.Itoa(int(e.State)) + "/" + e.Message
		if seen[k] {
			return
		}
		seen[k] = true
		e.All = nil
		out = append(out, e)
	}
	addErr := func(err error) {
		var me mssql.Error
		if !errors.As(err, &me) {
			return
		}
		if len(me.All) > 0 {
			for _, e := range me.All {
				add(e)
			}
			return
		}
		add(me)
	}
	if resp != nil {
		for _, e := range resp.errs {
			addErr(e)
		}
	}
	addErr(err)
	return out
}

// row gives access to one row of a result set by column name
// (case-insensitive), tolerating missing columns.
type row struct {
	index map[string]int
	vals  []any
}

// rows returns the rows of set.
func (s resultSet) Rows() []row {
	index := make(map[string]int, len(s.columns))
	for i, c := range s.columns {
		k := strings.ToLower(c)
		if _, dup := index[k]; !dup {
			index[k] = i
		}
	}
	out := make([]row, len(s.rows))
	for i, r := range s.rows {
		out[i] = row{index: index, vals: r}
	}
	return out
}

// Has reports whether the row has column name.
func (r row) Has(name string) bool {
	_, ok := r.index[strings.ToLower(name)]
	return ok
}

// Value returns the raw value of column name, or nil.
func (r row) Value(name string) any {
	i, ok := r.index[strings.ToLower(name)]
	if !ok || i >= len(r.vals) {
		return nil
	}
	return r.vals[i]
}

// Null reports whether column name is missing or NULL.
func (r row) Null(name string) bool { return r.Value(name) == nil }

// Int returns column name as an integer; ok is false when it is missing,
// NULL or not a number.
func (r row) Int(name string) (int64, bool) {
	switch v := r.Value(name).(type) {
	case int64:
		return v, true
	case int32:
		return int64(v), true
	case int:
		return int64(v), true
	case int16:
		return int64(v), true
	case int8:
		return int64(v), true
	case uint8:
		return int64(v), true
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, false
		}
		return int64(v), true
	case bool:
		if v {
			return 1, true
		}
		return 0, true
	case []byte:
		n, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
		return n, err == nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// IntOr returns column name as an integer, or def.
func (r row) IntOr(name string, def int64) int64 {
	if v, ok := r.Int(name); ok {
		return v
	}
	return def
}

// Bool returns column name as a boolean (bit, or a number: non-zero is
// true); NULL and missing are false.
func (r row) Bool(name string) bool {
	v, ok := r.Int(name)
	return ok && v != 0
}

// String returns column name as text; NULL and missing are "".
func (r row) String(name string) string {
	switch v := r.Value(name).(type) {
	case nil:
		return ""
	case string:
		return v
	case []byte:
		return string(v)
	case time.Time:
		return v.Format("2006-01-02 15:04:05.000")
	default:
		return fmt.Sprint(v)
	}
}

// Time returns column name as a time; ok is false when it is missing or
// NULL.
func (r row) Time(name string) (time.Time, bool) {
	switch v := r.Value(name).(type) {
	case time.Time:
		return v, true
	case string:
		for _, layout := range []string{"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", time.RFC3339Nano, "2006-01-02"} {
			if t, err := time.Parse(layout, v); err == nil {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

// firstRows returns the rows of the first result set of resp, or nil.
func firstRows(resp *response) []row {
	if resp == nil || len(resp.sets) == 0 {
		return nil
	}
	return resp.sets[0].Rows()
}
