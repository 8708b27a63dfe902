//go:build !linux

package main

// kernelRelease is "unknown" off Linux: the bench reports a Linux machine
// (its numbers are of the Linux fast paths).
func kernelRelease() string { return "unknown" }
