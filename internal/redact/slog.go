package redact

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// Handler returns a slog.Handler that scrubs secrets (see [Scrub]) from
// every message and attribute before passing the record to inner. Values
// that do not contain a secret are passed on unchanged; an error attribute
// that does becomes an error with the scrubbed message. With no non-empty
// secret it returns inner itself.
func Handler(inner slog.Handler, secrets ...string) slog.Handler {
	var keep []string
	for _, s := range secrets {
		if s != "" {
			keep = append(keep, s)
		}
	}
	if len(keep) == 0 {
		return inner
	}
	return scrubHandler{inner: inner, secrets: keep}
}

type scrubHandler struct {
	inner   slog.Handler
	secrets []string
}

func (h scrubHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h scrubHandler) Handle(ctx context.Context, r slog.Record) error {
	nr := slog.NewRecord(r.Time, r.Level, Scrub(r.Message, h.secrets...), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		nr.AddAttrs(h.attr(a))
		return true
	})
	return h.inner.Handle(ctx, nr)
}

func (h scrubHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, Scrub(v.String(), h.secrets...))
	case slog.KindGroup:
		g := v.Group()
		out := make([]slog.Attr, len(g))
		for i, ga := range g {
			out[i] = h.attr(ga)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			if msg := Scrub(err.Error(), h.secrets...); msg != err.Error() {
				return slog.Any(a.Key, errors.New(msg))
			}
			return slog.Attr{Key: a.Key, Value: v}
		}
		s := fmt.Sprint(v.Any())
		if c := Scrub(s, h.secrets...); c != s {
			return slog.String(a.Key, c)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func (h scrubHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = h.attr(a)
	}
	return scrubHandler{inner: h.inner.WithAttrs(out), secrets: h.secrets}
}

func (h scrubHandler) WithGroup(name string) slog.Handler {
	return scrubHandler{inner: h.inner.WithGroup(name), secrets: h.secrets}
}
