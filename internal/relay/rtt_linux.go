package relay

import (
	"time"

	"golang.org/x/sys/unix"
)

// fdRTT returns the smoothed RTT of a TCP socket (TCP_INFO reports µs).
func fdRTT(fd int) time.Duration {
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return 0
	}
	return time.Duration(info.Rtt) * time.Microsecond
}
