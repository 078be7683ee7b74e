package checks

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dbscrub/dbscrub/internal/glob"
)

// FingerprintSchemaVersion is the version of the fingerprint JSON schema.
// It changes only when a field is removed or changes meaning; fields may be
// added.
const FingerprintSchemaVersion = 1

// Fingerprint errors. Test for them with errors.Is.
var (
	// ErrIncomparable means two fingerprints cannot be compared: different
	// engines, or rows hashed differently (a different algorithm or server
	// encoding).
	ErrIncomparable = errors.New("fingerprints are not comparable")
	// ErrInvalidFingerprint means a fingerprint file is malformed or
	// inconsistent (its table totals do not add up, say): it was damaged
	// or edited.
	ErrInvalidFingerprint = errors.New("invalid fingerprint")
	// ErrUnsupported means a live database cannot do what was asked (a
	// driver without fingerprints, a table without a usable key).
	ErrUnsupported = errors.New("not supported")
)

// A Fingerprinter is a live database that can fingerprint its tables. The
// PostgreSQL, SQLite and SQL Server targets implement it.
type Fingerprinter interface {
	// Fingerprint fingerprints every table (or those the options select)
	// in one consistent snapshot.
	Fingerprint(ctx context.Context, opts ...FingerprintOption) (*Fingerprint, error)
}

// A RangeHasher is a live database that can fingerprint given key ranges of
// one table, which lets [Narrow] locate differences below a fingerprint's
// chunk size by bisection. The PostgreSQL, SQLite and SQL Server targets
// implement it.
type RangeHasher interface {
	// HashRanges fingerprints the given key ranges of table (a name as in
	// [TableFingerprint].Name), all in one snapshot, and returns one chunk
	// per range, in order.
	HashRanges(ctx context.Context, table string, ranges []KeyRange) ([]ChunkFingerprint, error)
	// SplitRange returns the keys of the rows at positions every, 2*every,
	// ... (in key order) inside r, excluding r.Upper itself: the bounds
	// that cut r into pieces of every rows.
	SplitRange(ctx context.Context, table string, r KeyRange, every int64) ([]Key, error)
}

// Fingerprint is the content fingerprint of one database: proof of what it
// holds, to compare a copy (a migration, a disk move, a restored backup)
// with the original. Structural checks prove that pages are well formed;
// they cannot prove that a copy holds every row. A fingerprint can: for
// every table, a row count and an order-independent hash of every row,
// computed inside the database in primary-key ranges (chunks). Take one
// before the move, take (or compare against) one after, and [Compare] says
// which tables are missing or extra and, for each table that differs,
// which key ranges differ and by how many rows.
//
// Each row is rendered by the engine to bytes that tell NULL from an empty
// value (PostgreSQL: the row's text form under fixed output settings, in
// which NULL is an empty field and an empty string a pair of double
// quotes; SQLite: a type-tagged binary encoding) and hashed to 128 bits, as two 64-bit lanes. A chunk's hash is
// the sum of its rows' hashes modulo 2^64, lane by lane, plus its row
// count. Addition is commutative, so the hash does not depend on the order
// rows are read in (a VACUUM FULL, a CLUSTER, a dump and restore or a new
// disk change physical order, not the hash); unlike XOR, a sum does not
// cancel a duplicated row. Sums are additive: a table's hash is the sum of
// its chunks' hashes, and adjacent chunks merge by adding, which is how
// [Compare] lines up fingerprints whose chunk bounds differ. See [Digest].
//
// Fingerprints of different engines are not comparable (engines render
// values differently); fingerprints of the same engine across versions are
// (PostgreSQL 15 and its restored copy, an SQLite file and its copy).
//
// A Fingerprint marshals to the documented JSON schema
// ([FingerprintSchemaVersion]):
//
//	{
//	  "schema_version": 1,
//	  "engine": "postgresql",
//	  "server_version": "15.4",
//	  "source": "postgres://scrub:xxxxx@db:5432/app",
//	  "database": "app",
//	  "taken_at": "2026-11-21T03:00:00Z",
//	  "duration_seconds": 1.9,
//	  "algorithm": "postgresql/v1: hashtextextended(record text, seeds 0 and ...) summed mod 2^64; server_encoding UTF8",
//	  "snapshot": "one REPEATABLE READ READ ONLY transaction, exported to 2 workers",
//	  "tables": [{
//	    "name": "public.accounts",
//	    "columns": [{"name": "aid", "type": "integer"}, {"name": "filler", "type": "character(84)"}],
//	    "primary_key": ["aid"],
//	    "keyed": true,
//	    "rows": 5000000,
//	    "hash": "9c1f...32 hex digits",
//	    "chunks": [
//	      {"lower": null, "upper": [1000], "rows": 1000, "hash": "..."},
//	      {"lower": [1000], "upper": null, "rows": 4999000, "hash": "..."}
//	    ]
//	  }, {
//	    "name": "public.events", "columns": [...], "keyed": false,
//	    "note": "no primary key: whole-table aggregate; differences cannot be located inside the table",
//	    "rows": 12, "hash": "...", "chunks": [{"lower": null, "upper": null, "rows": 12, "hash": "..."}]
//	  }]
//	}
//
// A chunk covers the keys k with lower < k <= upper (null: unbounded), in
// the primary key's order; the chunks of a table are in key order and
// cover every key. Key bounds are JSON arrays, one value per key column:
// numbers as JSON numbers, other values as the engine's text (see [Key]).
// A table's rows and hash are the sums of its chunks'; [ReadFingerprint]
// verifies that, so a damaged file is refused.
type Fingerprint struct {
	SchemaVersion int `json:"schema_version"`
	// Engine is the OpenTelemetry db.system.name ("postgresql", "sqlite",
	// "microsoft.sql_server").
	Engine string `json:"engine"`
	// ServerVersion is the engine version.
	ServerVersion string `json:"server_version,omitempty"`
	// Source names the database: a DSN without its password, or a path.
	Source string `json:"source"`
	// Database is the database name.
	Database string `json:"database,omitempty"`
	// TakenAt is when the snapshot was taken.
	TakenAt time.Time `json:"taken_at"`
	// DurationSeconds is how long fingerprinting took.
	DurationSeconds float64 `json:"duration_seconds"`
	// Algorithm says how rows were rendered and hashed. Only fingerprints
	// with the same algorithm can be compared.
	Algorithm string `json:"algorithm"`
	// Snapshot says how the fingerprint was kept consistent.
	Snapshot string `json:"snapshot,omitempty"`
	// Tables are the tables fingerprinted, sorted by name.
	Tables []TableFingerprint `json:"tables"`
}

// Column is one column of a table.
type Column struct {
	Name string `json:"name"`
	// Type is the declared type, as the engine spells it.
	Type string `json:"type"`
}

// TableFingerprint is the fingerprint of one table.
type TableFingerprint struct {
	// Name is the table's name: "schema.table" on PostgreSQL and SQL
	// Server (unquoted), the table name on SQLite.
	Name string `json:"name"`
	// Columns are the columns hashed, in order.
	Columns []Column `json:"columns"`
	// PrimaryKey names the key columns chunks are cut on, in key order.
	PrimaryKey []string `json:"primary_key,omitempty"`
	// Keyed is false for a table fingerprinted as one whole-table
	// aggregate (no primary key): differences in it cannot be located.
	Keyed bool `json:"keyed"`
	// Note explains an unkeyed table.
	Note string `json:"note,omitempty"`
	// Rows is the number of rows.
	Rows int64 `json:"rows"`
	// Hash is the sum of every row's hash.
	Hash Digest `json:"hash"`
	// Chunks partition the table by key range, in key order. An unkeyed
	// table has one unbounded chunk.
	Chunks []ChunkFingerprint `json:"chunks"`
}

// ChunkFingerprint is the fingerprint of the rows of one key range.
type ChunkFingerprint struct {
	// Lower is the exclusive lower bound; nil for the table's first chunk.
	Lower Key `json:"lower"`
	// Upper is the inclusive upper bound; nil for the table's last chunk.
	Upper Key `json:"upper"`
	// Rows is the number of rows in the range.
	Rows int64 `json:"rows"`
	// Hash is the sum of the rows' hashes.
	Hash Digest `json:"hash"`
}

// Range returns the chunk's key range.
func (c ChunkFingerprint) Range() KeyRange { return KeyRange{Lower: c.Lower, Upper: c.Upper} }

// Digest is an order-independent hash of a multiset of rows: the sums,
// modulo 2^64, of the two 64-bit lanes of every row's 128-bit hash. It
// marshals to 32 hex digits (lane 0, then lane 1, big-endian).
//
// Two different sets of rows have the same digest with a probability of
// about 2^-128 when the row hashes behave like random functions; a changed,
// missing or extra row changes both lanes. The row hashes are not
// cryptographic: a digest detects accidental loss and damage, not a
// deliberate forgery by someone who can write rows.
type Digest [2]uint64

// Add returns the digest of the union of the rows of d and o.
func (d Digest) Add(o Digest) Digest { return Digest{d[0] + o[0], d[1] + o[1]} }

// String returns the 32 hex digits.
func (d Digest) String() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], d[0])
	binary.BigEndian.PutUint64(b[8:], d[1])
	return hex.EncodeToString(b[:])
}

// MarshalText returns the 32 hex digits.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses 32 hex digits.
func (d *Digest) UnmarshalText(b []byte) error {
	if len(b) != 32 {
		return fmt.Errorf("%w: hash %q: want 32 hex digits", ErrInvalidFingerprint, b)
	}
	var raw [16]byte
	if _, err := hex.Decode(raw[:], b); err != nil {
		return fmt.Errorf("%w: hash %q: %v", ErrInvalidFingerprint, b, err)
	}
	d[0], d[1] = binary.BigEndian.Uint64(raw[:8]), binary.BigEndian.Uint64(raw[8:])
	return nil
}

// RowDigest returns the digest of one row whose 128-bit (or longer) hash
// is sum: its first 16 bytes, as two big-endian lanes.
func RowDigest(sum []byte) Digest {
	return Digest{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:16])}
}

// Key is a value of a table's primary key: one JSON value per key column,
// in key order. Drivers choose the encoding and decode their own keys:
// numbers are JSON numbers (written exactly as the engine prints them),
// other values JSON strings holding the engine's text form; SQLite writes a
// BLOB as {"blob": "HEX"}. Two keys are equal when their compacted JSON is.
type Key []json.RawMessage

// Equal reports whether k and o are the same key (nil is only equal to nil).
func (k Key) Equal(o Key) bool {
	if (k == nil) != (o == nil) || len(k) != len(o) {
		return false
	}
	return k.id() == o.id()
}

// id returns a canonical string for maps.
func (k Key) id() string {
	if k == nil {
		return "\x00nil"
	}
	var b strings.Builder
	for i, v := range k {
		if i > 0 {
			b.WriteByte(0)
		}
		b.WriteString(compactJSON(v))
	}
	return b.String()
}

func compactJSON(v json.RawMessage) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err != nil {
		return string(v)
	}
	return buf.String()
}

// String formats the key for people: a single value as is ('text' quoted,
// numbers bare), several as a tuple: (1, 'a').
func (k Key) String() string {
	if k == nil {
		return ""
	}
	parts := make([]string, len(k))
	for i, v := range k {
		parts[i] = keyValueString(v)
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func keyValueString(v json.RawMessage) string {
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		return "'" + strings.ReplaceAll(s, "'", "''") + "'"
	}
	return compactJSON(v)
}

// KeyRange is the range of keys k with Lower < k <= Upper; a nil bound is
// unbounded.
type KeyRange struct {
	Lower Key `json:"lower"`
	Upper Key `json:"upper"`
}

// Where builds the SQL clause that selects the keys of the range: keys
// greater than Lower and at most Upper. cmp renders one comparison of the
// key columns with a bound ("> " or "<=") in the engine's SQL. It returns ""
// for an unbounded range, else " WHERE ...".
func (r KeyRange) Where(cmp func(op string, bound Key) (string, error)) (string, error) {
	var conds []string
	for _, b := range []struct {
		op    string
		bound Key
	}{{">", r.Lower}, {"<=", r.Upper}} {
		if b.bound == nil {
			continue
		}
		c, err := cmp(b.op, b.bound)
		if err != nil {
			return "", err
		}
		conds = append(conds, c)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), nil
}

// Split cuts the range into pieces: next returns the first bound of the
// range it is given that lies every so many rows in (the driver's query),
// or nil at the end. Split stops at Upper, at the end, or after max keys,
// and returns the inner bounds found, in order.
func (r KeyRange) Split(max int, next func(KeyRange) (Key, error)) ([]Key, error) {
	var out []Key
	lower := r.Lower
	for len(out) < max {
		k, err := next(KeyRange{Lower: lower, Upper: r.Upper})
		if err != nil {
			return nil, err
		}
		if k == nil || (r.Upper != nil && k.Equal(r.Upper)) {
			break
		}
		out = append(out, k)
		lower = k
	}
	return out, nil
}

// String formats the range for people: "(41, 42]", "(-inf, 1000]",
// "(5000, +inf)".
func (r KeyRange) String() string {
	lo, hi, closeB := "-inf", "+inf", ")"
	if r.Lower != nil {
		lo = r.Lower.String()
	}
	if r.Upper != nil {
		hi, closeB = r.Upper.String(), "]"
	}
	return "(" + lo + ", " + hi + closeB
}

// FingerprintOption configures a fingerprint. Invalid values make
// [NewFingerprintConfig] (and so every driver's Fingerprint) fail with an
// error wrapping [ErrInvalidOption].
type FingerprintOption func(*FingerprintConfig) error

// Defaults of the fingerprint options.
const (
	// DefaultChunkTime is the default of [WithChunkTime].
	DefaultChunkTime = 500 * time.Millisecond
	// InitialChunkRows is the size of a table's first chunk when chunks
	// are sized by time.
	InitialChunkRows int64 = 1000
)

// FingerprintConfig is the result of the fingerprint options, for drivers.
type FingerprintConfig struct {
	// Include and Exclude are the table patterns (see [WithTables]).
	Include, Exclude []string
	// ChunkTime is the target duration of one chunk's query.
	ChunkTime time.Duration
	// ChunkRows, when positive, fixes the rows per chunk (no adaptation).
	ChunkRows int64
	// Jobs is how many connections may hash chunks at once.
	Jobs int
	// BoundsFrom, when set, gives the chunk bounds to reuse (see
	// [WithBoundsFrom]).
	BoundsFrom *Fingerprint
}

// NewFingerprintConfig applies opts to the defaults.
func NewFingerprintConfig(opts ...FingerprintOption) (FingerprintConfig, error) {
	c := FingerprintConfig{ChunkTime: DefaultChunkTime, Jobs: 1}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return FingerprintConfig{}, err
		}
	}
	return c, nil
}

// WithTables fingerprints only the tables matching at least one pattern.
// Patterns are shell-style: "*" matches any run of characters (including
// "."), "?" one character, anything else itself, case-sensitively, against
// the whole name. A pattern with a "." is matched against the qualified
// name ("public.orders", "sales.*"), one without against the bare table
// name in any schema ("orders", "tmp_*"). Patterns of several calls add up.
func WithTables(patterns ...string) FingerprintOption {
	return func(c *FingerprintConfig) error {
		if err := checkPatterns("table", patterns); err != nil {
			return err
		}
		c.Include = append(c.Include, patterns...)
		return nil
	}
}

// WithExcludeTables skips the tables matching any pattern (see
// [WithTables]). Exclusion wins over inclusion.
func WithExcludeTables(patterns ...string) FingerprintOption {
	return func(c *FingerprintConfig) error {
		if err := checkPatterns("exclude table", patterns); err != nil {
			return err
		}
		c.Exclude = append(c.Exclude, patterns...)
		return nil
	}
}

func checkPatterns(what string, patterns []string) error {
	if len(patterns) == 0 {
		return fmt.Errorf("%w: %s: no pattern given", ErrInvalidOption, what)
	}
	for _, p := range patterns {
		if p == "" || strings.ContainsRune(p, 0) {
			return fmt.Errorf("%w: %s pattern %q: empty or contains a NUL byte", ErrInvalidOption, what, p)
		}
	}
	return nil
}

// WithChunkTime sizes chunks so that each chunk's query takes about d, as
// pt-table-checksum's --chunk-time does: a table's first chunk has
// [InitialChunkRows] rows, and each later chunk has as many rows as the
// table's measured rate (rows per second, an exponentially decaying average)
// says fit in d. No chunk query then holds a snapshot, a lock or a
// connection for long. The default is [DefaultChunkTime]; d must be
// positive.
func WithChunkTime(d time.Duration) FingerprintOption {
	return func(c *FingerprintConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: chunk time must be positive, got %s", ErrInvalidOption, d)
		}
		c.ChunkTime = d
		return nil
	}
}

// WithChunkRows fixes the number of rows per chunk instead of sizing chunks
// by time. A file fingerprint's chunks are the finest granularity a
// comparison against it can locate differences to, so a small n makes a
// bigger, more precise file. n must be positive; math.MaxInt64 makes every
// table one chunk.
func WithChunkRows(n int64) FingerprintOption {
	return func(c *FingerprintConfig) error {
		if n < 1 {
			return fmt.Errorf("%w: chunk rows must be at least 1, got %d", ErrInvalidOption, n)
		}
		c.ChunkRows = n
		return nil
	}
}

// WithFingerprintJobs lets n connections hash chunks at once, all in the
// same snapshot (PostgreSQL exports the snapshot to its workers; SQLite
// always uses one connection). The default is 1; n must be at least 1.
func WithFingerprintJobs(n int) FingerprintOption {
	return func(c *FingerprintConfig) error {
		if n < 1 {
			return fmt.Errorf("%w: jobs must be at least 1, got %d", ErrInvalidOption, n)
		}
		c.Jobs = n
		return nil
	}
}

// WithBoundsFrom cuts every table that fp fingerprinted with the same
// primary key into exactly fp's chunks, instead of sizing chunks anew, so
// that the two fingerprints compare chunk by chunk. [CompareSources] uses it
// when one side is a stored fingerprint; use it to take the "after"
// fingerprint of a move with the bounds of the "before" one. Tables fp
// does not have, or has with another key, are chunked as usual.
func WithBoundsFrom(fp *Fingerprint) FingerprintOption {
	return func(c *FingerprintConfig) error {
		if fp == nil {
			return fmt.Errorf("%w: WithBoundsFrom: nil fingerprint", ErrInvalidOption)
		}
		c.BoundsFrom = fp
		return nil
	}
}

// MatchTable reports whether the table passes the include and exclude
// patterns. name is the table's [TableFingerprint].Name; bare is its name
// without schema (the same as name where there are no schemas).
func (c FingerprintConfig) MatchTable(name, bare string) bool {
	match := func(p string) bool {
		if strings.Contains(p, ".") {
			return glob.Match(p, name)
		}
		return glob.Match(p, bare)
	}
	for _, p := range c.Exclude {
		if match(p) {
			return false
		}
	}
	if len(c.Include) == 0 {
		return true
	}
	return slices.ContainsFunc(c.Include, match)
}

// CheckBoundsEngine returns an error wrapping [ErrIncomparable] when the
// fingerprint of [WithBoundsFrom] is not of engine: its key bounds would
// mean nothing to the driver.
func (c FingerprintConfig) CheckBoundsEngine(engine string) error {
	if c.BoundsFrom != nil && c.BoundsFrom.Engine != engine {
		return fmt.Errorf("%w: the fingerprint whose chunk bounds were to be reused is of %s, this database is %s", ErrIncomparable, c.BoundsFrom.Engine, engine)
	}
	return nil
}

// Bounds returns the chunk ranges [WithBoundsFrom] gives for a table with
// the given primary key, and whether there are any.
func (c FingerprintConfig) Bounds(table string, primaryKey []string) ([]KeyRange, bool) {
	if c.BoundsFrom == nil || len(primaryKey) == 0 {
		return nil, false
	}
	tf := c.BoundsFrom.Table(table)
	if tf == nil || !tf.Keyed || !slices.Equal(tf.PrimaryKey, primaryKey) || len(tf.Chunks) == 0 {
		return nil, false
	}
	out := make([]KeyRange, len(tf.Chunks))
	for i, ch := range tf.Chunks {
		out[i] = ch.Range()
	}
	return out, true
}

// HashChunks fingerprints one table chunk by chunk, in key order: one
// whole-table chunk when the table has no primary key (primaryKey empty),
// the chunk bounds of [WithBoundsFrom] when they fit the table, and
// otherwise chunks whose bounds bound finds walking the key (the upper
// bound of the range starting at r.Lower that holds rows rows, nil for the
// rest of the table), sized by time with a [ChunkSizer]. hash hashes one
// range. Drivers that hash one chunk at a time use it; errors of bound and
// hash are returned as they are.
func (c FingerprintConfig) HashChunks(table string, primaryKey []string,
	bound func(r KeyRange, rows int64) (Key, error),
	hash func(r KeyRange) (ChunkFingerprint, error)) ([]ChunkFingerprint, error) {
	if len(primaryKey) == 0 {
		ch, err := hash(KeyRange{})
		return []ChunkFingerprint{ch}, err
	}
	if ranges, ok := c.Bounds(table, primaryKey); ok {
		out := make([]ChunkFingerprint, len(ranges))
		for i, r := range ranges {
			var err error
			if out[i], err = hash(r); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	sizer := c.NewChunkSizer()
	var out []ChunkFingerprint
	var lower Key
	for {
		start := time.Now()
		upper, err := bound(KeyRange{Lower: lower}, sizer.Next())
		if err != nil {
			return nil, err
		}
		ch, err := hash(KeyRange{Lower: lower, Upper: upper})
		if err != nil {
			return nil, err
		}
		sizer.Observe(ch.Rows, time.Since(start))
		out = append(out, ch)
		if upper == nil {
			return out, nil
		}
		lower = upper
	}
}

// jsonNumber matches the text of a JSON number.
var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// KeyFromText makes a Key of primary-key values the database returned as
// text: a JSON number where numeric(i) says column i is numeric and its
// text is a JSON number, a JSON string otherwise (so that the text comes
// back unchanged from [Key.Texts]).
func KeyFromText(vals []string, numeric func(i int) bool) Key {
	k := make(Key, len(vals))
	for i, v := range vals {
		if numeric(i) && jsonNumber.MatchString(v) {
			k[i] = json.RawMessage(v)
			continue
		}
		b, _ := json.Marshal(v)
		k[i] = b
	}
	return k
}

// Texts returns the text of each of k's values, for a primary key of n
// columns: the inverse of [KeyFromText]. It fails when k has another
// number of values or a value that is neither a JSON string nor a number.
func (k Key) Texts(n int) ([]string, error) {
	if len(k) != n {
		return nil, fmt.Errorf("key %s has %d values, the primary key %d columns", k, len(k), n)
	}
	out := make([]string, n)
	for i, v := range k {
		s := strings.TrimSpace(string(v))
		switch {
		case strings.HasPrefix(s, `"`):
			if err := json.Unmarshal(v, &out[i]); err != nil {
				return nil, fmt.Errorf("key %s: %w", k, err)
			}
		case jsonNumber.MatchString(s):
			out[i] = s
		default:
			return nil, fmt.Errorf("key %s: value %s is neither a number nor a string", k, s)
		}
	}
	return out, nil
}

// ChunkSizer picks the number of rows of a table's next chunk so that each
// chunk's query takes about the configured chunk time: pt-table-checksum's
// method. Drivers make one per table with [FingerprintConfig.NewChunkSizer]
// and tell it how long each chunk took. It is safe for concurrent use.
type ChunkSizer struct {
	mu     sync.Mutex
	target time.Duration
	fixed  int64
	rate   float64 // rows per second, exponentially decaying average
	next   int64
}

// NewChunkSizer returns a sizer for one table.
func (c FingerprintConfig) NewChunkSizer() *ChunkSizer {
	return &ChunkSizer{target: c.ChunkTime, fixed: c.ChunkRows, next: InitialChunkRows}
}

// Next returns the rows the next chunk should have.
func (s *ChunkSizer) Next() int64 {
	if s.fixed > 0 {
		return s.fixed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

// Observe records that a chunk of rows rows took d.
func (s *ChunkSizer) Observe(rows int64, d time.Duration) {
	if s.fixed > 0 || rows <= 0 {
		return
	}
	d = max(d, 100*time.Microsecond)
	r := float64(rows) / d.Seconds()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rate == 0 {
		s.rate = r
	} else {
		s.rate = 0.75*s.rate + 0.25*r
	}
	n := s.rate * s.target.Seconds()
	switch {
	case n < 1:
		n = 1
	case n > math.MaxInt64/2:
		n = math.MaxInt64 / 2
	}
	s.next = int64(n)
}

// Table returns the fingerprint of the named table, or nil.
func (fp *Fingerprint) Table(name string) *TableFingerprint {
	for i := range fp.Tables {
		if fp.Tables[i].Name == name {
			return &fp.Tables[i]
		}
	}
	return nil
}

// Rows returns the number of rows of every table.
func (fp *Fingerprint) Rows() int64 {
	var n int64
	for _, t := range fp.Tables {
		n += t.Rows
	}
	return n
}

// Write writes fp as indented JSON.
func (fp *Fingerprint) Write(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(fp); err != nil {
		return fmt.Errorf("checks: writing fingerprint: %w", err)
	}
	return nil
}

// ReadFingerprint reads a fingerprint written by [Fingerprint.Write] (or
// `dbscrub fingerprint`) and verifies it: a known schema version, an
// engine and algorithm, chunks that cover each table in order, and table
// totals equal to the sums of their chunks. Errors wrap
// [ErrInvalidFingerprint].
func ReadFingerprint(r io.Reader) (*Fingerprint, error) {
	var fp Fingerprint
	dec := json.NewDecoder(r)
	dec.UseNumber()
	if err := dec.Decode(&fp); err != nil {
		if errors.Is(err, ErrInvalidFingerprint) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalidFingerprint, err)
	}
	if err := fp.Validate(); err != nil {
		return nil, err
	}
	return &fp, nil
}

// Validate checks that fp is consistent (see [ReadFingerprint]).
func (fp *Fingerprint) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidFingerprint, fmt.Sprintf(format, args...))
	}
	switch {
	case fp.SchemaVersion < 1:
		return bad("no schema_version: not a dbscrub fingerprint")
	case fp.SchemaVersion > FingerprintSchemaVersion:
		return bad("schema_version %d is newer than this dbscrub understands (%d): upgrade dbscrub", fp.SchemaVersion, FingerprintSchemaVersion)
	case fp.Engine == "":
		return bad("no engine")
	case fp.Algorithm == "":
		return bad("no algorithm")
	}
	seen := map[string]bool{}
	for _, t := range fp.Tables {
		if t.Name == "" {
			return bad("a table has no name")
		}
		if seen[t.Name] {
			return bad("table %s appears twice", t.Name)
		}
		seen[t.Name] = true
		if len(t.Chunks) == 0 {
			return bad("table %s has no chunks", t.Name)
		}
		var rows int64
		var sum Digest
		for i, ch := range t.Chunks {
			if i == 0 && ch.Lower != nil {
				return bad("table %s: the first chunk has a lower bound", t.Name)
			}
			if i > 0 && (ch.Lower == nil || !ch.Lower.Equal(t.Chunks[i-1].Upper)) {
				return bad("table %s: chunk %d does not start where chunk %d ends", t.Name, i, i-1)
			}
			if i == len(t.Chunks)-1 && ch.Upper != nil {
				return bad("table %s: the last chunk has an upper bound", t.Name)
			}
			if ch.Rows < 0 {
				return bad("table %s: negative row count", t.Name)
			}
			if !t.Keyed && (ch.Lower != nil || ch.Upper != nil) {
				return bad("table %s is not keyed but has key bounds", t.Name)
			}
			rows += ch.Rows
			sum = sum.Add(ch.Hash)
		}
		if rows != t.Rows || sum != t.Hash {
			return bad("table %s: its rows and hash are not the sums of its chunks (the file was damaged or edited)", t.Name)
		}
	}
	return nil
}

// FilterTables returns a copy of fp with only the tables cfg selects
// (its include and exclude patterns).
func (fp *Fingerprint) FilterTables(cfg FingerprintConfig) *Fingerprint {
	out := *fp
	out.Tables = nil
	for _, t := range fp.Tables {
		bare := t.Name
		if i := strings.LastIndex(bare, "."); i >= 0 && fp.Engine != "sqlite" {
			bare = bare[i+1:]
		}
		if cfg.MatchTable(t.Name, bare) {
			out.Tables = append(out.Tables, t)
		}
	}
	return &out
}

// SumChunks fills in t.Rows and t.Hash from its chunks.
func (t *TableFingerprint) SumChunks() {
	t.Rows, t.Hash = 0, Digest{}
	for _, ch := range t.Chunks {
		t.Rows += ch.Rows
		t.Hash = t.Hash.Add(ch.Hash)
	}
}

// FingerprintInfo describes one side of a comparison.
type FingerprintInfo struct {
	Engine        string    `json:"engine"`
	ServerVersion string    `json:"server_version,omitempty"`
	Source        string    `json:"source"`
	Database      string    `json:"database,omitempty"`
	TakenAt       time.Time `json:"taken_at"`
	// Live is true when the fingerprint was taken for this comparison,
	// false when it was read from a file.
	Live bool `json:"live"`
	// Tables and Rows count what the fingerprint covers.
	Tables int   `json:"tables"`
	Rows   int64 `json:"rows"`
}

func infoOf(fp *Fingerprint) FingerprintInfo {
	return FingerprintInfo{Engine: fp.Engine, ServerVersion: fp.ServerVersion, Source: fp.Source, Database: fp.Database,
		TakenAt: fp.TakenAt, Tables: len(fp.Tables), Rows: fp.Rows()}
}

// Diff is the result of comparing fingerprint A (the original: before the
// move, the primary) with B (the copy). It marshals to JSON
// (`dbscrub compare --format json`).
type Diff struct {
	A FingerprintInfo `json:"a"`
	B FingerprintInfo `json:"b"`
	// Identical is true when every table of A is in B with the same
	// columns, rows and hash, and B has no other table.
	Identical bool `json:"identical"`
	// TablesCompared counts the tables both sides have.
	TablesCompared int `json:"tables_compared"`
	// Missing are the tables of A that B lacks.
	Missing []TableSummary `json:"missing_tables"`
	// Extra are the tables of B that A lacks.
	Extra []TableSummary `json:"extra_tables"`
	// Tables are the tables both have whose contents differ, by name.
	Tables []TableDiff `json:"differing_tables"`
	// Notes say what limited the comparison (file granularity, say).
	Notes []string `json:"notes,omitempty"`
}

// TableSummary names a table and its row count.
type TableSummary struct {
	Name string `json:"name"`
	Rows int64  `json:"rows"`
}

// TableDiff is one table whose contents differ.
type TableDiff struct {
	Name string `json:"name"`
	// Keyed is true when differences are located by key range.
	Keyed      bool     `json:"keyed"`
	PrimaryKey []string `json:"primary_key,omitempty"`
	RowsA      int64    `json:"rows_a"`
	RowsB      int64    `json:"rows_b"`
	// RowDelta is RowsB - RowsA.
	RowDelta int64 `json:"row_delta"`
	// ColumnsA and ColumnsB are set when the columns differ.
	ColumnsA []Column `json:"columns_a,omitempty"`
	ColumnsB []Column `json:"columns_b,omitempty"`
	// Ranges are the key ranges whose rows differ, in key order; for a
	// table that is not keyed, one unbounded range.
	Ranges []RangeDiff `json:"ranges"`
	// Note says how precisely the differences are located.
	Note string `json:"note,omitempty"`
}

// RangeDiff is one key range whose rows differ.
type RangeDiff struct {
	KeyRange
	RowsA int64 `json:"rows_a"`
	RowsB int64 `json:"rows_b"`
	// RowDelta is RowsB - RowsA; 0 means the same number of rows with
	// different contents.
	RowDelta int64 `json:"row_delta"`
}

// Compare compares fingerprint a (the original) with b (the copy). Tables
// are matched by name. A table differs when its columns, row count or hash
// differ; its differing key ranges are found by lining up the chunks of
// both sides at the bounds they share (adjacent chunks merge by adding
// their hashes), so they are exact when both were taken with the same
// bounds (see [WithBoundsFrom]) and coarser otherwise. Use [Narrow] to
// locate them further on live databases.
//
// Fingerprints of different engines, or of rows hashed differently, give an
// error wrapping [ErrIncomparable]: cross-engine comparison is not
// supported, since engines render values differently.
func Compare(a, b *Fingerprint) (*Diff, error) {
	if a == nil || b == nil {
		return nil, fmt.Errorf("%w: nil fingerprint", ErrIncomparable)
	}
	if a.Engine != b.Engine {
		return nil, fmt.Errorf("%w: A is %s and B is %s; dbscrub compares fingerprints of the same engine only (engines render values differently)", ErrIncomparable, a.Engine, b.Engine)
	}
	if a.Algorithm != b.Algorithm {
		return nil, fmt.Errorf("%w: rows were hashed differently (A: %s; B: %s)", ErrIncomparable, a.Algorithm, b.Algorithm)
	}
	d := &Diff{A: infoOf(a), B: infoOf(b), Missing: []TableSummary{}, Extra: []TableSummary{}, Tables: []TableDiff{}}
	inB := map[string]*TableFingerprint{}
	for i := range b.Tables {
		inB[b.Tables[i].Name] = &b.Tables[i]
	}
	inA := map[string]bool{}
	for i := range a.Tables {
		ta := &a.Tables[i]
		inA[ta.Name] = true
		tb := inB[ta.Name]
		if tb == nil {
			d.Missing = append(d.Missing, TableSummary{Name: ta.Name, Rows: ta.Rows})
			continue
		}
		d.TablesCompared++
		if td, differ := compareTable(ta, tb); differ {
			d.Tables = append(d.Tables, td)
		}
	}
	for _, tb := range b.Tables {
		if !inA[tb.Name] {
			d.Extra = append(d.Extra, TableSummary{Name: tb.Name, Rows: tb.Rows})
		}
	}
	sort.Slice(d.Missing, func(i, j int) bool { return d.Missing[i].Name < d.Missing[j].Name })
	sort.Slice(d.Extra, func(i, j int) bool { return d.Extra[i].Name < d.Extra[j].Name })
	sort.Slice(d.Tables, func(i, j int) bool { return d.Tables[i].Name < d.Tables[j].Name })
	d.Identical = len(d.Missing) == 0 && len(d.Extra) == 0 && len(d.Tables) == 0
	return d, nil
}

func compareTable(a, b *TableFingerprint) (TableDiff, bool) {
	sameCols := slices.Equal(a.Columns, b.Columns)
	if sameCols && a.Rows == b.Rows && a.Hash == b.Hash {
		return TableDiff{}, false
	}
	td := TableDiff{Name: a.Name, RowsA: a.Rows, RowsB: b.Rows, RowDelta: b.Rows - a.Rows}
	whole := func(note string) TableDiff {
		td.Keyed = false
		td.Ranges = []RangeDiff{{RowsA: a.Rows, RowsB: b.Rows, RowDelta: b.Rows - a.Rows}}
		td.Note = note
		return td
	}
	if !sameCols {
		td.ColumnsA, td.ColumnsB = a.Columns, b.Columns
		return whole("the columns differ, so every row hashes differently; differences are not located"), true
	}
	switch {
	case !a.Keyed || !b.Keyed:
		note := "no primary key: whole-table aggregate; differences cannot be located inside the table"
		if a.Keyed != b.Keyed {
			note = "the table has a primary key on one side only; differences are not located"
		}
		return whole(note), true
	case !slices.Equal(a.PrimaryKey, b.PrimaryKey):
		return whole("the primary keys differ; differences are not located"), true
	}
	td.Keyed, td.PrimaryKey = true, a.PrimaryKey
	ranges, ok := alignChunks(a.Chunks, b.Chunks)
	if !ok {
		return whole("the chunk bounds of A and B are in a different key order (a different collation?); differences are not located"), true
	}
	td.Ranges = ranges
	if len(ranges) == 0 {
		// Every aligned group matches although the totals do not: should
		// not happen; report the whole table rather than nothing.
		return whole("differences could not be located"), true
	}
	return td, true
}

// alignChunks merges the chunks of each side between the bounds both share
// and returns the merged ranges that differ. ok is false when the shared
// bounds are not in the same order on both sides.
func alignChunks(a, b []ChunkFingerprint) ([]RangeDiff, bool) {
	inB := map[string]bool{}
	for _, ch := range b {
		if ch.Upper != nil {
			inB[ch.Upper.id()] = true
		}
	}
	common := map[string]bool{}
	var orderA []string
	for _, ch := range a {
		if ch.Upper != nil && inB[ch.Upper.id()] {
			common[ch.Upper.id()] = true
			orderA = append(orderA, ch.Upper.id())
		}
	}
	var orderB []string
	for _, ch := range b {
		if ch.Upper != nil && common[ch.Upper.id()] {
			orderB = append(orderB, ch.Upper.id())
		}
	}
	if !slices.Equal(orderA, orderB) {
		return nil, false
	}
	ga, gb := groupChunks(a, common), groupChunks(b, common)
	if len(ga) != len(gb) {
		return nil, false
	}
	var out []RangeDiff
	for i := range ga {
		if ga[i].Rows != gb[i].Rows || ga[i].Hash != gb[i].Hash {
			out = append(out, RangeDiff{KeyRange: ga[i].Range(), RowsA: ga[i].Rows, RowsB: gb[i].Rows, RowDelta: gb[i].Rows - ga[i].Rows})
		}
	}
	return out, true
}

// groupChunks merges consecutive chunks up to each common bound.
func groupChunks(chunks []ChunkFingerprint, common map[string]bool) []ChunkFingerprint {
	var out []ChunkFingerprint
	var cur *ChunkFingerprint
	for _, ch := range chunks {
		if cur == nil {
			c := ch
			cur = &c
		} else {
			cur.Upper = ch.Upper
			cur.Rows += ch.Rows
			cur.Hash = cur.Hash.Add(ch.Hash)
		}
		if ch.Upper == nil || common[ch.Upper.id()] {
			out = append(out, *cur)
			cur = nil
		}
	}
	if cur != nil {
		out = append(out, *cur)
	}
	return out
}

// CompareOption configures [CompareSources], [Narrow] and the compare
// checks. Invalid values give an error wrapping [ErrInvalidOption].
type CompareOption func(*compareConfig) error

type compareConfig struct {
	fpOpts    []FingerprintOption
	minRows   int64
	maxRanges int
	fanout    int
	narrow    bool
}

// Defaults of the compare options.
const (
	// DefaultMinChunkRows is the default of [WithMinChunkRows]: narrow
	// down to single rows.
	DefaultMinChunkRows int64 = 1
	// DefaultMaxRanges is the default of [WithMaxRanges].
	DefaultMaxRanges = 100
	// narrowFanout is how many pieces each bisection step cuts a range in.
	narrowFanout = 16
)

func newCompareConfig(opts []CompareOption) (compareConfig, error) {
	c := compareConfig{minRows: DefaultMinChunkRows, maxRanges: DefaultMaxRanges, fanout: narrowFanout, narrow: true}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return compareConfig{}, err
		}
	}
	if _, err := NewFingerprintConfig(c.fpOpts...); err != nil {
		return compareConfig{}, err
	}
	return c, nil
}

// WithFingerprintOptions passes options to every live fingerprint a
// comparison takes. Table patterns also filter stored fingerprints, so that
// a comparison of selected tables does not report the others as missing.
func WithFingerprintOptions(opts ...FingerprintOption) CompareOption {
	return func(c *compareConfig) error {
		c.fpOpts = append(c.fpOpts, opts...)
		return nil
	}
}

// WithMinChunkRows sets the size [Narrow] stops bisecting at: a differing
// range of at most n rows (on the side with more) is reported as is. The
// default is [DefaultMinChunkRows] (single rows); n must be at least 1.
func WithMinChunkRows(n int64) CompareOption {
	return func(c *compareConfig) error {
		if n < 1 {
			return fmt.Errorf("%w: min chunk rows must be at least 1, got %d", ErrInvalidOption, n)
		}
		c.minRows = n
		return nil
	}
}

// WithMaxRanges bounds how many differing ranges [Narrow] reports per
// table: when one more bisection step would give more, it stops at the
// coarser ranges and says so (a bulk change does not turn into a million
// one-row ranges and queries). The default is [DefaultMaxRanges]; n must be
// at least 1.
func WithMaxRanges(n int) CompareOption {
	return func(c *compareConfig) error {
		if n < 1 {
			return fmt.Errorf("%w: max ranges must be at least 1, got %d", ErrInvalidOption, n)
		}
		c.maxRanges = n
		return nil
	}
}

// WithoutNarrowing makes [CompareSources] report differences at chunk
// granularity, without bisecting on live databases.
func WithoutNarrowing() CompareOption {
	return func(c *compareConfig) error {
		c.narrow = false
		return nil
	}
}

// Source is one side of a comparison: a live database or a stored
// fingerprint. Set exactly one field.
type Source struct {
	// Live is a database to fingerprint now.
	Live Fingerprinter
	// Stored is a fingerprint taken earlier (see [ReadFingerprint]).
	Stored *Fingerprint
}

// LiveSource returns a Source for a live database.
func LiveSource(f Fingerprinter) Source { return Source{Live: f} }

// StoredSource returns a Source for a stored fingerprint.
func StoredSource(fp *Fingerprint) Source { return Source{Stored: fp} }

func (s Source) check(name string) error {
	if (s.Live == nil) == (s.Stored == nil) {
		return fmt.Errorf("%w: source %s: set exactly one of Live and Stored", ErrInvalidOption, name)
	}
	return nil
}

// CompareSources compares a (the original) with b (the copy), each a live
// database or a stored fingerprint:
//
//   - two stored fingerprints: [Compare];
//   - a stored fingerprint and a live database: the live side is
//     fingerprinted with the stored side's chunk bounds ([WithBoundsFrom]),
//     so differences are located exactly to the stored chunks, which are
//     the limit: a file cannot be re-read at a finer grain;
//   - two live databases: A is fingerprinted, B with A's bounds, and when
//     both implement [RangeHasher] the differing ranges are narrowed by
//     bisection ([Narrow]) down to [WithMinChunkRows].
//
// Errors wrap [ErrInvalidOption], [ErrIncomparable], or the live side's
// error (prefixed "fingerprinting A" or "B").
func CompareSources(ctx context.Context, a, b Source, opts ...CompareOption) (*Diff, error) {
	cfg, err := newCompareConfig(opts)
	if err != nil {
		return nil, err
	}
	if err := a.check("A"); err != nil {
		return nil, err
	}
	if err := b.check("B"); err != nil {
		return nil, err
	}
	fcfg, _ := NewFingerprintConfig(cfg.fpOpts...)
	fa, fb := a.Stored, b.Stored
	if fa != nil {
		fa = fa.FilterTables(fcfg)
	}
	if fb != nil {
		fb = fb.FilterTables(fcfg)
	}
	for _, pair := range []struct {
		live   Fingerprinter
		stored *Fingerprint
	}{{a.Live, fb}, {b.Live, fa}} {
		ti, ok := pair.live.(interface{ Info() TargetInfo })
		if pair.live == nil || pair.stored == nil || !ok {
			continue
		}
		if e := ti.Info().Engine; e != pair.stored.Engine {
			return nil, fmt.Errorf("%w: a %s fingerprint cannot be compared with a %s database; dbscrub compares fingerprints of the same engine only", ErrIncomparable, pair.stored.Engine, e)
		}
	}
	take := func(side string, f Fingerprinter, other *Fingerprint) (*Fingerprint, error) {
		o := slices.Clone(cfg.fpOpts)
		if other != nil {
			o = append(o, WithBoundsFrom(other))
		}
		fp, err := f.Fingerprint(ctx, o...)
		if err != nil {
			return nil, fmt.Errorf("fingerprinting %s: %w", side, err)
		}
		return fp, nil
	}
	if fa == nil && fb == nil {
		if fa, err = take("A", a.Live, nil); err != nil {
			return nil, err
		}
	}
	if fa == nil {
		if fa, err = take("A", a.Live, fb); err != nil {
			return nil, err
		}
	}
	if fb == nil {
		if fb, err = take("B", b.Live, fa); err != nil {
			return nil, err
		}
	}
	d, err := Compare(fa, fb)
	if err != nil {
		return nil, err
	}
	d.A.Live, d.B.Live = a.Live != nil, b.Live != nil
	if d.Identical {
		return d, nil
	}
	ra, okA := a.Live.(RangeHasher)
	rb, okB := b.Live.(RangeHasher)
	switch {
	case !cfg.narrow || !hasKeyedRanges(d):
	case okA && okB:
		nd, err := narrow(ctx, ra, rb, d, cfg)
		if err != nil {
			// The difference is proven; only its location stays coarse.
			d.Notes = append(d.Notes, "could not narrow the differences down: "+err.Error())
			return d, nil
		}
		d = nd
	default:
		var what string
		switch {
		case a.Stored != nil && b.Stored != nil:
			what = "A and B are stored fingerprints"
		case a.Stored != nil:
			what = "A is a stored fingerprint"
		case b.Stored != nil:
			what = "B is a stored fingerprint"
		default:
			what = "a database cannot hash key ranges (no RangeHasher)"
		}
		d.Notes = append(d.Notes, what+": differences are located to the fingerprint's chunks, which cannot be refined; compare two live databases (the original and the copy) to narrow them down to single rows, or take fingerprints with smaller chunks (--chunk-rows)")
	}
	return d, nil
}

func hasKeyedRanges(d *Diff) bool {
	for _, t := range d.Tables {
		if t.Keyed {
			return true
		}
	}
	return false
}

// Narrow locates the differing ranges of d further by bisection on the live
// databases a (the original) and b (the copy): each differing range is cut
// into pieces of equal row counts (on the side with more rows), both sides
// hash the pieces, and the pieces that differ are cut again, until a range
// holds at most [WithMinChunkRows] rows or one more step would give more
// than [WithMaxRanges] ranges. Adjacent differing ranges are merged in the
// result. d is not modified. Only [WithMinChunkRows] and [WithMaxRanges]
// apply.
func Narrow(ctx context.Context, a, b RangeHasher, d *Diff, opts ...CompareOption) (*Diff, error) {
	cfg, err := newCompareConfig(opts)
	if err != nil {
		return nil, err
	}
	if a == nil || b == nil || d == nil {
		return nil, fmt.Errorf("%w: Narrow needs two live databases and a diff", ErrInvalidOption)
	}
	return narrow(ctx, a, b, d, cfg)
}

func narrow(ctx context.Context, a, b RangeHasher, d *Diff, cfg compareConfig) (*Diff, error) {
	out := *d
	out.Tables = make([]TableDiff, len(d.Tables))
	out.Notes = slices.Clone(d.Notes)
	for i, td := range d.Tables {
		out.Tables[i] = td
		if !td.Keyed {
			continue
		}
		nt, err := narrowTable(ctx, a, b, td, cfg)
		if err != nil {
			return nil, fmt.Errorf("narrowing %s: %w", td.Name, err)
		}
		out.Tables[i] = nt
	}
	return &out, nil
}

// narrowed is a differing range found while narrowing, with its path in
// the bisection tree: sorting by path puts ranges in key order, which only
// the engine could otherwise tell.
type narrowed struct {
	RangeDiff
	path []int
}

// maxNarrowDepth bounds the bisection (a safety net: each step cuts a range
// into pieces of at most 1/16 of its rows).
const maxNarrowDepth = 64

func narrowTable(ctx context.Context, a, b RangeHasher, td TableDiff, cfg compareConfig) (TableDiff, error) {
	var final []narrowed
	work := make([]narrowed, len(td.Ranges))
	for i, r := range td.Ranges {
		work[i] = narrowed{RangeDiff: r, path: []int{i}}
	}
	note, stopped := "", false
	for depth := 0; len(work) > 0; depth++ {
		if len(final)+len(work) > cfg.maxRanges || depth >= maxNarrowDepth {
			final = append(final, work...)
			stopped = true
			break
		}
		var next, settled []narrowed
		for _, r := range work {
			if max(r.RowsA, r.RowsB) <= cfg.minRows {
				settled = append(settled, r)
				continue
			}
			side, rows := a, r.RowsA
			if r.RowsB > r.RowsA {
				side, rows = b, r.RowsB
			}
			every := max((rows+int64(cfg.fanout)-1)/int64(cfg.fanout), 1)
			keys, err := side.SplitRange(ctx, td.Name, r.KeyRange, every)
			if err != nil {
				return td, err
			}
			if len(keys) == 0 {
				settled = append(settled, r)
				continue
			}
			sub := make([]KeyRange, 0, len(keys)+1)
			lo := r.Lower
			for _, k := range keys {
				sub = append(sub, KeyRange{Lower: lo, Upper: k})
				lo = k
			}
			sub = append(sub, KeyRange{Lower: lo, Upper: r.Upper})
			ca, err := a.HashRanges(ctx, td.Name, sub)
			if err != nil {
				return td, err
			}
			cb, err := b.HashRanges(ctx, td.Name, sub)
			if err != nil {
				return td, err
			}
			if len(ca) != len(sub) || len(cb) != len(sub) {
				return td, fmt.Errorf("%w: HashRanges returned %d and %d chunks for %d ranges", ErrUnsupported, len(ca), len(cb), len(sub))
			}
			found := false
			for j := range sub {
				if ca[j].Rows != cb[j].Rows || ca[j].Hash != cb[j].Hash {
					path := append(slices.Clone(r.path), j)
					next = append(next, narrowed{RangeDiff: RangeDiff{KeyRange: sub[j], RowsA: ca[j].Rows, RowsB: cb[j].Rows, RowDelta: cb[j].Rows - ca[j].Rows}, path: path})
					found = true
				}
			}
			if !found {
				// The difference vanished between the fingerprint and now:
				// a database is being written. Keep the range as found.
				settled = append(settled, r)
				note = "some differences were not found again while narrowing (is a database being written?); those ranges are reported as first found"
			}
		}
		if len(final)+len(settled)+len(next) > cfg.maxRanges {
			// One more step would report too many ranges: stop at the
			// coarser ones.
			final = append(final, work...)
			stopped = true
			break
		}
		final = append(final, settled...)
		work = next
	}
	// A range holding one row on one side and none on the other ends at
	// that row's key: say so, rather than "(1000, +inf)".
	for i, r := range final {
		if r.RowsA+r.RowsB != 1 || max(r.RowsA, r.RowsB) > cfg.minRows {
			continue
		}
		side := a
		if r.RowsB == 1 {
			side = b
		}
		keys, err := side.SplitRange(ctx, td.Name, r.KeyRange, 1)
		if err != nil {
			return td, err
		}
		if len(keys) == 1 {
			final[i].Upper = keys[0]
		}
	}
	sort.Slice(final, func(i, j int) bool { return slices.Compare(final[i].path, final[j].path) < 0 })
	ranges := make([]RangeDiff, len(final))
	for i, r := range final {
		ranges[i] = r.RangeDiff
	}
	td.Ranges = mergeAdjacent(ranges)
	if stopped {
		note = fmt.Sprintf("stopped narrowing at %d differing ranges (more would exceed --max-ranges %d): ranges may hold more than %d %s",
			len(td.Ranges), cfg.maxRanges, cfg.minRows, rowsWord(cfg.minRows))
	}
	if note == "" {
		note = fmt.Sprintf("narrowed by bisection to ranges of at most %d %s", cfg.minRows, rowsWord(cfg.minRows))
	}
	td.Note = note
	return td, nil
}

// mergeAdjacent merges consecutive ranges where one ends where the next
// begins.
func mergeAdjacent(rs []RangeDiff) []RangeDiff {
	var out []RangeDiff
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].Upper != nil && r.Lower != nil && out[n-1].Upper.Equal(r.Lower) {
			out[n-1].Upper = r.Upper
			out[n-1].RowsA += r.RowsA
			out[n-1].RowsB += r.RowsB
			out[n-1].RowDelta += r.RowDelta
			continue
		}
		out = append(out, r)
	}
	return out
}

// Findings turns the differences into corruption findings for check: one
// per missing or extra table, per table whose columns differ, and per
// differing key range. A copy that lost, gained or changed rows is reported
// as corrupt: a fingerprint comparison exists to prove that nothing was.
func (d *Diff) Findings(check string) []Finding {
	var out []Finding
	remedy := "Compare the rows in this key range on both sides; restore what is missing or wrong from the original or a backup, and find out what lost it (the copy job, the disk, the restore) before trusting the copy."
	for _, t := range d.Missing {
		out = append(out, Finding{Check: check, Severity: StatusCorrupt, Object: t.Name, Code: "fingerprint_table_missing",
			Message: fmt.Sprintf("table %s (%d rows in A, %s) is missing from B (%s)", t.Name, t.Rows, d.A.Source, d.B.Source),
			Remedy:  "Restore the table from the original or a backup."})
	}
	for _, t := range d.Extra {
		out = append(out, Finding{Check: check, Severity: StatusCorrupt, Object: t.Name, Code: "fingerprint_table_extra",
			Message: fmt.Sprintf("table %s (%d rows) is in B (%s) but not in A (%s)", t.Name, t.Rows, d.B.Source, d.A.Source),
			Remedy:  "Find out where the table came from; fingerprint again if it is expected."})
	}
	for _, t := range d.Tables {
		if t.ColumnsA != nil {
			out = append(out, Finding{Check: check, Severity: StatusCorrupt, Object: t.Name, Code: "fingerprint_columns_differ",
				Message: fmt.Sprintf("the columns of %s differ: A has %s, B has %s", t.Name, columnsString(t.ColumnsA), columnsString(t.ColumnsB)),
				Remedy:  "The schema changed between the two fingerprints; compare copies with the same schema."})
			continue
		}
		for _, r := range t.Ranges {
			where := "the rows (no primary key: not located further)"
			if t.Keyed {
				where = "the rows with " + KeyColumns(t.PrimaryKey) + " in " + r.KeyRange.String()
			}
			out = append(out, Finding{Check: check, Severity: StatusCorrupt, Object: t.Name, Code: "fingerprint_mismatch",
				Message: fmt.Sprintf("%s: %s differ: %s (A: %s, B: %s)", t.Name, where, rangeRows(r), d.A.Source, d.B.Source),
				Remedy:  remedy})
		}
	}
	return out
}

// KeyColumns formats key column names to go before a [KeyRange]: "id",
// "(order_id, line)".
func KeyColumns(cols []string) string {
	if len(cols) == 1 {
		return cols[0]
	}
	return "(" + strings.Join(cols, ", ") + ")"
}

func rangeRows(r RangeDiff) string {
	s := fmt.Sprintf("%d %s in A, %d in B", r.RowsA, rowsWord(r.RowsA), r.RowsB)
	if r.RowDelta == 0 {
		return s + " (same count, different contents)"
	}
	return s + fmt.Sprintf(" (%+d)", r.RowDelta)
}

func rowsWord(n int64) string {
	if n == 1 {
		return "row"
	}
	return "rows"
}

func columnsString(cols []Column) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = c.Name + " " + c.Type
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// CheckFingerprint is the name of the checks [CompareCheck] and
// [CompareLiveCheck] return.
const CheckFingerprint = "fingerprint"

// CompareCheck returns a [Check] that fingerprints the live database with
// the chunk bounds of stored (a fingerprint taken earlier: before a
// migration, of an archive that must not change) and reports every
// difference as a corruption finding with the differing key ranges. Use it
// from a scheduler to prove, again and again, that a database still holds
// what it held. Differences are located to stored's chunks.
func CompareCheck(live Fingerprinter, stored *Fingerprint, opts ...CompareOption) Check {
	return &compareCheck{a: StoredSource(stored), b: LiveSource(live), opts: opts}
}

// CompareLiveCheck returns a [Check] that compares two live databases,
// such as a primary (a) and a copy restored from its backup (b), reporting
// every difference as a corruption finding, narrowed by bisection when both
// implement [RangeHasher]. A database written between the two fingerprints
// shows the writes as differences: compare a copy with a snapshot of the
// primary, or a primary that is quiet.
func CompareLiveCheck(a, b Fingerprinter, opts ...CompareOption) Check {
	return &compareCheck{a: LiveSource(a), b: LiveSource(b), opts: opts}
}

type compareCheck struct {
	a, b Source
	opts []CompareOption
}

func (c *compareCheck) Name() string { return CheckFingerprint }

// Statements describes what the check runs, for --explain.
func (c *compareCheck) Statements() []string {
	return []string{"fingerprint every table (row count and hash per primary-key range, in one snapshot) and compare with the other side"}
}

func (c *compareCheck) Plan(ctx context.Context) ([]Task, error) {
	if _, err := newCompareConfig(c.opts); err != nil {
		return nil, err
	}
	if err := c.a.check("A"); err != nil {
		return nil, err
	}
	if err := c.b.check("B"); err != nil {
		return nil, err
	}
	object := "database"
	if c.a.Stored != nil {
		object = c.a.Stored.Source
	}
	// The object is the database the check watches: the live one of a
	// comparison with a stored fingerprint, the original (A) of two live
	// ones.
	if ti, ok := c.b.Live.(interface{ Info() TargetInfo }); ok {
		object = ti.Info().Name
	}
	if ti, ok := c.a.Live.(interface{ Info() TargetInfo }); ok {
		object = ti.Info().Name
	}
	return []Task{{
		Key:       CheckFingerprint,
		Object:    object,
		Statement: c.Statements()[0],
		Run: func(ctx context.Context) (Result, error) {
			d, err := CompareSources(ctx, c.a, c.b, c.opts...)
			if err != nil {
				return Result{}, err
			}
			return Result{Findings: d.Findings(CheckFingerprint), Objects: int64(d.TablesCompared + len(d.Missing) + len(d.Extra))}, nil
		},
	}}, nil
}

var _ Explainer = (*compareCheck)(nil)
