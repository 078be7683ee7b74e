package alarm

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/dbscrub/dbscrub/checks"
)

// WithGeneratorURL sets a function giving each alert's generatorURL (a link
// back to dbscrub, such as a status page). Alertmanager only.
func WithGeneratorURL(f func(Alarm) string) HTTPOption {
	return func(c *httpConfig) error {
		c.generatorURL = f
		return nil
	}
}

// WithResend sets how often an [Alertmanager] sink re-sends firing alerts
// (default 5m). Alertmanager resolves an alert whose endsAt has passed, so
// firing alerts are sent with endsAt three resend intervals ahead and
// re-sent well before that; Alertmanager itself deduplicates them and
// applies its own repeat_interval to people. Alertmanager only; the
// scheduler's evaluation interval must be shorter than d.
func WithResend(d time.Duration) HTTPOption {
	return func(c *httpConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: resend interval must be positive, got %s", checks.ErrInvalidOption, d)
		}
		c.resend = d
		return nil
	}
}

// Alertmanager is a [Sink] that posts alarms to the Prometheus
// Alertmanager v2 API (POST /api/v2/alerts).
//
// Each alarm becomes one alert with the labels alertname
// (DBScrubCorruption, DBScrubNotVerified, DBScrubStale, DBScrubRisk),
// target, check (when set), kind and severity, plus the target's labels
// (runbook_url excepted, names sanitized to [a-zA-Z0-9_]); the annotations
// summary, description and runbook_url; startsAt (first seen); endsAt (the
// resolution time, or a time three resend intervals ahead while firing);
// and generatorURL when configured.
type Alertmanager struct {
	p *poster
}

// NewAlertmanager returns a sink for the Alertmanager at baseURL, such as
// http://alertmanager:9093.
func NewAlertmanager(baseURL string, opts ...HTTPOption) (*Alertmanager, error) {
	cfg := defaultHTTPConfig("alertmanager")
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	p, err := newPoster(strings.TrimRight(baseURL, "/")+"/api/v2/alerts", cfg)
	if err != nil {
		return nil, err
	}
	return &Alertmanager{p: p}, nil
}

// Name returns the sink's name.
func (a *Alertmanager) Name() string { return a.p.cfg.name }

// Renotify returns the resend interval: Alertmanager needs firing alerts
// re-sent before their endsAt.
func (a *Alertmanager) Renotify() time.Duration { return a.p.cfg.resend }

// PostableAlert is one element of the Alertmanager v2 POST /api/v2/alerts
// body.
type PostableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Send posts one batch.
func (a *Alertmanager) Send(ctx context.Context, alarms []Alarm) error {
	now := time.Now().UTC()
	out := make([]PostableAlert, 0, len(alarms))
	for _, al := range alarms {
		out = append(out, a.alert(al, now))
	}
	body, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return a.p.post(ctx, body)
}

// AlertName returns the alertname label of a kind, e.g. DBScrubNotVerified.
func AlertName(k Kind) string {
	var b strings.Builder
	b.WriteString("DBScrub")
	for _, part := range strings.Split(string(k), "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

func (a *Alertmanager) alert(al Alarm, now time.Time) PostableAlert {
	labels := map[string]string{}
	for k, v := range al.Labels {
		if k == "runbook_url" || v == "" {
			continue
		}
		labels[sanitizeLabel(k)] = v
	}
	// dbscrub's own labels win over the target's.
	labels["alertname"] = AlertName(al.Kind)
	labels["target"] = al.Target
	labels["kind"] = string(al.Kind)
	labels["severity"] = string(al.Severity)
	if al.Check != "" {
		labels["check"] = al.Check
	} else {
		delete(labels, "check")
	}
	ann := map[string]string{"summary": al.Summary}
	if al.Description != "" {
		ann["description"] = al.Description
	}
	if u := al.RunbookURL(); u != "" {
		ann["runbook_url"] = u
	}
	pa := PostableAlert{Labels: labels, Annotations: ann, StartsAt: al.FirstSeen.UTC()}
	if al.State == StateResolved {
		pa.EndsAt = al.ResolvedAt.UTC()
		if pa.EndsAt.IsZero() {
			pa.EndsAt = now
		}
	} else {
		pa.EndsAt = now.Add(3 * a.p.cfg.resend)
	}
	if a.p.cfg.generatorURL != nil {
		pa.GeneratorURL = a.p.cfg.generatorURL(al)
	}
	return pa
}

// sanitizeLabel maps a label name onto [a-zA-Z_][a-zA-Z0-9_]*.
func sanitizeLabel(k string) string {
	b := []byte(k)
	for i, c := range b {
		ok := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}
