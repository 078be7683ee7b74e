//go:build unix && !linux

package pgtest

import "syscall"

// sysProcAttr runs PostgreSQL programs in their own process group (so a
// terminal's Ctrl-C reaches only the test binary) and as runAs when set.
func sysProcAttr(runAs *osUser) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true}
	if runAs != nil {
		attr.Credential = &syscall.Credential{Uid: runAs.uid, Gid: runAs.gid, Groups: []uint32{}}
	}
	return attr
}
