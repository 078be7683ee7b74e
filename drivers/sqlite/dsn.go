package sqlite

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// uriParams are the SQLite URI parameters a DSN may carry. Everything else
// is rejected: driver parameters such as _pragma could change the file
// (journal_mode=wal), and a typo should not pass silently.
var uriParams = []string{"cache", "immutable", "mode", "nolock", "psow", "vfs"}

// parseDSN splits a DSN into the database file path and its SQLite URI
// parameters. It accepts "sqlite:///abs/path.db", "sqlite://relative.db",
// "sqlite:relative.db", "file:path.db?param=value" (an SQLite URI) and a
// plain path, taken literally.
func parseDSN(dsn string) (string, url.Values, error) {
	if dsn == "" {
		return "", nil, errors.New("empty DSN: want a file path, sqlite:///path/to/file.db or file:path.db")
	}
	var (
		path, rawQuery string
		isURI          = true
		lower          = strings.ToLower(dsn)
	)
	switch {
	case strings.HasPrefix(lower, "sqlite://"):
		// sqlite:///abs/path.db has an empty host and an absolute path;
		// sqlite://relative.db puts the first path element where a host
		// would be, so everything after the "//" is the path.
		path, rawQuery, _ = strings.Cut(dsn[len("sqlite://"):], "?")
	case strings.HasPrefix(lower, "sqlite:"):
		path, rawQuery, _ = strings.Cut(dsn[len("sqlite:"):], "?")
	case strings.HasPrefix(lower, "file:"):
		path, rawQuery, _ = strings.Cut(dsn[len("file:"):], "?")
		path, _, _ = strings.Cut(path, "#")
		rawQuery, _, _ = strings.Cut(rawQuery, "#")
		if rest, ok := strings.CutPrefix(path, "//"); ok {
			// file://host/path: SQLite accepts only an empty host or
			// "localhost".
			host, p, _ := strings.Cut(rest, "/")
			if host != "" && !strings.EqualFold(host, "localhost") {
				return "", nil, fmt.Errorf("file URI %q names host %q: only local files can be checked", dsn, host)
			}
			path = "/" + p
		}
	default:
		path, isURI = dsn, false
	}
	if isURI {
		p, err := url.PathUnescape(path)
		if err != nil {
			return "", nil, fmt.Errorf("DSN %q: bad escape in path: %w", dsn, err)
		}
		path = p
	}
	params, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", nil, fmt.Errorf("DSN %q: bad query: %w", dsn, err)
	}
	for k, vs := range params {
		if !slices.Contains(uriParams, k) {
			return "", nil, fmt.Errorf("DSN %q: parameter %q is not accepted (accepted: %s; dbscrub sets mode=ro, query_only and busy_timeout itself)", dsn, k, strings.Join(uriParams, ", "))
		}
		if k == "mode" && (len(vs) != 1 || vs[0] != "ro") {
			return "", nil, fmt.Errorf("DSN %q asks for mode=%s: dbscrub opens databases read-only (mode=ro)", dsn, strings.Join(vs, ","))
		}
	}
	params.Del("mode")
	if path == "" {
		return "", nil, fmt.Errorf("DSN %q names no file", dsn)
	}
	if path == ":memory:" || strings.HasPrefix(path, ":memory:") {
		return "", nil, fmt.Errorf("DSN %q is an in-memory database: opened here it would be new and empty; pass the *sql.DB that holds it to New", dsn)
	}
	return path, params, nil
}

// fileURI returns the SQLite URI that opens the file at path read-only,
// with the caller's URI parameters and the driver's pragmas.
func fileURI(path string, params url.Values, cfg config) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("resolving %q: %w", path, err)
	}
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // Windows: file:/C:/dir/app.db
	}
	q := url.Values{}
	for k, vs := range params {
		q[k] = slices.Clone(vs)
	}
	q.Set("mode", "ro")
	// modernc.org/sqlite runs _pragma values on every new connection,
	// busy_timeout first.
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(cfg.busyTimeoutMillis(), 10)+")")
	q.Add("_pragma", "query_only(1)")
	return "file:" + escapeURIPath(p) + "?" + q.Encode(), nil
}

// escapeURIPath escapes the characters that end or change an SQLite URI
// path: '%' (escapes), '?' (query) and '#' (fragment), and control
// characters.
func escapeURIPath(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' || c == '?' || c == '#' || c < 0x20 || c == 0x7f {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
