package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/redact"
	"github.com/dbscrub/dbscrub/scheduler"
)

// runConfig is a validated dbscrub.yaml: everything `dbscrub run` and
// `dbscrub status` need, with DSNs resolved (passwords injected) and every
// value checked. The format is documented in the package comment and in
// examples/dbscrub.yaml.
type runConfig struct {
	file string // as given, for messages
	dir  string // relative paths in the file are relative to it

	historyPath string
	retention   time.Duration

	maxConcurrent int // 0: the scheduler's default
	maxPerServer  int

	listen string // "" : no HTTP server

	otlp *otlpConfig

	renotify time.Duration
	sinks    []sinkConfig

	targets []*targetConfig

	// warnings are problems that do not stop dbscrub (an inline
	// password), each naming file:line: field.
	warnings []string
}

type otlpConfig struct {
	endpoint string
	insecure bool
	headers  map[string]string
}

type sinkConfig struct {
	typ     string // log, webhook, alertmanager
	name    string
	url     string
	timeout time.Duration
	retries int // -1: the sink's default
	headers map[string]string
	where   string // file:line: alarms.sinks[i]
}

type targetConfig struct {
	name   string
	labels map[string]string
	// flags holds the DSN (password injected: never print it) and the
	// engine options, as `dbscrub check` flags, for openTarget.
	flags   *checkFlags
	secrets []string
	engine  string // the engine's title

	checks      []string
	schedule    scheduler.Schedule
	window      scheduler.Window
	budget      time.Duration
	jitter      time.Duration
	sla         time.Duration
	jobs        int
	taskTimeout time.Duration
	runnerOpts  []checks.Option
	fingerprint *fingerprintConfig // nil: no fingerprint comparison
}

// fingerprintConfig is a target's fingerprint block: the scheduled
// comparison of the target with a stored fingerprint or another database.
type fingerprintConfig struct {
	stored string // the fingerprint file, or
	dsn    string // the database to compare with (password injected: never print it)
	opts   []checks.CompareOption
}

// extra returns the scheduler's check of the comparison. The file is read,
// and the other database opened, for every run.
func (f *fingerprintConfig) extra() scheduler.ExtraCheck {
	if f.stored != "" {
		return scheduler.CompareFingerprint(func(context.Context) (*checks.Fingerprint, error) {
			return readStoredFingerprint(f.stored)
		}, f.opts...)
	}
	return scheduler.CompareDatabase(func(context.Context) (checks.Fingerprinter, error) {
		fp, closer, err := openFingerprinter(f.dsn)
		if err != nil {
			return nil, err
		}
		// The drivers' targets are their own closers: the scheduler closes
		// the database after the run.
		if _, ok := fp.(io.Closer); !ok {
			closer.Close()
			return nil, errors.New("the database to compare with cannot be closed after the run")
		}
		return fp, nil
	}, f.opts...)
}

// plan returns the scheduler plan of t.
func (t *targetConfig) plan() scheduler.Plan {
	return scheduler.Plan{
		Checks:      t.checks,
		Schedule:    t.schedule,
		Window:      t.window,
		Budget:      t.budget,
		Jitter:      t.jitter,
		SLA:         t.sla,
		Jobs:        t.jobs,
		TaskTimeout: t.taskTimeout,
		Options:     t.runnerOpts,
		Extra:       t.extra(),
	}
}

// readStoredFingerprint reads the fingerprint file at path (a file, never
// stdin) and checks that it is consistent.
func readStoredFingerprint(path string) (*checks.Fingerprint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fp, err := checks.ReadFingerprint(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return fp, nil
}

func (t *targetConfig) extra() []scheduler.ExtraCheck {
	if t.fingerprint == nil {
		return nil
	}
	return []scheduler.ExtraCheck{t.fingerprint.extra()}
}

// defaultHistoryFile is the history store's file when the config names
// none, next to the config file.
const defaultHistoryFile = "dbscrub-history.db"

// loadOptions tune loadConfig.
type loadOptions struct {
	// historyOnly reads what `dbscrub status` needs (the history path and
	// the target names) and leaves DSNs, secrets and checks unresolved, so
	// that status works where the passwords are not available.
	historyOnly bool
	// getenv replaces os.Getenv in tests.
	getenv func(string) string
}

// configErrors is every problem found in a config file, one per line.
type configErrors []error

func (e configErrors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "\n")
}

// loadConfig reads, decodes and validates the config file at path. Its
// errors name the file, the line and the field:
//
//	dbscrub.yaml:14: targets[1].schedule: cron expression "*/5x * * * *": ...
//
// Every problem is reported (a configErrors), not only the first.
func loadConfig(path string, opts loadOptions) (*runConfig, error) {
	if opts.getenv == nil {
		opts.getenv = os.Getenv
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the config: %w", err)
	}
	return parseConfig(path, data, opts)
}

func parseConfig(path string, data []byte, opts loadOptions) (*runConfig, error) {
	if opts.getenv == nil {
		opts.getenv = os.Getenv
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// yaml.v3 says "yaml: line 3: ..."; put the file first.
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if rest, ok := strings.CutPrefix(msg, "line "); ok {
			if n, after, ok := strings.Cut(rest, ": "); ok {
				return nil, configErrors{fmt.Errorf("%s:%s: %s", path, n, after)}
			}
		}
		return nil, configErrors{fmt.Errorf("%s: %s", path, msg)}
	}
	dir := filepath.Dir(path)
	d := &decoder{file: path, dir: dir, opts: opts}
	cfg := &runConfig{file: path, dir: dir}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil, configErrors{fmt.Errorf("%s:1: the config is empty: it needs at least targets", path)}
	}
	d.root(doc.Content[0], cfg)
	if len(d.errs) > 0 {
		slices.SortStableFunc(d.errs, func(a, b error) int { return lineOf(a) - lineOf(b) })
		return nil, d.errs
	}
	cfg.warnings = d.warnings
	return cfg, nil
}

func lineOf(err error) int {
	var ce *configError
	if errors.As(err, &ce) {
		return ce.line
	}
	return 0
}

// decoder walks the YAML nodes, collecting errors with their positions.
type decoder struct {
	file     string
	dir      string
	opts     loadOptions
	errs     configErrors
	warnings []string
}

func (d *decoder) at(n *yaml.Node, path string) string {
	if path == "" {
		return fmt.Sprintf("%s:%d", d.file, n.Line)
	}
	return fmt.Sprintf("%s:%d: %s", d.file, n.Line, path)
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &configError{line: n.Line, msg: fmt.Sprintf("%s: %s", d.at(n, path), fmt.Sprintf(format, args...))})
}

// configError is one problem of a config file, at a line.
type configError struct {
	line int
	msg  string
}

func (e *configError) Error() string { return e.msg }

func (d *decoder) warnf(n *yaml.Node, path, format string, args ...any) {
	d.warnings = append(d.warnings, fmt.Sprintf("%s: %s", d.at(n, path), fmt.Sprintf(format, args...)))
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "empty"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "an unexpected value"
}

// field is one known key of a mapping.
type field struct {
	name string
	fn   func(v *yaml.Node, path string)
}

// mapping decodes a mapping node: known keys go to their field's
// function, unknown and repeated keys are errors. A null node is an empty
// mapping. It returns the keys seen.
func (d *decoder) mapping(n *yaml.Node, path string, fields ...field) map[string]*yaml.Node {
	n = resolve(n)
	seen := map[string]*yaml.Node{}
	if isNull(n) {
		return seen
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping (key: value lines), got %s", kindName(n))
		return seen
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		key := k.Value
		sub := joinPath(path, key)
		if _, dup := seen[key]; dup {
			d.errorf(k, sub, "given twice")
			continue
		}
		var f *field
		for j := range fields {
			if fields[j].name == key {
				f = &fields[j]
			}
		}
		if f == nil {
			names := make([]string, len(fields))
			for j, f := range fields {
				names[j] = f.name
			}
			d.errorf(k, sub, "unknown field %q (known: %s)", key, strings.Join(names, ", "))
			continue
		}
		seen[key] = k
		f.fn(resolve(v), sub)
	}
	return seen
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *decoder) scalar(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.errorf(n, path, "want a value, got %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) str(n *yaml.Node, path string, dst *string) {
	if s, ok := d.scalar(n, path); ok {
		*dst = s
	}
}

func (d *decoder) boolean(n *yaml.Node, path string, dst *bool) {
	s, ok := d.scalar(n, path)
	if !ok {
		return
	}
	var b bool
	if err := n.Decode(&b); err != nil || n.Tag != "!!bool" {
		d.errorf(n, path, "want true or false, got %q", s)
		return
	}
	*dst = b
}

// integer decodes an integer in [lo, hi].
func (d *decoder) integer(n *yaml.Node, path string, lo, hi int64) (int64, bool) {
	s, ok := d.scalar(n, path)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
	if err != nil {
		d.errorf(n, path, "want a whole number, got %q", s)
		return 0, false
	}
	if v < lo || v > hi {
		if hi >= math.MaxInt32 {
			d.errorf(n, path, "must be at least %d, got %d", lo, v)
		} else {
			d.errorf(n, path, "must be between %d and %d, got %d", lo, hi, v)
		}
		return 0, false
	}
	return v, true
}

func (d *decoder) intField(n *yaml.Node, path string, lo int64, dst *int) {
	if v, ok := d.integer(n, path, lo, math.MaxInt32); ok {
		*dst = int(v)
	}
}

// duration decodes a positive Go duration ("90s", "6h", "1h30m"), or a
// whole number of days ("7d").
func (d *decoder) duration(n *yaml.Node, path string, dst *time.Duration) {
	s, ok := d.scalar(n, path)
	if !ok {
		return
	}
	v, err := parseDuration(s)
	if err != nil {
		d.errorf(n, path, "%v", err)
		return
	}
	*dst = v
}

func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 && n < 100000 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want a duration such as 90s, 30m, 6h or 7d, got %q", s)
	}
	if v <= 0 {
		return 0, fmt.Errorf("must be positive, got %q", s)
	}
	return v, nil
}

// list decodes a list of strings, or one comma-separated string.
func (d *decoder) list(n *yaml.Node, path string) []string {
	var out []string
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag != "!!null":
		for _, p := range strings.Split(n.Value, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	case n.Kind == yaml.SequenceNode:
		for i, e := range n.Content {
			if s, ok := d.scalar(resolve(e), fmt.Sprintf("%s[%d]", path, i)); ok && strings.TrimSpace(s) != "" {
				out = append(out, strings.TrimSpace(s))
			}
		}
	default:
		d.errorf(n, path, "want a list, got %s", kindName(n))
	}
	return out
}

// stringMap decodes a mapping of strings to strings.
func (d *decoder) stringMap(n *yaml.Node, path string) map[string]string {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping (name: value lines), got %s", kindName(n))
		return nil
	}
	out := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		sub := joinPath(path, k.Value)
		if k.Value == "" {
			d.errorf(k, path, "empty name")
			continue
		}
		if _, dup := out[k.Value]; dup {
			d.errorf(k, sub, "given twice")
			continue
		}
		if s, ok := d.scalar(v, sub); ok {
			out[k.Value] = s
		}
	}
	return out
}

// envRef matches ${NAME}.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces each ${NAME} in s with the environment variable
// NAME, which must be set: header values (API tokens) need not be written
// in the file. A lone $ is kept as it is.
func (d *decoder) expandEnv(n *yaml.Node, path, s string) string {
	var missing []string
	out := envRef.ReplaceAllStringFunc(s, func(ref string) string {
		name := ref[2 : len(ref)-1]
		v := d.opts.getenv(name)
		if v == "" && !slices.Contains(missing, name) {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		d.errorf(n, path, "environment variable %s is not set", strings.Join(missing, ", "))
	}
	return out
}

// path resolves a file name of the config relative to its directory.
func (d *decoder) path(name string) string {
	if name == "" {
		return ""
	}
	if !filepath.IsAbs(name) {
		name = filepath.Join(d.dir, name)
	}
	return name
}

// --- the sections ---

func (d *decoder) root(n *yaml.Node, cfg *runConfig) {
	var targetsNode *yaml.Node
	seen := d.mapping(n, "",
		field{"history", func(v *yaml.Node, p string) { d.history(v, p, cfg) }},
		field{"limits", func(v *yaml.Node, p string) {
			d.mapping(v, p,
				field{"max_concurrent", func(v *yaml.Node, p string) { d.intField(v, p, 1, &cfg.maxConcurrent) }},
				field{"max_per_server", func(v *yaml.Node, p string) { d.intField(v, p, 1, &cfg.maxPerServer) }},
			)
		}},
		field{"http", func(v *yaml.Node, p string) {
			d.mapping(v, p, field{"listen", func(v *yaml.Node, p string) {
				d.str(v, p, &cfg.listen)
				if cfg.listen == "" {
					return
				}
				if _, port, err := net.SplitHostPort(cfg.listen); err != nil || port == "" {
					d.errorf(v, p, "want host:port such as 127.0.0.1:9187, got %q", cfg.listen)
				}
			}})
		}},
		field{"telemetry", func(v *yaml.Node, p string) {
			d.mapping(v, p, field{"otlp", func(v *yaml.Node, p string) { cfg.otlp = d.otlp(v, p) }})
		}},
		field{"alarms", func(v *yaml.Node, p string) { d.alarms(v, p, cfg) }},
		field{"targets", func(v *yaml.Node, p string) { targetsNode = v; d.targets(v, p, cfg) }},
	)
	if cfg.historyPath == "" {
		cfg.historyPath = filepath.Join(d.dir, defaultHistoryFile)
	}
	if _, ok := seen["targets"]; !ok || targetsNode == nil {
		d.errorf(n, "targets", "missing: the config needs at least one target")
	}
}

func (d *decoder) history(n *yaml.Node, path string, cfg *runConfig) {
	d.mapping(n, path,
		field{"path", func(v *yaml.Node, p string) {
			var s string
			d.str(v, p, &s)
			cfg.historyPath = d.path(s)
		}},
		field{"retention", func(v *yaml.Node, p string) { d.duration(v, p, &cfg.retention) }},
	)
}

func (d *decoder) otlp(n *yaml.Node, path string) *otlpConfig {
	o := &otlpConfig{}
	seen := d.mapping(n, path,
		field{"endpoint", func(v *yaml.Node, p string) {
			d.str(v, p, &o.endpoint)
			if o.endpoint == "" {
				return
			}
			if strings.Contains(o.endpoint, "://") {
				u, err := url.Parse(o.endpoint)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					d.errorf(v, p, "want http(s)://host:port[/path] or host:port, got %q", redact.DSN(o.endpoint))
				}
			} else if _, _, err := net.SplitHostPort(o.endpoint); err != nil {
				d.errorf(v, p, "want http(s)://host:port[/path] or host:port, got %q", o.endpoint)
			}
		}},
		field{"insecure", func(v *yaml.Node, p string) { d.boolean(v, p, &o.insecure) }},
		field{"headers", func(v *yaml.Node, p string) {
			o.headers = d.stringMap(v, p)
			for k, val := range o.headers {
				o.headers[k] = d.expandEnv(v, joinPath(p, k), val)
			}
		}},
	)
	if _, ok := seen["endpoint"]; !ok {
		d.errorf(n, path, "missing endpoint (such as http://otel-collector:4318)")
		return nil
	}
	if o.endpoint == "" {
		return nil
	}
	return o
}

func (d *decoder) alarms(n *yaml.Node, path string, cfg *runConfig) {
	d.mapping(n, path,
		field{"renotify", func(v *yaml.Node, p string) { d.duration(v, p, &cfg.renotify) }},
		field{"sinks", func(v *yaml.Node, p string) {
			if isNull(v) {
				return
			}
			if v.Kind != yaml.SequenceNode {
				d.errorf(v, p, "want a list of sinks (- type: log), got %s", kindName(v))
				return
			}
			names := map[string]bool{}
			for i, e := range v.Content {
				s := d.sink(resolve(e), fmt.Sprintf("%s[%d]", p, i))
				if s == nil {
					continue
				}
				if s.name == "" {
					s.name = s.typ
					for k := 2; names[s.name]; k++ {
						s.name = fmt.Sprintf("%s-%d", s.typ, k)
					}
				}
				if names[s.name] {
					d.errorf(e, fmt.Sprintf("%s[%d].name", p, i), "sink name %q is used twice", s.name)
				}
				names[s.name] = true
				cfg.sinks = append(cfg.sinks, *s)
			}
		}},
	)
}

var sinkTypes = []string{"log", "webhook", "alertmanager"}

func (d *decoder) sink(n *yaml.Node, path string) *sinkConfig {
	s := &sinkConfig{retries: -1, where: d.at(n, path)}
	seen := d.mapping(n, path,
		field{"type", func(v *yaml.Node, p string) {
			d.str(v, p, &s.typ)
			if s.typ != "" && !slices.Contains(sinkTypes, s.typ) {
				d.errorf(v, p, "unknown sink type %q (known: %s)", s.typ, strings.Join(sinkTypes, ", "))
				s.typ = ""
			}
		}},
		field{"name", func(v *yaml.Node, p string) { d.str(v, p, &s.name) }},
		field{"url", func(v *yaml.Node, p string) {
			d.str(v, p, &s.url)
			s.url = d.expandEnv(v, p, s.url)
			if u, err := url.Parse(s.url); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				d.errorf(v, p, "want an http:// or https:// URL, got %q", redact.DSN(s.url))
			}
		}},
		field{"timeout", func(v *yaml.Node, p string) { d.duration(v, p, &s.timeout) }},
		field{"retries", func(v *yaml.Node, p string) {
			if r, ok := d.integer(v, p, 0, 100); ok {
				s.retries = int(r)
			}
		}},
		field{"headers", func(v *yaml.Node, p string) {
			s.headers = d.stringMap(v, p)
			for k, val := range s.headers {
				s.headers[k] = d.expandEnv(v, joinPath(p, k), val)
			}
		}},
	)
	if _, ok := seen["type"]; !ok {
		d.errorf(n, path, "missing type (one of %s)", strings.Join(sinkTypes, ", "))
		return nil
	}
	if s.typ == "" {
		return nil
	}
	switch s.typ {
	case "log":
		for _, k := range []string{"url", "timeout", "retries", "headers"} {
			if kn, ok := seen[k]; ok {
				d.errorf(kn, joinPath(path, k), "does not apply to a log sink")
			}
		}
	case "alertmanager", "webhook":
		if _, ok := seen["url"]; !ok {
			d.errorf(n, path, "a %s sink needs url", s.typ)
			return nil
		}
	}
	return s
}

func (d *decoder) targets(n *yaml.Node, path string, cfg *runConfig) {
	if isNull(n) {
		d.errorf(n, path, "empty: the config needs at least one target")
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "want a list of targets (- name: ...), got %s", kindName(n))
		return
	}
	if len(n.Content) == 0 {
		d.errorf(n, path, "empty: the config needs at least one target")
		return
	}
	names := map[string]int{}
	for i, e := range n.Content {
		e = resolve(e)
		p := fmt.Sprintf("%s[%d]", path, i)
		t := d.target(e, p)
		if t == nil {
			continue
		}
		if prev, dup := names[t.name]; dup {
			d.errorf(e, p+".name", "target name %q is also the name of targets[%d]; names must be unique", t.name, prev)
			continue
		}
		names[t.name] = i
		cfg.targets = append(cfg.targets, t)
	}
}

// targetFields is what one target entry (or its fingerprint block) may
// say, before resolution.
type targetFields struct {
	// prefix is put before the DSN and password keys: "" for the target,
	// "against_" for the database its fingerprint is compared with.
	prefix                     string
	dsn, dsnEnv, dsnFile       string
	passwordEnv, passwordFile  string
	schedule, window, timezone string
	nodes                      map[string]*yaml.Node // value nodes by key, for positions
	options                    *yaml.Node
	fingerprint                *yaml.Node
}

func (d *decoder) target(n *yaml.Node, path string) *targetConfig {
	t := &targetConfig{}
	var tf targetFields
	tf.nodes = map[string]*yaml.Node{}
	keep := func(dst *string) func(v *yaml.Node, p string) {
		return func(v *yaml.Node, p string) {
			tf.nodes[p[strings.LastIndex(p, ".")+1:]] = v
			d.str(v, p, dst)
		}
	}
	before := len(d.errs)
	seen := d.mapping(n, path,
		field{"name", func(v *yaml.Node, p string) {
			d.str(v, p, &t.name)
			if strings.TrimSpace(t.name) != t.name || t.name == "" {
				d.errorf(v, p, "want a non-empty name without surrounding spaces, got %q", t.name)
			}
		}},
		field{"dsn", keep(&tf.dsn)},
		field{"dsn_env", keep(&tf.dsnEnv)},
		field{"dsn_file", keep(&tf.dsnFile)},
		field{"password_env", keep(&tf.passwordEnv)},
		field{"password_file", keep(&tf.passwordFile)},
		field{"labels", func(v *yaml.Node, p string) { t.labels = d.stringMap(v, p) }},
		field{"checks", func(v *yaml.Node, p string) {
			tf.nodes["checks"] = v
			t.checks = d.list(v, p)
		}},
		field{"schedule", keep(&tf.schedule)},
		field{"window", keep(&tf.window)},
		field{"timezone", keep(&tf.timezone)},
		field{"budget", func(v *yaml.Node, p string) { d.duration(v, p, &t.budget) }},
		field{"jitter", func(v *yaml.Node, p string) { d.duration(v, p, &t.jitter) }},
		field{"sla", func(v *yaml.Node, p string) {
			if v.Kind == yaml.ScalarNode && (v.Value == "off" || v.Value == "none") {
				t.sla = -1
				return
			}
			d.duration(v, p, &t.sla)
		}},
		field{"jobs", func(v *yaml.Node, p string) { d.intField(v, p, 1, &t.jobs) }},
		field{"task_timeout", func(v *yaml.Node, p string) { d.duration(v, p, &t.taskTimeout) }},
		field{"options", func(v *yaml.Node, p string) { tf.options = v }},
		field{"fingerprint", func(v *yaml.Node, p string) { tf.fingerprint = v }},
	)
	if _, ok := seen["name"]; !ok {
		d.errorf(n, path, "missing name")
		return nil
	}
	where := path
	if t.name != "" {
		where = fmt.Sprintf("%s (%s)", path, t.name)
	}

	// When: schedule, window, time zone.
	var loc *time.Location
	if v := tf.nodes["timezone"]; v != nil && tf.timezone != "" {
		l, err := time.LoadLocation(tf.timezone)
		if err != nil {
			d.errorf(v, path+".timezone", "unknown time zone %q (want an IANA name such as Europe/Berlin)", tf.timezone)
		} else {
			loc = l
		}
	}
	if v := tf.nodes["schedule"]; v == nil || (v.Kind == yaml.ScalarNode && strings.TrimSpace(tf.schedule) == "") {
		at := n
		if v != nil {
			at = v
		}
		d.errorf(at, where, "missing schedule (such as \"@every 6h\", \"@daily\" or \"30 2 * * *\")")
	} else if tf.schedule != "" {
		sch, err := scheduler.ParseSchedule(tf.schedule)
		if err != nil {
			d.errorf(v, path+".schedule", "%s", cleanSchedulerError(err))
		} else {
			if sch.Cron != "" && loc != nil {
				sch.Location = loc
			}
			t.schedule = sch
		}
	}
	if v := tf.nodes["window"]; v != nil && tf.window != "" {
		w, err := scheduler.ParseWindow(tf.window, loc)
		if err != nil {
			d.errorf(v, path+".window", "%s", cleanSchedulerError(err))
		} else {
			t.window = w
		}
	}

	if d.opts.historyOnly {
		if len(d.errs) > before {
			return nil
		}
		return t
	}

	// Where: the DSN, the engine it names, its options and checks.
	t.flags = &checkFlags{set: map[string]bool{}}
	dsn, inline := d.rawDSN(n, path, where, &tf)
	if dsn == "" {
		d.password(path, &tf, "") // report its problems too
		return nil
	}
	if pw := redact.Password(dsn); pw != "" {
		t.secrets = append(t.secrets, pw)
		if inline {
			d.warnf(tf.nodes["dsn"], path+".dsn", "the DSN holds a password in the config file; keep it out with password_env or password_file")
		}
	}
	dsnAt, dsnPath := tf.dsnNode(), path+"."+tf.dsnKey()
	eng, err := pick(dsn)
	if err != nil {
		d.errorf(dsnAt, dsnPath, "%s", redact.Scrub(err.Error(), t.secrets...))
		d.password(path, &tf, "")
		return nil
	}
	t.engine = eng.title
	if tf.options != nil {
		d.options(tf.options, path+".options", eng, t)
	}
	// Open (parse only: no driver connects before a check plans) to
	// validate the DSN and the check names, then the options.
	t.flags.dsn = dsn
	if tgt, closer, err := openTarget(&checkFlags{dsn: dsn, set: map[string]bool{}}); err != nil {
		d.errorf(dsnAt, dsnPath, "%s", redact.Scrub(err.Error(), t.secrets...))
	} else {
		if _, err := tgt.Checks(t.checks...); err != nil {
			at := tf.nodes["checks"]
			if at == nil {
				at = n
			}
			msg := redact.Scrub(err.Error(), t.secrets...)
			if slices.Contains(t.checks, checks.CheckFingerprint) {
				msg += "; to compare the target with a fingerprint or another database, give it a fingerprint: block instead"
			}
			d.errorf(at, path+".checks", "%s", msg)
		}
		if tf.fingerprint != nil {
			t.fingerprint = d.fingerprint(tf.fingerprint, path+".fingerprint", eng, tgt, t)
		}
		closer.Close()
		if len(d.errs) == before && len(t.flags.set) > 0 {
			if _, closer, err := openTarget(t.flags); err != nil {
				d.errorf(tf.options, path+".options", "%s", redact.Scrub(err.Error(), t.secrets...))
			} else {
				closer.Close()
			}
		}
	}
	if pw := d.password(path, &tf, dsn); pw != "" {
		t.secrets = append(t.secrets, pw)
		full, err := injectPassword(dsn, pw)
		if err != nil {
			key := "password_env"
			if tf.nodes[key] == nil {
				key = "password_file"
			}
			d.errorf(tf.nodes[key], path+"."+key, "%s", redact.Scrub(err.Error(), t.secrets...))
		}
		t.flags.dsn = full
	}
	if len(d.errs) > before {
		return nil
	}
	return t
}

// key returns the name of a DSN or password key in this entry.
func (tf *targetFields) key(name string) string { return tf.prefix + name }

func (tf *targetFields) dsnKeys() []string {
	return []string{tf.key("dsn"), tf.key("dsn_env"), tf.key("dsn_file")}
}

func (tf *targetFields) dsnKey() string {
	for _, k := range tf.dsnKeys() {
		if tf.nodes[k] != nil {
			return k
		}
	}
	return tf.key("dsn")
}

func (tf *targetFields) dsnNode() *yaml.Node { return tf.nodes[tf.dsnKey()] }

// rawDSN resolves the target's DSN from dsn, dsn_env or dsn_file (with
// tf's prefix). inline reports whether the DSN was written in the config
// file itself.
func (d *decoder) rawDSN(n *yaml.Node, path, where string, tf *targetFields) (dsn string, inline bool) {
	keys := tf.dsnKeys()
	var given []string
	for _, k := range keys {
		if tf.nodes[k] != nil {
			given = append(given, k)
		}
	}
	switch len(given) {
	case 0:
		d.errorf(n, where, "missing DSN: set one of %s, %s (an environment variable holding it) or %s (a file holding it)", keys[0], keys[1], keys[2])
		return "", false
	case 1:
	default:
		d.errorf(tf.nodes[given[1]], path+"."+given[1], "set only one of %s, %s and %s (%s is also set)", keys[0], keys[1], keys[2], given[0])
		return "", false
	}
	key := given[0]
	v := tf.nodes[key]
	switch key {
	case keys[0]:
		dsn, inline = tf.dsn, true
		if dsn == "" {
			d.errorf(v, path+"."+key, "empty")
		}
	case keys[1]:
		if tf.dsnEnv == "" {
			d.errorf(v, path+"."+key, "empty: name an environment variable")
			return "", false
		}
		if dsn = d.opts.getenv(tf.dsnEnv); dsn == "" {
			d.errorf(v, path+"."+key, "environment variable %s is not set", tf.dsnEnv)
		}
	case keys[2]:
		b, err := os.ReadFile(d.path(tf.dsnFile))
		if err != nil {
			d.errorf(v, path+"."+key, "%s", fileError(err))
			return "", false
		}
		if dsn = strings.TrimSpace(string(b)); dsn == "" {
			d.errorf(v, path+"."+key, "the file %s is empty", tf.dsnFile)
		}
	}
	return dsn, inline
}

// password reads the password of password_env or password_file (with
// tf's prefix), if the entry has one ("" otherwise, or on error).
func (d *decoder) password(path string, tf *targetFields, dsn string) string {
	envKey, fileKey := tf.key("password_env"), tf.key("password_file")
	env, file := tf.nodes[envKey], tf.nodes[fileKey]
	switch {
	case env != nil && file != nil:
		d.errorf(file, path+"."+fileKey, "set only one of %s and %s", envKey, fileKey)
		return ""
	case env != nil:
		if tf.passwordEnv == "" {
			d.errorf(env, path+"."+envKey, "empty: name an environment variable")
			return ""
		}
		pw := d.opts.getenv(tf.passwordEnv)
		if pw == "" {
			d.errorf(env, path+"."+envKey, "environment variable %s is not set", tf.passwordEnv)
		}
		return pw
	case file != nil:
		b, err := os.ReadFile(d.path(tf.passwordFile))
		if err != nil {
			d.errorf(file, path+"."+fileKey, "%s", fileError(err))
			return ""
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			d.errorf(file, path+"."+fileKey, "the file %s is empty", tf.passwordFile)
		}
		return pw
	}
	return ""
}

// injectPassword returns the URL dsn with pw as its password.
func injectPassword(dsn, pw string) (string, error) {
	e, err := pick(dsn)
	if err != nil {
		return "", err
	}
	if e.title == "SQLite" {
		return "", errors.New("an SQLite database has no password")
	}
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return "", fmt.Errorf("the password can only be put into a URL DSN (postgres://USER@host/db, sqlserver://USER@host?database=db): %s", redact.DSN(dsn))
	}
	if u.User == nil || u.User.Username() == "" {
		return "", fmt.Errorf("the DSN %s names no user to give the password to (postgres://USER@host/db)", redact.DSN(dsn))
	}
	if _, has := u.User.Password(); has {
		return "", fmt.Errorf("the DSN %s already has a password", redact.DSN(dsn))
	}
	u.User = url.UserPassword(u.User.Username(), pw)
	return u.String(), nil
}

func fileError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Sprintf("the file %s does not exist", pe.Path)
		}
		return fmt.Sprintf("%s %s: %v", pe.Op, pe.Path, pe.Err)
	}
	return err.Error()
}

// cleanSchedulerError turns a scheduler parse error into one line without
// the "invalid option: " prefix and gocron's preamble.
func cleanSchedulerError(err error) string {
	s := strings.TrimPrefix(err.Error(), checks.ErrInvalidOption.Error()+": ")
	s = strings.ReplaceAll(s, "gocron: CronJob: crontab parse failure\n", "")
	lines := strings.Fields(strings.ReplaceAll(s, "\n", " \n "))
	return strings.Join(lines, " ")
}

// targetOption is one key of a target's options: an engine-specific
// option (the `dbscrub check` flag of the same name, with _ for -) or a
// runner option that applies to every engine.
type targetOption struct {
	key  string
	flag string // the check flag: its engines accept the option; "" for every engine
	set  func(d *decoder, v *yaml.Node, p string, t *targetConfig)
}

func boolOpt(key, flag string, dst func(*checkFlags) *bool) targetOption {
	return targetOption{key, flag, func(d *decoder, v *yaml.Node, p string, t *targetConfig) { d.boolean(v, p, dst(t.flags)) }}
}

func durOpt(key, flag string, dst func(*checkFlags) *time.Duration) targetOption {
	return targetOption{key, flag, func(d *decoder, v *yaml.Node, p string, t *targetConfig) { d.duration(v, p, dst(t.flags)) }}
}

func listOpt(key, flag string, dst func(*checkFlags) *listFlag) targetOption {
	return targetOption{key, flag, func(d *decoder, v *yaml.Node, p string, t *targetConfig) {
		*dst(t.flags) = d.list(v, p)
	}}
}

var targetOptions = []targetOption{
	// PostgreSQL.
	boolOpt("heapallindexed", "heapallindexed", func(f *checkFlags) *bool { return &f.heapAllIndexed }),
	boolOpt("parent_check", "parent-check", func(f *checkFlags) *bool { return &f.parentCheck }),
	boolOpt("install_amcheck", "install-amcheck", func(f *checkFlags) *bool { return &f.installAmcheck }),
	durOpt("statement_timeout", "statement-timeout", func(f *checkFlags) *time.Duration { return &f.statementTimeout }),
	durOpt("lock_timeout", "lock-timeout", func(f *checkFlags) *time.Duration { return &f.lockTimeout }),
	{"chunk_size", "chunk-size", func(d *decoder, v *yaml.Node, p string, t *targetConfig) {
		if n, ok := d.integer(v, p, 1, math.MaxInt64); ok {
			t.flags.chunkSize = n
		}
	}},
	listOpt("schemas", "schema", func(f *checkFlags) *listFlag { return &f.includeSchemas }),
	listOpt("exclude_schemas", "exclude-schema", func(f *checkFlags) *listFlag { return &f.excludeSchemas }),
	listOpt("relations", "relation", func(f *checkFlags) *listFlag { return &f.includeRelations }),
	listOpt("exclude_relations", "exclude-relation", func(f *checkFlags) *listFlag { return &f.excludeRelations }),
	// SQLite.
	boolOpt("quick", "quick", func(f *checkFlags) *bool { return &f.quick }),
	// SQL Server.
	boolOpt("physical_only", "physical-only", func(f *checkFlags) *bool { return &f.physicalOnly }),
	boolOpt("data_purity", "data-purity", func(f *checkFlags) *bool { return &f.dataPurity }),
	boolOpt("extended_logical_checks", "extended-logical-checks", func(f *checkFlags) *bool { return &f.extendedLogical }),
	boolOpt("tablock", "tablock", func(f *checkFlags) *bool { return &f.tabLock }),
	boolOpt("noindex", "noindex", func(f *checkFlags) *bool { return &f.noIndex }),
	{"maxdop", "maxdop", func(d *decoder, v *yaml.Node, p string, t *targetConfig) {
		if n, ok := d.integer(v, p, 0, 1024); ok {
			t.flags.maxDOP = int(n)
		}
	}},
	// Every engine.
	{"max_rate", "", func(d *decoder, v *yaml.Node, p string, t *targetConfig) {
		s, ok := d.scalar(v, p)
		if !ok {
			return
		}
		mb, err := strconv.ParseFloat(s, 64)
		if err != nil || mb <= 0 || math.IsInf(mb, 0) || math.IsNaN(mb) {
			d.errorf(v, p, "want a positive number of MB per second, got %q", s)
			return
		}
		t.runnerOpts = append(t.runnerOpts, checks.WithMaxRate(int64(mb*1e6)))
		t.flags.maxRate = mb // PostgreSQL: heap chunks of about a second's worth
	}},
	{"retries", "", func(d *decoder, v *yaml.Node, p string, t *targetConfig) {
		if n, ok := d.integer(v, p, 0, 100); ok {
			t.runnerOpts = append(t.runnerOpts, checks.WithRetries(int(n)))
		}
	}},
}

// options decodes a target's options, checking each applies to its
// engine.
func (d *decoder) options(n *yaml.Node, path string, eng *engine, t *targetConfig) {
	fields := make([]field, len(targetOptions))
	for i, o := range targetOptions {
		fields[i] = field{o.key, func(v *yaml.Node, p string) {
			if o.flag != "" && !slices.Contains(eng.flags, o.flag) {
				var owners []string
				for _, e := range engines {
					if slices.Contains(e.flags, o.flag) {
						owners = append(owners, e.title)
					}
				}
				d.errorf(v, p, "does not apply to %s (it is an option of %s)", eng.title, strings.Join(owners, " and "))
				return
			}
			if o.flag != "" {
				t.flags.set[o.flag] = true
			}
			o.set(d, v, p, t)
		}}
	}
	d.mapping(n, path, fields...)
}

// liveOnlyFingerprintKeys are the keys of a fingerprint block that apply
// only to a comparison with another database.
var liveOnlyFingerprintKeys = []string{"chunk_rows", "chunk_time", "min_chunk_rows", "max_ranges"}

// fingerprint decodes a target's fingerprint block: the target (tgt, of
// engine eng) is compared on every run with a stored fingerprint
// (against) or with another database of the same engine (against_dsn,
// against_dsn_env or against_dsn_file, with against_password_env or
// against_password_file). The other database's password joins the
// target's secrets.
func (d *decoder) fingerprint(n *yaml.Node, path string, eng *engine, tgt checks.Target, t *targetConfig) *fingerprintConfig {
	before := len(d.errs)
	tf := targetFields{prefix: "against_", nodes: map[string]*yaml.Node{}}
	keep := func(dst *string) func(v *yaml.Node, p string) {
		return func(v *yaml.Node, p string) {
			tf.nodes[p[strings.LastIndex(p, ".")+1:]] = v
			d.str(v, p, dst)
		}
	}
	var (
		against          string
		tables, excluded []string
		chunkRows        int64
		chunkTime        time.Duration
		jobs             int
		minRows          int64
		maxRanges        int
	)
	seen := d.mapping(n, path,
		field{"against", keep(&against)},
		field{"against_dsn", keep(&tf.dsn)},
		field{"against_dsn_env", keep(&tf.dsnEnv)},
		field{"against_dsn_file", keep(&tf.dsnFile)},
		field{"against_password_env", keep(&tf.passwordEnv)},
		field{"against_password_file", keep(&tf.passwordFile)},
		field{"tables", func(v *yaml.Node, p string) { tables = d.list(v, p) }},
		field{"exclude_tables", func(v *yaml.Node, p string) { excluded = d.list(v, p) }},
		field{"chunk_rows", func(v *yaml.Node, p string) {
			if r, ok := d.integer(v, p, 1, math.MaxInt64); ok {
				chunkRows = r
			}
		}},
		field{"chunk_time", func(v *yaml.Node, p string) { d.duration(v, p, &chunkTime) }},
		field{"jobs", func(v *yaml.Node, p string) { d.intField(v, p, 1, &jobs) }},
		field{"min_chunk_rows", func(v *yaml.Node, p string) {
			if r, ok := d.integer(v, p, 1, math.MaxInt64); ok {
				minRows = r
			}
		}},
		field{"max_ranges", func(v *yaml.Node, p string) { d.intField(v, p, 1, &maxRanges) }},
	)
	if isNull(n) || n.Kind != yaml.MappingNode {
		if isNull(n) {
			d.errorf(n, path, "empty: set against (a fingerprint file) or against_dsn (a database to compare with)")
		}
		return nil
	}
	live := tf.nodes["against_dsn"] != nil || tf.nodes["against_dsn_env"] != nil || tf.nodes["against_dsn_file"] != nil
	_, file := seen["against"]
	switch {
	case !live && !file:
		d.errorf(n, path, "missing against: set against (a fingerprint file written by dbscrub fingerprint -o) or one of against_dsn, against_dsn_env and against_dsn_file (a database to compare with, such as a restored backup)")
		return nil
	case live && file:
		d.errorf(tf.dsnNode(), path+"."+tf.dsnKey(), "set only one of against (a fingerprint file) and %s (a database)", tf.dsnKey())
		return nil
	}
	if _, ok := tgt.(checks.Fingerprinter); !ok {
		d.errorf(n, path, "%s cannot take fingerprints", eng.title)
		return nil
	}
	if v := seen["jobs"]; v != nil && eng.title != "PostgreSQL" {
		d.errorf(v, path+".jobs", "does not apply to %s (only PostgreSQL hashes chunks on several connections, in one exported snapshot)", eng.title)
	}

	var fopts []checks.FingerprintOption
	if len(tables) > 0 {
		fopts = append(fopts, checks.WithTables(tables...))
	}
	if len(excluded) > 0 {
		fopts = append(fopts, checks.WithExcludeTables(excluded...))
	}
	if chunkTime > 0 {
		fopts = append(fopts, checks.WithChunkTime(chunkTime))
	}
	if chunkRows > 0 {
		fopts = append(fopts, checks.WithChunkRows(chunkRows))
	}
	if jobs > 0 {
		fopts = append(fopts, checks.WithFingerprintJobs(jobs))
	}
	fcfg, err := checks.NewFingerprintConfig(fopts...)
	if err != nil {
		at, key := n, ""
		for _, k := range []string{"tables", "exclude_tables"} {
			if v := seen[k]; v != nil {
				at, key = v, "."+k
			}
		}
		d.errorf(at, path+key, "%s", flagError(err))
		return nil
	}
	copts := []checks.CompareOption{checks.WithFingerprintOptions(fopts...)}
	if minRows > 0 {
		copts = append(copts, checks.WithMinChunkRows(minRows))
	}
	if maxRanges > 0 {
		copts = append(copts, checks.WithMaxRanges(maxRanges))
	}
	fc := &fingerprintConfig{opts: copts}

	if file {
		for _, k := range liveOnlyFingerprintKeys {
			if v := seen[k]; v != nil {
				d.errorf(v, path+"."+k, "applies only to a comparison with a database (against_dsn): compared with a fingerprint file, the target is cut into the file's chunks")
			}
		}
		at := tf.nodes["against"]
		if against == "" {
			d.errorf(at, path+".against", "empty: name a fingerprint file written by dbscrub fingerprint -o")
			return nil
		}
		fc.stored = d.path(against)
		fp, err := readStoredFingerprint(fc.stored)
		if err != nil {
			d.errorf(at, path+".against", "%s", fileError(err))
			return nil
		}
		if engine := tgt.Info().Engine; fp.Engine != engine {
			d.errorf(at, path+".against", "%s is a fingerprint of a %s database and the target is %s: dbscrub compares fingerprints of the same engine only", against, fp.Engine, eng.title)
		}
		switch {
		case len(fp.Tables) == 0:
			d.errorf(at, path+".against", "%s holds no table: nothing would be compared", against)
		case len(fp.FilterTables(fcfg).Tables) == 0:
			pat, key := at, ".against"
			if v := seen["tables"]; v != nil {
				pat, key = v, ".tables"
			} else if v := seen["exclude_tables"]; v != nil {
				pat, key = v, ".exclude_tables"
			}
			d.errorf(pat, path+key, "no table of %s matches tables and exclude_tables: nothing would be compared", against)
		}
		if len(d.errs) > before {
			return nil
		}
		return fc
	}

	dsn, inline := d.rawDSN(n, path, path, &tf)
	if dsn == "" {
		d.password(path, &tf, "")
		return nil
	}
	var secrets []string
	if pw := redact.Password(dsn); pw != "" {
		secrets = append(secrets, pw)
		if inline {
			d.warnf(tf.dsnNode(), path+"."+tf.dsnKey(), "the DSN holds a password in the config file; keep it out with against_password_env or against_password_file")
		}
	}
	dsnAt, dsnPath := tf.dsnNode(), path+"."+tf.dsnKey()
	scrub := func(err error) string { return redact.Scrub(err.Error(), append(secrets, t.secrets...)...) }
	other, err := pick(dsn)
	switch {
	case err != nil:
		d.errorf(dsnAt, dsnPath, "%s", scrub(err))
	case other.title != eng.title:
		d.errorf(dsnAt, dsnPath, "names a %s database and the target is %s: dbscrub compares databases of the same engine only", other.title, eng.title)
	default:
		// Parse only: nothing connects before a run.
		if _, closer, err := openFingerprinter(dsn); err != nil {
			d.errorf(dsnAt, dsnPath, "%s", scrub(err))
		} else {
			closer.Close()
		}
	}
	full := dsn
	if pw := d.password(path, &tf, dsn); pw != "" {
		secrets = append(secrets, pw)
		var err error
		if full, err = injectPassword(dsn, pw); err != nil {
			key := tf.key("password_env")
			if tf.nodes[key] == nil {
				key = tf.key("password_file")
			}
			d.errorf(tf.nodes[key], path+"."+key, "%s", scrub(err))
		}
	}
	t.secrets = append(t.secrets, secrets...)
	if len(d.errs) > before {
		return nil
	}
	fc.dsn = full
	return fc
}
