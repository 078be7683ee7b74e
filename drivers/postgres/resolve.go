package postgres

import (
	"context"
	"database/sql"
	"strings"

	"github.com/lib/pq"
)

// Kinds of relation reference.
const (
	refSelf       = ""            // the relation schema.name itself
	refToast      = "toast"       // the TOAST table of schema.name
	refToastIndex = "toast-index" // the index of the TOAST table of schema.name
)

// relRef names a relation by its raw (unquoted) schema and name, or by the
// table it belongs to, so that tasks carry names, never OIDs. TOAST
// relations are reached through their table: their own names contain OIDs,
// and resolving a name in schema pg_toast would need USAGE on it, which
// roles other than superusers lack.
type relRef struct {
	schema, name, kind string
}

// resolveQuery turns relation references into OIDs by reading the catalog
// (which needs no privilege); a relation that no longer exists gives NULL.
const resolveQuery = `SELECT CASE r.kind
		WHEN 'toast' THEN NULLIF(c.reltoastrelid, 0)
		WHEN 'toast-index' THEN (SELECT i.indexrelid FROM pg_catalog.pg_index i
			WHERE i.indrelid = c.reltoastrelid AND c.reltoastrelid <> 0 ORDER BY i.indexrelid LIMIT 1)
		ELSE c.oid END
FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS r(nsp, rel, kind, ord)
LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = r.nsp
LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = r.rel
ORDER BY r.ord`

// resolve returns the current OID of each reference; 0 for those that no
// longer exist.
func (s *session) resolve(ctx context.Context, refs []relRef) ([]int64, error) {
	nsps := make([]string, len(refs))
	rels := make([]string, len(refs))
	kinds := make([]string, len(refs))
	for i, r := range refs {
		nsps[i], rels[i], kinds[i] = r.schema, r.name, r.kind
	}
	rows, err := s.tx.QueryContext(ctx, resolveQuery, pq.Array(nsps), pq.Array(rels), pq.Array(kinds))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]int64, 0, len(refs))
	for rows.Next() {
		var oid sql.NullInt64
		if err := rows.Scan(&oid); err != nil {
			return nil, err
		}
		out = append(out, oid.Int64)
	}
	return out, rows.Err()
}

// isGone reports whether err says the relation was dropped concurrently.
func isGone(err error) bool {
	se, ok := asServerError(err)
	if !ok {
		return false
	}
	return se.code == "42P01" || strings.Contains(se.message, "could not open relation with OID")
}
