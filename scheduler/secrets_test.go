package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/redact"
	"github.com/dbscrub/dbscrub/scheduler/alarm"
	"github.com/dbscrub/dbscrub/scheduler/history"
)

// TestPasswordNeverLeaks runs a target whose (badly behaved) driver quotes
// its DSN, password included, in errors, findings and task reasons, and
// greps every output the scheduler produces for the password: log lines,
// spans, metrics, alarms (func, log and webhook sinks), the history
// (runs, findings, coverage, alarm state) and the status.
func TestPasswordNeverLeaks(t *testing.T) {
	const password = "S3cr3t-P4ss_word"
	dsn := "postgres://alice:" + password + "@db1.example:5432/app?sslmode=disable"
	if redact.Password(dsn) != password {
		t.Fatal("redact cannot find the password")
	}
	leak := func(what string) error { return fmt.Errorf("%s: connecting to %s: connection refused", what, dsn) }

	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&logMu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	spans := tracetest.NewSpanRecorder()
	reader := sdkmetric.NewManualReader()
	var webhookMu sync.Mutex
	var webhookBodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		webhookMu.Lock()
		webhookBodies = append(webhookBodies, string(b))
		webhookMu.Unlock()
	}))
	defer srv.Close()
	wh, err := alarm.NewWebhook(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var sinkLogs bytes.Buffer
	h := newHarness(t,
		WithLogger(logger),
		WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))),
		WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))),
		WithSinks(wh, alarm.LogSink(slog.New(slog.NewJSONHandler(&sinkLogs, nil)))),
	)

	info := checks.TargetInfo{Engine: "postgresql", Name: redact.DSN(dsn), Database: "app", Host: "db1.example", Port: 5432}
	ck := newCheck("heap", tasksOf(3)...)
	ck.setRun("t1", func(context.Context) (checks.Result, error) {
		return checks.Result{Objects: 1, Findings: []checks.Finding{{Object: "public.t1", Message: "corrupt page seen via " + dsn, Remedy: "reconnect with " + dsn}}}, nil
	})
	ck.setRun("t2", func(context.Context) (checks.Result, error) { return checks.Result{}, leak("t2") })
	ft := &fakeTarget{info: info, checks: []*fakeCheck{ck}}
	var down bool
	var mu sync.Mutex
	h.register(Target{Name: "orders", Labels: labels, Secrets: []string{redact.Password(dsn)},
		Open: func(context.Context) (checks.Target, error) {
			mu.Lock()
			defer mu.Unlock()
			if down {
				return nil, leak("open")
			}
			return ft, nil
		},
		Plan: Plan{Schedule: Schedule{Every: 7 * 24 * time.Hour}, SLA: time.Hour}})

	// Unreachable from the start, then corruption and a failed task, then a
	// gate, then stale.
	mu.Lock()
	down = true
	mu.Unlock()
	h.runNow("orders")
	mu.Lock()
	down = false
	mu.Unlock()
	h.runNow("orders")
	if _, err := h.s.Check(context.Background(), "orders"); err == nil {
		t.Fatal("gate passed")
	}
	h.run()
	h.clk.Advance(2 * time.Hour)
	h.s.EvaluateAlarms()

	// Collect every output.
	var outputs []string
	add := func(what string, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		outputs = append(outputs, what+": "+string(b))
	}
	logMu.Lock()
	outputs = append(outputs, "logs: "+logs.String())
	logMu.Unlock()
	outputs = append(outputs, "sink logs: "+sinkLogs.String())
	webhookMu.Lock()
	outputs = append(outputs, "webhook: "+strings.Join(webhookBodies, "\n"))
	webhookMu.Unlock()
	for _, s := range spans.Ended() {
		add("span "+s.Name(), map[string]any{"attrs": s.Attributes(), "events": s.Events(), "status": s.Status()})
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	add("metrics", rm)
	for len(h.sent) > 0 {
		add("func sink", <-h.sent)
	}
	ctx := context.Background()
	runs, _ := h.store.Runs(ctx, history.RunQuery{Limit: 1000})
	for _, rs := range runs {
		r, err := h.store.Run(ctx, rs.ID)
		if err != nil {
			t.Fatal(err)
		}
		add("run", r)
	}
	fs, _ := h.store.Findings(ctx, history.FindingQuery{})
	add("findings", fs)
	cov, _ := h.store.Coverage(ctx, "orders", "")
	add("coverage", cov)
	as, _ := h.store.Alarms(ctx)
	add("alarm state", as)
	ts, _ := h.store.Targets(ctx)
	add("targets", ts)
	st, _ := h.s.Status(ctx)
	add("status", st)

	// The test must have produced the problems it looks for.
	all := strings.Join(outputs, "\n")
	for _, want := range []string{"connection refused", "corrupt page seen via", "not_verified", "corruption", "stale", "dbscrub.finding", redact.Mask} {
		if !strings.Contains(all, want) {
			t.Fatalf("outputs lack %q: the test did not exercise what it should", want)
		}
	}
	if len(runs) != 3 || len(webhookBodies) == 0 || sinkLogs.Len() == 0 || len(spans.Ended()) == 0 {
		t.Fatalf("runs %d, webhook %d, sink logs %d, spans %d", len(runs), len(webhookBodies), sinkLogs.Len(), len(spans.Ended()))
	}
	for _, form := range []string{password, url.QueryEscape(password), url.PathEscape(password)} {
		for _, o := range outputs {
			if i := strings.Index(o, form); i >= 0 {
				t.Errorf("password leaked in %s", o[:min(len(o), strings.IndexByte(o+":", ':'))])
			}
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
