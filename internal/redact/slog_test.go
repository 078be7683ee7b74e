package redact

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	const pw = "hunter2!"
	var buf bytes.Buffer
	log := slog.New(Handler(slog.NewJSONHandler(&buf, nil), "", pw))
	log = log.With("dsn", "postgres://u:"+pw+"@h/db").WithGroup("g")
	log.Info("connecting with "+pw,
		"err", fmt.Errorf("dial: %w", errors.New("bad password "+pw)),
		"any", struct{ P string }{pw},
		"nested", slog.GroupValue(slog.String("p", pw)),
		"plain", 42)
	out := buf.String()
	if strings.Contains(out, pw) || strings.Contains(out, "hunter2%21") {
		t.Fatalf("secret leaked: %s", out)
	}
	for _, want := range []string{Mask, `"plain":42`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s: %s", want, out)
		}
	}
	inner := slog.NewTextHandler(&buf, nil)
	if Handler(inner) != slog.Handler(inner) || Handler(inner, "") != slog.Handler(inner) {
		t.Error("without secrets Handler must return inner")
	}
}
