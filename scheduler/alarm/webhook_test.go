package alarm_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/scheduler/alarm"
)

var sample = alarm.Alarm{
	Target: "orders", Check: "heap", Kind: alarm.KindCorruption, Severity: alarm.SeverityCritical, State: alarm.StateFiring,
	Summary: "Corruption found in orders (check heap): 1 finding in public.orders", Description: "public.orders (page 7): invalid page header",
	Findings:      []checks.Finding{{Check: "heap", Task: "t1", Severity: checks.StatusCorrupt, Object: "public.orders", Message: "invalid page header", Location: checks.Location{Page: checks.Int(7)}}},
	FindingsTotal: 1, Labels: map[string]string{"team": "payments", "owner": "alice", "runbook_url": "https://runbooks.example/db", "cost-center": "42"},
	FirstSeen: t0, LastSeen: t0.Add(time.Hour), RunID: 7,
}

func TestWebhookDelivers(t *testing.T) {
	var got alarm.WebhookPayload
	var header http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		header = r.Header
		if r.Method != http.MethodPost {
			t.Errorf("method %s", r.Method)
		}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Error(err)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	wh, err := alarm.NewWebhook(srv.URL+"/hook", alarm.WithHeader("Authorization", "Bearer token"))
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Send(context.Background(), []alarm.Alarm{sample}); err != nil {
		t.Fatal(err)
	}
	if header.Get("Content-Type") != "application/json" || header.Get("Authorization") != "Bearer token" {
		t.Fatalf("headers %v", header)
	}
	if got.Version != 1 || got.Sender != "dbscrub" || len(got.Alarms) != 1 {
		t.Fatalf("payload %+v", got)
	}
	a := got.Alarms[0]
	if a.Target != "orders" || a.Kind != alarm.KindCorruption || a.State != alarm.StateFiring || !a.FirstSeen.Equal(t0) ||
		a.Findings[0].Location.Page == nil || *a.Findings[0].Location.Page != 7 || a.RunbookURL() != "https://runbooks.example/db" {
		t.Fatalf("alarm %+v", a)
	}
}

func TestWebhookRetries(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int
		wantErr  string
		attempts int32
	}{
		{"500 then 200", []int{500, 200}, "", 2},
		{"429 then 200", []int{429, 204}, "", 2},
		{"always 503", []int{503, 503, 503}, "failed after 3 attempts: HTTP 503", 3},
		{"400 is not retried", []int{400}, "HTTP 400", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				i := n.Add(1) - 1
				io.Copy(io.Discard, r.Body)
				w.WriteHeader(tt.statuses[min(int(i), len(tt.statuses)-1)])
				io.WriteString(w, "nope")
			}))
			defer srv.Close()
			wh, _ := alarm.NewWebhook(srv.URL, alarm.WithBackoff(time.Millisecond), alarm.WithAttempts(3))
			err := wh.Send(context.Background(), []alarm.Alarm{sample})
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Send = %v, want %q", err, tt.wantErr)
			}
			if n.Load() != tt.attempts {
				t.Fatalf("%d attempts, want %d", n.Load(), tt.attempts)
			}
		})
	}
}

func TestWebhookServerThatHangs(t *testing.T) {
	release := make(chan struct{})
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		select { // hang until the client gives up (or the test ends)
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	wh, _ := alarm.NewWebhook(srv.URL, alarm.WithAttemptTimeout(50*time.Millisecond), alarm.WithAttempts(2), alarm.WithBackoff(time.Millisecond))
	start := time.Now()
	err := wh.Send(context.Background(), []alarm.Alarm{sample})
	if err == nil || !strings.Contains(err.Error(), "no response within 50ms") {
		t.Fatalf("Send = %v", err)
	}
	if n.Load() != 2 {
		t.Fatalf("%d attempts, want 2", n.Load())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a hanging server held the delivery for %s", d)
	}
	// The caller's context bounds everything, backoff included.
	wh, _ = alarm.NewWebhook(srv.URL, alarm.WithAttemptTimeout(time.Hour), alarm.WithAttempts(5))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := wh.Send(ctx, []alarm.Alarm{sample}); err == nil {
		t.Fatal("Send ignored its context")
	}
}

func TestWebhookNeverPrintsTheURLToken(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/services/T000/B000/XXXXSECRETTOKEN?key=QUERYSECRET"
	srv.Close() // connection refused
	wh, err := alarm.NewWebhook(url, alarm.WithAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	err = wh.Send(context.Background(), []alarm.Alarm{sample})
	if err == nil || strings.Contains(err.Error(), "SECRETTOKEN") || strings.Contains(err.Error(), "QUERYSECRET") {
		t.Fatalf("error %v", err)
	}
	for _, bad := range []string{"", "ftp://x", "not a url", "http://"} {
		if _, err := alarm.NewWebhook(bad); !errors.Is(err, checks.ErrInvalidOption) {
			t.Errorf("NewWebhook(%q) = %v", bad, err)
		}
	}
}

func TestAlertmanagerShape(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]alarm.PostableAlert
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b []alarm.PostableAlert
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			t.Error(err)
		}
		mu.Lock()
		bodies = append(bodies, b)
		paths = append(paths, r.Method+" "+r.URL.Path)
		mu.Unlock()
	}))
	defer srv.Close()
	am, err := alarm.NewAlertmanager(srv.URL+"/", alarm.WithResend(2*time.Minute),
		alarm.WithGeneratorURL(func(a alarm.Alarm) string { return "https://dbscrub.example/targets/" + a.Target }))
	if err != nil {
		t.Fatal(err)
	}
	if am.Name() != "alertmanager" || am.Renotify() != 2*time.Minute {
		t.Fatalf("name %s renotify %s", am.Name(), am.Renotify())
	}
	resolved := sample
	resolved.Kind, resolved.State, resolved.ResolvedAt, resolved.Check = alarm.KindNotVerified, alarm.StateResolved, t0.Add(2*time.Hour), ""
	before := time.Now()
	if err := am.Send(context.Background(), []alarm.Alarm{sample, resolved}); err != nil {
		t.Fatal(err)
	}
	if len(paths) != 1 || paths[0] != "POST /api/v2/alerts" || len(bodies[0]) != 2 {
		t.Fatalf("requests %v %+v", paths, bodies)
	}
	fire, res := bodies[0][0], bodies[0][1]
	wantLabels := map[string]string{"alertname": "DBScrubCorruption", "target": "orders", "check": "heap", "kind": "corruption", "severity": "critical",
		"team": "payments", "owner": "alice", "cost_center": "42"}
	if len(fire.Labels) != len(wantLabels) {
		t.Errorf("labels %v, want %v", fire.Labels, wantLabels)
	}
	for k, v := range wantLabels {
		if fire.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, fire.Labels[k], v)
		}
	}
	if fire.Annotations["summary"] != sample.Summary || fire.Annotations["description"] != sample.Description || fire.Annotations["runbook_url"] != "https://runbooks.example/db" {
		t.Errorf("annotations %v", fire.Annotations)
	}
	if !fire.StartsAt.Equal(t0) || fire.EndsAt.Before(before.Add(6*time.Minute-time.Second)) || fire.GeneratorURL != "https://dbscrub.example/targets/orders" {
		t.Errorf("firing times %s..%s, generator %s", fire.StartsAt, fire.EndsAt, fire.GeneratorURL)
	}
	if res.Labels["alertname"] != "DBScrubNotVerified" || !res.EndsAt.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("resolved %+v", res)
	}
	if _, ok := res.Labels["check"]; ok {
		t.Errorf("a whole-target alarm has no check label: %v", res.Labels)
	}
}
