//go:build !linux

package relay

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// The portable fallback of the Linux-only parts (sockets_linux.go,
// buffered_linux.go, splice_linux.go, poller_linux.go, rtt_linux.go): no
// socket is taken for the socket path, so every direction moves on the
// conn path (connpath.go), reading through net.Conn, which waits in the
// runtime netpoller; an idle direction keeps its goroutine (there is no
// poller to park in), and RTT samples are 0. The Mode is recorded but
// changes nothing.

// rawConn is nil everywhere: there is no socket path here.
func rawConn(net.Conn) syscall.RawConn { return nil }

// bindSocketPath has no callbacks to bind.
func (h *half) bindSocketPath() {}

// setMode records the mode; there is only one path.
func (h *half) setMode(m Mode) { h.mode = m }

// sockStep is never called: sockets() is false without rawConn.
func (h *half) sockStep() int { return h.connStep() }

// quietPath and dropHeld have nothing to reset or give back: the conn
// path holds a buffer only within connStep.
func (h *half) quietPath() {}
func (h *half) dropHeld()  {}

// pipe is the splice pipe of the socket path; none is ever made here.
type pipe struct{}

// poller is the Linux parking set; there is none here.
type poller struct{}

var errNoPoller = errors.New("relay: no poller on this platform")

func getPoller(int) *poller       { return nil }
func (*poller) arm(*half) error   { return errNoPoller }
func (*poller) unregister(*half)  {}
func fdRTT(int) (d time.Duration) { return d }
