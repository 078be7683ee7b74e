package redact

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"
)

func TestDSN(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"url with password", "postgres://alice:s3cret@db:5432/app?sslmode=disable", "postgres://alice:xxxxx@db:5432/app?sslmode=disable"},
		{"url without password", "postgres://alice@db/app", "postgres://alice@db/app"},
		{"password in query", "postgres://db/app?user=a&password=s3cret", "postgres://db/app?password=xxxxx&user=a"},
		{"key value", "host=db user=a password=s3cret dbname=app", "host=db user=a password=xxxxx dbname=app"},
		{"key value quoted", "host=db password='s3 cret' dbname=app", "host=db password=xxxxx dbname=app"},
		{"semicolons", "Server=db;User Id=sa;Password=s3cret;Database=app", "Server=db;User Id=sa;Password=xxxxx;Database=app"},
		{"unparsable url", "postgres://alice:s3cret@db:notaport/app", "postgres://xxxxx@db:notaport/app"},
		{"sqlite path", "/var/lib/app.db", "/var/lib/app.db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DSN(tt.in)
			if got != tt.want {
				t.Errorf("DSN(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if strings.Contains(got, "s3cret") || strings.Contains(got, "s3 cret") {
				t.Errorf("DSN(%q) leaks the password: %q", tt.in, got)
			}
		})
	}
}

func TestPassword(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://alice:s3cret@db/app", "s3cret"},
		{"postgres://alice:p%40ss@db/app", "p@ss"},
		{"postgres://db/app?password=q", "q"},
		{"host=db password='a b'", "a b"},
		{"Server=db;Password=x;", "x"},
		{"postgres://alice@db/app", ""},
		{"file.db", ""},
	}
	for _, tt := range tests {
		if got := Password(tt.in); got != tt.want {
			t.Errorf("Password(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestError(t *testing.T) {
	//lint:ignore SA1007 the URL is invalid on purpose: url.Error quotes it, password and all
	_, perr := url.Parse("postgres://alice:p@ss w@db:x/app")
	err := Error(fmt.Errorf("open: %w", io.ErrUnexpectedEOF), "p@ss w")
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Error("Error must keep the chain")
	}
	wrapped := Error(fmt.Errorf("connect: %w", perr), "p@ss w")
	if strings.Contains(wrapped.Error(), "p@ss") || strings.Contains(wrapped.Error(), "p%40ss") {
		t.Errorf("secret leaked: %v", wrapped)
	}
	if Error(nil, "x") != nil {
		t.Error("Error(nil) must be nil")
	}
	plain := errors.New("plain")
	if Error(plain) != plain {
		t.Error("Error without secrets must return err unchanged")
	}
}
