package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/dbscrub/dbscrub/internal/sqlitetest"
)

// receiver is a minimal OTLP/HTTP trace receiver: it accepts POST
// /v1/traces (protobuf) and keeps the span names.
type receiver struct {
	mu       sync.Mutex
	requests int
	spans    map[string]int
	attrs    map[string]bool
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		http.NotFound(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var req coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	rc.requests++
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				rc.spans[sp.Name]++
				for _, a := range sp.Attributes {
					rc.attrs[a.Key] = true
				}
			}
		}
	}
	rc.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	_, _ = w.Write(out)
}

func newReceiver(t *testing.T) (*receiver, string) {
	rc := &receiver{spans: map[string]int{}, attrs: map[string]bool{}}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return rc, srv.URL
}

func sampleDB(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "shop.db")
	if err := sqlitetest.CreateSample(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOnceExportsSpans(t *testing.T) {
	rc, url := newReceiver(t)
	var log bytes.Buffer
	a := app{dsn: sampleDB(t), endpoint: url, metricsAddr: "127.0.0.1:0", every: time.Hour, once: true, out: &log}
	if code := a.run(context.Background()); code != 0 {
		t.Fatalf("exit %d\n%s", code, log.String())
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.requests == 0 {
		t.Fatalf("no OTLP request\n%s", log.String())
	}
	if rc.spans["dbscrub.run"] != 1 || rc.spans["dbscrub.check"] != 2 || rc.spans["dbscrub.task"] == 0 {
		t.Errorf("spans: %v", rc.spans)
	}
	for _, k := range []string{"db.system.name", "dbscrub.target", "dbscrub.check", "dbscrub.status"} {
		if !rc.attrs[k] {
			t.Errorf("no span has the attribute %s", k)
		}
	}
}

func TestOnceCorrupt(t *testing.T) {
	_, url := newReceiver(t)
	db := sampleDB(t)
	if err := sqlitetest.DamageIndex(db, sqlitetest.SampleIndex); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	a := app{dsn: db, endpoint: url, metricsAddr: "127.0.0.1:0", once: true, every: time.Hour, out: &log}
	if code := a.run(context.Background()); code != 2 {
		t.Fatalf("exit %d, want 2\n%s", code, log.String())
	}
	if !strings.Contains(log.String(), "dbscrub alarm firing") {
		t.Errorf("no alarm in the log:\n%s", log.String())
	}
}

// TestScheduledMetricsAndSpans runs on a short schedule, scrapes
// /metrics, stops, and checks the spans reached the receiver.
func TestScheduledMetricsAndSpans(t *testing.T) {
	rc, url := newReceiver(t)
	addrs := make(chan string, 1)
	var log syncWriter
	a := app{endpoint: strings.TrimPrefix(url, "http://"), metricsAddr: "127.0.0.1:0", every: 300 * time.Millisecond, out: &log,
		onListening: func(addr string) { addrs <- addr }} // no --dsn: the demo database
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exited := make(chan int, 1)
	go func() { exited <- a.run(ctx) }()
	var addr string
	select {
	case addr = <-addrs:
	case code := <-exited:
		t.Fatalf("exit %d before listening\n%s", code, log.String())
	}
	re := regexp.MustCompile(`(?m)^dbscrub_last_success_timestamp_seconds\{[^}]*dbscrub_check="integrity"[^}]*\} [1-9]`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if re.Match(body) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no last success in /metrics:\n%s\n%s", body, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if code := <-exited; code != 0 {
		t.Errorf("exit %d", code)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.spans["dbscrub.run"] == 0 {
		t.Errorf("no run span exported: %v\n%s", rc.spans, log.String())
	}
}

type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func TestTracesURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://collector:4318":         "http://collector:4318/v1/traces",
		"https://collector:4318/":       "https://collector:4318/v1/traces",
		"collector:4318":                "http://collector:4318/v1/traces",
		"http://gw:8080/otlp/v1/traces": "http://gw:8080/otlp/v1/traces",
	} {
		if got, err := tracesURL(in); err != nil || got != want {
			t.Errorf("tracesURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := tracesURL("ftp://x"); err == nil {
		t.Error("ftp:// accepted")
	}
}
