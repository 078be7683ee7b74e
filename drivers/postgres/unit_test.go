package postgres

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/dbscrub/dbscrub/checks"
)

func TestOptionsValidation(t *testing.T) {
	tests := []struct {
		name string
		opt  Option
	}{
		{"negative statement timeout", WithStatementTimeout(-time.Second)},
		{"huge statement timeout", WithStatementTimeout(30 * 24 * time.Hour)},
		{"negative lock timeout", WithLockTimeout(-1)},
		{"tiny chunk", WithChunkSize(100)},
		{"negative recovery wait", WithRecoveryWait(-time.Second)},
		{"nil logger", WithLogger(nil)},
		{"negative baseline", WithChecksumFailuresBaseline(-1)},
		{"no include pattern", WithIncludeRelations()},
		{"empty exclude pattern", WithExcludeSchemas("")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Open("postgres://u@h/db", tt.opt); !errors.Is(err, checks.ErrInvalidOption) {
				t.Errorf("Open: %v, want ErrInvalidOption", err)
			}
			if _, err := New(nil); !errors.Is(err, checks.ErrInvalidOption) {
				t.Errorf("New(nil): %v, want ErrInvalidOption", err)
			}
		})
	}
	tg, err := Open("host=h dbname=d user=u", WithStatementTimeout(0), WithLockTimeout(0), WithRecoveryWait(0), WithChunkSize(8192),
		WithHeapAllIndexed(), WithParentCheck(), WithInstallAmcheck(), WithChecksumFailuresBaseline(0))
	if err != nil {
		t.Fatal(err)
	}
	if tg.cfg.statementTimeout != 0 || !tg.cfg.parentCheck || *tg.cfg.checksumBaseline != 0 {
		t.Errorf("config %+v", tg.cfg)
	}
}

func TestChecksSelection(t *testing.T) {
	tg, err := Open("postgres://u@h/db")
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	cks, err := tg.Checks()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cks {
		names = append(names, c.Name())
	}
	var defaults []string
	for _, c := range Catalog() {
		if c.Description == "" {
			t.Errorf("%s has no description", c.Name)
		}
		if c.Default {
			defaults = append(defaults, c.Name)
		}
	}
	if strings.Join(names, ",") != strings.Join(defaults, ",") {
		t.Errorf("default checks %v, catalog defaults %v", names, defaults)
	}
	cks, err = tg.Checks("settings", "heap")
	if err != nil || len(cks) != 2 || cks[0].Name() != "heap" || cks[1].Name() != "settings" {
		t.Errorf("Checks(settings, heap) = %v, %v", cks, err)
	}
	_, err = tg.Checks("heap", "bogus")
	if !errors.Is(err, checks.ErrUnknownCheck) || !strings.Contains(err.Error(), "btree, checksums, crosscheck, heap, settings") {
		t.Errorf("unknown check: %v", err)
	}
}

func TestPatterns(t *testing.T) {
	tests := []struct {
		pat, schema, rel string
		want             bool
	}{
		{"public.*", "public", "t", true},
		{"public.*", "other", "t", false},
		{"t", "any", "t", true},
		{"t", "any", "t2", false},
		{"t?", "any", "t2", true},
		{"t?", "any", "t22", false},
		{"*.t_*", "s", "t_1", true},
		{"*", "s", "anything", true},
		{"p*c.*", "public", "x", true},
		{"Mixed", "public", "mixed", false},
		{"a*b*c", "s", "aXbYc", true},
		{"a*b*c", "s", "aXbYd", false},
	}
	for _, tt := range tests {
		p, err := compilePattern(tt.pat)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.matchRelation(tt.schema, tt.rel); got != tt.want {
			t.Errorf("%q matches %s.%s = %v, want %v", tt.pat, tt.schema, tt.rel, got, tt.want)
		}
	}
	var c config
	for _, o := range []Option{WithIncludeSchemas("app*"), WithExcludeRelations("*_old"), WithIncludeRelations("orders*", "app2.*")} {
		if err := o(&c); err != nil {
			t.Fatal(err)
		}
	}
	f := newFilter(&c)
	for _, tt := range []struct {
		schema string
		names  []string
		want   bool
	}{
		{"app1", []string{"orders"}, true},
		{"app1", []string{"orders_old"}, false},
		{"other", []string{"orders"}, false},
		{"app2", []string{"customers"}, true},
		{"app1", []string{"customers"}, false},
		{"app1", []string{"orders_idx", "orders"}, true},
		{"app1", []string{"idx", "orders_old"}, false},
	} {
		if got := f.relationOK(tt.schema, tt.names...); got != tt.want {
			t.Errorf("relationOK(%s, %v) = %v, want %v", tt.schema, tt.names, got, tt.want)
		}
	}
}

func TestCorruptionClassification(t *testing.T) {
	tests := []struct {
		err     error
		corrupt bool
		page    int64
	}{
		{&pq.Error{Code: "XX001", Message: "invalid page in block 12 of relation base/5/16384"}, true, 12},
		{&pq.Error{Code: "XX002", Message: `item order invariant violated for index "i"`, Detail: "Lower index tid=(3,7) (points to heap tid=(0,1))"}, true, 3},
		{&pq.Error{Code: "58P01", Message: `could not open file "base/5/1": No such file or directory`}, true, -1},
		{&pq.Error{Code: "XX000", Message: `could not read block 4 in file "base/5/1": Input/output error`}, true, 4},
		{&pq.Error{Code: "XX000", Message: "cache lookup failed for relation 1"}, false, -1},
		{&pq.Error{Code: "55P03", Message: "canceling statement due to lock timeout"}, false, -1},
		{errors.New("plain"), false, -1},
	}
	for _, tt := range tests {
		f, ok := corruption(fmt.Errorf("wrapped: %w", tt.err), "obj")
		if ok != tt.corrupt {
			t.Errorf("%v: corrupt = %v", tt.err, ok)
			continue
		}
		if !ok {
			continue
		}
		if f.Object != "obj" || f.Severity != checks.StatusCorrupt || f.Remedy == "" {
			t.Errorf("%v: finding %+v", tt.err, f)
		}
		if tt.page >= 0 && (f.Location.Page == nil || *f.Location.Page != tt.page) {
			t.Errorf("%v: location %s, want page %d", tt.err, f.Location, tt.page)
		}
	}
}

func TestConnLost(t *testing.T) {
	for _, err := range []error{driver.ErrBadConn, io.ErrUnexpectedEOF, fmt.Errorf("x: %w", io.EOF), errors.New("read tcp: connection reset by peer"), &pq.Error{Code: "57P01"}} {
		if !isConnLost(err) {
			t.Errorf("isConnLost(%v) = false", err)
		}
	}
	for _, err := range []error{errors.New("syntax"), &pq.Error{Code: "XX001"}, &pq.Error{Code: "57014"}} {
		if isConnLost(err) {
			t.Errorf("isConnLost(%v) = true", err)
		}
	}
}

func TestHelpers(t *testing.T) {
	for in, want := range map[string]string{"public": "public", "Mixed": `"Mixed"`, "user": `"user"`, "a b": `"a b"`, "x$1": "x$1", "1x": `"1x"`} {
		if got := quoteIdent(in); got != want {
			t.Errorf("quoteIdent(%q) = %s, want %s", in, got, want)
		}
	}
	for _, tt := range []struct {
		val, risky string
		want       bool
	}{{"on", "on", true}, {"'true'", "on", true}, {"off", "on", false}, {"0", "off", true}, {"on", "off", false}} {
		if got := isRiskyValue(tt.val, tt.risky); got != tt.want {
			t.Errorf("isRiskyValue(%q, %q) = %v", tt.val, tt.risky, got)
		}
	}
	if got := oneLine("a\n  b\r\nc"); got != "a b c" {
		t.Errorf("oneLine = %q", got)
	}
	if s := dsnSecrets("postgres://u:p%40ss:x@h:bad/db"); len(s) == 0 {
		t.Error("no secret found in an unparsable URL")
	}
}
