package relay

import (
	"net"
	"time"
)

// RTT returns the TCP_INFO smoothed RTT of a TCP conn, or of the TCP conn
// under a wrapper that exposes it with NetConn() (*tls.Conn, PROXY protocol
// conns). It is 0 for unix sockets and anything else.
func RTT(c net.Conn) time.Duration {
	rc := tcpRawConn(c)
	if rc == nil {
		return 0
	}
	var d time.Duration
	_ = rc.Control(func(fd uintptr) { d = fdRTT(int(fd)) })
	return d
}
