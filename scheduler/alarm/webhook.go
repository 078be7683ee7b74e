package alarm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/dbscrub/dbscrub/checks"
)

// HTTPOption configures the HTTP delivery of a [Webhook] or an
// [Alertmanager] sink.
type HTTPOption func(*httpConfig) error

type httpConfig struct {
	name           string
	client         *http.Client
	header         http.Header
	attempts       int
	backoff        time.Duration
	attemptTimeout time.Duration
	// Alertmanager only.
	generatorURL func(Alarm) string
	resend       time.Duration
}

func defaultHTTPConfig(name string) httpConfig {
	return httpConfig{
		name:           name,
		client:         &http.Client{},
		header:         http.Header{},
		attempts:       3,
		backoff:        time.Second,
		attemptTimeout: 10 * time.Second,
		resend:         5 * time.Minute,
	}
}

// WithName sets the sink's name (default "webhook" or "alertmanager"); set
// it when a Manager has two sinks of the same type.
func WithName(name string) HTTPOption {
	return func(c *httpConfig) error {
		if name == "" {
			return fmt.Errorf("%w: empty sink name", checks.ErrInvalidOption)
		}
		c.name = name
		return nil
	}
}

// WithHTTPClient sets the HTTP client (for TLS settings or a proxy). Its
// Timeout, if any, applies on top of the per-attempt timeout.
func WithHTTPClient(c *http.Client) HTTPOption {
	return func(h *httpConfig) error {
		if c == nil {
			return fmt.Errorf("%w: nil HTTP client", checks.ErrInvalidOption)
		}
		h.client = c
		return nil
	}
}

// WithHeader adds a request header, such as Authorization.
func WithHeader(key, value string) HTTPOption {
	return func(c *httpConfig) error {
		if key == "" {
			return fmt.Errorf("%w: empty header name", checks.ErrInvalidOption)
		}
		c.header.Add(key, value)
		return nil
	}
}

// WithAttempts sets how many times a delivery is tried (default 3). A
// delivery is retried after a network error, a timeout, HTTP 429 or 5xx;
// never after another 4xx. n must be at least 1.
func WithAttempts(n int) HTTPOption {
	return func(c *httpConfig) error {
		if n < 1 {
			return fmt.Errorf("%w: attempts must be at least 1, got %d", checks.ErrInvalidOption, n)
		}
		c.attempts = n
		return nil
	}
}

// WithBackoff sets the wait before the first retry (default 1s); it
// doubles after each further failure. d must not be negative.
func WithBackoff(d time.Duration) HTTPOption {
	return func(c *httpConfig) error {
		if d < 0 {
			return fmt.Errorf("%w: backoff must not be negative, got %s", checks.ErrInvalidOption, d)
		}
		c.backoff = d
		return nil
	}
}

// WithAttemptTimeout bounds one HTTP attempt (default 10s), so that a
// server that hangs cannot hold a delivery. d must be positive.
func WithAttemptTimeout(d time.Duration) HTTPOption {
	return func(c *httpConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: attempt timeout must be positive, got %s", checks.ErrInvalidOption, d)
		}
		c.attemptTimeout = d
		return nil
	}
}

// poster POSTs JSON with retries.
type poster struct {
	cfg      httpConfig
	endpoint string
	display  string // endpoint without credentials, path or query, for errors
}

func newPoster(endpoint string, cfg httpConfig) (*poster, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: %s sink needs an http(s) URL", checks.ErrInvalidOption, cfg.name)
	}
	// Webhook URLs often carry a token in the path or the query: never
	// print more than the scheme and host.
	return &poster{cfg: cfg, endpoint: endpoint, display: u.Scheme + "://" + u.Host}, nil
}

// errPermanent marks a response not worth retrying.
var errPermanent = errors.New("permanent")

func (p *poster) post(ctx context.Context, body []byte) error {
	var last error
	wait := p.cfg.backoff
	for attempt := 1; attempt <= p.cfg.attempts; attempt++ {
		if attempt > 1 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("%s %s: gave up after %d attempts (%v): %w", p.cfg.name, p.display, attempt-1, context.Cause(ctx), last)
			case <-t.C:
			}
			wait *= 2
		}
		last = p.once(ctx, body)
		if last == nil {
			return nil
		}
		if errors.Is(last, errPermanent) {
			return fmt.Errorf("%s %s: %w", p.cfg.name, p.display, last)
		}
	}
	return fmt.Errorf("%s %s: failed after %d attempts: %w", p.cfg.name, p.display, p.cfg.attempts, last)
}

func (p *poster) once(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.attemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: building request: %v", errPermanent, redactURLError(err))
	}
	for k, vs := range p.cfg.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "dbscrub")
	resp, err := p.cfg.client.Do(req)
	if err != nil {
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("no response within %s", p.cfg.attemptTimeout)
		}
		return redactURLError(err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(snippet))
	default:
		return fmt.Errorf("%w: HTTP %d: %s", errPermanent, resp.StatusCode, bytes.TrimSpace(snippet))
	}
}

// redactURLError drops the URL (which may hold a token) from a client error.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// Webhook is a [Sink] that POSTs alarms as JSON ([WebhookPayload]) to a
// URL, with retries, backoff and a per-attempt timeout.
type Webhook struct {
	p *poster
}

// WebhookPayload is the JSON body a [Webhook] posts.
type WebhookPayload struct {
	// Version is the payload schema version, 1.
	Version int `json:"version"`
	// Sender is "dbscrub".
	Sender string `json:"sender"`
	// Alarms are the alarms in this batch, firing and resolved.
	Alarms []Alarm `json:"alarms"`
}

// NewWebhook returns a webhook sink posting to endpoint (http or https).
// The endpoint is never logged beyond its scheme and host.
func NewWebhook(endpoint string, opts ...HTTPOption) (*Webhook, error) {
	cfg := defaultHTTPConfig("webhook")
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	p, err := newPoster(endpoint, cfg)
	if err != nil {
		return nil, err
	}
	return &Webhook{p: p}, nil
}

// Name returns the sink's name.
func (w *Webhook) Name() string { return w.p.cfg.name }

// Send posts one batch.
func (w *Webhook) Send(ctx context.Context, alarms []Alarm) error {
	body, err := json.Marshal(WebhookPayload{Version: 1, Sender: "dbscrub", Alarms: alarms})
	if err != nil {
		return err
	}
	return w.p.post(ctx, body)
}
