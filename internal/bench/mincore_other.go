//go:build !linux

package main

import "errors"

// mincore is only implemented on Linux; elsewhere residency is unknown.
func mincore(m, vec []byte) error { return errors.New("mincore: not supported on this platform") }
