//go:build linux

package main

import (
	"syscall"
	"unsafe"
)

// mincore reports in vec which pages of the mapping m are resident.
func mincore(m, vec []byte) error {
	_, _, errno := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		return errno
	}
	return nil
}
