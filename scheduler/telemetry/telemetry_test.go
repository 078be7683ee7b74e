package telemetry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/scheduler/telemetry"
)

type task struct {
	key  string
	cost int64
	run  func(ctx context.Context) (checks.Result, error)
}

type check struct {
	name  string
	tasks []task
}

func (c check) Name() string { return c.name }

func (c check) Plan(context.Context) ([]checks.Task, error) {
	var out []checks.Task
	for _, t := range c.tasks {
		out = append(out, checks.Task{Key: t.key, Object: "public." + t.key, Cost: t.cost, Statement: "SELECT verify($1)", Run: t.run})
	}
	return out, nil
}

type target struct{ cks []checks.Check }

func (t target) Info() checks.TargetInfo {
	return checks.TargetInfo{Engine: "postgresql", Name: "postgres://app@db1:5432/app", Database: "app", Host: "db1", Port: 5432}
}
func (t target) Checks(...string) ([]checks.Check, error) { return t.cks, nil }

func ok(bytes int64) func(context.Context) (checks.Result, error) {
	return func(context.Context) (checks.Result, error) { return checks.Result{Objects: 1, Bytes: bytes}, nil }
}

const budget = 50 * time.Millisecond

func fixture() target {
	return target{cks: []checks.Check{
		check{name: "heap", tasks: []task{
			{key: "h1", cost: 100, run: func(context.Context) (checks.Result, error) {
				return checks.Result{Objects: 1, Bytes: 100, Findings: []checks.Finding{{Object: "public.h1", Code: "XX001", Message: "invalid page header", Location: checks.Location{Page: checks.Int(7)}}}}, nil
			}},
			{key: "h2", cost: 90, run: ok(90)},
		}},
		check{name: "settings", tasks: []task{
			{key: "s1", cost: 50, run: func(context.Context) (checks.Result, error) { return checks.Result{}, errors.New("permission denied") }},
		}},
		check{name: "big", tasks: []task{
			{key: "b1", cost: 1, run: func(ctx context.Context) (checks.Result, error) {
				time.Sleep(2 * budget) // outlasts the run's budget: b2 is not covered
				return checks.Result{Objects: 1, Bytes: 1}, nil
			}},
			{key: "b2", cost: 0, run: ok(0)},
		}},
	}}
}

func attrs(kvs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

func TestSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tel, err := telemetry.New(telemetry.WithTracerProvider(tp), telemetry.WithMeterProvider(sdkmetric.NewMeterProvider()))
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Close()
	r, err := checks.NewRunner(checks.WithObserver(tel.Observer("orders")), checks.WithBudget(budget))
	if err != nil {
		t.Fatal(err)
	}
	rep := r.Run(context.Background(), fixture())
	if rep.Status != checks.StatusCorrupt {
		t.Fatalf("status %s", rep.Status)
	}

	spans := rec.Ended()
	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = append(byName[s.Name()], s)
		if s.SpanKind() != trace.SpanKindClient {
			t.Errorf("%s: kind %s, want client", s.Name(), s.SpanKind())
		}
		a := attrs(s.Attributes())
		want := map[attribute.Key]attribute.Value{
			"db.system.name": attribute.StringValue("postgresql"), "db.namespace": attribute.StringValue("app"),
			"server.address": attribute.StringValue("db1"), "server.port": attribute.IntValue(5432),
			"dbscrub.target": attribute.StringValue("orders"),
		}
		for k, v := range want {
			if a[k] != v {
				t.Errorf("%s: %s = %v, want %v", s.Name(), k, a[k].String(), v.String())
			}
		}
	}
	if len(byName["dbscrub.run"]) != 1 || len(byName["dbscrub.check"]) != 3 || len(byName["dbscrub.task"]) != 4 {
		t.Fatalf("spans: %d run, %d check, %d task (want 1, 3, 4: no span for a task that never started)",
			len(byName["dbscrub.run"]), len(byName["dbscrub.check"]), len(byName["dbscrub.task"]))
	}
	run := byName["dbscrub.run"][0]
	if run.Status().Code != codes.Error || attrs(run.Attributes())["error.type"].AsString() != "corruption" || attrs(run.Attributes())["dbscrub.status"].AsString() != "corrupt" {
		t.Errorf("run span status %v attrs %v", run.Status(), run.Attributes())
	}
	checkSpans := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range byName["dbscrub.check"] {
		if s.Parent().SpanID() != run.SpanContext().SpanID() {
			t.Errorf("check span %v is not a child of the run", s.Attributes())
		}
		checkSpans[attrs(s.Attributes())["dbscrub.check"].AsString()] = s
	}
	tests := []struct {
		check, status, errType string
		code                   codes.Code
	}{
		{"heap", "corrupt", "corruption", codes.Error},
		{"settings", "error", "not_verified", codes.Error},
		{"big", "warning", "", codes.Unset},
	}
	for _, tt := range tests {
		s := checkSpans[tt.check]
		a := attrs(s.Attributes())
		if a["dbscrub.status"].AsString() != tt.status || a["error.type"].AsString() != tt.errType || s.Status().Code != tt.code {
			t.Errorf("check %s: status %s error.type %q code %v", tt.check, a["dbscrub.status"].AsString(), a["error.type"].AsString(), s.Status().Code)
		}
	}
	if a := attrs(checkSpans["big"].Attributes()); a["dbscrub.tasks.not_covered"].AsInt64() != 1 {
		t.Errorf("big: not covered = %d", a["dbscrub.tasks.not_covered"].AsInt64())
	}
	for _, s := range byName["dbscrub.task"] {
		a := attrs(s.Attributes())
		key := a["dbscrub.task.key"].AsString()
		parent := checkSpans[a["dbscrub.check"].AsString()]
		if s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("task %s is not a child of its check", key)
		}
		if a["dbscrub.object"].AsString() != "public."+key || a["db.query.text"].AsString() != "SELECT verify($1)" {
			t.Errorf("task %s attrs %v", key, s.Attributes())
		}
		switch key {
		case "h1":
			if s.Status().Code != codes.Error || a["error.type"].AsString() != "corruption" || len(s.Events()) != 1 {
				t.Fatalf("h1: %v %v %v", s.Status(), a["error.type"], s.Events())
			}
			ev := s.Events()[0]
			ea := attrs(ev.Attributes)
			if ev.Name != "dbscrub.finding" || ea["dbscrub.finding.message"].AsString() != "invalid page header" || ea["dbscrub.finding.code"].AsString() != "XX001" ||
				ea["dbscrub.severity"].AsString() != "corrupt" || ea["dbscrub.finding.location"].AsString() != "page 7" {
				t.Errorf("finding event %s %v", ev.Name, ev.Attributes)
			}
		case "h2":
			if s.Status().Code != codes.Unset || a["dbscrub.bytes.verified"].AsInt64() != 90 || a["dbscrub.status"].AsString() != "healthy" {
				t.Errorf("h2: %v %v", s.Status(), s.Attributes())
			}
		case "s1":
			if s.Status().Code != codes.Error || a["error.type"].AsString() != "not_verified" || s.Status().Description != "permission denied" {
				t.Errorf("s1: %v %v", s.Status(), a["error.type"])
			}
		}
	}
}

func collect(t *testing.T, reader *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

func TestMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	now := time.Date(2025, 1, 6, 12, 0, 0, 0, time.UTC)
	tel, err := telemetry.New(telemetry.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))),
		telemetry.WithTracerProvider(sdktrace.NewTracerProvider()), telemetry.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Close()
	r, _ := checks.NewRunner(checks.WithObserver(tel.Observer("orders")), checks.WithBudget(budget))
	r.Run(context.Background(), fixture())
	tel.SetLastSuccess("orders", "heap", now.Add(-time.Hour))
	tel.SetLastSuccess("fresh", "", time.Time{}) // never succeeded
	tel.SetOldestVerified("orders", now.Add(-2*time.Hour))
	tel.SetOldestVerified("fresh", time.Time{})
	tel.RunSkipped(context.Background(), "orders", "outside_window")

	ms := collect(t, reader)
	units := map[string]string{
		"dbscrub.run.duration": "s", "dbscrub.task.duration": "s", "dbscrub.runs": "{run}", "dbscrub.runs.skipped": "{run}",
		"dbscrub.findings": "{finding}", "dbscrub.bytes_verified": "By", "dbscrub.last_success.timestamp": "s", "dbscrub.coverage.age": "s",
	}
	for name, unit := range units {
		m, ok := ms[name]
		if !ok {
			t.Errorf("metric %s missing", name)
			continue
		}
		if m.Unit != unit {
			t.Errorf("%s unit %q, want %q", name, m.Unit, unit)
		}
	}
	if h := ms["dbscrub.run.duration"].Data.(metricdata.Histogram[float64]).DataPoints; len(h) != 1 || h[0].Count != 1 ||
		attrValue(h[0].Attributes, "dbscrub.status") != "corrupt" || attrValue(h[0].Attributes, "db.system.name") != "postgresql" {
		t.Errorf("run duration %+v", h)
	}
	var tasks uint64
	for _, dp := range ms["dbscrub.task.duration"].Data.(metricdata.Histogram[float64]).DataPoints {
		tasks += dp.Count
	}
	if tasks != 4 {
		t.Errorf("task durations recorded: %d, want 4 (started tasks)", tasks)
	}
	sums := func(name string) map[string]int64 {
		out := map[string]int64{}
		for _, dp := range ms[name].Data.(metricdata.Sum[int64]).DataPoints {
			out[attrValue(dp.Attributes, "dbscrub.target")+"/"+attrValue(dp.Attributes, "dbscrub.check")+"/"+
				attrValue(dp.Attributes, "dbscrub.status")+attrValue(dp.Attributes, "dbscrub.severity")+attrValue(dp.Attributes, "dbscrub.reason")] = dp.Value
		}
		return out
	}
	if got := sums("dbscrub.runs"); got["orders//corrupt"] != 1 {
		t.Errorf("runs %v", got)
	}
	if got := sums("dbscrub.findings"); got["orders/heap/corrupt"] != 1 || len(got) != 1 {
		t.Errorf("findings %v", got)
	}
	if got := sums("dbscrub.bytes_verified"); got["orders/heap/"] != 190 || got["orders/big/"] != 1 || got["orders/settings/"] != 0 {
		t.Errorf("bytes verified %v", got)
	}
	if got := sums("dbscrub.runs.skipped"); got["orders//outside_window"] != 1 {
		t.Errorf("skipped %v", got)
	}
	gauge := func(name string) map[string]float64 {
		out := map[string]float64{}
		for _, dp := range ms[name].Data.(metricdata.Gauge[float64]).DataPoints {
			out[attrValue(dp.Attributes, "dbscrub.target")+"/"+attrValue(dp.Attributes, "dbscrub.check")] = dp.Value
		}
		return out
	}
	ls := gauge("dbscrub.last_success.timestamp")
	if ls["orders/heap"] != float64(now.Add(-time.Hour).Unix()) || ls["fresh/"] != 0 {
		t.Errorf("last success %v", ls)
	}
	age := gauge("dbscrub.coverage.age")
	if age["orders/"] != 7200 || age["fresh/"] != float64(now.Unix()) {
		t.Errorf("coverage age %v (never verified must be the oldest)", age)
	}
	tel.Forget("fresh")
	ms = collect(t, reader)
	if _, ok := gauge("dbscrub.last_success.timestamp")["fresh/"]; ok {
		t.Error("Forget left the gauge")
	}
}

func attrValue(s attribute.Set, k attribute.Key) string {
	v, ok := s.Value(k)
	if !ok {
		return ""
	}
	return v.String()
}

func TestOptions(t *testing.T) {
	for _, o := range []telemetry.Option{telemetry.WithTracerProvider(nil), telemetry.WithMeterProvider(nil), telemetry.WithClock(nil)} {
		if _, err := telemetry.New(o); !errors.Is(err, checks.ErrInvalidOption) {
			t.Errorf("New = %v, want ErrInvalidOption", err)
		}
	}
}
