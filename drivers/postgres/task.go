package postgres

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/dbscrub/dbscrub/checks"
)

// maxFindingsPerTask caps the findings one task reports; the rest are
// summed up in one last finding.
const maxFindingsPerTask = 1000

// findings collects a task's findings up to the cap.
type findings struct {
	list    []checks.Finding
	dropped map[string]int // object -> findings left out
}

func (f *findings) add(fd checks.Finding) {
	if len(f.list) < maxFindingsPerTask {
		f.list = append(f.list, fd)
		return
	}
	if f.dropped == nil {
		f.dropped = map[string]int{}
	}
	f.dropped[fd.Object]++
}

func (f *findings) result() []checks.Finding {
	out := f.list
	for obj, n := range f.dropped {
		out = append(out, checks.Finding{
			Severity: checks.StatusCorrupt,
			Object:   obj,
			Code:     "more_findings",
			Message:  fmt.Sprintf("%d more problems in %s were found but not listed (dbscrub lists at most %d per task)", n, obj, maxFindingsPerTask),
			Remedy:   "run pg_amcheck or SELECT * FROM verify_heapam(...) on the object to see every problem",
		})
	}
	return out
}

// runTask opens a session, runs fn in it and turns a lost connection into
// the crash classification of [session.lost]. Verification tasks set
// o.guard, so that they refuse to run where damage would be hidden.
func (r *run) runTask(ctx context.Context, o sessionOpts, object string, fn func(s *session, f *findings) (checks.Result, error)) (checks.Result, error) {
	caps := r.caps
	o.superuser = caps != nil && caps.Superuser
	o.wait = true
	s, err := r.t.begin(ctx, o)
	if err != nil {
		return checks.Result{}, err
	}
	defer s.close()
	var f findings
	res, err := fn(s, &f)
	res.Findings = f.result()
	if err == nil {
		return res, nil
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("postgres: verifying %s interrupted: %w", object, context.Cause(ctx))
	}
	if isConnLost(err) {
		crash, lerr := s.lost(ctx, object, err, true)
		res.Findings = append(res.Findings, crash...)
		return res, lerr
	}
	return res, err
}

// taskError describes a server error that is not corruption: a lock or
// statement timeout, a missing privilege, anything else.
func (t *Target) taskError(err error, object string) error {
	se, ok := asServerError(err)
	if !ok {
		return t.scrub(fmt.Errorf("postgres: verifying %s: %s", object, oneLine(err.Error())))
	}
	msg := se.message
	switch se.code {
	case "55P03":
		return fmt.Errorf("postgres: could not lock %s within the lock timeout of %s: another session holds a conflicting lock (ALTER TABLE, VACUUM FULL, REINDEX, CLUSTER, TRUNCATE, DROP); run again later or raise WithLockTimeout (server: %s)",
			object, t.cfg.lockTimeout, msg)
	case "57014":
		return fmt.Errorf("postgres: verifying %s was cancelled by the server after the statement timeout of %s; lower WithChunkSize (heap) or raise WithStatementTimeout (server: %s)",
			object, t.cfg.statementTimeout, msg)
	case "42501":
		return fmt.Errorf("postgres: %w: verifying %s: %s (SQLSTATE 42501)", ErrPrivilege, object, msg)
	case "40001":
		if strings.Contains(msg, "conflict with recovery") {
			return checks.Retryable(fmt.Errorf("postgres: verifying %s on a standby was cancelled by a recovery conflict (%s); raise max_standby_streaming_delay or enable hot_standby_feedback on the standby", object, msg))
		}
	case "25006":
		return fmt.Errorf("postgres: verifying %s: %s (SQLSTATE 25006); dbscrub runs read-only and found a statement that writes: this is a bug in dbscrub", object, msg)
	}
	if se.detail != "" {
		msg += "; DETAIL: " + se.detail
	}
	return t.scrub(fmt.Errorf("postgres: verifying %s: %s (SQLSTATE %s)", object, oneLine(msg), se.code))
}

var corruptMessage = regexp.MustCompile(`could not (read|open|seek|access|fsync)|invalid page|read only \d+ of \d+ bytes|unexpected zero page|unexpected data beyond EOF|invalid memory alloc request size|missing chunk number|unexpected chunk`)

// corruption turns a server error raised while reading an object into a
// corruption finding, when the error says the data is damaged or missing:
// XX001 data_corrupted (including page checksum failures), XX002
// index_corrupted, 58P01 undefined_file (a relation file is missing), 58030
// io_error, and internal errors whose message says a block or file could
// not be read.
func corruption(err error, object string) (checks.Finding, bool) {
	se, ok := asServerError(err)
	if !ok {
		return checks.Finding{}, false
	}
	switch se.code {
	case "XX001", "XX002", "58P01", "58030":
	case "XX000", "":
		if !corruptMessage.MatchString(se.message) {
			return checks.Finding{}, false
		}
	default:
		return checks.Finding{}, false
	}
	msg := se.message
	if se.detail != "" {
		msg += "; DETAIL: " + se.detail
	}
	return checks.Finding{
		Severity: checks.StatusCorrupt,
		Object:   object,
		Location: locationOf(se.message + " " + se.detail),
		Code:     se.code,
		Message:  oneLine(msg),
		Remedy:   remedyFor(se, object),
	}, true
}

var (
	tidRE   = regexp.MustCompile(`(?:index )?tid=\((\d+),(\d+)\)`)
	blockRE = regexp.MustCompile(`block (\d+)`)
)

// locationOf parses a block (and item) number out of a server message such
// as `invalid page in block 3 of relation base/5/16384` or `index
// tid=(1,4)`.
func locationOf(msg string) checks.Location {
	var l checks.Location
	if m := blockRE.FindStringSubmatch(msg); m != nil {
		if v, err := strconv.ParseInt(m[1], 10, 64); err == nil {
			l.Page = checks.Int(v)
		}
		return l
	}
	if m := tidRE.FindStringSubmatch(msg); m != nil {
		b, err1 := strconv.ParseInt(m[1], 10, 64)
		o, err2 := strconv.ParseInt(m[2], 10, 64)
		if err1 == nil && err2 == nil {
			l.Page, l.Offset = checks.Int(b), checks.Int(o)
		}
	}
	return l
}

// blockOf returns the block number an error names, if any.
func blockOf(err error) (int64, bool) {
	se, ok := asServerError(err)
	if !ok {
		return 0, false
	}
	if m := blockRE.FindStringSubmatch(se.message); m != nil {
		v, err := strconv.ParseInt(m[1], 10, 64)
		return v, err == nil
	}
	return 0, false
}

func remedyFor(se serverError, object string) string {
	const backup = "save a copy of the whole data directory (with the server stopped) before changing anything, then restore the object from a backup or a replica; "
	switch {
	case strings.Contains(se.message, "invalid page"):
		return "a page failed its checksum or header check: the block on disk is damaged (storage, memory, a torn write or a bug); " + backup + "check the storage and the kernel log for I/O errors; REINDEX fixes a damaged index, a table needs a restore (pg_surgery or zero_damaged_pages lose data and are a last resort)"
	case se.code == "58P01" || strings.Contains(se.message, "No such file"):
		return "a data file of " + object + " is missing: " + backup + "do not run VACUUM or write to the table until it is restored"
	case strings.Contains(se.message, "read only"):
		return "a data file of " + object + " is shorter than the server expects (truncated, e.g. by a failed copy or a full disk): " + backup + "check the storage and the kernel log"
	case se.code == "XX002":
		return "the index " + object + " is corrupt: REINDEX INDEX CONCURRENTLY " + object + " rebuilds it from the table (first run the heap check on the table: a damaged table can make the rebuilt index wrong too)"
	}
	return backup + "see https://wiki.postgresql.org/wiki/Corruption"
}
