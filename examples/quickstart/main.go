// Command quickstart shows dbscrub watching a database on a schedule, with
// no setup and no flags:
//
//	go run ./examples/quickstart
//
// It creates a small shop database (SQLite, in a temporary directory) and
// a backup copy of it, and registers it with a scheduler that checks it
// every 3 seconds (scheduler.New, Register, Start: what `dbscrub run`
// does). Spans and metrics go through the OpenTelemetry SDK to the stdout
// exporters; the demo prints a one-line summary of each rather than their
// JSON. Then the story:
//
//  1. the first run is healthy;
//  2. the demo zeroes one page of the database, the way a crash or a failing
//     disk can: the next run is corrupt and the corruption alarm fires;
//  3. the demo restores the backup copy: the next run is healthy and the
//     alarm resolves.
//
// It takes about 10 seconds, removes its temporary directory, and exits 0
// only when the alarm fired and resolved.
package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/dbscrub/dbscrub/checks"
	// The SQLite driver. It also registers the pure-Go modernc.org/sqlite
	// database/sql driver as "sqlite", which the demo uses to create the
	// database.
	"github.com/dbscrub/dbscrub/drivers/sqlite"
	"github.com/dbscrub/dbscrub/scheduler"
	"github.com/dbscrub/dbscrub/scheduler/alarm"
	"github.com/dbscrub/dbscrub/scheduler/history"
)

func main() {
	os.Exit(run(context.Background(), demo{out: os.Stdout, every: 3 * time.Second, damage: damagePage}))
}

// demo is what the quickstart runs, replaceable in tests.
type demo struct {
	out     io.Writer
	tempDir string        // parent of the demo's directory; "" for the system's
	every   time.Duration // the schedule
	// damage damages the database at path and says what it did.
	damage func(ctx context.Context, path string) (string, error)
}

// run runs the demo and returns the exit code: 0 when the alarm fired on
// the damage and resolved after the repair, 1 otherwise.
func run(ctx context.Context, d demo) int {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	err := d.run(ctx)
	if err != nil {
		fmt.Fprintln(d.out, "\nFAIL:", err)
		return 1
	}
	fmt.Fprintf(d.out, "\nOK: the corruption alarm fired when the database was damaged and resolved once it was restored (%.1fs).\n", time.Since(start).Seconds())
	fmt.Fprintln(d.out, "In production: dbscrub run --config dbscrub.yaml (see examples/dbscrub.yaml).")
	return 0
}

// errNotCaught means the scheduler did not see the damage.
var errNotCaught = errors.New("dbscrub did not catch the damaged database")

func (d demo) run(ctx context.Context) error {
	dir, err := os.MkdirTemp(d.tempDir, "dbscrub-quickstart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	w := d.out

	// The database and its backup.
	shop := filepath.Join(dir, "shop.db")
	desc, err := createShop(ctx, shop)
	if err != nil {
		return err
	}
	backup := shop + ".backup"
	if err := copyFile(shop, backup); err != nil {
		return err
	}
	fmt.Fprintf(w, "1. Created %s (%s) and a backup copy.\n", filepath.Base(shop), desc)

	// OpenTelemetry: the SDK with the stdout exporters, writing into
	// summarizers that keep what the demo prints.
	spans := &spanSummary{}
	spanExp, err := stdouttrace.New(stdouttrace.WithWriter(spans))
	if err != nil {
		return err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spanExp))
	defer tp.Shutdown(context.Background())
	metrics := &metricSummary{}
	metricExp, err := stdoutmetric.New(stdoutmetric.WithWriter(metrics))
	if err != nil {
		return err
	}
	// Exported when the demo asks (ForceFlush), after each run.
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(metricExp, sdkmetric.WithInterval(time.Hour))))
	defer mp.Shutdown(context.Background())

	// The scheduler, with a sink that hands alarms to the story.
	runs := make(chan *history.Run, 8)
	alarms := make(chan alarm.Alarm, 32)
	stop := make(chan struct{}) // closed when the story ends: nobody reads the channels any more
	s, err := scheduler.New(ctx,
		scheduler.WithTracerProvider(tp),
		scheduler.WithMeterProvider(mp),
		scheduler.WithSinks(alarm.FuncSink("quickstart", func(_ context.Context, as []alarm.Alarm) error {
			for _, a := range as {
				select {
				case alarms <- a:
				case <-stop:
				}
			}
			return nil
		})),
		scheduler.WithOnRun(func(_ context.Context, r *history.Run) {
			select {
			case runs <- r:
			case <-stop:
			}
		}),
	)
	if err != nil {
		return err
	}
	defer s.Shutdown(context.Background())
	defer close(stop) // before Shutdown, which waits for the run in progress
	err = s.Register(ctx, scheduler.Target{
		Name:   "shop",
		Labels: map[string]string{"team": "web", "runbook_url": "https://wiki.example.com/runbooks/db-corruption"},
		// Opened for each run and closed after it, so that the file can be
		// replaced between runs.
		Open: func(context.Context) (checks.Target, error) { return sqlite.Open(shop) },
		Plan: scheduler.Plan{
			Schedule: scheduler.Schedule{Every: d.every},
			Jobs:     2,
			SLA:      -1, // no stale alarms in a demo this short
		},
	})
	if err != nil {
		return err
	}
	s.Start()
	fmt.Fprintf(w, "   Scheduled checks every %s; spans and metrics go to the OpenTelemetry stdout exporters (summarized).\n", d.every)

	// The story.
	const (
		healthy  = iota // waiting for a healthy run
		damaged         // waiting for the corruption alarm
		restored        // waiting for the alarm to resolve
	)
	phase := healthy
	started := time.Now()
	var (
		lastRun        int64
		pending        []alarm.Alarm       // alarms of runs not printed yet
		fired          bool                // the integrity check's corruption alarm was delivered firing
		firing         = map[string]bool{} // corruption alarms firing, by check
		cleanAfterHarm int
	)
	printAlarm := func(a alarm.Alarm) {
		check := a.Check
		if check == "" {
			check = "whole target"
		}
		if a.State == alarm.StateFiring {
			fmt.Fprintf(w, "   >>> ALARM FIRING: %s %s (%s): %s\n", a.Severity, a.Kind, check, a.Summary)
		} else {
			fmt.Fprintf(w, "   >>> ALARM RESOLVED: %s (%s): %s\n", a.Kind, check, a.Summary)
		}
		if a.Kind == alarm.KindCorruption {
			firing[a.Check] = a.State == alarm.StateFiring
			if !firing[a.Check] {
				delete(firing, a.Check)
			}
			fired = fired || (a.Check == sqlite.CheckIntegrity && a.State == alarm.StateFiring)
		}
	}
	for {
		select {
		case <-ctx.Done():
			if phase == damaged {
				return fmt.Errorf("%w within 30s", errNotCaught)
			}
			return fmt.Errorf("the story did not finish within 30s: %w", ctx.Err())

		case a := <-alarms:
			if a.RunID > lastRun {
				pending = append(pending, a)
				continue
			}
			printAlarm(a)

		case r := <-runs:
			fmt.Fprintf(w, "\n[+%4.1fs] run %d: %s\n", time.Since(started).Seconds(), r.ID, strings.ToUpper(string(r.Status)))
			printReport(w, r.Report, 2)
			fmt.Fprintln(w, "   spans:  ", spans.drain())
			_ = mp.ForceFlush(ctx)
			fmt.Fprintln(w, "   metrics:", metrics.last())
			lastRun = r.ID
			for _, a := range pending {
				printAlarm(a)
			}
			pending = nil

			switch {
			case phase == healthy && r.Status == checks.StatusHealthy:
				what, err := d.damage(ctx, shop)
				if err != nil {
					return fmt.Errorf("damaging the database: %w", err)
				}
				fmt.Fprintf(w, "\n2. Damaged %s: %s.\n", filepath.Base(shop), what)
				phase = damaged
			case phase == healthy:
				return fmt.Errorf("the fresh database is %s, want healthy: %s", r.Status, r.Reason)
			case phase == damaged && r.Status == checks.StatusHealthy:
				if cleanAfterHarm++; cleanAfterHarm == 2 {
					return errNotCaught
				}
			}
		}

		// Print the rest of a batch of alarms before acting on it.
	more:
		for {
			select {
			case a := <-alarms:
				if a.RunID > lastRun {
					pending = append(pending, a)
					continue
				}
				printAlarm(a)
			default:
				break more
			}
		}
		switch {
		case phase == damaged && fired:
			if err := copyFile(backup, shop); err != nil {
				return err
			}
			fmt.Fprintf(w, "\n3. Restored %s from the backup copy.\n", filepath.Base(shop))
			phase = restored
		case phase == restored && len(firing) == 0:
			return nil
		}
	}
}

// printReport prints what each check verified or found and, up to
// maxFindings, the findings.
func printReport(w io.Writer, rep *checks.Report, maxFindings int) {
	for _, c := range rep.Checks {
		fmt.Fprintf(w, "   - %-13s %-8s %s\n", c.Check, c.Status, summary(c))
	}
	fs := rep.Findings()
	for i, f := range fs {
		if i == maxFindings {
			fmt.Fprintf(w, "     ... and %d more\n", len(fs)-i)
			break
		}
		where := f.Object
		if loc := f.Location.String(); loc != "" {
			where += ", " + loc
		}
		fmt.Fprintf(w, "     %s: %s\n", where, f.Message)
	}
}

// summary says in a few words what a check verified or found.
func summary(c *checks.CheckReport) string {
	cov := c.Coverage
	switch {
	case c.Status != checks.StatusHealthy && len(c.Findings) > 0:
		return plural(len(c.Findings), "finding")
	case c.Status != checks.StatusHealthy:
		return c.Reason
	case c.Check == sqlite.CheckIntegrity:
		return fmt.Sprintf("every page read: %d KiB, %s", cov.BytesVerified/1024, plural(int(cov.ObjectsVerified), "table or index", "tables and indexes"))
	case c.Check == sqlite.CheckForeignKeys:
		return "every row of " + plural(int(cov.ObjectsVerified), "table", "tables") + " with foreign keys"
	}
	return plural(cov.TasksCompleted, "task")
}

// plural returns "1 thing" or "n things" (or "n " + forms[1]).
func plural(n int, one string, many ...string) string {
	if n == 1 {
		return "1 " + one
	}
	if len(many) > 0 {
		return fmt.Sprintf("%d %s", n, many[0])
	}
	return fmt.Sprintf("%d %ss", n, one)
}

// --- summaries of the stdout exporters' JSON ---

type jsonAttr struct {
	Key   string
	Value struct{ Value any }
}

func attr(as []jsonAttr, key string) string {
	for _, a := range as {
		if a.Key == key {
			return fmt.Sprint(a.Value.Value)
		}
	}
	return ""
}

// spanSummary receives the stdouttrace exporter's output (one JSON span
// per line) and summarizes the spans of a run on one line.
type spanSummary struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	spans []spanJSON
}

type spanJSON struct {
	Name       string
	StartTime  time.Time
	EndTime    time.Time
	Attributes []jsonAttr
	Events     []struct{ Name string }
	Status     struct{ Code, Description string }
}

func (s *spanSummary) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	for {
		line, err := s.buf.ReadBytes('\n')
		if err != nil { // incomplete: keep it for the next write
			s.buf.Reset()
			s.buf.Write(line)
			return len(p), nil
		}
		var sp spanJSON
		if json.Unmarshal(line, &sp) == nil {
			s.spans = append(s.spans, sp)
		}
	}
}

// drain summarizes the spans received since the last call:
// "dbscrub.run (corrupt, Error, 12ms) > dbscrub.check integrity (corrupt, Error, 1 finding event), ... > 4 dbscrub.task".
func (s *spanSummary) drain() string {
	s.mu.Lock()
	spans := s.spans
	s.spans = nil
	s.mu.Unlock()
	var run, tasks string
	var checkSpans []string
	nTasks := 0
	for _, sp := range spans {
		desc := attr(sp.Attributes, "dbscrub.status")
		if sp.Status.Code == "Error" {
			desc += ", status Error"
		}
		switch sp.Name {
		case "dbscrub.run":
			run = fmt.Sprintf("dbscrub.run (%s, %s)", desc, sp.EndTime.Sub(sp.StartTime).Round(time.Millisecond))
		case "dbscrub.check":
			if n := len(sp.Events); n > 0 {
				desc += ", " + plural(n, "finding event")
			}
			checkSpans = append(checkSpans, fmt.Sprintf("dbscrub.check %s (%s)", attr(sp.Attributes, "dbscrub.check"), desc))
		case "dbscrub.task":
			nTasks++
		}
	}
	sort.Strings(checkSpans)
	if nTasks > 0 {
		tasks = " > " + plural(nTasks, "dbscrub.task span")
	}
	if run == "" {
		return "(none)"
	}
	return run + " > " + strings.Join(checkSpans, ", ") + tasks
}

// metricSummary receives the stdoutmetric exporter's output (one JSON
// document per export) and keeps a summary of the last one.
type metricSummary struct {
	mu      sync.Mutex
	summary string
}

type metricsJSON struct {
	ScopeMetrics []struct {
		Metrics []struct {
			Name string
			Data struct {
				DataPoints []struct {
					Attributes []jsonAttr
					Value      float64
				}
			}
		}
	}
}

func (m *metricSummary) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(p))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var doc metricsJSON
		if json.Unmarshal(sc.Bytes(), &doc) != nil {
			continue
		}
		var parts []string
		for _, sm := range doc.ScopeMetrics {
			for _, mt := range sm.Metrics {
				var pts []string
				for _, dp := range mt.Data.DataPoints {
					switch mt.Name {
					case "dbscrub.runs":
						pts = append(pts, fmt.Sprintf("%s=%g", attr(dp.Attributes, "dbscrub.status"), dp.Value))
					case "dbscrub.findings":
						pts = append(pts, fmt.Sprintf("%s/%s=%g", attr(dp.Attributes, "dbscrub.check"), attr(dp.Attributes, "dbscrub.severity"), dp.Value))
					case "dbscrub.last_success.timestamp":
						at := "never"
						if dp.Value > 0 {
							at = time.Unix(int64(dp.Value), 0).Format("15:04:05")
						}
						pts = append(pts, attr(dp.Attributes, "dbscrub.check")+"="+at)
					}
				}
				if len(pts) > 0 {
					slices.Sort(pts)
					parts = append(parts, mt.Name+"{"+strings.Join(pts, " ")+"}")
				}
			}
		}
		slices.Sort(parts)
		m.mu.Lock()
		m.summary = strings.Join(parts, "  ")
		m.mu.Unlock()
	}
	return len(p), nil
}

func (m *metricSummary) last() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.summary == "" {
		return "(none)"
	}
	return m.summary
}

// --- the database ---

// createShop creates the demo database: customers, products and orders,
// with foreign keys from orders to both and an index on orders.
func createShop(ctx context.Context, path string) (string, error) {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return "", err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, `
		CREATE TABLE customers (
			id    INTEGER PRIMARY KEY,
			name  TEXT NOT NULL,
			email TEXT NOT NULL
		);
		CREATE TABLE products (
			id          INTEGER PRIMARY KEY,
			title       TEXT NOT NULL,
			price_cents INTEGER NOT NULL CHECK (price_cents >= 0)
		);
		CREATE TABLE orders (
			id          INTEGER PRIMARY KEY,
			customer_id INTEGER NOT NULL REFERENCES customers(id),
			product_id  INTEGER NOT NULL REFERENCES products(id),
			qty         INTEGER NOT NULL,
			note        TEXT
		);
		CREATE INDEX orders_by_customer ON orders(customer_id);

		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
		INSERT INTO customers SELECT i, 'Customer ' || i, 'customer' || i || '@example.com' FROM n;
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
		INSERT INTO products SELECT i, 'Product ' || i, i * 199 FROM n;
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
		INSERT INTO orders SELECT i, i % 200 + 1, i % 50 + 1, i % 5 + 1, 'order ' || i || ', gift wrapped' FROM n;`)
	if err != nil {
		return "", fmt.Errorf("creating the demo database: %w", err)
	}
	var size int64
	if err := db.QueryRowContext(ctx, "SELECT page_count * page_size FROM pragma_page_count, pragma_page_size").Scan(&size); err != nil {
		return "", err
	}
	return fmt.Sprintf("3 tables, 1 index, 2250 rows, %d KiB", size/1024), nil
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

// damagePage damages the database at path the way a crash or a failing
// disk can: it overwrites one whole page of the orders table with zeros.
//
// An SQLite file is a sequence of fixed-size pages (page_size bytes,
// numbered from 1); page n starts at byte (n-1) × page_size. Each table and
// index is a b-tree of pages. dbstat, a virtual table built into SQLite,
// lists which page belongs to which b-tree; the demo picks a leaf page (one
// holding rows) in the middle of the orders table and zeroes it, which
// wipes its b-tree page header and every row stored in it.
func damagePage(ctx context.Context, path string) (string, error) {
	var page, pageSize int64
	err := func() error {
		db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
		if err != nil {
			return err
		}
		defer db.Close()
		if err := db.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
			return err
		}
		return db.QueryRowContext(ctx, `SELECT pageno FROM dbstat
			WHERE name = 'orders' AND pagetype = 'leaf'
			ORDER BY pageno LIMIT 1 OFFSET 5`).Scan(&page)
	}()
	if err != nil {
		return "", fmt.Errorf("finding a page of orders: %w", err)
	}

	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return "", err
	}
	zeros := make([]byte, pageSize)
	if _, err := f.WriteAt(zeros, (page-1)*pageSize); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return fmt.Sprintf("zeroed page %d (%d bytes of table orders), as a crash or a failing disk can", page, pageSize), nil
}
