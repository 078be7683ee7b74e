//go:build !unix

package pgtest

import "syscall"

// sysProcAttr returns nil: running the server as another user is only
// supported on Unix.
func sysProcAttr(*osUser) *syscall.SysProcAttr { return nil }

// processAlive conservatively reports every process as alive, so stale
// directories are never removed on platforms without kill(pid, 0).
func processAlive(int) bool { return true }
