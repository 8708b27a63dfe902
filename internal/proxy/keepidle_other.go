//go:build !darwin

package proxy

import "golang.org/x/sys/unix"

// tcpKeepIdle is the socket option for the idle time before the first
// keepalive probe: TCP_KEEPIDLE (macOS calls it TCP_KEEPALIVE).
const tcpKeepIdle = unix.TCP_KEEPIDLE
