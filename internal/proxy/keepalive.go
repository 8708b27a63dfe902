package proxy

import (
	"net"
	"strings"
	"syscall"
	"time"

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

// relayKeepAlive is the same setting for the relay, which applies it to
// both legs when a connection first goes quiet (the origin leg gets it
// only then: a short connection never needs it).
var relayKeepAlive = net.KeepAliveConfig{
	Enable:   true,
	Idle:     keepAliveIdleSecs * time.Second,
	Interval: keepAliveIntervalSecs * time.Second,
	Count:    keepAliveCount,
}

// setKeepAlive is a Control function for listeners. It sets the keepalive
// options on the listening socket, which every accepted socket inherits,
// instead of letting the net package set them on every connection: four
// system calls fewer per accepted connection. Sockets other than TCP are
// left alone.
func setKeepAlive(network, _ string, c syscall.RawConn) error {
	if !strings.HasPrefix(network, "tcp") {
		return nil
	}
	var serr error
	err := c.Control(func(fd uintptr) {
		for _, o := range [...]struct{ level, opt, val int }{
			{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
			{unix.IPPROTO_TCP, tcpKeepIdle, keepAliveIdleSecs},
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
