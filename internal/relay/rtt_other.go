//go:build !linux

package relay

import "time"

// fdRTT is 0 off Linux: there is no TCP_INFO to read.
func fdRTT(int) (d time.Duration) { return d }

// canWatch is false off Linux: there is no peerError to read a socket's
// pending error with, so a direction finishes at its source's EOF.
const canWatch = false

func peerError(int) error { return nil }
