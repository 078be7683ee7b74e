package pgtest

import (
	"errors"
	"os"
	"sync"
	"testing"
)

var shared struct {
	mu  sync.Mutex
	c   *Cluster
	err error
}

// Shared returns a process-wide cluster, started on first use. Tests must
// not damage, stop or restart it; use Fresh for that. Call CloseShared from
// TestMain to remove it when the tests are done (if the test process exits
// without doing so the server still dies with it, and the next Start removes
// its directory).
//
// If no PostgreSQL server is available (binaries not found, or the cluster
// fails to start), Shared skips the test with one loud line saying what is
// missing — unless the environment variable CI is "true", where it fails the
// test instead: a missing server in CI is a failure, never a silent skip.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	shared.mu.Lock()
	if shared.c == nil && shared.err == nil {
		shared.c, shared.err = Start()
	}
	c, err := shared.c, shared.err
	shared.mu.Unlock()
	if err != nil {
		unavailable(t, err)
		return nil // not reached: unavailable ends the test
	}
	return c
}

// CloseShared closes the cluster started by Shared, if any. A later call to
// Shared starts a new one.
func CloseShared() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	c := shared.c
	shared.c, shared.err = nil, nil
	if c == nil {
		return nil
	}
	return c.Close()
}

// Fresh starts a cluster dedicated to the calling test and closes it when
// the test ends (via t.Cleanup); if the test failed, the tail of the server
// log is logged first. Use it for tests that corrupt, stop or crash the
// cluster. Unavailable servers are handled as in Shared.
func Fresh(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	c, err := Start(opts...)
	if err != nil {
		unavailable(t, err)
		return nil // not reached: unavailable ends the test
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pgtest: tail of server log %s:\n%s", c.LogFile, tail(c.Log(), 40))
		}
		if err := c.Close(); err != nil {
			t.Errorf("pgtest: close cluster: %v", err)
		}
	})
	return c
}

// unavailable skips the test (or fails it when CI=true) because no server
// could be started.
func unavailable(t testing.TB, err error) {
	t.Helper()
	what := "cannot start a PostgreSQL test cluster"
	if errors.Is(err, ErrServerNotFound) {
		what = "no PostgreSQL server"
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("!!! FAIL (CI=true): %s: %v", what, err)
		return
	}
	t.Skipf("!!! SKIPPING PostgreSQL test: %s: %v", what, err)
}
