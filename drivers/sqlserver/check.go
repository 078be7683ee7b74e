package sqlserver

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dbscrub/dbscrub/checks"
)

// check is one of the driver's checks, bound to a run.
type check struct {
	r    *run
	name string
}

// Name returns the check's name.
func (c *check) Name() string { return c.name }

// Plan probes the server (once per run) and returns the check's tasks: a
// skip reason, a database-state finding, or the statements to run.
func (c *check) Plan(ctx context.Context) ([]checks.Task, error) {
	caps, err := c.r.capabilities(ctx)
	if err != nil {
		return nil, err
	}
	v := caps.verdict(c.name)
	switch {
	case v.err != nil:
		return nil, v.err
	case v.skip != "":
		return nil, checks.Skip("%s", v.skip)
	case v.state != nil:
		f := *v.state
		return []checks.Task{{
			Key:    caps.Database,
			Object: caps.Database,
			Run: func(context.Context) (checks.Result, error) {
				return checks.Result{Findings: []checks.Finding{f}, Objects: 1}, nil
			},
		}}, nil
	}
	t := c.r.t
	pool, err := t.pool(caps)
	if err != nil {
		return nil, err
	}
	switch c.name {
	case CheckCheckDB:
		return t.planCheckDB(caps, pool)
	case CheckCheckTable:
		return t.planCheckTable(ctx, caps, pool)
	case CheckCheckAlloc:
		return t.planCheckAlloc(caps, pool)
	case CheckCheckCatalog:
		return t.planCheckCatalog(caps, pool)
	case CheckSuspectPages:
		return t.planSuspectPages(caps, pool)
	case CheckLastKnownGood:
		return t.planLastKnownGood(caps, pool)
	case CheckPageVerify:
		return t.planPageVerify(caps, pool)
	case CheckBackups:
		return t.planBackups(caps, pool)
	}
	return nil, fmt.Errorf("sqlserver: no plan for check %q", c.name)
}

// Statements returns the statements the check runs, with their parameters
// as placeholders and what each placeholder holds, without connecting:
// for `dbscrub check --explain`. Every task's [checks.Task.Statement]
// holds the same text for that task.
func (c *check) Statements() []string {
	return c.r.t.Statements(c.name)
}

// Statements returns the statements check runs (see the package
// documentation), with parameters as placeholders, without connecting;
// nil for an unknown check. Each task runs the session setup first.
func (t *Target) Statements(check string) []string {
	switch check {
	case CheckCheckDB:
		return []string{t.explain(checkDBSQL(t.cfg), "@p1 = database name"), explainLookup()}
	case CheckCheckTable:
		return []string{t.explain(checkTableListSQL(16), "planning: lists the tables and indexed views, in the database itself"), t.explain(checkTableSQL(t.cfg), "@p1 = quoted table or indexed view name, e.g. N'[dbo].[Orders]'"), explainLookup()}
	case CheckCheckAlloc:
		return []string{t.explain(checkAllocSQL(t.cfg), "@p1 = database name"), explainLookup()}
	case CheckCheckCatalog:
		return []string{t.explain(checkCatalogSQL, "@p1 = database name")}
	case CheckSuspectPages:
		return []string{t.explain(suspectPagesSQL, "@p1 = database name")}
	case CheckLastKnownGood:
		return []string{t.explain(lastKnownGoodSQL, "@p1 = database name")}
	case CheckPageVerify:
		return []string{t.explain(pageVerifySQL, "@p1 = database name")}
	case CheckBackups:
		return []string{t.explain(backupsSQL, "@p1 = database name")}
	}
	return nil
}

// sessionSQL is what every task's connection runs first.
func (c config) sessionSQL() string {
	return "SET LOCK_TIMEOUT " + strconv.FormatInt(c.lockTimeout.Milliseconds(), 10) + "; SET DEADLOCK_PRIORITY LOW; " +
		"SET ANSI_NULLS, ANSI_PADDING, ANSI_WARNINGS, ARITHABORT, CONCAT_NULL_YIELDS_NULL, QUOTED_IDENTIFIER ON; SET NUMERIC_ROUNDABORT OFF;"
}

// explain renders a task's statement for people: the session setup, the
// statement, and what its placeholders hold.
func (t *Target) explain(stmt string, params ...string) string {
	return t.cfg.sessionSQL() + "\n" + explainSQL(stmt, params...)
}

func explainSQL(stmt string, params ...string) string {
	var b strings.Builder
	b.WriteString(strings.TrimSpace(stmt))
	for _, p := range params {
		b.WriteString("\n-- ")
		b.WriteString(p)
	}
	return b.String()
}

// exec runs one statement on sess, logging it and the server's messages.
func (t *Target) exec(ctx context.Context, sess session, query string, args ...any) (*response, error) {
	start := time.Now()
	resp, err := sess.exec(ctx, query, args...)
	if resp == nil {
		resp = &response{}
	}
	t.cfg.logger.Debug("dbscrub: sqlserver statement", "statement", query, "duration", time.Since(start), "error", err)
	for _, m := range resp.messages {
		t.cfg.logger.Debug("dbscrub: sqlserver message", "number", m.Number, "level", m.Class, "message", m.Text)
	}
	return resp, err
}

// withSession runs fn on a fresh session of pool after the session setup,
// and gives the connection back (or discards it after an error or a
// cancellation). fn returns whether the session is still sound.
func (t *Target) withSession(ctx context.Context, pool connector, check, what string, fn func(sess session) (sound bool)) error {
	sess, err := pool.session(ctx)
	if err != nil {
		return t.connectFailure(what, err)
	}
	sound := false
	defer func() { sess.close(!sound || ctx.Err() != nil) }()
	resp, err := t.exec(ctx, sess, t.cfg.sessionSQL())
	if errs := serverErrors(resp, err); err != nil || len(errs) > 0 {
		return t.failure(check, what+": session setup", errs, err, false)
	}
	sound = fn(sess)
	return nil
}

// query runs one statement in its own session and returns its response; a
// server error or a failed exchange is the task's error.
func (t *Target) query(ctx context.Context, pool connector, check, what, stmt string, args ...any) (*response, error) {
	var resp *response
	var ferr error
	err := t.withSession(ctx, pool, check, what, func(sess session) bool {
		var err error
		resp, err = t.exec(ctx, sess, stmt, args...)
		errs := serverErrors(resp, err)
		if err != nil || len(errs) > 0 {
			ferr = t.failure(check, what, errs, err, false)
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return resp, ferr
}
