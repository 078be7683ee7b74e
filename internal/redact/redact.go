// Package redact removes secrets (DSN passwords) from text before it reaches
// a log line, an error, a span, an alarm or a report.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces a secret.
const Mask = "xxxxx"

// DSN returns dsn with its password replaced by [Mask]. It understands URLs
// (postgres://user:pass@host/db, sqlserver://...), key=value strings
// (host=h password=secret) and semicolon-separated ones (Password=secret;).
// When it cannot parse a URL, it masks everything between "://" and the last
// "@" of the authority rather than risk leaking it.
func DSN(dsn string) string {
	out := dsn
	if i := strings.Index(dsn, "://"); i >= 0 {
		if u, err := url.Parse(dsn); err == nil {
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), Mask)
			}
			q := u.Query()
			changed := false
			for k := range q {
				if isPasswordKey(k) {
					q.Set(k, Mask)
					changed = true
				}
			}
			if changed {
				u.RawQuery = q.Encode()
			}
			out = u.String()
			out = strings.Replace(out, url.QueryEscape(Mask), Mask, -1)
		} else {
			rest := dsn[i+3:]
			end := strings.IndexAny(rest, "/?#")
			if end < 0 {
				end = len(rest)
			}
			if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
				out = dsn[:i+3] + Mask + rest[at:]
			}
		}
	}
	out = kvPassword.ReplaceAllString(out, "${1}"+Mask)
	return out
}

// Password returns the password in dsn, or "" when it has none that
// [DSN] can find.
func Password(dsn string) string {
	if strings.Contains(dsn, "://") {
		if u, err := url.Parse(dsn); err == nil {
			if p, ok := u.User.Password(); ok {
				return p
			}
			for k, v := range u.Query() {
				if isPasswordKey(k) && len(v) > 0 {
					return v[0]
				}
			}
		}
	}
	if m := kvPassword.FindStringSubmatch(dsn); m != nil {
		return strings.Trim(m[2], `'"`)
	}
	return ""
}

// kvPassword matches password=value in key=value and semicolon DSNs.
var kvPassword = regexp.MustCompile(`(?i)((?:^|[\s;&?])(?:password|pwd|pass)\s*=\s*)('[^']*'|"[^"]*"|[^\s;&]+)`)

func isPasswordKey(k string) bool {
	switch strings.ToLower(k) {
	case "password", "pwd", "pass", "sslpassword":
		return true
	}
	return false
}

// Scrub replaces every occurrence of each non-empty secret in s (and of its
// URL-escaped forms) with [Mask].
func Scrub(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		for _, form := range []string{sec, url.QueryEscape(sec), url.PathEscape(sec), strings.ReplaceAll(url.QueryEscape(sec), "+", "%20")} {
			s = strings.ReplaceAll(s, form, Mask)
		}
	}
	return s
}

// Error returns err with secrets scrubbed from its message. errors.Is and
// errors.As still see the original chain. It returns nil for a nil err and
// err itself when no secret is given.
func Error(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	has := false
	for _, s := range secrets {
		has = has || s != ""
	}
	if !has {
		return err
	}
	return &scrubbed{err: err, msg: Scrub(err.Error(), secrets...)}
}

type scrubbed struct {
	err error
	msg string
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }
