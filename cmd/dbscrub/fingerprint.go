package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/redact"
)

// fingerprintFlags are the flags shared by dbscrub fingerprint and compare.
type fingerprintFlags struct {
	tables    listFlag
	exclude   listFlag
	chunkTime time.Duration
	chunkRows int64
	jobs      int
}

func (f *fingerprintFlags) register(fs *flag.FlagSet) {
	fs.Var(&f.tables, "table", "only tables matching these patterns (repeatable, comma-separated; * and ? wildcards; schema.table or table)")
	fs.Var(&f.exclude, "exclude-table", "skip tables matching these patterns")
	fs.DurationVar(&f.chunkTime, "chunk-time", checks.DefaultChunkTime, "size chunks so each chunk's query takes about this long")
	fs.Int64Var(&f.chunkRows, "chunk-rows", 0, "fixed rows per chunk instead of --chunk-time (smaller: a bigger, more precise file)")
	fs.IntVar(&f.jobs, "jobs", 1, "connections hashing chunks at once, in one shared snapshot (PostgreSQL)")
}

func (f *fingerprintFlags) options() ([]checks.FingerprintOption, error) {
	var opts []checks.FingerprintOption
	if len(f.tables) > 0 {
		opts = append(opts, checks.WithTables(f.tables...))
	}
	if len(f.exclude) > 0 {
		opts = append(opts, checks.WithExcludeTables(f.exclude...))
	}
	opts = append(opts, checks.WithChunkTime(f.chunkTime), checks.WithFingerprintJobs(f.jobs))
	if f.chunkRows != 0 {
		opts = append(opts, checks.WithChunkRows(f.chunkRows))
	}
	if _, err := checks.NewFingerprintConfig(opts...); err != nil {
		return nil, flagError(err)
	}
	return opts, nil
}

// flagError turns an option error into a flag message.
func flagError(err error) error {
	msg := strings.TrimPrefix(err.Error(), checks.ErrInvalidOption.Error()+": ")
	return errors.New(msg)
}

// parseInterleaved parses flags and positional arguments in any order.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// argSecrets returns the DSN passwords in args, to scrub from messages.
func argSecrets(args []string) []string {
	out := []string{redact.Password(os.Getenv("DBSCRUB_DSN"))}
	for _, a := range args {
		if _, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(a, "-") {
			a = v
		}
		if p := redact.Password(a); p != "" {
			out = append(out, p)
		}
	}
	return out
}

const fingerprintUsage = `Usage: dbscrub fingerprint --dsn DSN [-o FILE] [flags]

Writes the content fingerprint of a database as JSON (stdout by default):
engine, server version, time, and for every table its columns, primary key,
row count and an order-independent hash of every row, per primary-key range.
Take one before a migration, a disk move or a backup; compare the copy with
it afterwards (dbscrub compare FILE DSN).

The file holds primary key values (the chunk bounds): keep it as private as
the data. It is written with mode 0600.

Exit codes: 0 written, 1 could not fingerprint.

Flags:
`

func cmdFingerprint(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	secrets := argSecrets(args)
	fail := func(err error) int {
		fmt.Fprintln(stderr, "dbscrub fingerprint:", redact.Scrub(err.Error(), secrets...))
		return exitError
	}
	var (
		dsn, output, boundsFrom string
		ff                      fingerprintFlags
	)
	fs := flag.NewFlagSet("dbscrub fingerprint", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&dsn, "dsn", "", "database to fingerprint: postgres://..., sqlserver://..., sqlite://PATH or a file path (default $DBSCRUB_DSN)")
	fs.StringVar(&output, "o", "", "write the fingerprint to this file instead of stdout")
	fs.StringVar(&output, "output", "", "same as -o")
	fs.StringVar(&boundsFrom, "bounds-from", "", "cut tables into the chunks of this earlier fingerprint, so the two compare chunk by chunk")
	ff.register(fs)
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stderr)
		fmt.Fprint(stderr, fingerprintUsage)
		fs.PrintDefaults()
		return exitOK
	}
	if err != nil {
		return fail(err)
	}
	if len(pos) > 0 {
		return fail(fmt.Errorf("unexpected argument %q (the DSN is given with --dsn)", redact.DSN(pos[0])))
	}
	if dsn == "" {
		dsn = os.Getenv("DBSCRUB_DSN")
	}
	if dsn == "" {
		return fail(errors.New("no database given: use --dsn or set DBSCRUB_DSN"))
	}
	opts, err := ff.options()
	if err != nil {
		return fail(err)
	}
	if boundsFrom != "" {
		prev, err := readFingerprintFile(boundsFrom)
		if err != nil {
			return fail(err)
		}
		opts = append(opts, checks.WithBoundsFrom(prev))
	}
	f, closer, err := openFingerprinter(dsn)
	if err != nil {
		return fail(err)
	}
	defer closer.Close()
	fp, err := f.Fingerprint(ctx, opts...)
	if err != nil {
		return fail(err)
	}
	if output == "" {
		if err := fp.Write(stdout); err != nil {
			return fail(err)
		}
	} else if err := writeFileAtomic(output, fp); err != nil {
		return fail(err)
	}
	dest := "stdout"
	if output != "" {
		dest = output
	}
	fmt.Fprintf(stderr, "dbscrub: fingerprinted %d %s (%s rows) of %s in %s; written to %s\n",
		len(fp.Tables), plural(len(fp.Tables), "table", "tables"), thousands(fp.Rows()), fp.Source,
		time.Duration(fp.DurationSeconds*float64(time.Second)).Round(time.Millisecond), dest)
	return exitOK
}

// writeFileAtomic writes fp to path through a temporary file in the same
// directory, so that a failed run never leaves half a fingerprint.
func writeFileAtomic(path string, fp *checks.Fingerprint) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	w := bufio.NewWriter(tmp)
	err = fp.Write(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// openFingerprinter opens the database of dsn with the engine's default
// options.
func openFingerprinter(dsn string) (checks.Fingerprinter, io.Closer, error) {
	e, err := pick(dsn)
	if err != nil {
		return nil, nil, err
	}
	tgt, closer, err := openTarget(&checkFlags{dsn: dsn, set: map[string]bool{}})
	if err != nil {
		return nil, nil, err
	}
	f, ok := tgt.(checks.Fingerprinter)
	if !ok {
		closer.Close()
		return nil, nil, fmt.Errorf("%w: %s cannot take fingerprints yet", checks.ErrUnsupported, e.title)
	}
	return f, closer, nil
}

// readFingerprintFile reads a fingerprint file ("-" is stdin).
func readFingerprintFile(path string) (*checks.Fingerprint, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	fp, err := checks.ReadFingerprint(bufio.NewReader(r))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return fp, nil
}

// isFingerprintFile reports whether arg names a fingerprint file rather
// than a database: "-", or an existing file whose first non-blank byte is
// '{' (an SQLite database starts with "SQLite format 3").
func isFingerprintFile(arg string) bool {
	if arg == "-" {
		return true
	}
	if strings.Contains(arg, "://") || strings.HasPrefix(strings.ToLower(arg), "file:") {
		return false
	}
	f, err := os.Open(arg)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 64)
	n, _ := io.ReadFull(f, head)
	head = bytes.TrimLeft(head[:n], " \t\r\n\ufeff")
	return len(head) > 0 && head[0] == '{'
}

const compareUsage = `Usage: dbscrub compare A B [flags]

Compares A (the original) with B (the copy). Each is a fingerprint file
written by dbscrub fingerprint ("-" for stdin) or a database DSN, which is
fingerprinted now. A live database compared with a file is cut into the
file's chunks, so differences are located to those chunks; two live
databases are narrowed further by bisection, down to --min-chunk-rows.

Prints the missing and extra tables and, for each table that differs, the
primary-key ranges that differ, (after, up to and including], with their
row counts on each side.

Exit codes: 0 identical, 2 different, 1 could not compare.

Flags:
`

func cmdCompare(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	secrets := argSecrets(args)
	fail := func(err error) int {
		fmt.Fprintln(stderr, "dbscrub compare:", redact.Scrub(err.Error(), secrets...))
		return exitError
	}
	var (
		format    string
		minRows   int64
		maxRanges int
		noNarrow  bool
		ff        fingerprintFlags
	)
	fs := flag.NewFlagSet("dbscrub compare", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&format, "format", "text", "output format: text or json")
	fs.Int64Var(&minRows, "min-chunk-rows", checks.DefaultMinChunkRows, "narrow differing ranges of two live databases down to this many rows")
	fs.IntVar(&maxRanges, "max-ranges", checks.DefaultMaxRanges, "stop narrowing a table before it has more differing ranges than this")
	fs.BoolVar(&noNarrow, "no-narrow", false, "report differences at chunk granularity, without bisecting")
	ff.register(fs)
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stderr)
		fmt.Fprint(stderr, compareUsage)
		fs.PrintDefaults()
		return exitOK
	}
	if err != nil {
		return fail(err)
	}
	switch {
	case len(pos) != 2:
		return fail(fmt.Errorf("want two arguments, A and B (fingerprint files or DSNs), got %d", len(pos)))
	case format != "text" && format != "json":
		return fail(fmt.Errorf("--format must be text or json, got %q", format))
	case pos[0] == "-" && pos[1] == "-":
		return fail(errors.New("only one of A and B can be read from stdin"))
	}
	fopts, err := ff.options()
	if err != nil {
		return fail(err)
	}
	copts := []checks.CompareOption{checks.WithFingerprintOptions(fopts...), checks.WithMinChunkRows(minRows), checks.WithMaxRanges(maxRanges)}
	if noNarrow {
		copts = append(copts, checks.WithoutNarrowing())
	}
	var sources [2]checks.Source
	for i, arg := range pos {
		if isFingerprintFile(arg) {
			fp, err := readFingerprintFile(arg)
			if err != nil {
				return fail(err)
			}
			sources[i] = checks.StoredSource(fp)
			continue
		}
		f, closer, err := openFingerprinter(arg)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", "AB"[i:i+1], err))
		}
		defer closer.Close()
		sources[i] = checks.LiveSource(f)
	}
	d, err := checks.CompareSources(ctx, sources[0], sources[1], copts...)
	if err != nil {
		if errors.Is(err, checks.ErrInvalidOption) {
			err = flagError(err)
		}
		return fail(err)
	}
	if format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(d); err != nil {
			return fail(err)
		}
	} else {
		writeDiff(stdout, d)
	}
	if d.Identical {
		return exitOK
	}
	return exitCorrupt
}

// writeDiff prints a comparison for people.
func writeDiff(w io.Writer, d *checks.Diff) {
	side := func(name string, fi checks.FingerprintInfo) {
		how := "fingerprint taken " + fi.TakenAt.UTC().Format(time.RFC3339)
		if fi.Live {
			how = "live, fingerprinted " + fi.TakenAt.UTC().Format(time.RFC3339)
		}
		ver := fi.Engine
		if fi.ServerVersion != "" {
			ver += " " + fi.ServerVersion
		}
		fmt.Fprintf(w, "%s: %s (%s; %s; %d %s, %s rows)\n", name, fi.Source, ver, how, fi.Tables, plural(fi.Tables, "table", "tables"), thousands(fi.Rows))
	}
	side("A", d.A)
	side("B", d.B)
	fmt.Fprintln(w)
	for _, t := range d.Missing {
		fmt.Fprintf(w, "MISSING  %s: %s %s in A, not in B\n", t.Name, thousands(t.Rows), plural(int(min(t.Rows, 2)), "row", "rows"))
	}
	for _, t := range d.Extra {
		fmt.Fprintf(w, "EXTRA    %s: %s %s in B, not in A\n", t.Name, thousands(t.Rows), plural(int(min(t.Rows, 2)), "row", "rows"))
	}
	for _, t := range d.Tables {
		fmt.Fprintf(w, "DIFFERS  %s: %s\n", t.Name, rowsAB(t.RowsA, t.RowsB, t.RowDelta))
		if t.ColumnsA != nil {
			fmt.Fprintf(w, "         columns in A: %s\n         columns in B: %s\n", columns(t.ColumnsA), columns(t.ColumnsB))
		}
		if t.Keyed {
			key := checks.KeyColumns(t.PrimaryKey)
			for _, r := range t.Ranges {
				fmt.Fprintf(w, "         %s in %s: %s\n", key, r.KeyRange, rowsAB(r.RowsA, r.RowsB, r.RowDelta))
			}
		}
		if t.Note != "" {
			fmt.Fprintf(w, "         (%s)\n", t.Note)
		}
	}
	for _, n := range d.Notes {
		fmt.Fprintf(w, "Note: %s\n", n)
	}
	if len(d.Missing)+len(d.Extra)+len(d.Tables) > 0 {
		fmt.Fprintln(w)
	}
	if d.Identical {
		fmt.Fprintf(w, "dbscrub: IDENTICAL: %d %s, %s rows compared\n", d.TablesCompared, plural(d.TablesCompared, "table", "tables"), thousands(d.A.Rows))
		return
	}
	fmt.Fprintf(w, "dbscrub: DIFFERENT: %d missing, %d extra, %d of %d %s in both differ; key ranges are (after, up to and including]\n",
		len(d.Missing), len(d.Extra), len(d.Tables), d.TablesCompared, plural(d.TablesCompared, "table", "tables"))
}

func rowsAB(a, b, delta int64) string {
	s := fmt.Sprintf("%s %s in A, %s in B", thousands(a), plural(int(min(a, 2)), "row", "rows"), thousands(b))
	if delta == 0 {
		return s + " (same count, different contents)"
	}
	return s + fmt.Sprintf(" (%+d)", delta)
}

func columns(cols []checks.Column) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = c.Name + " " + c.Type
	}
	return strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// thousands formats n with thousands separators: 1,000,000.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
