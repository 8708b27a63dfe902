package relay

import "time"

// fdRTT returns the smoothed RTT of a TCP socket (TCP_INFO reports µs).
func fdRTT(fd int) time.Duration {
	rtt, ok := fdRTTRaw(fd)
	if !ok {
		return 0
	}
	return time.Duration(rtt) * time.Microsecond
}
