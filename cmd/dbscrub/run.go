package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
	_ "time/tzdata" // time zones of schedules and windows, also where the system has no zoneinfo

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/redact"
	"github.com/dbscrub/dbscrub/scheduler"
	"github.com/dbscrub/dbscrub/scheduler/alarm"
	"github.com/dbscrub/dbscrub/scheduler/history"
)

// runFlags are the flags of dbscrub run.
type runFlags struct {
	config          string
	once            bool
	failOnWarning   bool
	format          string
	shutdownTimeout time.Duration
	logFormat       string
	logLevel        string
}

// onListening, when set (by tests), is told the address the HTTP server
// listens on.
var onListening func(addr string)

func parseRunFlags(args []string, stderr io.Writer) (*runFlags, error) {
	f := &runFlags{}
	fs := flag.NewFlagSet("dbscrub run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	def := os.Getenv("DBSCRUB_CONFIG")
	if def == "" {
		def = "dbscrub.yaml"
	}
	fs.StringVar(&f.config, "config", def, "the config file (the default comes from $DBSCRUB_CONFIG when set)")
	fs.BoolVar(&f.once, "once", false, "run every target once, now (ignoring schedules and windows), and exit with the worst exit code")
	fs.BoolVar(&f.failOnWarning, "fail-on-warning", false, "with --once: exit 3 when a target has warnings but none is corrupt or unverified")
	fs.StringVar(&f.format, "format", "text", "with --once: output format, text or json")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGINT/SIGTERM, how long to wait for interrupted runs to be recorded and alarms delivered")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format on stderr: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintf(stderr, "Usage: dbscrub run [--config dbscrub.yaml] [--once]\n\n"+
				"Runs the checks of every target in the config on their schedules, serves /metrics and /healthz,\n"+
				"and raises alarms, until SIGINT or SIGTERM. With --once, runs every target once and exits:\n"+
				"0 sound, 1 could not verify, 2 corruption found, 3 warnings (with --fail-on-warning).\n\nFlags:\n")
			fs.PrintDefaults()
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case f.config == "":
		return nil, errors.New("no config given: use --config FILE")
	case f.format != "text" && f.format != "json":
		return nil, fmt.Errorf("--format must be text or json, got %q", f.format)
	case f.logFormat != "text" && f.logFormat != "json":
		return nil, fmt.Errorf("--log-format must be text or json, got %q", f.logFormat)
	case f.shutdownTimeout <= 0:
		return nil, fmt.Errorf("--shutdown-timeout must be positive, got %s", f.shutdownTimeout)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level must be debug, info, warn or error, got %q", f.logLevel)
	}
	return f, nil
}

func newLogger(f *runFlags, w io.Writer, secrets []string) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(f.logLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	if f.logFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(redact.Handler(h, secrets...)) // the scheduler scrubs what it logs about a target; this covers the rest (sinks, telemetry export errors)
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseRunFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "dbscrub run:", err)
		return exitError
	}
	cfg, err := loadConfig(f.config, loadOptions{})
	if err != nil {
		printConfigError(stderr, "dbscrub run", err)
		return exitError
	}
	var secrets []string
	for _, t := range cfg.targets {
		secrets = append(secrets, t.secrets...)
	}
	logger := newLogger(f, stderr, secrets)
	for _, w := range cfg.warnings {
		logger.Warn("dbscrub: " + w)
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("dbscrub: telemetry export failed", "error", err)
	}))

	d := &daemon{cfg: cfg, logger: logger, once: f.once}
	if err := d.start(ctx); err != nil {
		logger.Error("dbscrub: cannot start", "error", err)
		d.close(f.shutdownTimeout)
		return exitError
	}
	if f.once {
		return d.runOnce(ctx, f, stdout)
	}
	return d.serve(ctx, f.shutdownTimeout)
}

// printConfigError prints each problem of a config on its own line.
func printConfigError(w io.Writer, cmd string, err error) {
	var ce configErrors
	if errors.As(err, &ce) {
		for _, e := range ce {
			fmt.Fprintln(w, e)
		}
		fmt.Fprintf(w, "%s: the config has %s; nothing was started\n", cmd, count(len(ce), "problem", "problems"))
		return
	}
	fmt.Fprintf(w, "%s: %v\n", cmd, err)
}

// count returns "1 thing" or "n things".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// daemon is a running `dbscrub run`.
type daemon struct {
	cfg    *runConfig
	logger *slog.Logger
	once   bool

	store   *history.SQLite
	sched   *scheduler.Scheduler
	targets []io.Closer
	tel     *telemetrySetup
	srv     *http.Server
	ln      net.Listener
	healthy atomic.Bool

	mu   sync.Mutex
	runs map[string]*history.Run // --once: the run of each target
	done chan struct{}           // --once: closed when every target ran
}

// start opens the history, sets up telemetry and alarm sinks, and
// registers every target. Nothing runs yet.
func (d *daemon) start(ctx context.Context) error {
	cfg := d.cfg
	var err error
	d.tel, err = setupTelemetry(ctx, cfg, !d.once && cfg.listen != "")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.historyPath), 0o750); err != nil {
		return fmt.Errorf("creating the history's directory: %w", err)
	}
	d.store, err = history.OpenSQLite(ctx, cfg.historyPath)
	if err != nil {
		return fmt.Errorf("opening the history %s: %w", cfg.historyPath, err)
	}
	sinks, err := buildSinks(cfg, d.logger)
	if err != nil {
		return err
	}
	opts := []scheduler.Option{
		scheduler.WithStore(d.store),
		scheduler.WithSinks(sinks...),
		scheduler.WithLogger(d.logger),
	}
	if cfg.maxConcurrent > 0 {
		opts = append(opts, scheduler.WithMaxConcurrent(cfg.maxConcurrent))
	}
	if cfg.maxPerServer > 0 {
		opts = append(opts, scheduler.WithMaxPerServer(cfg.maxPerServer))
	}
	if cfg.retention > 0 {
		opts = append(opts, scheduler.WithRetention(cfg.retention))
	}
	if cfg.renotify > 0 {
		opts = append(opts, scheduler.WithAlarmOptions(alarm.WithRenotify(cfg.renotify)))
	}
	if d.tel.tp != nil {
		opts = append(opts, scheduler.WithTracerProvider(d.tel.tp))
	}
	if d.tel.mp != nil {
		opts = append(opts, scheduler.WithMeterProvider(d.tel.mp))
	}
	if d.once {
		d.runs = map[string]*history.Run{}
		d.done = make(chan struct{})
		opts = append(opts, scheduler.WithOnRun(d.onceRun))
	}
	d.sched, err = scheduler.New(ctx, opts...)
	if err != nil {
		return err
	}
	for _, t := range cfg.targets {
		tgt, closer, err := openTarget(t.flags)
		if err != nil { // validated when the config was loaded
			return fmt.Errorf("target %s: %s", t.name, redact.Scrub(err.Error(), t.secrets...))
		}
		d.targets = append(d.targets, closer)
		err = d.sched.Register(ctx, scheduler.Target{
			Name:    t.name,
			Labels:  t.labels,
			Target:  tgt,
			Secrets: t.secrets,
			Plan:    t.plan(),
		})
		if err != nil {
			return fmt.Errorf("target %s: %s", t.name, redact.Scrub(err.Error(), t.secrets...))
		}
	}
	return nil
}

// serve runs the schedules and the HTTP server until ctx is done, then
// shuts down.
func (d *daemon) serve(ctx context.Context, shutdownTimeout time.Duration) int {
	if d.cfg.listen != "" {
		ln, err := net.Listen("tcp", d.cfg.listen)
		if err != nil {
			d.logger.Error("dbscrub: cannot serve /metrics and /healthz", "listen", d.cfg.listen, "error", err)
			d.close(shutdownTimeout)
			return exitError
		}
		d.ln = ln
		d.srv = &http.Server{Handler: d.handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := d.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.logger.Error("dbscrub: HTTP server stopped", "error", err)
			}
		}()
	}
	d.sched.Start()
	d.healthy.Store(true)
	if d.ln != nil {
		addr := d.ln.Addr().String()
		d.logger.Info("dbscrub: serving /metrics and /healthz", "address", "http://"+addr)
		if onListening != nil {
			onListening(addr)
		}
	}
	st, _ := d.sched.Status(ctx)
	for _, s := range st {
		d.logger.Info("dbscrub: target scheduled", "target", s.Name, "schedule", s.Schedule, "window", s.Window, "next_run", s.NextRun)
	}
	<-ctx.Done()
	d.logger.Info("dbscrub: shutting down; running checks are interrupted and recorded", "timeout", shutdownTimeout)
	if err := d.close(shutdownTimeout); err != nil {
		d.logger.Error("dbscrub: shutdown", "error", err)
		return exitError
	}
	d.logger.Info("dbscrub: stopped")
	return exitOK
}

// close shuts everything down in order: the scheduler (interrupting and
// recording running checks; /healthz says 503 from here on), the HTTP
// server, the telemetry (flushing spans), the history and the targets.
func (d *daemon) close(timeout time.Duration) error {
	d.healthy.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	if d.sched != nil {
		errs = append(errs, d.sched.Shutdown(ctx))
	}
	if d.srv != nil {
		hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, d.srv.Shutdown(hctx))
		hcancel()
	}
	if d.tel != nil {
		errs = append(errs, d.tel.shutdown(ctx))
	}
	if d.store != nil {
		errs = append(errs, d.store.Close())
	}
	for _, c := range d.targets {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

func (d *daemon) handler() http.Handler {
	mux := http.NewServeMux()
	if d.tel.metrics != nil {
		mux.Handle("GET /metrics", d.tel.metrics)
	}
	mux.HandleFunc("GET /healthz", d.healthz)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "dbscrub: /metrics (Prometheus), /healthz")
	})
	return mux
}

// healthz answers 200 while the scheduler runs and 503 once shutdown has
// started.
func (d *daemon) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !d.healthy.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "shutting down")
		return
	}
	fmt.Fprintf(w, "ok: %s scheduled\n", count(len(d.cfg.targets), "target", "targets"))
}

// --- --once ---

func (d *daemon) onceRun(_ context.Context, run *history.Run) { d.ran(run.Target, run) }

// ran records the run of a target (nil: it could not start) and closes
// d.done once every target has one.
func (d *daemon) ran(target string, run *history.Run) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, dup := d.runs[target]; dup {
		return
	}
	d.runs[target] = run
	if len(d.runs) == len(d.cfg.targets) {
		close(d.done)
	}
}

// onceResult is one target's outcome of `dbscrub run --once`, in JSON.
type onceResult struct {
	Target   string         `json:"target"`
	RunID    int64          `json:"run_id,omitempty"`
	Status   checks.Status  `json:"status"`
	Reason   string         `json:"reason,omitempty"`
	ExitCode int            `json:"exit_code"`
	Report   *checks.Report `json:"report,omitempty"`
}

// runOnce runs every target once, now, and returns the worst exit code.
func (d *daemon) runOnce(ctx context.Context, f *runFlags, stdout io.Writer) int {
	for _, t := range d.cfg.targets {
		if err := d.sched.RunNow(ctx, t.name); err != nil {
			d.logger.Error("dbscrub: cannot start a run", "target", t.name, "error", err)
			d.ran(t.name, nil)
		}
	}
	select {
	case <-d.done:
	case <-ctx.Done():
		d.logger.Info("dbscrub: interrupted; running checks are recorded as interrupted")
	}
	// Shutdown records interrupted runs and delivers their alarms.
	closeErr := d.close(f.shutdownTimeout)
	d.mu.Lock()
	defer d.mu.Unlock()
	var results []onceResult
	worst := exitOK
	for _, t := range d.cfg.targets {
		r := onceResult{Target: t.name, Status: checks.StatusError, Reason: "the run did not finish", ExitCode: exitError}
		if run := d.runs[t.name]; run != nil && run.Report != nil {
			r = onceResult{Target: t.name, RunID: run.ID, Status: run.Report.Status, Reason: run.Report.Reason, Report: run.Report,
				ExitCode: exitCode(run.Report, run.Report.Err(), f.failOnWarning)}
		}
		worst = worse(worst, r.ExitCode)
		results = append(results, r)
	}
	if f.format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(results)
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		for _, r := range results {
			detail := r.Reason
			if r.Report != nil && r.Status == checks.StatusHealthy {
				detail = fmt.Sprintf("%d objects, %s verified", r.Report.Coverage.ObjectsVerified, bytesHuman(r.Report.Coverage.BytesVerified))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Target, strings.ToUpper(string(r.Status)), detail)
		}
		tw.Flush()
	}
	if closeErr != nil {
		d.logger.Error("dbscrub: shutdown", "error", closeErr)
		worst = worse(worst, exitError)
	}
	return worst
}

// worse returns the worse of two exit codes: corrupt, then could not
// verify, then warnings, then sound.
func worse(a, b int) int {
	rank := func(c int) int {
		switch c {
		case exitCorrupt:
			return 3
		case exitError:
			return 2
		case exitWarning:
			return 1
		}
		return 0
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// --- alarm sinks ---

func buildSinks(cfg *runConfig, logger *slog.Logger) ([]alarm.Sink, error) {
	if len(cfg.sinks) == 0 {
		return []alarm.Sink{alarm.LogSink(logger)}, nil
	}
	var sinks []alarm.Sink
	for _, s := range cfg.sinks {
		var hopts []alarm.HTTPOption
		hopts = append(hopts, alarm.WithName(s.name))
		if s.timeout > 0 {
			hopts = append(hopts, alarm.WithAttemptTimeout(s.timeout))
		}
		if s.retries >= 0 {
			hopts = append(hopts, alarm.WithAttempts(s.retries+1))
		}
		for k, v := range s.headers {
			hopts = append(hopts, alarm.WithHeader(k, v))
		}
		var sink alarm.Sink
		var err error
		switch s.typ {
		case "log":
			sink = namedSink{alarm.LogSink(logger), s.name}
		case "webhook":
			sink, err = alarm.NewWebhook(s.url, hopts...)
		case "alertmanager":
			sink, err = alarm.NewAlertmanager(s.url, hopts...)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.where, err)
		}
		sinks = append(sinks, sink)
	}
	return sinks, nil
}

// namedSink renames a sink (two log sinks need two names).
type namedSink struct {
	alarm.Sink
	name string
}

func (s namedSink) Name() string { return s.name }

// --- telemetry ---

// telemetrySetup holds the OpenTelemetry SDK providers of dbscrub run:
// metrics through the Prometheus exporter (served at /metrics), traces
// over OTLP/HTTP when configured.
type telemetrySetup struct {
	tp      *sdktrace.TracerProvider
	mp      *sdkmetric.MeterProvider
	metrics http.Handler
}

func setupTelemetry(ctx context.Context, cfg *runConfig, withMetrics bool) (*telemetrySetup, error) {
	ts := &telemetrySetup{}
	if !withMetrics && cfg.otlp == nil {
		return ts, nil
	}
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", "dbscrub"), attribute.String("service.version", version)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	if withMetrics {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		exp, err := otelprom.New(otelprom.WithRegisterer(reg))
		if err != nil {
			return nil, fmt.Errorf("prometheus exporter: %w", err)
		}
		ts.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
		ts.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	}
	if cfg.otlp != nil {
		exp, err := otlptracehttp.New(ctx, otlpOptions(cfg.otlp)...)
		if err != nil {
			return nil, fmt.Errorf("OTLP trace exporter: %w", err)
		}
		ts.tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	}
	return ts, nil
}

// otlpOptions turns the config into exporter options. An endpoint URL
// without a path gets the standard /v1/traces.
func otlpOptions(o *otlpConfig) []otlptracehttp.Option {
	var opts []otlptracehttp.Option
	if strings.Contains(o.endpoint, "://") {
		u, _ := url.Parse(o.endpoint) // validated
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1/traces"
		}
		opts = append(opts, otlptracehttp.WithEndpointURL(u.String()))
		if o.insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
	} else {
		opts = append(opts, otlptracehttp.WithEndpoint(o.endpoint))
		if o.insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
	}
	if len(o.headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(o.headers))
	}
	return opts
}

func (ts *telemetrySetup) shutdown(ctx context.Context) error {
	var errs []error
	if ts.tp != nil {
		errs = append(errs, ts.tp.Shutdown(ctx))
	}
	if ts.mp != nil {
		errs = append(errs, ts.mp.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// --- logging ---
