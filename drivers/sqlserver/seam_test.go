package sqlserver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-sql/sqlexp"
	mssql "github.com/microsoft/go-mssqldb"
)

// A scripted database/sql driver that speaks go-mssqldb's message-queue
// protocol (sqlexp.ReturnMessage): it tests the real seam (sqlSession)
// without a server. Like go-mssqldb, it sends tokens (columns, rows, done)
// on a channel the Rows read, and queues messages (MsgNotice, MsgNext,
// MsgRowsAffected, MsgNextResultSet, MsgError) on the caller's queue.

type scriptEvent struct {
	notice *mssql.Error
	err    error
	cols   []string
	rows   [][]driver.Value
	block  bool // wait until the query's context is done
}

type scriptConnector struct {
	script     func(query string, args []driver.NamedValue) []scriptEvent
	connectErr error
	closed     atomic.Int32
	mu         sync.Mutex
	queries    []string
}

func (c *scriptConnector) Connect(context.Context) (driver.Conn, error) {
	if c.connectErr != nil {
		return nil, c.connectErr
	}
	return &scriptConn{c: c}, nil
}

func (c *scriptConnector) Driver() driver.Driver { return scriptDriver{} }

type scriptDriver struct{}

func (scriptDriver) Open(string) (driver.Conn, error) { return nil, errors.New("use the connector") }

type scriptConn struct {
	c    *scriptConnector
	msgq *sqlexp.ReturnMessage
}

func (c *scriptConn) Prepare(string) (driver.Stmt, error) { return nil, errors.New("not supported") }
func (c *scriptConn) Close() error                        { c.c.closed.Add(1); return nil }
func (c *scriptConn) Begin() (driver.Tx, error)           { return nil, errors.New("not supported") }

// CheckNamedValue takes the message queue out of the arguments, as
// go-mssqldb does.
func (c *scriptConn) CheckNamedValue(nv *driver.NamedValue) error {
	if rm, ok := nv.Value.(*sqlexp.ReturnMessage); ok {
		sqlexp.ReturnMessageInit(rm)
		c.msgq = rm
		return driver.ErrRemoveArgument
	}
	return nil
}

func (c *scriptConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	c.c.mu.Lock()
	c.c.queries = append(c.c.queries, query)
	c.c.mu.Unlock()
	if c.msgq == nil {
		return nil, errors.New("script driver: query without a message queue")
	}
	events := c.c.script(query, args)
	rctx, cancel := context.WithCancel(ctx)
	r := &scriptRows{toks: make(chan any, 5), ctx: rctx, cancel: cancel}
	go produce(rctx, r.toks, c.msgq, events)
	c.msgq = nil
	return r, nil
}

type colsTok []string
type doneTok struct{ final bool }

func produce(ctx context.Context, toks chan<- any, q *sqlexp.ReturnMessage, events []scriptEvent) {
	defer close(toks)
	send := func(v any) bool {
		select {
		case toks <- v:
			return true
		case <-ctx.Done():
			return false
		}
	}
	enq := func(m sqlexp.RawMessage) { _ = sqlexp.ReturnMessageEnqueue(ctx, q, m) }
	for _, ev := range events {
		switch {
		case ev.block:
			<-ctx.Done()
			return
		case ev.notice != nil:
			enq(sqlexp.MsgNotice{Message: *ev.notice})
		case ev.err != nil:
			enq(sqlexp.MsgError{Error: ev.err})
		case ev.cols != nil:
			if !send(colsTok(ev.cols)) {
				return
			}
			enq(sqlexp.MsgNext{})
			for _, r := range ev.rows {
				if !send(r) {
					return
				}
			}
			if !send(doneTok{}) {
				return
			}
			enq(sqlexp.MsgRowsAffected{Count: int64(len(ev.rows))})
			enq(sqlexp.MsgNextResultSet{})
		}
	}
	if send(doneTok{final: true}) {
		enq(sqlexp.MsgNextResultSet{})
		enq(sqlexp.MsgNextResultSet{})
	}
}

type scriptRows struct {
	toks   chan any
	ctx    context.Context
	cancel context.CancelFunc
	cols   []string
	inSet  bool
	done   bool
}

func (r *scriptRows) next() (any, bool) {
	select {
	case tok, ok := <-r.toks:
		return tok, ok
	case <-r.ctx.Done():
		return nil, false
	}
}

func (r *scriptRows) Columns() []string {
	for r.cols == nil {
		tok, ok := r.next()
		if !ok {
			return []string{}
		}
		if c, isCols := tok.(colsTok); isCols {
			r.cols, r.inSet = c, true
		}
	}
	return r.cols
}

func (r *scriptRows) Close() error {
	r.cancel()
	for range r.toks {
	}
	return nil
}

func (r *scriptRows) Next(dest []driver.Value) error {
	for {
		tok, ok := r.next()
		if !ok {
			if err := r.ctx.Err(); err != nil {
				return err
			}
			return io.EOF
		}
		switch v := tok.(type) {
		case []driver.Value:
			copy(dest, v)
			return nil
		case doneTok:
			r.done = r.done || v.final
			if r.inSet {
				r.inSet = false
				return io.EOF
			}
		case colsTok:
			r.cols, r.inSet = v, true
		}
	}
}

func (r *scriptRows) HasNextResultSet() bool { return true }

func (r *scriptRows) NextResultSet() error {
	if r.done {
		return io.EOF
	}
	tok, ok := r.next()
	if !ok {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		r.done = true
		return io.EOF
	}
	switch v := tok.(type) {
	case colsTok:
		r.cols, r.inSet = v, true
	case doneTok:
		r.done = r.done || v.final
		r.cols, r.inSet = nil, false
	}
	return nil
}

func scriptDB(t *testing.T, c *scriptConnector) *sql.DB {
	t.Helper()
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestRealSeamDrainsMessagesRowsAndErrors(t *testing.T) {
	var events []scriptEvent
	for i := 0; i < 40; i++ { // more than the queue holds (15)
		events = append(events, scriptEvent{notice: &mssql.Error{Number: 2593, Class: 10, Message: "There are 1 rows in 1 pages."}})
	}
	events = append(events,
		scriptEvent{cols: []string{"Error", "Level", "MessageText", "File", "Page", "RepairLevel"}, rows: [][]driver.Value{
			{int64(8928), int64(16), "Page (1:280) could not be processed.", int64(1), int64(280), "repair_allow_data_loss"},
			{int64(8939), int64(16), "Table error: page (1:280).", int64(1), int64(280), nil},
		}},
		scriptEvent{notice: &mssql.Error{Number: 8989, Class: 10, Message: "CHECKDB found 0 allocation errors and 2 consistency errors in database 'Sales'."}},
		scriptEvent{err: mssql.Error{Number: 2571, Class: 14, State: 3, Message: "User 'x' does not have permission to run DBCC checkdb."}},
		scriptEvent{cols: []string{"n"}}, // an empty result set
		scriptEvent{cols: []string{"n"}, rows: [][]driver.Value{{int64(7)}}},
		scriptEvent{notice: &mssql.Error{Number: 2528, Class: 10, Message: "DBCC execution completed."}},
	)
	conn := &scriptConnector{script: func(string, []driver.NamedValue) []scriptEvent { return events }}
	pool := sqlPool{db: scriptDB(t, conn)}

	ctx := ctxTimeout(t)
	sess, err := pool.session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := sess.exec(ctx, "DBCC CHECKDB (@p1) WITH TABLERESULTS;", "Sales")
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	sess.close(false)

	if len(resp.messages) != 42 || resp.messages[40].Number != 8989 || resp.messages[41].Text != "DBCC execution completed." {
		t.Errorf("got %d messages, want 42 in order: %+v", len(resp.messages), resp.messages[len(resp.messages)-2:])
	}
	if len(resp.sets) != 3 {
		t.Fatalf("got %d result sets, want 3", len(resp.sets))
	}
	s := resp.sets[0]
	if len(s.rows) != 2 || s.columns[0] != "Error" {
		t.Fatalf("first set = %+v", s)
	}
	r := s.Rows()[0]
	if n, _ := r.Int("error"); n != 8928 || r.String("MessageText") != "Page (1:280) could not be processed." || r.String("RepairLevel") != "repair_allow_data_loss" {
		t.Errorf("row = %+v", r.vals)
	}
	if !s.Rows()[1].Null("RepairLevel") {
		t.Error("NULL RepairLevel not NULL")
	}
	if len(resp.sets[1].rows) != 0 || len(resp.sets[1].columns) != 1 || len(resp.sets[2].rows) != 1 {
		t.Errorf("sets 2 and 3 = %+v %+v", resp.sets[1], resp.sets[2])
	}
	errs := serverErrors(resp, nil)
	if len(errs) != 1 || errs[0].Number != 2571 {
		t.Errorf("errors = %+v", errs)
	}

	// What the driver makes of it: two findings, and the permission error.
	diags := diagsFrom(resp, nil)
	var numbers []int32
	for _, d := range diags {
		numbers = append(numbers, d.number)
	}
	if len(diags) != 2+1+42 || numbers[0] != 8928 || numbers[1] != 8939 || numbers[2] != 2571 {
		t.Errorf("diagnostics = %v", numbers)
	}
	if conn.closed.Load() != 0 {
		t.Error("a sound session was closed instead of pooled")
	}
}

func TestRealSeamCancellation(t *testing.T) {
	started := make(chan struct{})
	conn := &scriptConnector{script: func(string, []driver.NamedValue) []scriptEvent {
		close(started)
		return []scriptEvent{{notice: &mssql.Error{Number: 0, Class: 0, Message: "working"}}, {block: true}}
	}}
	pool := sqlPool{db: scriptDB(t, conn)}
	ctx, cancel := context.WithCancel(ctxTimeout(t))
	sess, err := pool.session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		<-started
		time.Sleep(20 * time.Millisecond)
		cancel()
	}()
	done := make(chan struct{})
	var resp *response
	go func() {
		defer close(done)
		resp, err = sess.exec(ctx, "DBCC CHECKDB (@p1);", "Sales")
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("exec did not return after cancellation")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("exec error = %v, want context.Canceled", err)
	}
	if resp == nil || len(resp.messages) != 1 {
		t.Errorf("messages before the cancellation were lost: %+v", resp)
	}
	sess.close(true)
	if conn.closed.Load() != 1 {
		t.Errorf("a cancelled session was pooled, not closed (closed %d)", conn.closed.Load())
	}
}

func TestRealSeamConnectError(t *testing.T) {
	conn := &scriptConnector{connectErr: mssql.Error{Number: 18456, Class: 14, State: 1, Message: "Login failed for user 'sa'."}}
	pool := sqlPool{db: scriptDB(t, conn)}
	_, err := pool.session(ctxTimeout(t))
	var me mssql.Error
	if !errors.As(err, &me) || me.Number != 18456 {
		t.Errorf("session error = %v", err)
	}
}

// TestRealSeamEndToEnd runs a check through New with the scripted driver:
// the probe, the session setup and DBCC all go through sqlSession.
func TestRealSeamEndToEnd(t *testing.T) {
	conn := &scriptConnector{script: func(q string, args []driver.NamedValue) []scriptEvent {
		switch {
		case strings.HasPrefix(q, "SET LOCK_TIMEOUT"):
			return nil
		case strings.Contains(q, "SERVERPROPERTY('ServerName')"):
			return []scriptEvent{{cols: []string{"server_name", "product_version", "engine_edition", "database_name", "database_id", "state_desc", "is_db_owner"},
				rows: [][]driver.Value{{"SQL1", "16.0.1000.6", int64(3), "Sales", int64(5), "ONLINE", true}}}}
		case strings.Contains(q, "availability_replicas"):
			return []scriptEvent{{cols: []string{"ag_name", "role_desc", "secondary_role_allow_connections_desc"}}}
		case strings.HasPrefix(q, "DBCC CHECKDB"):
			if len(args) != 1 || args[0].Value != "Sales" {
				return []scriptEvent{{err: mssql.Error{Number: 102, Class: 15, Message: "bad args"}}}
			}
			return []scriptEvent{
				{cols: tableResultsColumns, rows: [][]driver.Value{driverValues(tr{err: 8939, level: 16, object: 0, file: 1, page: 9, msg: "Table error: page (1:9)."}.values())}},
				{notice: &mssql.Error{Number: 8989, Class: 10, Message: "CHECKDB found 0 allocation errors and 1 consistency errors in database 'Sales'."}},
			}
		}
		return []scriptEvent{{err: mssql.Error{Number: 208, Class: 16, Message: "Invalid object name: " + q}}}
	}}
	tg, err := New(scriptDB(t, conn))
	if err != nil {
		t.Fatal(err)
	}
	rep := runChecks(t, ctxTimeout(t), tg, nil, "checkdb")
	c := mustStatus(t, rep, "checkdb", "corrupt")
	if len(c.Findings) != 1 || c.Findings[0].Code != "8939" || c.Findings[0].Location.String() != "file 1, page 9" {
		t.Errorf("findings = %+v", c.Findings)
	}
	if got := tg.Info().Name; got != "sqlserver://SQL1?database=Sales" {
		t.Errorf("Info().Name after probe = %q", got)
	}
}

func driverValues(vs []any) []driver.Value {
	out := make([]driver.Value, len(vs))
	for i, v := range vs {
		out[i] = v
	}
	return out
}
