// Package pgtest runs throwaway PostgreSQL clusters for tests and damages
// their on-disk files in controlled ways, so that integrity checks (amcheck,
// checksums, plain reads) can be shown to detect real corruption.
//
// A cluster is created with initdb in a fresh temporary directory, listens on
// a random free port on 127.0.0.1 and keeps its Unix socket inside its data
// directory, so it never interferes with a system PostgreSQL. When the test
// process runs as root, every PostgreSQL program is run as the "postgres" OS
// user (override with DBSCRUB_PG_OSUSER), because PostgreSQL refuses to run as
// root.
//
// The server binaries are found through DBSCRUB_PG_BINDIR, then
// `pg_config --bindir`, then the newest /usr/lib/postgresql/*/bin.
//
// Authentication: the superuser "postgres" is trusted for local and host
// connections; every other role must authenticate with scram-sha-256 over
// TCP, so tests can exercise wrong-password handling (see CreateUser).
//
// Autovacuum is off by default (override with WithSetting("autovacuum", "on"))
// so that nothing touches injected damage behind a test's back.
package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lib/pq"
)

const (
	// Superuser is the bootstrap superuser of every cluster (initdb -U).
	Superuser = "postgres"

	// readyTimeout bounds how long Start waits for the server to accept
	// connections.
	readyTimeout = 30 * time.Second
	// stopTimeout bounds how long a fast shutdown may take before the
	// server is shut down immediately, then killed.
	stopTimeout = 60 * time.Second

	dirPrefix   = "dbscrub-pgtest-"
	ownerFile   = "owner.pid"
	logFileName = "server.log"
)

// ErrServerNotFound is returned (wrapped) by Start and FindBinDir when the
// PostgreSQL server binaries cannot be located.
var ErrServerNotFound = errors.New("PostgreSQL server binaries not found")

// Option configures a cluster created by Start.
type Option func(*config)

type config struct {
	checksums bool
	settings  [][2]string
}

// WithoutChecksums creates the cluster without data checksums (initdb is run
// without --data-checksums).
func WithoutChecksums() Option {
	return func(c *config) { c.checksums = false }
}

// WithSetting appends "name = 'value'" to postgresql.conf. Later settings
// override earlier ones, including the defaults pgtest writes.
func WithSetting(name, value string) Option {
	return func(c *config) { c.settings = append(c.settings, [2]string{name, value}) }
}

// osUser is the OS identity PostgreSQL programs run as when we are root.
type osUser struct {
	name     string
	uid, gid uint32
}

// Cluster is a throwaway PostgreSQL cluster owned by a test binary.
//
// The exported fields describe the cluster and must not be modified. Methods
// are safe for concurrent use, but the corruption injectors and
// Stop/Start/Restart interrupt every connection, so clusters that get damaged
// or restarted should be dedicated to one test (see Fresh).
type Cluster struct {
	// Host is the TCP address the server listens on (always "127.0.0.1").
	Host string
	// Port is the TCP port the server listens on.
	Port int
	// Dir is the temporary directory holding DataDir and the server log.
	Dir string
	// DataDir is the cluster's data directory (PGDATA). Its Unix socket
	// lives here too.
	DataDir string
	// BinDir holds the PostgreSQL programs used (initdb, postgres, ...).
	BinDir string
	// LogFile is the server log (see Log).
	LogFile string
	// Version is the server major version, e.g. 15.
	Version int
	// Checksums reports whether the cluster was initialized with data
	// checksums.
	Checksums bool

	runAs *osUser // nil: run PostgreSQL programs as ourselves

	mu     sync.Mutex
	server *server // nil when not started by us or known to have exited
	closed bool
}

// server is one run of the postmaster.
type server struct {
	proc *os.Process
	done chan struct{} // closed when proc has exited
	err  error         // result of Wait; valid once done is closed
}

func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Start initializes a new cluster in a fresh temporary directory, starts it
// on a random free port on 127.0.0.1, waits until it accepts connections and
// creates the amcheck extension in template1 (so every database created by
// CreateDatabase has it) and in the postgres database.
//
// Start returns an error instead of failing a test so it can be used from
// TestMain; errors from a failed server start include the tail of the server
// log. The caller must Close the cluster.
func Start(opts ...Option) (*Cluster, error) {
	cfg := config{checksums: true}
	for _, o := range opts {
		o(&cfg)
	}
	return start(cfg)
}

func start(cfg config) (_ *Cluster, err error) {
	binDir, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	version, err := serverVersion(binDir)
	if err != nil {
		return nil, err
	}
	runAs, err := lookupRunAs()
	if err != nil {
		return nil, err
	}

	base := baseTempDir(runAs != nil)
	removeStaleDirs(base)

	dir, err := os.MkdirTemp(base, dirPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("pgtest: create temp dir: %w", err)
	}
	c := &Cluster{
		Host:      "127.0.0.1",
		Dir:       dir,
		DataDir:   filepath.Join(dir, "data"),
		BinDir:    binDir,
		LogFile:   filepath.Join(dir, logFileName),
		Version:   version,
		Checksums: cfg.checksums,
		runAs:     runAs,
	}
	defer func() {
		if err != nil {
			if cerr := c.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()

	if err := c.prepareDir(); err != nil {
		return nil, err
	}
	if err := c.initdb(); err != nil {
		return nil, err
	}
	if err := c.writeConfig(cfg.settings); err != nil {
		return nil, err
	}
	if err := c.startFirst(); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	for _, db := range []string{"template1", "postgres"} {
		if err := c.Exec(ctx, db, "CREATE EXTENSION IF NOT EXISTS amcheck"); err != nil {
			return nil, fmt.Errorf("pgtest: create extension amcheck in %s: %w", db, err)
		}
	}
	return c, nil
}

// FindBinDir locates the directory holding the PostgreSQL server programs:
// $DBSCRUB_PG_BINDIR if set, else `pg_config --bindir`, else the newest
// /usr/lib/postgresql/*/bin. A directory qualifies only if it contains both
// initdb and postgres. The error wraps ErrServerNotFound.
func FindBinDir() (string, error) {
	if dir := os.Getenv("DBSCRUB_PG_BINDIR"); dir != "" {
		if err := hasServer(dir); err != nil {
			return "", fmt.Errorf("%w: DBSCRUB_PG_BINDIR=%s: %v", ErrServerNotFound, dir, err)
		}
		return dir, nil
	}
	var tried []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if hasServer(dir) == nil {
			return dir, nil
		}
		tried = append(tried, dir+" (from pg_config)")
	} else {
		tried = append(tried, "pg_config (not usable: "+err.Error()+")")
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best, bestVer := "", -1.0
	for _, m := range matches {
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(m)), 64)
		if err != nil || hasServer(m) != nil {
			continue
		}
		if v > bestVer {
			best, bestVer = m, v
		}
	}
	if best != "" {
		return best, nil
	}
	tried = append(tried, "/usr/lib/postgresql/*/bin")
	return "", fmt.Errorf("%w: need initdb and postgres; looked in $DBSCRUB_PG_BINDIR (unset), %s; set DBSCRUB_PG_BINDIR",
		ErrServerNotFound, strings.Join(tried, ", "))
}

func hasServer(dir string) error {
	for _, prog := range []string{"initdb", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, prog))
		if err != nil {
			return fmt.Errorf("missing %s", prog)
		}
		if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("%s is not executable", prog)
		}
	}
	return nil
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

func serverVersion(binDir string) (int, error) {
	out, err := exec.Command(filepath.Join(binDir, "postgres"), "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("pgtest: %s/postgres --version: %w", binDir, err)
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgtest: cannot parse server version from %q", strings.TrimSpace(string(out)))
	}
	v, err := strconv.Atoi(string(m[1]))
	if err != nil {
		return 0, fmt.Errorf("pgtest: parse server version: %w", err)
	}
	return v, nil
}

// lookupRunAs returns the OS user to run PostgreSQL as, or nil when the
// current user can run it directly (i.e. is not root).
func lookupRunAs() (*osUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	name := os.Getenv("DBSCRUB_PG_OSUSER")
	if name == "" {
		name = "postgres"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, PostgreSQL must run as OS user %q: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: uid of %q: %w", name, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: gid of %q: %w", name, err)
	}
	if uid == 0 {
		return nil, fmt.Errorf("pgtest: OS user %q is root; PostgreSQL refuses to run as root", name)
	}
	return &osUser{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
}

// baseTempDir returns the directory to create cluster directories in. When
// the server runs as another user, every ancestor must be traversable by
// others; if os.TempDir() is not, /tmp is used.
func baseTempDir(otherUser bool) string {
	dir := os.TempDir()
	if !otherUser {
		return dir
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return "/tmp"
		}
		if d == filepath.Dir(d) {
			return dir
		}
	}
}

// removeStaleDirs deletes cluster directories left behind by test processes
// that died without calling Close (their servers die with them). Directories
// whose owner process or postmaster is still alive are kept.
func removeStaleDirs(base string) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), dirPrefix) {
			continue
		}
		dir := filepath.Join(base, e.Name())
		owner, ok := readPID(filepath.Join(dir, ownerFile))
		if !ok || processAlive(owner) {
			continue
		}
		if pm, ok := readPID(filepath.Join(dir, "data", "postmaster.pid")); ok && processAlive(pm) {
			continue
		}
		_ = os.RemoveAll(dir)
	}
}

func readPID(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	return pid, err == nil && pid > 0
}

// prepareDir makes the temp dir usable by the server's OS user and records
// the owning test process.
func (c *Cluster) prepareDir() error {
	if err := os.Chmod(c.Dir, 0o755); err != nil {
		return fmt.Errorf("pgtest: chmod %s: %w", c.Dir, err)
	}
	if err := c.writeFile(filepath.Join(c.Dir, ownerFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Mkdir(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("pgtest: create data dir: %w", err)
	}
	for _, p := range []string{c.Dir, c.DataDir} {
		if err := c.chown(p); err != nil {
			return err
		}
	}
	return nil
}

// chown gives path to the server's OS user when running as root.
func (c *Cluster) chown(path string) error {
	if c.runAs == nil {
		return nil
	}
	if err := os.Chown(path, int(c.runAs.uid), int(c.runAs.gid)); err != nil {
		return fmt.Errorf("pgtest: chown %s to %s: %w", path, c.runAs.name, err)
	}
	return nil
}

// writeFile writes a file and hands it to the server's OS user.
func (c *Cluster) writeFile(path string, data []byte, perm os.FileMode) error {
	if err := os.WriteFile(path, data, perm); err != nil {
		return fmt.Errorf("pgtest: write %s: %w", path, err)
	}
	return c.chown(path)
}

// command builds a command running a PostgreSQL program as the server's OS
// user, with a clean environment.
func (c *Cluster) command(prog string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.BinDir, prog), args...)
	cmd.Dir = c.Dir
	env := []string{"LC_ALL=C", "LANG=C"}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = env
	cmd.SysProcAttr = sysProcAttr(c.runAs)
	return cmd
}

func (c *Cluster) initdb() error {
	args := []string{"-D", c.DataDir, "-U", Superuser, "--auth=trust", "-E", "UTF8", "--locale=C"}
	if c.Checksums {
		args = append(args, "--data-checksums")
	}
	out, err := c.command("initdb", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: initdb %s: %w\n%s", strings.Join(args, " "), err, tail(string(out), 30))
	}
	return nil
}

func confQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func (c *Cluster) writeConfig(extra [][2]string) error {
	settings := [][2]string{
		{"listen_addresses", c.Host},
		{"unix_socket_directories", c.DataDir},
		{"shared_buffers", "32MB"},
		{"autovacuum", "off"},
		{"logging_collector", "off"},
		{"log_line_prefix", "%m [%p] %q%u@%d "},
	}
	settings = append(settings, extra...)
	var b strings.Builder
	b.WriteString("\n# Added by dbscrub internal/pgtest.\n")
	for _, s := range settings {
		fmt.Fprintf(&b, "%s = %s\n", s[0], confQuote(s[1]))
	}
	conf := filepath.Join(c.DataDir, "postgresql.conf")
	f, err := os.OpenFile(conf, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgtest: open postgresql.conf: %w", err)
	}
	_, werr := f.WriteString(b.String())
	if err := errors.Join(werr, f.Close()); err != nil {
		return fmt.Errorf("pgtest: append to postgresql.conf: %w", err)
	}

	// The superuser is trusted everywhere; every other role needs a
	// password over TCP, so wrong-password handling can be tested.
	hba := `# Written by dbscrub internal/pgtest.
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       postgres                 trust
local   all       all                      scram-sha-256
host    all       postgres  127.0.0.1/32   trust
host    all       all       127.0.0.1/32   scram-sha-256
host    all       postgres  ::1/128        trust
host    all       all       ::1/128        scram-sha-256
`
	return c.writeFile(filepath.Join(c.DataDir, "pg_hba.conf"), []byte(hba), 0o600)
}

// freePort asks the kernel for a currently free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startFirst starts the server for the first time, retrying with another
// port if the chosen one was taken in the meantime.
func (c *Cluster) startFirst() error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if c.Port, err = freePort(); err != nil {
			return err
		}
		c.mu.Lock()
		err = c.startLocked()
		c.mu.Unlock()
		if err == nil || !errors.Is(err, errPortInUse) {
			return err
		}
	}
	return err
}

var errPortInUse = errors.New("port already in use")

// Start starts a stopped cluster again and waits until it accepts
// connections. It does nothing if the server is running.
func (c *Cluster) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("pgtest: start: cluster is closed")
	}
	if c.runningLocked() {
		return nil
	}
	return c.startLocked()
}

func (c *Cluster) runningLocked() bool {
	if c.server == nil {
		return false
	}
	if c.server.exited() {
		c.server = nil
		return false
	}
	return true
}

func (c *Cluster) startLocked() error {
	logf, err := os.OpenFile(c.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: open server log: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	if err := c.chown(c.LogFile); err != nil {
		return err
	}
	logStart, _ := logf.Seek(0, io.SeekEnd)

	cmd := c.command("postgres", "-D", c.DataDir, "-p", strconv.Itoa(c.Port))
	cmd.Stdout = logf
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	srv := &server{proc: cmd.Process, done: make(chan struct{})}
	c.server = srv
	go func() {
		srv.err = cmd.Wait()
		close(srv.done)
	}()

	if err := c.waitReady(srv); err != nil {
		_ = c.stopLocked(syscall.SIGQUIT)
		c.server = nil
		log := c.logSince(logStart)
		if strings.Contains(log, "Address already in use") || strings.Contains(log, "could not create any TCP/IP sockets") {
			err = fmt.Errorf("%w: %w", errPortInUse, err)
		}
		return fmt.Errorf("pgtest: start server on port %d: %w\n--- server log tail ---\n%s", c.Port, err, tail(log, 30))
	}
	return nil
}

// waitReady polls until the server accepts connections, it exits, or
// readyTimeout passes.
func (c *Cluster) waitReady(srv *server) error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	db, err := sql.Open("postgres", c.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("open connection pool: %w", err)
	}
	defer db.Close()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		lastErr = db.PingContext(pctx)
		pcancel()
		if lastErr == nil {
			return nil
		}
		select {
		case <-srv.done:
			return fmt.Errorf("server exited during startup: %v", srv.err)
		case <-ctx.Done():
			return fmt.Errorf("server not ready after %s: %w", readyTimeout, lastErr)
		case <-tick.C:
		}
	}
}

// Stop shuts the server down in "fast" mode (like pg_ctl stop -m fast: a
// shutdown checkpoint is written) and waits for it to exit. It does nothing
// if the server is not running.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopLocked(syscall.SIGINT)
}

// StopImmediate shuts the server down in "immediate" mode (like pg_ctl stop
// -m immediate: no checkpoint, the next start runs crash recovery) and waits
// for it to exit. It does nothing if the server is not running.
func (c *Cluster) StopImmediate() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopLocked(syscall.SIGQUIT)
}

// Restart stops the server in fast mode and starts it again.
func (c *Cluster) Restart() error {
	if err := c.Stop(); err != nil {
		return err
	}
	return c.Start()
}

func (c *Cluster) stopLocked(sig syscall.Signal) error {
	if !c.runningLocked() {
		return nil
	}
	srv := c.server
	// Escalate fast -> immediate -> kill if the server does not go away.
	for _, step := range []struct {
		sig     os.Signal
		timeout time.Duration
	}{{sig, stopTimeout}, {syscall.SIGQUIT, 10 * time.Second}, {os.Kill, 10 * time.Second}} {
		if err := srv.proc.Signal(step.sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("pgtest: signal postmaster %d: %w", srv.proc.Pid, err)
		}
		timer := time.NewTimer(step.timeout)
		var exited bool
		select {
		case <-srv.done:
			exited = true
		case <-timer.C:
		}
		timer.Stop()
		if exited {
			c.server = nil
			if step.sig != sig {
				return fmt.Errorf("pgtest: server did not stop on %v within %s; sent %v", sig, stopTimeout, step.sig)
			}
			return nil
		}
	}
	return fmt.Errorf("pgtest: postmaster %d did not exit even after SIGKILL", srv.proc.Pid)
}

// Close shuts the server down immediately and removes the cluster's
// directory. It is safe to call more than once.
func (c *Cluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	err := c.stopLocked(syscall.SIGQUIT)
	if rerr := os.RemoveAll(c.Dir); rerr != nil {
		err = errors.Join(err, fmt.Errorf("pgtest: remove %s: %w", c.Dir, rerr))
	}
	return err
}

// Log returns the contents of the server log, for debugging failed tests.
func (c *Cluster) Log() string {
	b, err := os.ReadFile(c.LogFile)
	if err != nil {
		return fmt.Sprintf("(cannot read server log: %v)", err)
	}
	return string(b)
}

func (c *Cluster) logSince(off int64) string {
	log := c.Log()
	if off > 0 && off <= int64(len(log)) {
		return log[off:]
	}
	return log
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// DSN returns a connection URL for the superuser and database db, e.g.
// "postgres://postgres@127.0.0.1:5433/db?sslmode=disable".
func (c *Cluster) DSN(db string) string {
	return c.dsn(url.User(Superuser), db)
}

// UserDSN returns a connection URL for the given role, password and
// database. The password is not checked here; use CreateUser to create the
// role.
func (c *Cluster) UserDSN(user, password, db string) string {
	return c.dsn(url.UserPassword(user, password), db)
}

func (c *Cluster) dsn(u *url.Userinfo, db string) string {
	return (&url.URL{
		Scheme:   "postgres",
		User:     u,
		Host:     net.JoinHostPort(c.Host, strconv.Itoa(c.Port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}).String()
}

// quoteIdent quotes an SQL identifier.
func quoteIdent(s string) string { return pq.QuoteIdentifier(s) }
