package postgres

import (
	"errors"
	"strings"

	"github.com/dbscrub/dbscrub/internal/glob"
)

// pattern is a compiled shell-style name pattern (see WithIncludeRelations).
type pattern struct {
	text      string
	qualified bool // contains a '.': matched against "schema.relation"
}

func compilePattern(p string) (pattern, error) {
	if p == "" {
		return pattern{}, errors.New("empty pattern")
	}
	if strings.ContainsAny(p, "\x00") {
		return pattern{}, errors.New("pattern contains a NUL byte")
	}
	return pattern{text: p, qualified: strings.Contains(p, ".")}, nil
}

// matchName reports whether the pattern matches a schema name.
func (p pattern) matchName(name string) bool { return glob.Match(p.text, name) }

// matchRelation reports whether a relation pattern matches the relation
// schema.name.
func (p pattern) matchRelation(schema, name string) bool {
	if p.qualified {
		return glob.Match(p.text, schema+"."+name)
	}
	return glob.Match(p.text, name)
}

// filter applies the include/exclude options.
type filter struct {
	inSchemas, exSchemas []pattern
	inRels, exRels       []pattern
}

func newFilter(c *config) filter {
	return filter{inSchemas: c.includeSchemas, exSchemas: c.excludeSchemas, inRels: c.includeRelations, exRels: c.excludeRelations}
}

func (f filter) schemaOK(schema string) bool {
	for _, p := range f.exSchemas {
		if p.matchName(schema) {
			return false
		}
	}
	if len(f.inSchemas) == 0 {
		return true
	}
	for _, p := range f.inSchemas {
		if p.matchName(schema) {
			return true
		}
	}
	return false
}

// relationOK reports whether a relation passes the filters. names are the
// relation names the relation answers to within schema (a table: its own
// name; an index: its name and its table's name).
func (f filter) relationOK(schema string, names ...string) bool {
	if !f.schemaOK(schema) {
		return false
	}
	for _, p := range f.exRels {
		for _, n := range names {
			if p.matchRelation(schema, n) {
				return false
			}
		}
	}
	if len(f.inRels) == 0 {
		return true
	}
	for _, p := range f.inRels {
		for _, n := range names {
			if p.matchRelation(schema, n) {
				return true
			}
		}
	}
	return false
}
