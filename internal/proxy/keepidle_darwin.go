package proxy

import "golang.org/x/sys/unix"

// tcpKeepIdle is the socket option for the idle time before the first
// keepalive probe: TCP_KEEPALIVE on macOS.
const tcpKeepIdle = unix.TCP_KEEPALIVE
