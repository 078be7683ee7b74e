package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/dbscrub/dbscrub/internal/pgtest"
)

// stateFile records, inside a kept data directory, which databases were
// built and with which parameters.
const stateFile = "dbscrub_bench_state.json"

// state is the content of stateFile.
type state struct {
	// Built maps a database name to the parameters it was built with
	// (e.g. "scale=100").
	Built map[string]string `json:"built"`
}

// cluster is a pgtest cluster, optionally kept in a directory between runs.
//
// pgtest always initializes a fresh cluster in a fresh directory. To reuse
// the data of an earlier run, the harness starts a fresh pgtest cluster,
// stops it, swaps the kept data directory in for the fresh one, and starts
// it again; at the end it stops the server and moves the data directory
// back to DIR/data before pgtest removes its own directory.
type cluster struct {
	*pgtest.Cluster
	keepDir  string // "" for a throwaway cluster
	state    state
	settings map[string]string
}

// benchSettings are the postgresql.conf settings of the benchmark cluster
// (on top of pgtest's: autovacuum off, listen on 127.0.0.1).
func benchSettings(o *options) [][2]string {
	return [][2]string{
		{"shared_buffers", o.SharedBuffers},
		{"max_connections", "50"},
		// Fast, WAL-less loads (CREATE TABLE AS, pgbench -i's COPY
		// FREEZE) and no checkpoint in the middle of a measurement.
		{"wal_level", "minimal"},
		{"max_wal_senders", "0"},
		{"max_wal_size", "8GB"},
		{"checkpoint_timeout", "1h"},
		{"maintenance_work_mem", "512MB"},
		{"log_min_messages", "warning"},
	}
}

func openCluster(o *options) (*cluster, error) {
	settings := benchSettings(o)
	var opts []pgtest.Option
	m := map[string]string{}
	for _, s := range settings {
		opts = append(opts, pgtest.WithSetting(s[0], s[1]))
		m[s[0]] = s[1]
	}
	m["autovacuum"] = "off"
	m["data_checksums"] = "on"
	if o.Dir == "" {
		c, err := pgtest.Start(opts...)
		if err != nil {
			return nil, err
		}
		return &cluster{Cluster: c, state: state{Built: map[string]string{}}, settings: m}, nil
	}

	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// The server's OS user must be able to traverse DIR.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	kept := filepath.Join(dir, "data")
	rescue(dir, kept)
	// pgtest creates its directory under os.TempDir(), i.e. $TMPDIR: put it
	// in DIR, on the same file system as the kept data, so that the swap is
	// a rename.
	if err := os.Setenv("TMPDIR", dir); err != nil {
		return nil, err
	}
	c, err := pgtest.Start(opts...)
	if err != nil {
		return nil, err
	}
	bc := &cluster{Cluster: c, keepDir: dir, state: state{Built: map[string]string{}}, settings: m}
	st, err := readState(kept)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			logf("ignoring %s: %v", kept, err)
		}
		return bc, nil
	}
	if err := bc.swapIn(kept, settings); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	bc.state = st
	if bc.state.Built == nil {
		bc.state.Built = map[string]string{}
	}
	logf("reusing the cluster kept in %s", kept)
	return bc, nil
}

// swapIn replaces the fresh cluster's data directory with the kept one.
func (c *cluster) swapIn(kept string, settings [][2]string) error {
	if err := c.Stop(); err != nil {
		return err
	}
	if err := os.Rename(c.DataDir, filepath.Join(c.Dir, "fresh-data")); err != nil {
		return err
	}
	if err := os.Rename(kept, c.DataDir); err != nil {
		return err
	}
	// The kept postgresql.conf names its old socket directory; later
	// lines win.
	var b strings.Builder
	b.WriteString("\n# dbscrub internal/bench: reused cluster\n")
	fmt.Fprintf(&b, "unix_socket_directories = '%s'\n", c.DataDir)
	for _, s := range settings {
		fmt.Fprintf(&b, "%s = '%s'\n", s[0], s[1])
	}
	f, err := os.OpenFile(filepath.Join(c.DataDir, "postgresql.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		_, err = f.WriteString(b.String())
		err = errors.Join(err, f.Close())
	}
	if err == nil {
		err = c.Start()
	}
	if err != nil {
		// Put the kept data back where it was.
		_ = c.Stop()
		if rerr := os.Rename(c.DataDir, kept); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return fmt.Errorf("reusing %s: %w", kept, err)
	}
	return nil
}

// saveState records the built databases inside the data directory, so a
// kept cluster (or one rescued after a crash) knows what it holds.
func (c *cluster) saveState() error {
	b, err := json.MarshalIndent(c.state, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.DataDir, stateFile), b, 0o644)
}

func readState(dataDir string) (state, error) {
	var st state
	b, err := os.ReadFile(filepath.Join(dataDir, stateFile))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, err
	}
	return st, nil
}

// rescue moves the data directory of an earlier run that died before it
// could put the data back (its pgtest directory is still in dir, its owner
// and server are gone) to kept, so that pgtest does not remove it.
func rescue(dir, kept string) {
	if _, err := os.Stat(kept); err == nil {
		return
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "dbscrub-pgtest-*", "data", stateFile))
	for _, m := range matches {
		data := filepath.Dir(m)
		if alive(filepath.Join(filepath.Dir(data), "owner.pid")) || alive(filepath.Join(data, "postmaster.pid")) {
			continue
		}
		if err := os.Rename(data, kept); err == nil {
			logf("rescued the data directory of an interrupted run: %s -> %s", data, kept)
			return
		}
	}
}

// alive reports whether the pid in the first line of file is a live
// process.
func alive(file string) bool {
	b, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return false
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Close stops the server; a kept cluster's data directory goes back to
// DIR/data, then pgtest removes its directory.
func (c *cluster) Close() error {
	if c.keepDir == "" {
		return c.Cluster.Close()
	}
	err := c.Stop()
	if err == nil {
		err = c.saveState()
	}
	if err == nil {
		err = os.Rename(c.DataDir, filepath.Join(c.keepDir, "data"))
		if err == nil {
			logf("cluster kept in %s", filepath.Join(c.keepDir, "data"))
		}
	}
	return errors.Join(err, c.Cluster.Close())
}

// pgEnv is the environment of PostgreSQL client programs: no PG* variables
// of ours, C locale.
func pgEnv() []string {
	env := []string{"LC_ALL=C", "LANG=C"}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") || strings.HasPrefix(kv, "DBSCRUB_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// client returns a command running a PostgreSQL client program of the
// cluster's bin directory against database db.
func (c *cluster) client(prog string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.BinDir, prog), args...)
	cmd.Env = pgEnv()
	return cmd
}

// connArgs are the -h -p -U arguments of the client programs.
func (c *cluster) connArgs() []string {
	return []string{"-h", c.Host, "-p", strconv.Itoa(c.Port), "-U", pgtest.Superuser}
}

// restartAndDropCaches gives a cold start: the server is restarted (empty
// shared_buffers) and the kernel's page cache is dropped (needs root).
func (c *cluster) restartAndDropCaches() error {
	if err := c.Restart(); err != nil {
		return err
	}
	return dropCaches()
}

func dropCaches() error {
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200); err != nil {
		return fmt.Errorf("drop the page cache (needs root): %w", err)
	}
	return nil
}
