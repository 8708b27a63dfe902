//go:build !linux

package relay

import "time"

// fdRTT is 0 off Linux: there is no TCP_INFO to read.
func fdRTT(int) (d time.Duration) { return d }
