//go:build linux

package pgtest

import "syscall"

// sysProcAttr runs PostgreSQL programs in their own process group (so a
// terminal's Ctrl-C reaches only the test binary), as runAs when set, and
// makes the kernel send SIGQUIT (immediate shutdown) to the server if the
// test process dies without calling Close.
func sysProcAttr(runAs *osUser) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	if runAs != nil {
		attr.Credential = &syscall.Credential{Uid: runAs.uid, Gid: runAs.gid, Groups: []uint32{}}
	}
	return attr
}
