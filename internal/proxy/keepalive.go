package proxy

import (
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// TCP keepalive on both legs: first probe after 3 minutes of silence, then
// every 15 s, 9 probes (what net.ListenConfig/net.Dialer with KeepAlive:
// 3m set, Go's interval and count defaults included).
const (
	keepAliveIdleSecs     = 180
	keepAliveIntervalSecs = 15
	keepAliveCount        = 9
)

// setKeepAlive is a Control function for listeners and dialers. It sets the
// keepalive options on the socket before it listens or connects, instead
// of letting the net package set them on every connection afterwards: an
// accepted socket inherits them from its listener, and before connect the
// calls are cheap (no peer, no backlog to process). That saves four system
// calls per accepted connection and makes the dialed side's four cheaper.
// Sockets other than TCP (unix origins) are left alone.
func setKeepAlive(network, _ string, c syscall.RawConn) error {
	if !strings.HasPrefix(network, "tcp") {
		return nil
	}
	var serr error
	err := c.Control(func(fd uintptr) {
		for _, o := range [...]struct{ level, opt, val int }{
			{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
			{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, keepAliveIdleSecs},
			{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, keepAliveIntervalSecs},
			{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, keepAliveCount},
		} {
			if serr = unix.SetsockoptInt(int(fd), o.level, o.opt, o.val); serr != nil {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}
