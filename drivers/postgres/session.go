package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lib/pq"

	"github.com/dbscrub/dbscrub/checks"
)

// idleInTransactionTimeout is set locally in every dbscrub transaction so
// that a client that vanishes mid-task does not leave a transaction (and its
// snapshot and locks) open on the server.
const idleInTransactionTimeout = "5min"

// incarnation identifies one life of the server. The postmaster start time
// changes when the server is stopped and started. When the postmaster
// reinitializes after a backend crash it keeps its start time, but it
// starts a new checkpointer (whose pid only roles with pg_read_all_stats
// see) and discards the statistics, which resets pg_stat_bgwriter's
// stats_reset (visible to every role).
type incarnation struct {
	start        time.Time
	checkpointer int64     // 0 when not visible
	statsReset   time.Time // pg_stat_bgwriter.stats_reset
}

// incarnationColumns reads an incarnation.
const incarnationColumns = `pg_catalog.pg_postmaster_start_time(),
	(SELECT a.pid FROM pg_catalog.pg_stat_activity a WHERE a.backend_type = 'checkpointer' LIMIT 1),
	(SELECT b.stats_reset FROM pg_catalog.pg_stat_bgwriter b)`

// scan returns the destinations for incarnationColumns and a function that
// stores them.
func (i *incarnation) scan() ([]any, func()) {
	var ckpt sql.NullInt64
	var reset sql.NullTime
	return []any{&i.start, &ckpt, &reset}, func() {
		i.checkpointer = ckpt.Int64
		i.statsReset = reset.Time
	}
}

// reinitialized reports whether the server went through a crash-and-restart
// cycle between i and later.
func (i incarnation) reinitialized(later incarnation) bool {
	if i.checkpointer != 0 && later.checkpointer != 0 && i.checkpointer != later.checkpointer {
		return true
	}
	return !i.statsReset.IsZero() && !later.statsReset.Equal(i.statsReset)
}

func (i incarnation) String() string {
	return fmt.Sprintf("postmaster started %s, checkpointer pid %d, statistics reset %s",
		i.start.Format(time.RFC3339), i.checkpointer, i.statsReset.Format(time.RFC3339Nano))
}

// incarnations remembers the incarnation each pooled connection (by
// backend pid) saw when it first opened a session. A server that restarts
// or reinitializes after a crash closes every connection, so a connection
// that is still open lives in the incarnation it first saw; the postmaster
// start time, read with every session, and the pid tell a new connection.
type incarnations struct {
	mu  sync.Mutex
	pid map[int64]incarnation
}

// get returns the incarnation seen by the connection of backend pid in
// the life of the postmaster that started at start.
func (c *incarnations) get(pid int64, start time.Time) (incarnation, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	inc, ok := c.pid[pid]
	if !ok || !inc.start.Equal(start) {
		return incarnation{}, false
	}
	return inc, true
}

// put records the incarnation a new connection saw. It keeps at most a
// few hundred entries (a pool that churns connections forgets the oldest
// at random; they are read again when needed).
func (c *incarnations) put(pid int64, inc incarnation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pid == nil {
		c.pid = map[int64]incarnation{}
	}
	if len(c.pid) >= 256 {
		for k := range c.pid {
			delete(c.pid, k)
			break
		}
	}
	c.pid[pid] = inc
}

// forget drops what is known of the connection of backend pid (its
// connection was lost).
func (c *incarnations) forget(pid int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pid, pid)
}

// sessionOpts says how to open a session.
type sessionOpts struct {
	repeatableRead bool // REPEATABLE READ READ ONLY (else READ ONLY)
	superuser      bool // may SET LOCAL zero_damaged_pages/ignore_checksum_failure off
	guard          bool // refuse when zero_damaged_pages/ignore_checksum_failure are on
	wait           bool // wait (bounded) for a server that is restarting
	extra          []setting
}

// setting is a SET LOCAL.
type setting struct{ name, value string }

// session is one transaction on one connection of the pool.
type session struct {
	t       *Target
	conn    *sql.Conn
	tx      *sql.Tx
	notices *noticeLog
	restore func()
	inc     incarnation
	pid     int64
	done    bool
}

// noticeLog collects the notices the server sends on a lib/pq connection;
// the crash of another backend arrives as a WARNING with SQLSTATE 57P02
// just before the connection closes.
type noticeLog struct {
	mu    sync.Mutex
	codes []string
	msgs  []string
}

func (n *noticeLog) add(e *pq.Error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.codes) < 32 {
		n.codes = append(n.codes, string(e.Code))
		n.msgs = append(n.msgs, e.Message)
	}
}

// has returns the message of the first notice with one of codes.
func (n *noticeLog) has(codes ...string) (string, string, bool) {
	if n == nil {
		return "", "", false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, c := range n.codes {
		for _, want := range codes {
			if c == want {
				return c, n.msgs[i], true
			}
		}
	}
	return "", "", false
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// begin opens a session: a connection from the pool, BEGIN READ ONLY, the
// SET LOCALs, and the server's incarnation. Stale pooled connections (after
// a server restart) are replaced transparently; a server that is starting
// up or recovering is waited for (bounded by the recovery wait).
func (t *Target) begin(ctx context.Context, o sessionOpts) (*session, error) {
	if t.isClosed() {
		return nil, t.errClosed()
	}
	waited := false
	var last error
	for attempt := 0; attempt < 8; attempt++ {
		s, err := t.tryBegin(ctx, o)
		if err == nil {
			return s, nil
		}
		last = err
		if ctx.Err() != nil {
			return nil, fmt.Errorf("postgres: %w", context.Cause(ctx))
		}
		var ge *guardError
		if errors.As(err, &ge) {
			return nil, err
		}
		switch {
		case isServerUnavailable(err):
			// Refused, starting up, recovering, shutting down. A task waits
			// for a server that was up when the run was planned; planning
			// itself fails fast.
			if !o.wait || waited {
				return nil, t.connectError(err)
			}
			waited = true
			if _, werr := t.waitForServer(ctx); werr != nil {
				return nil, t.connectError(err)
			}
			continue
		case isConnLost(err):
			// A pooled connection the server closed (after a restart, say):
			// take another.
			continue
		}
		return nil, t.connectError(err)
	}
	return nil, t.connectError(last)
}

// guardError reports a session setting that would hide damage.
type guardError struct{ msg string }

func (e *guardError) Error() string { return e.msg }

func (t *Target) tryBegin(ctx context.Context, o sessionOpts) (_ *session, err error) {
	conn, err := t.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	s := &session{t: t, conn: conn}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if t.isPQ {
		nl := &noticeLog{}
		_ = conn.Raw(func(dc any) error {
			c, ok := dc.(driver.Conn)
			if !ok {
				return nil
			}
			defer func() { _ = recover() }() // not a lib/pq connection after all
			prev := pq.NoticeHandler(c)
			pq.SetNoticeHandler(c, func(e *pq.Error) {
				nl.add(e)
				if prev != nil {
					prev(e)
				}
			})
			s.notices = nl
			s.restore = func() {
				_ = conn.Raw(func(any) error {
					defer func() { _ = recover() }()
					pq.SetNoticeHandler(c, prev)
					return nil
				})
			}
			return nil
		})
	}
	iso := sql.LevelDefault
	if o.repeatableRead {
		iso = sql.LevelRepeatableRead
	}
	s.tx, err = conn.BeginTx(ctx, &sql.TxOptions{Isolation: iso, ReadOnly: true})
	if err != nil {
		return nil, err
	}
	cfg := t.cfg
	sets := []setting{
		{"statement_timeout", ms(cfg.statementTimeout)},
		{"lock_timeout", ms(cfg.lockTimeout)},
		{"idle_in_transaction_session_timeout", idleInTransactionTimeout},
	}
	if t.setAppNm {
		sets = append(sets, setting{"application_name", defaultApplicationName})
	}
	if o.superuser {
		sets = append(sets, setting{"zero_damaged_pages", "off"}, setting{"ignore_checksum_failure", "off"})
	}
	sets = append(sets, o.extra...)
	var q strings.Builder
	args := make([]any, 0, 2*len(sets))
	q.WriteString("SELECT ")
	for i, st := range sets {
		fmt.Fprintf(&q, "pg_catalog.set_config($%d, $%d, true), ", 2*i+1, 2*i+2)
		args = append(args, st.name, st.value)
	}
	q.WriteString(`pg_catalog.current_setting('zero_damaged_pages'), pg_catalog.current_setting('ignore_checksum_failure'),
	pg_catalog.pg_backend_pid(), pg_catalog.pg_postmaster_start_time()`)
	dest := make([]any, len(sets), len(sets)+4)
	for i := range dest {
		dest[i] = new(any)
	}
	var zdp, icf string
	var start time.Time
	dest = append(dest, &zdp, &icf, &s.pid, &start)
	if err := s.tx.QueryRowContext(ctx, q.String(), args...).Scan(dest...); err != nil {
		return nil, err
	}
	// The rest of the incarnation (the checkpointer's pid, the statistics
	// reset time) costs a scan of the activity and bgwriter statistics:
	// read it once per connection, not once per task.
	inc, ok := t.incs.get(s.pid, start)
	if !ok {
		incDest, incDone := inc.scan()
		if err := s.tx.QueryRowContext(ctx, `SELECT `+incarnationColumns).Scan(incDest...); err != nil {
			return nil, err
		}
		incDone()
		if inc.start.Equal(start) {
			t.incs.put(s.pid, inc)
		}
	}
	s.inc = inc
	if o.guard {
		for _, g := range []struct{ name, val string }{{"zero_damaged_pages", zdp}, {"ignore_checksum_failure", icf}} {
			if g.val == "on" {
				return nil, &guardError{msg: fmt.Sprintf("postgres: %s is on in this session (postgresql.conf, ALTER ROLE or ALTER DATABASE); dbscrub refuses to verify because PostgreSQL would hide damaged pages instead of reporting them; connect as a superuser (dbscrub then turns it off in its own transactions) or turn the setting off", g.name)}
			}
		}
	}
	return s, nil
}

// close rolls the transaction back and returns the connection to the pool
// (or discards it when it broke).
func (s *session) close() {
	if s == nil || s.done {
		return
	}
	s.done = true
	if s.tx != nil {
		_ = s.tx.Rollback()
	}
	if s.restore != nil {
		s.restore()
	}
	if s.conn != nil {
		_ = s.conn.Close()
	}
}

// set runs SET LOCAL for each setting.
func (s *session) set(ctx context.Context, sets ...setting) error {
	var q strings.Builder
	args := make([]any, 0, 2*len(sets))
	q.WriteString("SELECT ")
	for i, st := range sets {
		if i > 0 {
			q.WriteString(", ")
		}
		fmt.Fprintf(&q, "pg_catalog.set_config($%d, $%d, true)", 2*i+1, 2*i+2)
		args = append(args, st.name, st.value)
	}
	_, err := s.tx.ExecContext(ctx, q.String(), args...)
	return err
}

// savepoint runs fn inside a savepoint; when fn fails, the savepoint is
// rolled back so that the transaction can go on.
func (s *session) savepoint(ctx context.Context, fn func() error) error {
	if _, err := s.tx.ExecContext(ctx, "SAVEPOINT dbscrub"); err != nil {
		return err
	}
	err := fn()
	if err != nil {
		if isConnLost(err) || ctx.Err() != nil {
			return err
		}
		if _, rerr := s.tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT dbscrub"); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	_, err = s.tx.ExecContext(ctx, "RELEASE SAVEPOINT dbscrub")
	return err
}

// serverError is what dbscrub needs from an error the server sent.
type serverError struct {
	code, message, detail, hint string
}

// asServerError extracts the SQLSTATE and message of a server error from
// lib/pq, or from any driver whose errors have a SQLState method (pgx).
func asServerError(err error) (serverError, bool) {
	if err == nil {
		return serverError{}, false
	}
	if e := pq.As(err); e != nil {
		return serverError{code: string(e.Code), message: e.Message, detail: e.Detail, hint: e.Hint}, true
	}
	var st interface{ SQLState() string }
	if errors.As(err, &st) {
		// pgconn.PgError (pgx) has exported Message, Detail and Hint fields.
		se := serverError{code: st.SQLState(), message: stringField(st, "Message"), detail: stringField(st, "Detail"), hint: stringField(st, "Hint")}
		if se.message == "" {
			se.message = err.Error()
		}
		return se, true
	}
	return serverError{}, false
}

// stringField returns the exported string field name of the struct v points
// to, or "".
func stringField(v any, name string) string {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
		if rv.IsNil() {
			return ""
		}
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return ""
	}
	if f := rv.FieldByName(name); f.IsValid() && f.Kind() == reflect.String {
		return f.String()
	}
	return ""
}

// isConnLost reports whether err means the connection is gone.
func isConnLost(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed) {
		return true
	}
	if se, ok := asServerError(err); ok {
		switch se.code {
		case "57P01", "57P02", "57P03", "08000", "08003", "08006", "08001", "08004":
			return true
		}
		return false
	}
	var ne *net.OpError
	if errors.As(err, &ne) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"connection reset", "broken pipe", "unexpected EOF", "bad connection", "server closed the connection", "use of closed network connection", "conn closed"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// isServerUnavailable reports whether connecting failed because the server
// is not (yet) accepting connections: refused, starting up, in crash
// recovery, shutting down.
func isServerUnavailable(err error) bool {
	if se, ok := asServerError(err); ok {
		return se.code == "57P03" || se.code == "57P01" || se.code == "57P02"
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var ne *net.OpError
	if errors.As(err, &ne) && ne.Op == "dial" {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "the database system is")
}

// connectError turns a failure to open a session into one clear line
// wrapping ErrConnect, without the password.
func (t *Target) connectError(err error) error {
	var ge *guardError
	if errors.As(err, &ge) {
		return err
	}
	reason := err.Error()
	if se, ok := asServerError(err); ok && se.message != "" {
		reason = se.message
		if se.code != "" && !strings.Contains(reason, se.code) {
			reason += " (SQLSTATE " + se.code + ")"
		}
	}
	reason = strings.TrimPrefix(reason, "pq: ")
	if errors.Is(err, driver.ErrBadConn) {
		reason = "the server closed the connection (it may be shutting down or restarting)"
	}
	return t.scrub(fmt.Errorf("postgres: %w %s: %s", ErrConnect, t.Info().Name, oneLine(reason)))
}

// waitForServer waits, bounded by the recovery wait and ctx, until the
// server accepts connections, and returns its incarnation.
func (t *Target) waitForServer(ctx context.Context) (incarnation, error) {
	deadline := time.Now().Add(t.cfg.recoveryWait)
	var last error
	for {
		attempt := min(5*time.Second, time.Until(deadline))
		if attempt < time.Second {
			attempt = time.Second
		}
		actx, cancel := context.WithTimeout(ctx, attempt)
		var inc incarnation
		dest, done := inc.scan()
		err := t.db.QueryRowContext(actx, `SELECT `+incarnationColumns).Scan(dest...)
		cancel()
		if err == nil {
			done()
			return inc, nil
		}
		last = err
		if ctx.Err() != nil {
			return incarnation{}, context.Cause(ctx)
		}
		if !time.Now().Before(deadline) {
			return incarnation{}, t.scrub(last)
		}
		timer := time.NewTimer(200 * time.Millisecond)
		select {
		case <-ctx.Done():
			timer.Stop()
			return incarnation{}, context.Cause(ctx)
		case <-timer.C:
		}
	}
}

// lost decides what a lost connection means. object names what the task
// was verifying; verifying says whether the statement that died was
// verification (amcheck or a read of the object) rather than setup. It
// returns a finding when the server crashed while verifying the object, and
// always an error: retryable when the task was a victim of something else
// (another backend's crash, a shutdown), plain otherwise.
func (s *session) lost(ctx context.Context, object string, cause error, verifying bool) ([]checks.Finding, error) {
	t := s.t
	s.close()
	t.incs.forget(s.pid)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("postgres: verifying %s interrupted: %w", object, context.Cause(ctx))
	}
	code, msg, seen := s.notices.has("57P02", "57P01", "57P03")
	if !seen {
		if se, ok := asServerError(cause); ok && (se.code == "57P02" || se.code == "57P01" || se.code == "57P03") {
			code, msg, seen = se.code, se.message, true
		}
	}
	log := t.cfg.logger.With("object", object, "backend_pid", s.pid)
	inc, werr := t.waitForServer(ctx)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("postgres: verifying %s interrupted while waiting for the server: %w", object, context.Cause(ctx))
	}
	if seen {
		base := fmt.Errorf("postgres: %w while verifying %s: the server terminated the session: %s (SQLSTATE %s)", ErrConnectionLost, object, msg, code)
		if werr != nil {
			log.Warn("dbscrub: session terminated by the server, which did not come back", "sqlstate", code, "wait", t.cfg.recoveryWait)
			return nil, t.scrub(fmt.Errorf("%w; the server did not accept connections again within %s: %v", base, t.cfg.recoveryWait, oneLine(werr.Error())))
		}
		log.Warn("dbscrub: session terminated by the server; the task will be retried", "sqlstate", code)
		return nil, checks.Retryable(base)
	}
	if werr != nil {
		log.Warn("dbscrub: connection lost and the server did not come back", "error", cause, "wait", t.cfg.recoveryWait)
		return nil, t.scrub(fmt.Errorf("postgres: %w: the connection was lost while verifying %s and the server did not accept connections again within %s (%s); it may have crashed on this object: see the server log for 'terminated by signal'",
			ErrServerCrashed, object, t.cfg.recoveryWait, oneLine(werr.Error())))
	}
	switch {
	case !inc.start.Equal(s.inc.start):
		log.Warn("dbscrub: the server was restarted while a task ran; the task will be retried", "before", s.inc.String(), "after", inc.String())
		return nil, checks.Retryable(fmt.Errorf("postgres: %w while verifying %s: the server was restarted (postmaster start time changed from %s to %s)",
			ErrConnectionLost, object, s.inc.start.Format(time.RFC3339), inc.start.Format(time.RFC3339)))
	case s.inc.reinitialized(inc):
		// The postmaster reinitialized after a backend died abnormally,
		// and this session got no notice that another process crashed:
		// its own backend is the one that died.
		if !verifying {
			log.Warn("dbscrub: the server restarted after a crash while a task prepared; the task will be retried")
			return nil, checks.Retryable(fmt.Errorf("postgres: %w while preparing to verify %s: the server restarted after a crash", ErrConnectionLost, object))
		}
		log.Warn("dbscrub: the server process crashed while verifying an object", "before", s.inc.String(), "after", inc.String())
		f := checks.Finding{
			Severity: checks.StatusCorrupt,
			Object:   object,
			Code:     "server_crash",
			Message: fmt.Sprintf("the server process (pid %d) crashed while verifying %s (amcheck can crash a backend on a damaged page); see the server log for 'terminated by signal'; the server restarted and every other session was terminated",
				s.pid, object),
			Remedy: "look in the server log for the crash of pid " + strconv.FormatInt(s.pid, 10) + " ('terminated by signal'); treat the object as damaged: save a copy of the data directory, then restore the object from a backup or replica; do not rerun this check on the object in production until then, since it will crash the server again",
		}
		return []checks.Finding{f}, fmt.Errorf("postgres: %w while verifying %s (backend pid %d): the task did not complete; the finding records the crash", ErrServerCrashed, object, s.pid)
	case s.inc.checkpointer == 0 && s.inc.statsReset.IsZero():
		return nil, t.scrub(fmt.Errorf("postgres: %w while verifying %s: %s; dbscrub cannot tell whether the server crashed (it sees neither the checkpointer in pg_stat_activity nor pg_stat_bgwriter.stats_reset)", ErrConnectionLost, object, oneLine(cause.Error())))
	default:
		log.Warn("dbscrub: connection lost; the server did not restart", "error", cause)
		return nil, t.scrub(fmt.Errorf("postgres: %w while verifying %s: %s; the server did not restart (a network problem, or the session was terminated with pg_terminate_backend)", ErrConnectionLost, object, oneLine(cause.Error())))
	}
}
