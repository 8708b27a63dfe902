//go:build !linux

package relay

import "time"

// fdRTT is 0 off Linux: there is no TCP_INFO to read.
func fdRTT(int) (d time.Duration) { return d }

// fdQuiet knows nothing off Linux: the idle timeout counts only the
// relay's reads there.
func fdQuiet(int) (time.Duration, bool) { return 0, false }

// canWatch is false off Linux: there is no peerError to read a socket's
// pending error with, so a direction finishes at its source's EOF.
const canWatch = false

func peerError(int) error { return nil }
