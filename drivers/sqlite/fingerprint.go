package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dbscrub/dbscrub/checks"
)

// fpTable is one SQLite table to fingerprint.
type fpTable struct {
	name  string
	rel   string // "main"."name"
	cols  []checks.Column
	pk    []string
	keyed bool
	note  string
}

// fpTables lists the tables of the main database (or only the one named),
// leaving out SQLite's own (sqlite_%) and virtual tables.
func (t *Target) fpTables(ctx context.Context, tx *sql.Tx, only string) ([]*fpTable, error) {
	rows, err := tx.QueryContext(ctx, `SELECT name, COALESCE(sql, '') FROM main.sqlite_schema
		WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND (? = '' OR name = ?) ORDER BY name`, only, only)
	if err != nil {
		return nil, err
	}
	var out []*fpTable
	for rows.Next() {
		var name, ddl string
		if err := rows.Scan(&name, &ddl); err != nil {
			rows.Close()
			return nil, err
		}
		if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(ddl)), "CREATE VIRTUAL TABLE") {
			continue // its rows live in shadow tables (fingerprinted) or outside the file
		}
		out = append(out, &fpTable{name: name, rel: "main." + quoteIdent(name)})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, tb := range out {
		if err := tb.describe(ctx, tx); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// describe reads the table's columns and primary key, and decides whether
// it can be chunked by key.
func (tb *fpTable) describe(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT name, type, "notnull", pk FROM pragma_table_info(?, 'main') ORDER BY cid`, tb.name)
	if err != nil {
		return err
	}
	type pkCol struct {
		name    string
		pos     int
		notNull bool
		typ     string
	}
	var pks []pkCol
	for rows.Next() {
		var name, typ string
		var notNull bool
		var pk int
		if err := rows.Scan(&name, &typ, &notNull, &pk); err != nil {
			rows.Close()
			return err
		}
		tb.cols = append(tb.cols, checks.Column{Name: name, Type: typ})
		if pk > 0 {
			pks = append(pks, pkCol{name, pk, notNull, typ})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(tb.cols) == 0 {
		return fmt.Errorf("table %s has no columns (is the schema readable?)", tb.name)
	}
	sort.Slice(pks, func(i, j int) bool { return pks[i].pos < pks[j].pos })
	if len(pks) == 0 {
		tb.note = "no primary key: whole-table aggregate; differences cannot be located inside the table"
		return nil
	}
	var nullable []string
	for _, p := range pks {
		tb.pk = append(tb.pk, p.name)
		rowidAlias := len(pks) == 1 && strings.EqualFold(p.typ, "INTEGER")
		if !p.notNull && !rowidAlias {
			nullable = append(nullable, quoteIdent(p.name)+" IS NULL")
		}
	}
	tb.keyed = true
	if len(nullable) > 0 {
		// SQLite lets a PRIMARY KEY column of a rowid table hold NULL; such
		// rows fall in no key range, so such a table is hashed whole.
		var hasNull bool
		q := "SELECT EXISTS (SELECT 1 FROM " + tb.rel + " WHERE " + strings.Join(nullable, " OR ") + ")"
		if err := tx.QueryRowContext(ctx, q).Scan(&hasNull); err != nil {
			return err
		}
		if hasNull {
			tb.keyed = false
			tb.pk = nil
			tb.note = "a primary key column holds NULL (SQLite allows it in rowid tables): whole-table aggregate; differences cannot be located inside the table"
		}
	}
	return nil
}

func (tb *fpTable) keyList() string {
	parts := make([]string, len(tb.pk))
	for i, k := range tb.pk {
		parts[i] = quoteIdent(k)
	}
	return strings.Join(parts, ", ")
}

// keyCompare returns `"k" op ?` (row-wise for a composite key) and appends
// the key's values to args.
func (tb *fpTable) keyCompare(op string, k checks.Key, args *[]any) (string, error) {
	vals, err := decodeKey(k, len(tb.pk))
	if err != nil {
		return "", err
	}
	*args = append(*args, vals...)
	if len(vals) == 1 {
		return quoteIdent(tb.pk[0]) + " " + op + " ?", nil
	}
	return "(" + tb.keyList() + ") " + op + " (" + strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ") + ")", nil
}

func (tb *fpTable) rangePred(r checks.KeyRange, args *[]any) (string, error) {
	return r.Where(func(op string, bound checks.Key) (string, error) { return tb.keyCompare(op, bound, args) })
}

// hashChunk reads and hashes the rows of one key range.
func (tb *fpTable) hashChunk(ctx context.Context, tx *sql.Tx, r checks.KeyRange) (checks.ChunkFingerprint, error) {
	var args []any
	where, err := tb.rangePred(r, &args)
	if err != nil {
		return checks.ChunkFingerprint{}, err
	}
	sel := make([]string, len(tb.cols))
	for i, c := range tb.cols {
		sel[i] = "+" + quoteIdent(c.Name)
	}
	rows, err := tx.QueryContext(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+tb.rel+where, args...)
	if err != nil {
		return checks.ChunkFingerprint{}, err
	}
	defer rows.Close()
	vals := make([]any, len(tb.cols))
	dest := make([]any, len(vals))
	for i := range vals {
		dest[i] = &vals[i]
	}
	ch := checks.ChunkFingerprint{Lower: r.Lower, Upper: r.Upper}
	var buf []byte
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return checks.ChunkFingerprint{}, err
		}
		buf = buf[:0]
		for _, v := range vals {
			if buf, err = appendValue(buf, v); err != nil {
				return checks.ChunkFingerprint{}, fmt.Errorf("table %s: %w", tb.name, err)
			}
		}
		sum := sha256.Sum256(buf)
		ch.Hash = ch.Hash.Add(checks.RowDigest(sum[:]))
		ch.Rows++
	}
	if err := rows.Err(); err != nil {
		return checks.ChunkFingerprint{}, err
	}
	return ch, nil
}

// Tags of the row encoding.
const (
	tagNull byte = iota
	tagInteger
	tagReal
	tagText
	tagBlob
)

// appendValue appends the type-tagged encoding of one value.
func appendValue(buf []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(buf, tagNull), nil
	case int64:
		buf = append(buf, tagInteger)
		return binary.BigEndian.AppendUint64(buf, uint64(x)), nil
	case float64:
		if x == 0 {
			x = 0 // -0 is 0 to SQLite
		}
		buf = append(buf, tagReal)
		return binary.BigEndian.AppendUint64(buf, math.Float64bits(x)), nil
	case string:
		buf = append(buf, tagText)
		buf = binary.AppendUvarint(buf, uint64(len(x)))
		return append(buf, x...), nil
	case []byte:
		buf = append(buf, tagBlob)
		buf = binary.AppendUvarint(buf, uint64(len(x)))
		return append(buf, x...), nil
	case time.Time:
		return nil, errors.New("the SQLite driver turned a value into a time.Time (does the pool use _texttotime?); a fingerprint needs the stored values")
	}
	return nil, fmt.Errorf("unexpected value of Go type %T from the SQLite driver", v)
}

// bound returns the key of the n-th row of r in key order, or nil when r
// has fewer rows.
func (tb *fpTable) bound(ctx context.Context, tx *sql.Tx, r checks.KeyRange, n int64) (checks.Key, error) {
	var args []any
	where, err := tb.rangePred(r, &args)
	if err != nil {
		return nil, err
	}
	sel := make([]string, len(tb.pk))
	for i, k := range tb.pk {
		sel[i] = "+" + quoteIdent(k)
	}
	args = append(args, n-1)
	q := "SELECT " + strings.Join(sel, ", ") + " FROM " + tb.rel + where + " ORDER BY " + tb.keyList() + " LIMIT 1 OFFSET ?"
	vals := make([]any, len(tb.pk))
	dest := make([]any, len(vals))
	for i := range vals {
		dest[i] = &vals[i]
	}
	err = tx.QueryRowContext(ctx, q, args...).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return encodeKey(vals)
}

// encodeKey turns key values into a Key: INTEGER and REAL as JSON numbers
// (a REAL always with a '.' or an exponent), TEXT as a JSON string (or
// {"text_hex": ...} when it is not UTF-8), BLOB as {"blob": HEX}.
func encodeKey(vals []any) (checks.Key, error) {
	k := make(checks.Key, len(vals))
	for i, v := range vals {
		var b []byte
		switch x := v.(type) {
		case int64:
			b = strconv.AppendInt(nil, x, 10)
		case float64:
			switch {
			case math.IsInf(x, 0) || math.IsNaN(x):
				b, _ = json.Marshal(map[string]string{"real": strconv.FormatFloat(x, 'g', -1, 64)})
			default:
				s := strconv.FormatFloat(x, 'g', -1, 64)
				if !strings.ContainsAny(s, ".eE") {
					s += ".0"
				}
				b = []byte(s)
			}
		case string:
			if utf8.ValidString(x) {
				b, _ = json.Marshal(x)
			} else {
				b, _ = json.Marshal(map[string]string{"text_hex": hex.EncodeToString([]byte(x))})
			}
		case []byte:
			b, _ = json.Marshal(map[string]string{"blob": hex.EncodeToString(x)})
		case nil:
			return nil, errors.New("a primary key value is NULL")
		default:
			return nil, fmt.Errorf("unexpected key value of Go type %T", v)
		}
		k[i] = b
	}
	return k, nil
}

// decodeKey returns the values of a Key made by encodeKey.
func decodeKey(k checks.Key, n int) ([]any, error) {
	if len(k) != n {
		return nil, fmt.Errorf("key %s has %d values, the primary key %d columns", k, len(k), n)
	}
	out := make([]any, n)
	for i, raw := range k {
		s := strings.TrimSpace(string(raw))
		switch {
		case strings.HasPrefix(s, `"`):
			var str string
			if err := json.Unmarshal(raw, &str); err != nil {
				return nil, fmt.Errorf("key %s: %w", k, err)
			}
			out[i] = str
		case strings.HasPrefix(s, "{"):
			var obj map[string]string
			if err := json.Unmarshal(raw, &obj); err != nil || len(obj) != 1 {
				return nil, fmt.Errorf("key %s: bad value %s", k, s)
			}
			switch {
			case hasKey(obj, "blob"):
				b, err := hex.DecodeString(obj["blob"])
				if err != nil {
					return nil, fmt.Errorf("key %s: %w", k, err)
				}
				out[i] = b
			case hasKey(obj, "text_hex"):
				b, err := hex.DecodeString(obj["text_hex"])
				if err != nil {
					return nil, fmt.Errorf("key %s: %w", k, err)
				}
				out[i] = string(b)
			case hasKey(obj, "real"):
				f, err := strconv.ParseFloat(obj["real"], 64)
				if err != nil {
					return nil, fmt.Errorf("key %s: %w", k, err)
				}
				out[i] = f
			default:
				return nil, fmt.Errorf("key %s: bad value %s", k, s)
			}
		case strings.ContainsAny(s, ".eE"):
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return nil, fmt.Errorf("key %s: %w", k, err)
			}
			out[i] = f
		default:
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("key %s: %w", k, err)
			}
			out[i] = v
		}
	}
	return out, nil
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// fpTx opens the read transaction a fingerprint runs in.
func (t *Target) fpTx(ctx context.Context) (*sql.Conn, *sql.Tx, error) {
	if _, err := t.fileSize(); err != nil {
		return nil, nil, err
	}
	conn, err := t.db.Conn(ctx)
	if err != nil {
		return nil, nil, t.stmtError(ctx, "connecting", err)
	}
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		conn.Close()
		return nil, nil, t.stmtError(ctx, "BEGIN", err)
	}
	return conn, tx, nil
}

// algorithm names the row hash; fingerprints taken through another
// database/sql driver (New with a foreign pool) may see values with other
// Go types, so the driver is part of the name.
func (t *Target) algorithm() string {
	a := "sqlite/v1: sha256 of type-tagged values (NULL, INTEGER, REAL, TEXT, BLOB), first 16 bytes summed mod 2^64 as two lanes"
	if d := fmt.Sprintf("%T", t.db.Driver()); d != "*sqlite.Driver" {
		a += "; driver " + d
	}
	return a
}

// Fingerprint fingerprints every table of the main database (or those the
// options select): columns, primary key, row count and the
// order-independent hash of every row, per primary-key range (see
// [checks.Fingerprint]). It implements [checks.Fingerprinter].
//
// It runs on one connection inside one read transaction (BEGIN ...
// ROLLBACK), so it sees one consistent state of the file. In WAL mode
// writers go on meanwhile (the fingerprint does not see their commits, and
// checkpoints cannot pass its snapshot until it ends); in rollback-journal
// mode the read transaction's SHARED lock makes writers wait (up to their
// busy timeout) until it ends. SQLite cannot share a snapshot between
// connections, so [checks.WithFingerprintJobs] has no effect: chunks are
// hashed one at a time.
//
// SQLite has no hash function, so each row's values are read (every column
// selected as +col, which keeps the value and its storage class but drops
// the declared type, so that the driver does not turn a DATETIME text into
// a time.Time) and hashed in Go with SHA-256 over a type-tagged encoding: a
// tag byte for NULL, INTEGER (8 bytes), REAL (the 8 IEEE bytes, -0 as 0),
// TEXT and BLOB (a length, then the bytes), so NULL, the empty string, the
// empty blob and 0 all differ, and so do 1 and 1.0 where the column's affinity keeps them
// apart. The first 16 bytes of each row's SHA-256 are its two lanes,
// summed per chunk. SQLite runs in this process, so reading the rows into
// Go moves no more data than a function registered with the driver would,
// and it works with any SQLite driver's pool given to [New] (the driver's
// name is then part of the algorithm, since another driver may hand values
// over as other Go types). Chunks are cut by walking the primary key (ORDER BY key LIMIT 1
// OFFSET n), sized by [checks.WithChunkTime]. A table without a PRIMARY KEY
// (its rowid is not stable: VACUUM may renumber it), or whose key holds a
// NULL, is one whole-table aggregate, flagged keyed:false. SQLite's own
// tables (sqlite_%, including sqlite_sequence and sqlite_stat1) and virtual
// tables are left out; the shadow tables that hold an FTS index's rows are
// ordinary tables and are fingerprinted. Generated columns are not hashed
// (they are derived from the others).
func (t *Target) Fingerprint(ctx context.Context, opts ...checks.FingerprintOption) (*checks.Fingerprint, error) {
	cfg, err := checks.NewFingerprintConfig(opts...)
	if err != nil {
		return nil, err
	}
	if err := cfg.CheckBoundsEngine(Engine); err != nil {
		return nil, err
	}
	start := time.Now()
	conn, tx, err := t.fpTx(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	defer tx.Rollback() //nolint:errcheck // read-only
	all, err := t.fpTables(ctx, tx, "")
	if err != nil {
		return nil, t.stmtError(ctx, "listing tables", err)
	}
	fp := &checks.Fingerprint{
		SchemaVersion: checks.FingerprintSchemaVersion,
		Engine:        Engine,
		ServerVersion: t.info.ServerVersion,
		Source:        t.info.Name,
		Database:      t.info.Database,
		TakenAt:       start.UTC(),
		Algorithm:     t.algorithm(),
		Snapshot:      "one read transaction on one connection",
		Tables:        []checks.TableFingerprint{},
	}
	for _, tb := range all {
		if !cfg.MatchTable(tb.name, tb.name) {
			continue
		}
		tf := checks.TableFingerprint{Name: tb.name, Columns: tb.cols, PrimaryKey: tb.pk, Keyed: tb.keyed, Note: tb.note}
		if tf.Chunks, err = t.fpTable(ctx, tx, tb, cfg); err != nil {
			return nil, err
		}
		tf.SumChunks()
		fp.Tables = append(fp.Tables, tf)
	}
	fp.DurationSeconds = time.Since(start).Seconds()
	return fp, nil
}

// fpTable hashes one table's chunks.
func (t *Target) fpTable(ctx context.Context, tx *sql.Tx, tb *fpTable, cfg checks.FingerprintConfig) ([]checks.ChunkFingerprint, error) {
	hash := func(r checks.KeyRange) (checks.ChunkFingerprint, error) {
		ch, err := tb.hashChunk(ctx, tx, r)
		if err != nil {
			return ch, t.stmtError(ctx, "hashing "+tb.name+" "+r.String(), err)
		}
		return ch, nil
	}
	var pk []string
	if tb.keyed {
		pk = tb.pk
	}
	return cfg.HashChunks(tb.name, pk,
		func(r checks.KeyRange, rows int64) (checks.Key, error) {
			upper, err := tb.bound(ctx, tx, r, rows)
			if err != nil {
				return nil, t.stmtError(ctx, "finding chunk bounds of "+tb.name, err)
			}
			return upper, nil
		}, hash)
}

// fpLookup opens a read transaction and finds one keyed table.
func (t *Target) fpLookup(ctx context.Context, table string) (*sql.Conn, *sql.Tx, *fpTable, error) {
	conn, tx, err := t.fpTx(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	fail := func(err error) (*sql.Conn, *sql.Tx, *fpTable, error) {
		_ = tx.Rollback()
		conn.Close()
		return nil, nil, nil, err
	}
	tbs, err := t.fpTables(ctx, tx, table)
	switch {
	case err != nil:
		return fail(t.stmtError(ctx, "looking up "+table, err))
	case len(tbs) == 0:
		return fail(fmt.Errorf("sqlite: fingerprint: no table %s in %s", table, t.info.Name))
	case !tbs[0].keyed:
		return fail(fmt.Errorf("sqlite: %w: table %s: %s", checks.ErrUnsupported, table, tbs[0].note))
	}
	return conn, tx, tbs[0], nil
}

// HashRanges hashes the given key ranges of table in one read transaction.
// It implements [checks.RangeHasher], which [checks.Narrow] uses.
func (t *Target) HashRanges(ctx context.Context, table string, ranges []checks.KeyRange) ([]checks.ChunkFingerprint, error) {
	conn, tx, tb, err := t.fpLookup(ctx, table)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	defer tx.Rollback() //nolint:errcheck // read-only
	out := make([]checks.ChunkFingerprint, len(ranges))
	for i, r := range ranges {
		if out[i], err = tb.hashChunk(ctx, tx, r); err != nil {
			return nil, t.stmtError(ctx, "hashing "+table+" "+r.String(), err)
		}
	}
	return out, nil
}

// maxSplitKeys bounds the keys one SplitRange call returns.
const maxSplitKeys = 4096

// SplitRange returns the keys of the rows at positions every, 2*every, ...
// of r in table, excluding r.Upper. It implements [checks.RangeHasher].
func (t *Target) SplitRange(ctx context.Context, table string, r checks.KeyRange, every int64) ([]checks.Key, error) {
	if every < 1 {
		return nil, fmt.Errorf("sqlite: %w: SplitRange: every must be at least 1, got %d", checks.ErrInvalidOption, every)
	}
	conn, tx, tb, err := t.fpLookup(ctx, table)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	defer tx.Rollback() //nolint:errcheck // read-only
	out, err := r.Split(maxSplitKeys, func(piece checks.KeyRange) (checks.Key, error) {
		return tb.bound(ctx, tx, piece, every)
	})
	if err != nil {
		return nil, t.stmtError(ctx, "splitting "+table+" "+r.String(), err)
	}
	return out, nil
}

var (
	_ checks.Fingerprinter = (*Target)(nil)
	_ checks.RangeHasher   = (*Target)(nil)
)
