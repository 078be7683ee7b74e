package alarm

import (
	"context"
	"log/slog"
)

// LogSink returns a sink that writes each alarm as one slog record: level
// error for firing critical alarms, warn for other firing alarms, info for
// resolved ones. Its name is "log".
func LogSink(l *slog.Logger) Sink {
	if l == nil {
		l = slog.Default()
	}
	return logSink{l}
}

type logSink struct{ l *slog.Logger }

func (logSink) Name() string { return "log" }

func (s logSink) Send(ctx context.Context, alarms []Alarm) error {
	for _, a := range alarms {
		level := slog.LevelInfo
		if a.State == StateFiring {
			level = slog.LevelWarn
			if a.Severity == SeverityCritical {
				level = slog.LevelError
			}
		}
		attrs := []slog.Attr{
			slog.String("target", a.Target),
			slog.String("check", a.Check),
			slog.String("kind", string(a.Kind)),
			slog.String("severity", string(a.Severity)),
			slog.String("state", string(a.State)),
			slog.Time("first_seen", a.FirstSeen),
			slog.Int("findings", a.FindingsTotal),
		}
		if !a.ResolvedAt.IsZero() {
			attrs = append(attrs, slog.Time("resolved_at", a.ResolvedAt))
		}
		if len(a.Labels) > 0 {
			var labels []any
			for k, v := range a.Labels {
				labels = append(labels, slog.String(k, v))
			}
			attrs = append(attrs, slog.Group("labels", labels...))
		}
		s.l.LogAttrs(ctx, level, "dbscrub alarm "+string(a.State)+": "+a.Summary, attrs...)
	}
	return nil
}

// FuncSink returns a sink that calls f with each batch. name must be unique
// among a Manager's sinks.
func FuncSink(name string, f func(ctx context.Context, alarms []Alarm) error) Sink {
	return funcSink{name: name, f: f}
}

type funcSink struct {
	name string
	f    func(context.Context, []Alarm) error
}

func (s funcSink) Name() string { return s.name }

func (s funcSink) Send(ctx context.Context, alarms []Alarm) error { return s.f(ctx, alarms) }
