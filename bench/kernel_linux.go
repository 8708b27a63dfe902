package main

import "syscall"

// kernelRelease is the running kernel's release (uname -r).
func kernelRelease() string {
	var uts syscall.Utsname
	_ = syscall.Uname(&uts)
	return utsString(uts.Release[:])
}

// utsString is a NUL-terminated utsname field (int8 or uint8 by architecture).
func utsString[T int8 | uint8](b []T) string {
	s := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}
