// Command otel wires dbscrub's scheduler into an OpenTelemetry pipeline:
// traces over OTLP/HTTP to a collector (or any OTLP backend: Jaeger, Tempo,
// Honeycomb, ...), and metrics on a Prometheus /metrics endpoint through
// the OpenTelemetry Prometheus exporter.
//
//	go run ./examples/otel --dsn /path/to/app.db --otlp-endpoint http://localhost:4318
//	OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector:4318 go run ./examples/otel --dsn postgres://scrub@db/app
//	curl -s localhost:9187/metrics | grep dbscrub_last_success
//
// dbscrub's library packages use only the OpenTelemetry API; the program
// chooses the SDK and the exporters and hands the providers to the
// scheduler (scheduler.WithTracerProvider, scheduler.WithMeterProvider; or
// set the globals with otel.SetTracerProvider and otel.SetMeterProvider,
// which the scheduler uses by default).
//
// Each run is a trace: a "dbscrub.run" span, a "dbscrub.check" child per
// check and a "dbscrub.task" child per task, with db.system.name,
// db.namespace, server.address and dbscrub.* attributes; corruption sets
// the span status to Error and adds a "dbscrub.finding" event per finding.
// Metrics include dbscrub_last_success_timestamp_seconds (alert on time()
// minus it), dbscrub_runs_total, dbscrub_findings_total and
// dbscrub_run_duration_seconds.
//
// Flags: --dsn (default $DBSCRUB_DSN; without one, a small demo SQLite
// database in a temporary directory), --otlp-endpoint (default
// $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else $OTEL_EXPORTER_OTLP_ENDPOINT,
// else http://localhost:4318; /v1/traces is added to a URL without a
// path), --metrics-addr (default 127.0.0.1:9187), --every (default 1m),
// and --once to run the checks once, flush the spans and exit (0 sound,
// 1 not verified, 2 corrupt).
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/drivers/postgres"
	"github.com/dbscrub/dbscrub/drivers/sqlite"
	"github.com/dbscrub/dbscrub/scheduler"
	"github.com/dbscrub/dbscrub/scheduler/alarm"
)

func main() {
	a := app{out: os.Stderr}
	flag.StringVar(&a.dsn, "dsn", os.Getenv("DBSCRUB_DSN"), "database to check: postgres://... or an SQLite file (default $DBSCRUB_DSN, else a demo SQLite database)")
	flag.StringVar(&a.endpoint, "otlp-endpoint", defaultEndpoint(), "OTLP/HTTP endpoint for traces")
	flag.StringVar(&a.metricsAddr, "metrics-addr", "127.0.0.1:9187", "where to serve /metrics")
	flag.DurationVar(&a.every, "every", time.Minute, "how often to check")
	flag.BoolVar(&a.once, "once", false, "check once, flush the spans and exit")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := a.run(ctx)
	stop()
	os.Exit(code)
}

// defaultEndpoint follows the OpenTelemetry environment variables.
func defaultEndpoint() string {
	for _, v := range []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if e := os.Getenv(v); e != "" {
			return e
		}
	}
	return "http://localhost:4318"
}

// app is the program, configurable in tests.
type app struct {
	dsn         string
	endpoint    string
	metricsAddr string
	every       time.Duration
	once        bool
	out         io.Writer // the log
	// onListening, when set, is told the address of /metrics.
	onListening func(addr string)
}

func (a app) run(ctx context.Context) int {
	logger := slog.New(slog.NewTextHandler(a.out, nil))
	fail := func(msg string, err error) int {
		logger.Error(msg, "error", err)
		return 1
	}

	// The resource says who emits the telemetry; OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES override it.
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", "dbscrub")),
		resource.WithFromEnv(),
	)
	if err != nil {
		return fail("resource", err)
	}

	// Traces: OTLP over HTTP, batched.
	endpoint, err := tracesURL(a.endpoint)
	if err != nil {
		return fail("--otlp-endpoint", err)
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
	if err != nil {
		return fail("OTLP exporter", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))

	// Metrics: the Prometheus exporter is a reader that the /metrics
	// handler pulls from.
	reg := prometheus.NewRegistry()
	promExp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return fail("Prometheus exporter", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(promExp), sdkmetric.WithResource(res))
	ln, err := net.Listen("tcp", a.metricsAddr)
	if err != nil {
		return fail("--metrics-addr", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	logger.Info("serving Prometheus metrics", "url", "http://"+ln.Addr().String()+"/metrics", "traces_to", endpoint)
	if a.onListening != nil {
		a.onListening(ln.Addr().String())
	}

	// Flush and stop everything on the way out: the spans of the last run
	// are exported by tp.Shutdown.
	shutdown := func(s *scheduler.Scheduler) {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if s != nil {
			_ = s.Shutdown(sctx)
		}
		if err := tp.Shutdown(sctx); err != nil {
			logger.Error("flushing spans", "error", err)
		}
		_ = mp.Shutdown(sctx)
		_ = srv.Shutdown(sctx)
	}

	dsn := a.dsn
	if dsn == "" {
		dir, err := os.MkdirTemp("", "dbscrub-otel-")
		if err != nil {
			shutdown(nil)
			return fail("temp dir", err)
		}
		defer os.RemoveAll(dir)
		if dsn, err = demoDB(ctx, filepath.Join(dir, "demo.db")); err != nil {
			shutdown(nil)
			return fail("demo database", err)
		}
		logger.Info("no --dsn: checking a demo SQLite database", "path", dsn)
	}

	s, err := scheduler.New(ctx,
		scheduler.WithTracerProvider(tp),
		scheduler.WithMeterProvider(mp),
		scheduler.WithLogger(logger),
		scheduler.WithSinks(alarm.LogSink(logger)),
	)
	if err != nil {
		shutdown(nil)
		return fail("scheduler", err)
	}
	err = s.Register(ctx, scheduler.Target{
		Name: "app",
		Open: func(context.Context) (checks.Target, error) { return open(dsn) },
		Plan: scheduler.Plan{Schedule: scheduler.Schedule{Every: a.every}},
	})
	if err != nil {
		shutdown(s)
		return fail("register", err)
	}

	if a.once {
		rep, err := s.Check(ctx, "app")
		shutdown(s)
		switch {
		case rep == nil:
			return fail("check", err)
		case errors.Is(err, checks.ErrCorrupt):
			logger.Warn("corrupt", "reason", rep.Reason)
			return 2
		case err != nil:
			logger.Warn("not verified", "reason", rep.Reason)
			return 1
		}
		logger.Info("verified", "status", rep.Status, "objects", rep.Coverage.ObjectsVerified)
		return 0
	}
	s.Start()
	logger.Info("checking", "every", a.every)
	<-ctx.Done()
	shutdown(s)
	return 0
}

// tracesURL returns the OTLP/HTTP traces URL of an endpoint: a URL without
// a path gets /v1/traces; host:port is taken as http://host:port.
func tracesURL(endpoint string) (string, error) {
	if !strings.Contains(endpoint, "://") {
		endpoint = "http://" + endpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("want http(s)://host:port[/path], got %q", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

// open picks the driver by the DSN's scheme.
func open(dsn string) (checks.Target, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return postgres.Open(dsn)
	}
	return sqlite.Open(dsn)
}

// demoDB creates a small SQLite database at path.
func demoDB(ctx context.Context, path string) (string, error) {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return "", err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, `
		CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
		CREATE INDEX items_name ON items (name);
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
		INSERT INTO items SELECT i, 'item ' || i FROM n;`)
	return path, err
}
